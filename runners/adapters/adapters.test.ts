import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { replayThroughAdapter } from "../../test/helpers/replay-adapter.ts";
import type { AdapterLaunch, AgentAdapter } from "./agent-adapter.ts";
import { aiderAdapter, tokenCount } from "./aider.ts";
import { claudeAdapter } from "./claude.ts";
import { codexAdapter } from "./codex.ts";
import { createCommandAdapter } from "./command.ts";
import { createAgentAdapter } from "./create-agent-adapter.ts";
import { geminiAdapter } from "./gemini.ts";
import { opencodeAdapter } from "./opencode.ts";

const launch = (model?: string): AdapterLaunch => ({
  model,
  promptFile: "/work/task.prompt.md",
  instructions: ["AGENTS.md"],
});

describe("adapter argv", () => {
  it.each<[AgentAdapter, string | undefined, string[]]>([
    [
      claudeAdapter,
      undefined,
      [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
      ],
    ],
    [
      claudeAdapter,
      "claude-sonnet-4-5",
      [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--model",
        "claude-sonnet-4-5",
      ],
    ],
    [
      codexAdapter,
      undefined,
      ["codex", "exec", "--json", "--full-auto", "--skip-git-repo-check", "-"],
    ],
    [
      codexAdapter,
      "gpt-5-codex",
      [
        "codex",
        "exec",
        "--json",
        "--full-auto",
        "--skip-git-repo-check",
        "--model",
        "gpt-5-codex",
        "-",
      ],
    ],
    [
      geminiAdapter,
      undefined,
      ["gemini", "--output-format", "stream-json", "--approval-mode", "auto_edit"],
    ],
    [
      geminiAdapter,
      "gemini-2.5-pro",
      [
        "gemini",
        "--output-format",
        "stream-json",
        "--approval-mode",
        "auto_edit",
        "--model",
        "gemini-2.5-pro",
      ],
    ],
    [
      aiderAdapter,
      "sonnet",
      [
        "aider",
        "--message-file",
        "/work/task.prompt.md",
        "--yes-always",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-pretty",
        "--no-stream",
        "--no-check-update",
        "--model",
        "sonnet",
        "--read",
        "AGENTS.md",
      ],
    ],
    [opencodeAdapter, undefined, ["opencode", "run", "--format", "json"]],
    [
      opencodeAdapter,
      "anthropic/claude-sonnet-4-5",
      ["opencode", "run", "--format", "json", "--model", "anthropic/claude-sonnet-4-5"],
    ],
    [createCommandAdapter(["my-agent", "--fast"]), "ignored", ["my-agent", "--fast"]],
  ])("%# %s builds its argv", (adapter, model, argv) => {
    expect(adapter.argv(launch(model))).toEqual(argv);
    expect(adapter.program).toBe(argv[0]);
  });

  it("names each adapter by the name the runner was given", () => {
    expect(createAgentAdapter("claude", ["claude"]).name).toBe("claude");
    for (const name of ["claude", "codex", "gemini", "aider", "opencode"] as const) {
      expect(createAgentAdapter(name, [name]).name).toBe(name);
    }
    expect(createAgentAdapter("command", ["x"]).argv(launch())).toEqual(["x"]);
  });
});

