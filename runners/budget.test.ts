import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createFakeAgents } from "../test/helpers/replay-adapter.ts";
import { claudeAdapter } from "./adapters/claude.ts";
import { createCommandAdapter } from "./adapters/command.ts";
import { type AttemptBudget, budgetOverrun, hasBudget } from "./budget.ts";
import { runAgent } from "./supervisor.ts";

describe("budgetOverrun", () => {
  it.each<[string, AttemptBudget, Parameters<typeof budgetOverrun>[1], string | undefined]>([
    ["no budget", {}, { tokens: 10 ** 9, cost_usd: 10 ** 6, turns: 10 ** 4 }, undefined],
    ["at the limit is within it", { max_turns: 3 }, { turns: 3 }, undefined],
    [
      "one turn past",
      { max_turns: 3 },
      { turns: 4 },
      "turns 4 > max_turns 3 (used so far: 4 turns); the agent was stopped",
    ],
    [
      "cost, with every figure used",
      { max_cost_usd: 0.5 },
      { cost_usd: 0.5213, tokens: 1200, turns: 2 },
      "cost $0.5213 > max_cost_usd $0.50 (used so far: $0.5213, 1200 tokens, 2 turns); the agent was stopped",
    ],
    [
      "two limits at once",
      { max_tokens: 100, max_cost_usd: 1 },
      { tokens: 101, cost_usd: 2 },
      "cost $2.00 > max_cost_usd $1.00, tokens 101 > max_tokens 100 (used so far: $2.00, 101 tokens); the agent was stopped",
    ],
    // A figure the tool never reported cannot pass its limit (Claude Code's cost comes last).
    ["unreported cost", { max_cost_usd: 0.01 }, { tokens: 5000 }, undefined],
  ])("%s", (_name, budget, usage, expected) => {
    expect(budgetOverrun(budget, usage)).toBe(expected);
  });

  it("knows when there is a budget", () => {
    expect(hasBudget({})).toBe(false);
    expect(hasBudget({ max_turns: undefined })).toBe(false);
    expect(hasBudget({ max_tokens: 1 })).toBe(true);
  });
});

describe("usage so far", () => {
  it("command: the latest conveyor_usage line on stdout", () => {
    const parser = createCommandAdapter(["agent"]).createParser();
    expect(parser.usage()).toEqual({});
    parser.line('{"conveyor_usage":{"tokens":50,"cost_usd":0.01}}');
    parser.line("some output");
    parser.line('{"conveyor_usage":{"tokens":90,"cost_usd":0.02}}');
    expect(parser.usage()).toEqual({ tokens: 90, cost_usd: 0.02 });
  });

  it("claude: counts a message printed over several lines once", () => {
    const parser = claudeAdapter.createParser();
    const message = {
      type: "assistant",
      message: {
        id: "msg_1",
        content: [{ type: "text", text: "hi" }],
        usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 5 },
      },
    };
    parser.line(JSON.stringify(message));
    parser.line(JSON.stringify(message));
    expect(parser.usage()).toMatchObject({ tokens: 105, input_tokens: 100, output_tokens: 5 });
  });
});

describe("a budget overrun", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("stops the fake agent within one event", async () => {
    const fakes = createFakeAgents(["claude"]);
    const workspace = mkdtempSync(join(tmpdir(), "budget-workspace-"));
    dirs.push(fakes, workspace);
    const parser = claudeAdapter.createParser();
    const seen: string[] = [];
    let stoppedAfter: number | undefined;
    // claude-success.jsonl: init, message A (5,184 tokens), tool result, message B (10,388 in
    // all), tool result, message C, result. 6,000 tokens are passed at message B, line 4.
    const run = runAgent({
      argv: [join(fakes, "claude"), "-p"],
      cwd: workspace,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", REPLAY_DELAY_MS: "1000" },
      stdin: "replay: claude-success.jsonl\n",
      wallClockMs: 20_000,
      onStdoutLine: (line) => {
        seen.push(line);
        parser.line(line);
        if (stoppedAfter === undefined && budgetOverrun({ max_tokens: 6000 }, parser.usage())) {
          stoppedAfter = seen.length;
          run.cancel();
        }
      },
    });
    const result = await run.done;
    expect(stoppedAfter).toBe(4);
    expect(result.reason).toBe("cancelled");
    // Nothing after the event that passed the budget: the agent never printed message C.
    expect(seen).toHaveLength(4);
    expect(parser.usage()).toMatchObject({ tokens: 10388, turns: 2 });
  });
});
