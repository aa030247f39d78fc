import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FRAME_TIERS, TIER_LIMITS_PER_MINUTE } from "../core/rate-limit.ts";
import { ERROR_CODES, protocolJsonSchemas, RunnerMessage } from "./messages.ts";
import {
  DOCUMENTED_SCHEMAS,
  fieldRows,
  generatedSections,
  jsonSchemaOf,
  renderFieldTable,
  renderGeneratedSections,
  requirednessProblems,
  typeText,
} from "./protocol-doc-tables.ts";

const page = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
const published = readFileSync(new URL("../../docs/protocol.schema.json", import.meta.url), "utf8");

describe("docs/protocol.md and docs/protocol.schema.json come from the schemas", () => {
  it("has the generated field tables as `npm run docs:protocol` writes them", () => {
    expect(renderGeneratedSections(page)).toBe(page);
  });

  it("publishes the JSON Schema GET /api/schemas serves (`npm run docs:protocol`)", () => {
    expect(JSON.parse(published)).toEqual(protocolJsonSchemas());
  });

  it("has a field table for every frame type and the change set, once each", () => {
    const names = generatedSections(page).map((s) => s.name);
    expect([...names].sort()).toEqual([...DOCUMENTED_SCHEMAS.keys()].sort());
  });

  it("says a field is required exactly where the schema requires it", () => {
    expect(requirednessProblems(page)).toEqual([]);
  });

  it("lists exactly the schema's error codes", () => {
    const errors = page.slice(page.indexOf("\n## Errors"));
    const table = errors.slice(0, errors.indexOf("\n\n", errors.indexOf("| `code`")));
    // Rows after the header and its separator.
    const rows = table
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .slice(2);
    const documented = rows.map((row) => /^\| `([a-z_]+)` /.exec(row)?.[1]);
    expect(documented.sort()).toEqual([...ERROR_CODES].sort());
  });
});

/** The rows of the first table whose header starts with `header`, as trimmed cells. */
function tableAfter(header: string): string[][] {
  const start = page.indexOf(`\n${header}`);
  expect(start, header).toBeGreaterThan(-1);
  const lines = page.slice(start + 1).split("\n");
  const rows = lines.slice(
    0,
    lines.findIndex((l) => !l.startsWith("|")),
  );
  return rows.slice(2).map((row) =>
    row
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim().replaceAll("`", "")),
  );
}

describe("docs/protocol.md's rate limits are the server's", () => {
  it("names each runner frame's tier as the rate limiter does", () => {
    const rows = tableAfter("| Runner frame |");
    expect(Object.fromEntries(rows.map((r) => [r[0], r[3]]))).toEqual(FRAME_TIERS);
  });

  it("gives each tier's frames per minute and frame types as the rate limiter does", () => {
    const rows = tableAfter("| Tier ");
    expect(Object.fromEntries(rows.map((r) => [r[0], Number(r[1])]))).toEqual(
      TIER_LIMITS_PER_MINUTE,
    );
    for (const [tier, , types] of rows) {
      const documented = types!.split(",").map((t) => t.trim());
      const actual = Object.entries(FRAME_TIERS).filter(([, t]) => t === tier);
      expect(documented.sort(), tier).toEqual(actual.map(([type]) => type).sort());
    }
  });
});

/** `fail.stats`: every figure optional. */
const STATS_FIELDS = [
  "files_changed",
  "lines_added",
  "lines_removed",
  "duration_ms",
  "tokens",
  "input_tokens",
  "output_tokens",
  "cache_read_tokens",
  "cache_write_tokens",
  "turns",
  "cost_usd",
];