describe("claude adapter on replayed stream-json", () => {
  it("reports tool uses as progress, and cost, tokens and turns from the result", async () => {
    const run = await replayThroughAdapter(claudeAdapter, "claude-success.jsonl");
    expect(run.exitCode).toBe(0);
    expect(run.progress).toEqual(["Read /work/task/src/sizes.ts", "Edit /work/task/src/sizes.ts"]);
    expect(run.report).toEqual({
      usage: {
        tokens: 12 + 5120 + 20480 + 640,
        input_tokens: 12 + 5120 + 20480,
        output_tokens: 640,
        cache_read_tokens: 20480,
        cache_write_tokens: 5120,
        cost_usd: 0.0421,
        turns: 3,
      },
      summary: "Added size 4 to src/sizes.ts.",
    });
  });

  it("reports the usage so far while it runs, before the result has the cost", () => {
    const parser = claudeAdapter.createParser();
    const lines = readFileSync(
      fileURLToPath(new URL("./fixtures/claude-success.jsonl", import.meta.url)),
      "utf8",
    )
      .split("\n")
      .filter(Boolean);
    // Up to the second assistant message (the Edit), and that message repeated, as Claude Code
    // does when one message's content blocks arrive as separate events.
    for (const line of lines.slice(0, 4)) parser.line(line);
    parser.line(lines[3]!);
    expect(parser.finish("").usage).toEqual({
      tokens: 4 + 5120 + 60 + 4 + 5120 + 80,
      input_tokens: 4 + 5120 + 4 + 5120,
      output_tokens: 140,
      cache_read_tokens: 5120,
      cache_write_tokens: 5120,
      turns: 2,
    });
  });

  it.each([
    ["claude-api-error.jsonl", "success: Invalid API key · Please run /login", 0],
    ["claude-max-turns.jsonl", "error_max_turns (no message)", 0.0113],
  ])("turns the error result %s into the tool's message", async (fixture, error, cost) => {
    const run = await replayThroughAdapter(claudeAdapter, fixture, { exit: 1 });
    expect(run.exitCode).toBe(1);
    expect(run.report.error).toBe(error);
    expect(run.report.usage.cost_usd).toBe(cost);
    expect(run.report.summary).toBeUndefined();
  });

  it("ignores lines that are not its JSON, and reports nothing without a result", () => {
    const parser = claudeAdapter.createParser();
    for (const line of ["warning: something", "{not json", "[1,2]", '{"type":"result"'])
      expect(parser.line(line)).toBeUndefined();
    expect(parser.finish("")).toEqual({ usage: {} });
  });

  it("does not trust figures of the wrong type", () => {
    const parser = claudeAdapter.createParser();
    parser.line(
      JSON.stringify({
        type: "result",
        subtype: "success",
        is_error: false,
        total_cost_usd: "0.5",
        num_turns: -1,
        usage: { input_tokens: 10.4, output_tokens: null, cache_read_input_tokens: 1e300 },
      }),
    );
    expect(parser.finish("")).toEqual({ usage: { tokens: 10, input_tokens: 10 } });
  });
});

describe("codex adapter on replayed exec --json", () => {
  it("reports items as progress and the turns' usage", async () => {
    const run = await replayThroughAdapter(codexAdapter, "codex-success.jsonl", {
      model: "o4-mini",
    });
    expect(run.argv).toContain("o4-mini");
    expect(run.progress).toEqual([
      "running bash -lc 'cat src/sizes.ts'",
      "editing src/sizes.ts",
      "Added size 4 to src/sizes.ts.",
    ]);
    expect(run.report).toEqual({
      usage: {
        tokens: 24763 + 122,
        input_tokens: 24763,
        output_tokens: 122,
        cache_read_tokens: 24448,
        turns: 1,
      },
      summary: "Added size 4 to src/sizes.ts.",
    });
  });

  it("turns turn.failed into the tool's message", async () => {
    const run = await replayThroughAdapter(codexAdapter, "codex-turn-failed.jsonl", { exit: 1 });
    expect(run.report).toEqual({
      usage: {},
      error: "unexpected status 401 Unauthorized: Missing bearer or basic authentication in header",
    });
  });

  it("sums the usage of several turns, and forgets an error a later turn recovered from", () => {
    const parser = codexAdapter.createParser();
    parser.line('{"type":"error","message":"Reconnecting... 1/5"}');
    for (const n of [100, 200]) {
      parser.line(
        JSON.stringify({
          type: "turn.completed",
          usage: { input_tokens: n, cached_input_tokens: n / 2, output_tokens: 10 },
        }),
      );
    }
    expect(parser.finish("")).toEqual({
      usage: {
        tokens: 320,
        input_tokens: 300,
        output_tokens: 20,
        cache_read_tokens: 150,
        turns: 2,
      },
    });
  });
});

