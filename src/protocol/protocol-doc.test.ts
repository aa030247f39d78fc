import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { assert, describe, expect, it } from "vitest";
import { type ZodType, z } from "zod";
import { ChangeSet, RunnerMessage, ServerMessage } from "./messages.ts";

/*
 * Keeps docs/protocol.md honest. Every ```json block of the page is an example:
 * - a JSON object with a "type" is a frame and must match RunnerMessage or ServerMessage;
 * - a block right under `<!-- change-set -->` is an upload body and must match ChangeSet;
 * - a block right under `<!-- invalid-frame -->` is a frame shown for the `error` it gets: it must
 *   be a runner frame type that does NOT match its schema (so it cannot rot into a valid one);
 * - any other JSON (HTTP response bodies) must sit under `<!-- http-body -->`, so a frame whose
 *   "type" got lost is reported instead of skipped.
 * Fields a schema does not know are reported too: zod drops them silently, so a misspelt optional
 * field (`mesage`) would otherwise pass. Every frame type of both unions needs an example.
 */

const DOC_PATH = new URL("../../docs/protocol.md", import.meta.url);

interface JsonBlock {
  /** 1-based position among the page's ```json blocks. */
  index: number;
  /** 1-based line of the opening fence. */
  line: number;
  /** The HTML comment right above the fence (`change-set`, `http-body`), if there is one. */
  marker: string | undefined;
  text: string;
}

type CheckResult =
  | { kind: "runner" | "server" | "invalid-frame"; type: string; problem?: undefined }
  | { kind: "change-set" | "http-body"; type?: undefined; problem?: undefined }
  | { kind?: undefined; type?: undefined; problem: string };

const MARKERS = ["change-set", "http-body", "invalid-frame"] as const;
const RUNNER_TYPES: string[] = RunnerMessage.options.map((o) => o.shape.type.value);
const SERVER_TYPES: string[] = ServerMessage.options.map((o) => o.shape.type.value);

