import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  budgetFor,
  DEFAULT_REPO_CONFIG,
  parseRepoConfig,
  RepoConfig,
  repoConfigJsonSchema,
} from "./repo-config.ts";

describe("repository config", () => {
  it("uses the documented defaults for a missing file", () => {
    expect(parseRepoConfig(undefined)).toEqual({ ok: true, config: DEFAULT_REPO_CONFIG });
    expect(DEFAULT_REPO_CONFIG.intake.label).toBe("conveyor");
    expect(DEFAULT_REPO_CONFIG.tasks.max_attempts).toBe(3);
  });

  it("fills unspecified keys of a partial file with defaults", () => {
    const result = parseRepoConfig({ version: 1, tasks: { max_attempts: 5 } });
    expect(result.ok).toBe(true);
    expect(result.config.tasks.max_attempts).toBe(5);
    expect(result.config.tasks.deadline_minutes).toBe(120);
    expect(result.config.intake.label).toBe("conveyor");
  });

  it.each([
    [{ version: 2 }, "version"],
    [{ intake: { lable: "x" } }, "intake.lable"],
    [{ tasks: { max_attempts: 0 } }, "tasks.max_attempts"],
    [{ tasks: { capabilities: ["GPU!"] } }, "tasks.capabilities.0"],
    [{ verify: { commands: ["npm test"] } }, "verify.commands.0"],
    [{ surprise: true }, "surprise"],
    ["just a string", ""],
  ])("refuses %j naming %s and falls back to the defaults", (raw, key) => {
    const result = parseRepoConfig(raw);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.key)).toContain(key);
    expect(result.config).toEqual(DEFAULT_REPO_CONFIG);
  });

  it("matches the committed docs/conveyor.schema.json (run `npm run docs:schema`)", () => {
    const committed = JSON.parse(
      readFileSync(new URL("../../docs/conveyor.schema.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(repoConfigJsonSchema());
  });
});

describe("budgetFor", () => {
  const config = RepoConfig.parse({
    tasks: {
      limits: { max_cost_usd: 2, max_turns: 40 },
      label_limits: {
        "size:large": { max_cost_usd: 10, max_turns: 120 },
        Quick: { max_turns: 5 },
        "size:huge": { max_tokens: 9_000_000 },
      },
    },
  });
  it.each<[string, string[], Record<string, number>]>([
    ["no label: tasks.limits", [], { max_cost_usd: 2, max_turns: 40 }],
    [
      "a label's figures replace those it names",
      ["size:large"],
      { max_cost_usd: 10, max_turns: 120 },
    ],
    ["labels compare without case", ["QUICK"], { max_cost_usd: 2, max_turns: 5 }],
    // The file's order decides, not the issue's.
    ["the first listed label wins", ["quick", "size:large"], { max_cost_usd: 10, max_turns: 120 }],
    [
      "a label may add a limit",
      ["size:huge"],
      { max_cost_usd: 2, max_turns: 40, max_tokens: 9_000_000 },
    ],
  ])("%s", (_name, labels, expected) => {
    expect(budgetFor(config, labels)).toEqual(expected);
  });

  it("has no budget by default", () => {
    expect(budgetFor(DEFAULT_REPO_CONFIG, ["size:large"])).toEqual({});
  });

  it("refuses a budget that is not a positive amount, and unknown keys", () => {
    const result = parseRepoConfig({
      tasks: { limits: { max_cost_usd: 0 }, label_limits: { x: { max_tokens: 1.5, max_cost: 1 } } },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.key).sort()).toEqual([
      "tasks.label_limits.x.max_cost",
      "tasks.label_limits.x.max_tokens",
      "tasks.limits.max_cost_usd",
    ]);
  });
});