describe("gemini adapter on replayed headless output", () => {
  it("reports tool uses and the stream-json result's stats", async () => {
    const run = await replayThroughAdapter(geminiAdapter, "gemini-stream-success.jsonl");
    expect(run.progress).toEqual(["read_file src/sizes.ts", "replace src/sizes.ts"]);
    expect(run.report).toEqual({
      usage: { tokens: 10992, input_tokens: 10758, output_tokens: 92, cache_read_tokens: 6849 },
      summary: "Added size 4 to src/sizes.ts.",
    });
  });

  it("turns a result with status error into the tool's message", async () => {
    const run = await replayThroughAdapter(geminiAdapter, "gemini-stream-error.jsonl", { exit: 1 });
    expect(run.report.error).toBe(
      "TerminalQuotaError: You have exhausted your daily quota on this model.",
    );
  });

  it("reads the one object of --output-format json, and its error", async () => {
    const run = await replayThroughAdapter(geminiAdapter, "gemini-json.json");
    expect(run.report).toEqual({
      usage: { tokens: 25113, input_tokens: 24939, output_tokens: 20, cache_read_tokens: 21263 },
      summary: "Added size 4 to src/sizes.ts.",
    });
    const parser = geminiAdapter.createParser();
    parser.line(
      JSON.stringify({
        response: "",
        error: { type: "FatalAuthenticationError", message: "no key", code: 41 },
      }),
    );
    expect(parser.finish("").error).toBe("FatalAuthenticationError: no key");
  });
});

describe("aider adapter on replayed output", () => {
  it("reads the prompt from the file, sums the token lines and keeps the session cost", async () => {
    const run = await replayThroughAdapter(aiderAdapter, "aider-output.txt");
    expect(run.exitCode).toBe(0);
    expect(run.progress).toEqual(["editing src/sizes.ts"]);
    expect(run.report).toEqual({
      usage: {
        tokens: 2300 + 245 + 12345 + 1100,
        input_tokens: 2300 + 12345,
        output_tokens: 245 + 1100,
        cache_read_tokens: 8200,
        cache_write_tokens: 1200,
        cost_usd: 0.05,
        turns: 2,
      },
    });
  });

  it.each([
    ["245", 245],
    ["12,345", 12345],
    ["2.3k", 2300],
    ["1.2M", 1200000],
    ["lots", undefined],
    ["9".repeat(30), undefined],
    ["", undefined],
  ])("reads the token count %j", (value, expected) => {
    expect(tokenCount(value)).toBe(expected);
  });
});

describe("opencode adapter on replayed run --format json", () => {
  it("reports tool uses and sums the steps' tokens and cost", async () => {
    const run = await replayThroughAdapter(opencodeAdapter, "opencode-success.jsonl");
    expect(run.progress).toEqual(["read /work/task/src/sizes.ts", "edit /work/task/src/sizes.ts"]);
    expect(run.report.usage).toEqual({
      tokens: 1500 + 18000 + 240,
      input_tokens: 1500 + 18000,
      output_tokens: 240,
      cache_read_tokens: 9000,
      cache_write_tokens: 9000,
      cost_usd: expect.closeTo(0.0211, 10),
      turns: 2,
    });
    expect(run.report.summary).toBe("Added size 4 to src/sizes.ts.");
  });

  it("turns an error event into the tool's message", async () => {
    const run = await replayThroughAdapter(opencodeAdapter, "opencode-error.jsonl", { exit: 1 });
    expect(run.report.error).toBe("ProviderAuthError: No API key found for provider anthropic");
  });
});

describe("command adapter", () => {
  it("keeps the conveyor_usage line of the output", () => {
    const parser = createCommandAdapter(["x"]).createParser();
    expect(parser.line('{"conveyor_usage":{"tokens":5,"cost_usd":0.01}}')).toBeUndefined();
    expect(parser.finish('noise\n{"conveyor_usage":{"tokens":5,"cost_usd":0.01}}\n')).toEqual({
      usage: { tokens: 5, cost_usd: 0.01 },
    });
    expect(createCommandAdapter(["x"]).createParser().finish("no usage here")).toEqual({
      usage: {},
    });
  });
});