/** The ```json blocks of a Markdown page (other fenced blocks are skipped whole). */
function jsonBlocks(markdown: string): JsonBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: JsonBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const [, fence, lang] = open;
    let end = i + 1;
    const closes = (line: string) => {
      const t = line.trim();
      return t.length >= fence!.length && t[0] === fence![0] && /^(`+|~+)$/.test(t);
    };
    while (end < lines.length && !closes(lines[end]!)) end++;
    if (lang === "json") {
      let above = i - 1;
      while (above >= 0 && lines[above]!.trim() === "") above--;
      const marker = /^<!--\s*([\w-]+)\s*-->$/.exec(lines[above]?.trim() ?? "")?.[1];
      blocks.push({
        index: blocks.length + 1,
        line: i + 1,
        marker,
        text: lines.slice(i + 1, end).join("\n"),
      });
    }
    i = end;
  }
  return blocks;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Dotted paths of the keys in `input` that parsing dropped from `output`. */
function droppedKeys(input: unknown, output: unknown, path = ""): string[] {
  if (Array.isArray(input) && Array.isArray(output)) {
    return input.flatMap((item, i) => droppedKeys(item, output[i], `${path}${i}.`));
  }
  if (isPlainObject(input) && isPlainObject(output)) {
    return Object.keys(input).flatMap((key) =>
      Object.hasOwn(output, key)
        ? droppedKeys(input[key], output[key], `${path}${key}.`)
        : [`${path}${key}`],
    );
  }
  return [];
}

/** undefined if `value` matches `schema` exactly, else what is wrong with it. */
function mismatch(schema: ZodType, value: unknown): string | undefined {
  const parsed = schema.safeParse(value);
  if (!parsed.success) return z.prettifyError(parsed.error);
  const unknown = droppedKeys(value, parsed.data);
  return unknown.length ? `unknown field(s): ${unknown.join(", ")}` : undefined;
}

function checkBlock(block: JsonBlock): CheckResult {
  let value: unknown;
  try {
    value = JSON.parse(block.text);
  } catch (error) {
    return { problem: `not valid JSON: ${(error as Error).message}` };
  }
  if (block.marker !== undefined && !(MARKERS as readonly string[]).includes(block.marker)) {
    return { problem: `unknown marker <!-- ${block.marker} -->; use one of ${MARKERS.join(", ")}` };
  }
  if (block.marker === "http-body") return { kind: "http-body" };
  if (block.marker === "invalid-frame") {
    if (!isPlainObject(value) || typeof value.type !== "string") {
      return { problem: 'an invalid-frame example still needs a string "type"' };
    }
    if (!RUNNER_TYPES.includes(value.type)) {
      return {
        problem: `an invalid-frame example must be a runner frame type, not "${value.type}"`,
      };
    }
    return mismatch(RunnerMessage, value)
      ? { kind: "invalid-frame", type: value.type }
      : { problem: "marked invalid-frame, but it matches the schema" };
  }
  if (block.marker === "change-set") {
    const problem = mismatch(ChangeSet, value);
    return problem ? { problem: `not a ChangeSet:\n${problem}` } : { kind: "change-set" };
  }
  if (!isPlainObject(value) || typeof value.type !== "string") {
    return {
      problem:
        'not a frame (no string "type"); mark other JSON with <!-- http-body --> or <!-- change-set -->',
    };
  }
  // Try both unions; report against the one that knows this type (they share no type).
  const asRunner = mismatch(RunnerMessage, value);
  if (!asRunner) return { kind: "runner", type: value.type };
  const asServer = mismatch(ServerMessage, value);
  if (!asServer) return { kind: "server", type: value.type };
  if (RUNNER_TYPES.includes(value.type)) return { problem: `not a RunnerMessage:\n${asRunner}` };
  if (SERVER_TYPES.includes(value.type)) return { problem: `not a ServerMessage:\n${asServer}` };
  return {
    problem: `matches neither RunnerMessage nor ServerMessage: unknown type "${value.type}"`,
  };
}

const markdown = readFileSync(DOC_PATH, "utf8");
const blocks = jsonBlocks(markdown);
const checked = blocks.map((block) => ({ block, result: checkBlock(block) }));

describe("docs/protocol.md", () => {
  it("has json examples", () => {
    expect(blocks.length).toBeGreaterThan(10);
  });

  it.each(checked)(
    "json block $block.index (line $block.line) matches the protocol",
    ({ block, result }) => {
      assert(
        result.problem === undefined,
        `json block ${block.index} (line ${block.line} of docs/protocol.md): ${result.problem}`,
      );
    },
  );

  it("has an example of every frame type in both directions, and of the change set", () => {
    const documented = (kind: "runner" | "server") =>
      new Set(checked.flatMap(({ result }) => (result.kind === kind ? [result.type] : [])));
    const runner = documented("runner");
    const server = documented("server");
    expect(
      RUNNER_TYPES.filter((t) => !runner.has(t)),
      "runner frames without an example",
    ).toEqual([]);
    expect(
      SERVER_TYPES.filter((t) => !server.has(t)),
      "server frames without an example",
    ).toEqual([]);
    expect(checked.filter(({ result }) => result.kind === "change-set")).toHaveLength(1);
  });

  it("gives the change-set example's real digest wherever it names a digest", () => {
    const body = blocks.find((b) => b.marker === "change-set");
    expect(body).toBeDefined();
    const digest = `sha256:${createHash("sha256").update(body!.text, "utf8").digest("hex")}`;
    const named = markdown.match(/sha256:[0-9a-f]{64}/g) ?? [];
    expect(named.length).toBeGreaterThanOrEqual(2);
    expect(new Set(named)).toEqual(new Set([digest]));
  });
});

describe("the example checker", () => {
  const heartbeat = {
    type: "heartbeat",
    task_id: "147a5c62-d1ec-491a-a6c0-0c5125961938",
    generation: 3,
    stage: "agent",
  };
  const block = (value: unknown, marker?: string): JsonBlock => ({
    index: 1,
    line: 1,
    marker,
    text: JSON.stringify(value, null, 2),
  });

  it("accepts frames in both directions", () => {
    expect(checkBlock(block(heartbeat))).toEqual({ kind: "runner", type: "heartbeat" });
    expect(checkBlock(block({ type: "ack", id: "x" }))).toEqual({ kind: "server", type: "ack" });
  });

  it("fails a frame with a misspelt required field", () => {
    const { task_id, ...rest } = heartbeat;
    expect(checkBlock(block({ ...rest, taskId: task_id })).problem).toMatch(/task_id/);
  });

  it("fails a frame with a misspelt optional field", () => {
    expect(checkBlock(block({ ...heartbeat, mesage: "hi" })).problem).toMatch(
      /unknown field\(s\): mesage/,
    );
    const assignLike = { type: "pong", id: "p", extra: { nested: true } };
    expect(checkBlock(block(assignLike)).problem).toMatch(/extra/);
  });

  it("fails a frame with a wrong value or an unknown type", () => {
    expect(checkBlock(block({ ...heartbeat, stage: "dancing" })).problem).toMatch(/stage/);
    expect(checkBlock(block({ type: "hearbeat" })).problem).toMatch(/unknown type "hearbeat"/);
  });

  it("fails JSON that is neither a frame nor marked, and broken JSON", () => {
    expect(checkBlock(block({ digest: "sha256:00" })).problem).toMatch(/not a frame/);
    expect(checkBlock({ ...block(null), text: '{ "type": "ping", }' }).problem).toMatch(
      /not valid JSON/,
    );
  });

  it("wants an invalid-frame example to be a runner frame the schema refuses", () => {
    const bad = { ...heartbeat, generation: 0 };
    expect(checkBlock(block(bad, "invalid-frame"))).toEqual({
      kind: "invalid-frame",
      type: "heartbeat",
    });
    expect(checkBlock(block(heartbeat, "invalid-frame")).problem).toMatch(/matches the schema/);
    expect(checkBlock(block({ type: "ack", id: 7 }, "invalid-frame")).problem).toMatch(
      /must be a runner frame type/,
    );
  });

  it("checks change sets against ChangeSet", () => {
    const problem = checkBlock(
      block({ base_sha: "abc", message: "m", files: [] }, "change-set"),
    ).problem;
    expect(problem).toMatch(/base_sha/);
    expect(problem).toMatch(/files/);
  });

  it("finds json blocks, their lines and markers, and skips other fences", () => {
    const page = [
      "text", // 1
      "<!-- change-set -->", // 2
      "", // 3
      "```json", // 4
      "{}", // 5
      "```", // 6
      "```text", // 7
      "```json inside text is not a block", // 8
      "```", // 9
      "```json", // 10
      '{"type": "ping"}', // 11
      "```", // 12
    ].join("\n");
    expect(jsonBlocks(page)).toEqual([
      { index: 1, line: 4, marker: "change-set", text: "{}" },
      { index: 2, line: 10, marker: undefined, text: '{"type": "ping"}' },
    ]);
  });
});