describe("the required-ness check", () => {
  // A page fragment that documents `fail` the way the docs once did: `detail` required.
  const fixture = (required: string, extra = "") =>
    [
      "<!-- generated:fields fail -->",
      "| Field | Required | Type | Meaning |",
      "| --- | --- | --- | --- |",
      "| `type` | yes | x | x |",
      "| `id` | no | x | x |",
      "| `task_id` | yes | x | x |",
      "| `generation` | yes | x | x |",
      "| `reason` | yes | x | x |",
      "| `retryable` | yes | x | x |",
      `| \`detail\` | ${required} | x | x |`,
      ...["", ...STATS_FIELDS.map((f) => `.${f}`)].map((f) => `| \`stats${f}\` | no | x | x |`),
      extra,
      "| `stats` | no | x | x |",
      ...[
        "files_changed",
        "lines_added",
        "lines_removed",
        "duration_ms",
        "tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "turns",
        "cost_usd",
      ].map((f) => `| \`stats.${f}\` | no | x | x |`),
      "| `agent` | no | x | x |",
      "| `agent.adapter` | yes | x | x |",
      "| `agent.model` | no | x | x |",
      "<!-- /generated:fields -->",
    ].join("\n");

  it("passes a table that agrees with the schema", () => {
    expect(requirednessProblems(fixture('no (default `""`)'))).toEqual([]);
  });

  it("fails a table that calls an optional field required", () => {
    expect(requirednessProblems(fixture("yes"))).toEqual([
      "fail: the table says detail is required, the schema says optional",
    ]);
  });

  it("fails a table that calls a required field optional, a missing and an unknown field", () => {
    const page = fixture("no", "| `detials` | no | x | x |").replace(
      "| `reason` | yes |",
      "| `reason` | no |",
    );
    expect(requirednessProblems(page.replace("| `retryable` | yes | x | x |\n", ""))).toEqual([
      "fail: the table says reason is optional, the schema says required",
      "fail: the table has detials, which the schema does not",
      "fail: the schema has retryable, which the table does not",
    ]);
  });

  it("refuses a section for an unknown schema or without its end", () => {
    expect(() => generatedSections("<!-- generated:fields nope -->\n")).toThrow(
      /no schema named "nope"/,
    );
    expect(() => generatedSections("<!-- generated:fields fail -->\n| a |\n")).toThrow(
      /has no <!-- \/generated:fields -->/,
    );
  });

  it("regenerates a hand-edited table", () => {
    const edited = fixture("yes");
    const regenerated = renderGeneratedSections(edited);
    expect(regenerated).toContain(renderFieldTable("fail"));
    expect(requirednessProblems(regenerated)).toEqual([]);
  });
});

describe("field rows", () => {
  it("flattens nested objects and arrays of objects, with required-ness relative to the parent", () => {
    const complete = RunnerMessage.options.find((o) => o.shape.type.value === "complete")!;
    const rows = fieldRows(jsonSchemaOf(complete));
    const byField = new Map(rows.map((r) => [r.field, r]));
    expect(byField.get("summary")).toMatchObject({ required: false, default: "" });
    expect(byField.get("stats")).toMatchObject({ required: false, default: {} });
    expect(byField.get("verification")).toMatchObject({ required: false });
    expect(byField.get("verification.passed")).toMatchObject({ required: true });
    expect(byField.get("verification.commands[].exit_code")).toMatchObject({
      required: true,
      type: "integer or `null`",
    });
  });

  it.each([
    [{ type: "string", format: "uuid", pattern: "^…$" }, "UUID"],
    [{ type: "string", minLength: 1, maxLength: 10000 }, "string, 1–10 000 characters"],
    [{ type: "integer", minimum: 1, maximum: 9007199254740991 }, "integer ≥ 1"],
    [{ type: "integer", minimum: 1, maximum: 64 }, "integer, 1–64"],
    [{ type: "integer", exclusiveMinimum: 0 }, "integer > 0"],
    [{ type: "string", enum: ["a", "b", "c"] }, "`a`, `b` or `c`"],
    [{ type: "array", maxItems: 64, items: { type: "object" } }, "array (≤ 64) of objects"],
    [
      { type: "array", items: { type: "array", items: { type: "string" } } },
      "array of arrays of strings",
    ],
  ])("describes %j as %s", (schema, text) => {
    expect(typeText(schema)).toBe(text);
  });
});
