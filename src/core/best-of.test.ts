import { describe, expect, it } from "vitest";
import {
  adapterFor,
  type CandidateFacts,
  candidateBranch,
  candidateChecks,
  candidateLimits,
  planBestOf,
  rankCandidates,
  renderCandidatesTable,
} from "./best-of.ts";
import { interpretCommands } from "./commands.ts";
import { checkRunOutcome, statusOutcome } from "./merge-policy.ts";
import { parseRepoConfig } from "./repo-config.ts";

const c = (k: number, over: Partial<CandidateFacts> = {}): CandidateFacts => ({
  k,
  hasChange: true,
  verificationPassed: true,
  tier: 1,
  checks: "green",
  changedLines: 10,
  costUsd: 0.5,
  ...over,
});

describe("rankCandidates: verification, then tier, then checks green, then diff, then cost", () => {
  it.each<[string, CandidateFacts[], number, string]>([
    [
      "verification passed beats everything after it",
      [c(1, { verificationPassed: false, changedLines: 1, costUsd: 0 }), c(2, { tier: 2 })],
      2,
      "verification passed",
    ],
    [
      "then the lower tier, even with red checks and a bigger diff",
      [c(1, { tier: 2 }), c(2, { tier: 1, checks: "red", changedLines: 500 })],
      2,
      "lower risk tier",
    ],
    [
      "then green checks over pending, red or none",
      [c(1, { checks: "none", changedLines: 1 }), c(2, { checks: "green" })],
      2,
      "checks green",
    ],
    [
      "then the smaller diff",
      [c(1, { changedLines: 40, costUsd: 0.01 }), c(2, { changedLines: 12, costUsd: 3 })],
      2,
      "smaller diff",
    ],
    ["then the lower cost", [c(1, { costUsd: 0.9 }), c(2, { costUsd: 0.2 })], 2, "lower cost"],
    [
      "an unknown cost counts as more than any figure",
      [c(1, { costUsd: null }), c(2, { costUsd: 100 })],
      2,
      "lower cost",
    ],
    ["a tie on every figure: the lower k", [c(2), c(1)], 1, "lower number wins"],
    [
      "a candidate without a change is never chosen",
      [c(1, { hasChange: false, verificationPassed: true }), c(2, { verificationPassed: false })],
      2,
      "the only candidate with a change",
    ],
  ])("%s", (_name, candidates, winner, reason) => {
    const ranking = rankCandidates(candidates);
    expect(ranking.winner?.k).toBe(winner);
    expect(ranking.reason).toContain(reason);
  });

  it("ranks every candidate with a change and none without", () => {
    const ranking = rankCandidates([
      c(1, { tier: 3 }),
      c(2, { hasChange: false }),
      c(3, { tier: 2 }),
      c(4, { tier: 2, changedLines: 2 }),
    ]);
    expect(ranking.ranked.map((r) => r.k)).toEqual([4, 3, 1]);
  });

  it("has no winner when no candidate produced a change", () => {
    const ranking = rankCandidates([c(1, { hasChange: false }), c(2, { hasChange: false })]);
    expect(ranking.winner).toBeUndefined();
    expect(ranking.reason).toBe("no candidate produced a change");
  });
});

describe("planBestOf", () => {
  it.each<[string, string[], number | string[] | undefined, number, string[], boolean]>([
    ["no label, no setting: one runner", ["conveyor"], undefined, 1, [], false],
    ["a label", ["conveyor", "conveyor:best-of-3"], undefined, 3, [], false],
    ["labels compare without case", ["Conveyor:Best-Of-2"], undefined, 2, [], false],
    ["the config's count", [], 2, 2, [], false],
    [
      "the config's adapters, one candidate each",
      [],
      ["claude", "codex"],
      2,
      ["claude", "codex"],
      false,
    ],
    [
      "a label overrides the count and keeps the adapters",
      ["conveyor:best-of-4"],
      ["a", "b"],
      4,
      ["a", "b"],
      false,
    ],
    ["n over 4 is refused with a reason", ["conveyor:best-of-5"], undefined, 1, [], true],
    ["n of 0 is refused", ["conveyor:best-of-0"], 2, 2, [], true],
    ["a word is refused", ["conveyor:best-of-two"], undefined, 1, [], true],
    ["a huge number is refused", ["conveyor:best-of-99999999999"], undefined, 1, [], true],
    [
      "a bad label next to a good one: the good one counts",
      ["conveyor:best-of-9", "conveyor:best-of-2"],
      undefined,
      2,
      [],
      true,
    ],
    ["n = 1 asks for no adapter", ["conveyor:best-of-1"], ["a", "b"], 1, [], false],
  ])("%s", (_name, labels, setting, n, adapters, problem) => {
    const plan = planBestOf(labels, setting);
    expect(plan.n).toBe(n);
    expect(plan.adapters).toEqual(adapters);
    expect(plan.problem !== undefined).toBe(problem);
    if (problem) expect(plan.problem).toMatch(/n from 1 to 4/);
  });

  it("cycles through the adapters when n is larger than the list", () => {
    expect([1, 2, 3].map((k) => adapterFor({ adapters: ["a", "b"] }, k))).toEqual(["a", "b", "a"]);
    expect(adapterFor({ adapters: [] }, 1)).toBeUndefined();
  });

  it("names branches conveyor/issue-<N>-<k>", () => {
    expect(candidateBranch(42, 3)).toBe("conveyor/issue-42-3");
  });
});

