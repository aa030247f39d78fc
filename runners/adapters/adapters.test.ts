import { describe, expect, it } from "vitest";
import type { AdapterLaunch, AgentAdapter } from "./agent-adapter.ts";
import { claudeAdapter } from "./claude.ts";
import { codexAdapter } from "./codex.ts";
import { createCommandAdapter } from "./command.ts";
import { createAgentAdapter } from "./create-agent-adapter.ts";
import { replayThroughAdapter } from "./replay.ts";

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
    [createCommandAdapter(["my-agent", "--fast"]), "ignored", ["my-agent", "--fast"]],
  ])("%# %s builds its argv", (adapter, model, argv) => {
    expect(adapter.argv(launch(model))).toEqual(argv);
    expect(adapter.program).toBe(argv[0]);
  });

  it("names each adapter by the name the runner was given", () => {
    expect(createAgentAdapter("claude", ["claude"]).name).toBe("claude");
    expect(createAgentAdapter("codex", ["codex"]).name).toBe("codex");
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
        usage: { input_tokens: 10, output_tokens: null },
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

describe("command adapter", () => {
  it("keeps the conveyor_usage line of the output", () => {
    const parser = createCommandAdapter(["x"]).createParser();
    expect(parser.line('{"conveyor_usage":{"tokens":5,"cost_usd":0.01}}')).toBeUndefined();
    expect(parser.finish('noise\n{"conveyor_usage":{"tokens":5,"cost_usd":0.01}}\n')).toEqual({
      usage: { tokens: 5, cost_usd: 0.01 },
    });
    expect(parser.finish("no usage here")).toEqual({ usage: {} });
  });
});