describe("candidateLimits: budgets apply to the sum", () => {
  it("splits cost and tokens evenly and keeps the rest", () => {
    expect(
      candidateLimits(
        { max_cost_usd: 1, max_tokens: 1001, max_turns: 30, wall_clock_minutes: 60 },
        3,
      ),
    ).toEqual({ max_cost_usd: 0.3333, max_tokens: 333, max_turns: 30, wall_clock_minutes: 60 });
    expect(candidateLimits({ wall_clock_minutes: 60 }, 2)).toEqual({ wall_clock_minutes: 60 });
  });
});

describe("tasks.best_of in the repository config", () => {
  it.each<[string, unknown, boolean]>([
    ["a count", 3, true],
    ["adapters", ["claude", "codex"], true],
    ["more than 4", 5, false],
    ["zero", 0, false],
    ["five adapters", ["a", "b", "c", "d", "e"], false],
    ["a bad adapter name", ["Not Valid"], false],
  ])("%s", (_name, bestOf, ok) => {
    const parsed = parseRepoConfig({ version: 1, tasks: { best_of: bestOf } });
    expect(parsed.ok).toBe(ok);
    if (parsed.ok) expect(parsed.config.tasks.best_of).toEqual(bestOf);
    else expect(parsed.problems.map((p) => p.key).join(" ")).toContain("tasks.best_of");
  });
});

describe("/pick", () => {
  it.each<[string, string, number | undefined, string | undefined]>([
    ["a candidate", "/pick 2", 2, undefined],
    ["on an issue too", "/pick 4", 4, undefined],
    ["no number", "/pick", undefined, "one candidate number from 1 to 4"],
    ["out of range", "/pick 5", undefined, "one candidate number from 1 to 4"],
    ["zero", "/pick 0", undefined, "one candidate number from 1 to 4"],
    ["two numbers", "/pick 1 2", undefined, "one candidate number from 1 to 4"],
    ["a word", "/pick best", undefined, "one candidate number from 1 to 4"],
  ])("%s", (_name, body, k, error) => {
    const [line] = interpretCommands(body, "pr");
    if (k !== undefined) expect(line).toMatchObject({ ok: true, command: { verb: "pick", k } });
    else expect(line).toMatchObject({ ok: false, error: expect.stringContaining(error!) });
  });

  it("is not run from a quote", () => {
    expect(interpretCommands("> /pick 2", "pr")).toEqual([]);
  });
});

describe("renderCandidatesTable", () => {
  it("folds every candidate with its figures and keeps runner text inert", () => {
    const table = renderCandidatesTable([
      {
        k: 1,
        agent: "evil`|<!-- @team",
        picked: false,
        rank: null,
        verificationPassed: null,
        tier: null,
        checks: null,
        changedLines: null,
        costUsd: 0.1,
        failure: "agent_failed\n| injected |",
      },
      {
        k: 2,
        agent: "claude / opus",
        picked: true,
        rank: 1,
        verificationPassed: true,
        tier: 1,
        checks: "green",
        changedLines: 4,
        costUsd: 0.25,
        failure: null,
      },
    ]);
    expect(table).toContain("<details><summary>Best of 2: candidate 2 is on this pull request");
    expect(table).toContain("| 2 | `claude / opus` | ✅ | 1 | green | 4 | $0.25 | **picked** |");
    expect(table).toContain("`/pick <k>`");
    const row1 = table.split("\n").find((l) => l.startsWith("| 1 |"))!;
    expect(row1).not.toMatch(/<!--|@team|`\|/);
    expect(row1.split(" | ").length).toBe(8);
    expect(table.trimEnd().endsWith("</details>")).toBe(true);
  });
});

describe("candidateChecks: as the merge policy counts conclusions", () => {
  const run = (conclusion: string | null, status: "completed" | "in_progress" = "completed") => ({
    name: "ci",
    status,
    conclusion,
    ours: false,
  });
  const loose = { strict: false, cut: false };
  it.each([
    [[run("success")], [], loose, "green"],
    [[run("neutral"), run("success")], [], loose, "green"],
    [[run("neutral"), run("success")], [], { strict: true, cut: false }, "red"],
    [[run("cancelled")], [], loose, "red"],
    [[run(null, "in_progress")], [], loose, "pending"],
    [[run("success")], [{ context: "lint", state: "error" as const }], loose, "red"],
    [[run("success")], [{ context: "lint", state: "pending" as const }], loose, "pending"],
    [[run("success")], [], { strict: false, cut: true }, "pending"],
    [[], [], loose, "none"],
  ])("%j %j %j → %s", (runs, statuses, options, expected) => {
    const outcomes = [
      ...runs.map((r) => checkRunOutcome(r, options.strict)),
      ...statuses.map(statusOutcome),
    ];
    expect(candidateChecks(outcomes, options.cut)).toBe(expected);
  });
});
