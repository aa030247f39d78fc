/**
 * The merge corpus (issue #19): pull requests in GitHub's REST shapes, each read by the real fact
 * collector through a GitHub-shaped stub that paginates like GitHub, then judged by the policy.
 * No unsafe pull request may merge, and at most 5 % of the safe twins may be held.
 *
 * The scenarios of `test/fixtures/merge-corpus/facts-scenarios.ts` (every page of checks,
 * expected checks, mergeable_state, conclusions, base pinning, merge.mode) join the corpus once
 * the complete-facts work is merged: add `...FACTS_SCENARIOS` to CORPUS below, and pass each
 * scenario's `task` (the branch it was made for) to the collector.
 */
import { describe, expect, it } from "vitest";
import { evaluateMergePolicy, type Verdict } from "../src/core/merge-policy.ts";
import { collectPrFacts } from "../src/github/pr-facts.ts";
import { createGitHubStub } from "./fixtures/merge-corpus/github-stub.ts";
import { buildScenario, type Scenario } from "./fixtures/merge-corpus/scenario.ts";
import { SCENARIOS } from "./fixtures/merge-corpus/scenarios.ts";

const CORPUS: Scenario[] = [...SCENARIOS];

interface Outcome {
  scenario: Scenario;
  verdict: Verdict;
  violations: string[];
  requests: string[];
}

async function judge(scenario: Scenario): Promise<Outcome> {
  const { data, request, config } = buildScenario(scenario.spec);
  const stub = createGitHubStub(data);
  const facts = await collectPrFacts(stub.octokit, request);
  return {
    scenario,
    verdict: evaluateMergePolicy(facts, config),
    violations: stub.violations,
    requests: stub.requests,
  };
}

const label = (o: Outcome) => `${o.scenario.family}: ${o.scenario.name} → ${o.verdict.summary}`;

describe("merge corpus", () => {
  it("is big enough, with safe and unsafe pull requests in every family", () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(150);
    expect(new Set(CORPUS.map((s) => `${s.family}: ${s.name}`)).size).toBe(CORPUS.length);
    const families = new Set(CORPUS.map((s) => s.family));
    for (const family of families) {
      const members = CORPUS.filter((s) => s.family === family);
      expect([family, members.some((s) => !s.safe)]).toEqual([family, true]);
    }
    // Every family of rules has safe twins somewhere in the corpus.
    expect(CORPUS.filter((s) => s.safe).length).toBeGreaterThanOrEqual(40);
  });

  it("merges no unsafe pull request and holds at most 5 % of the safe ones", async () => {
    const outcomes: Outcome[] = [];
    for (const scenario of CORPUS) outcomes.push(await judge(scenario));

    expect(outcomes.flatMap((o) => o.violations.map((v) => `${o.scenario.name}: ${v}`))).toEqual(
      [],
    );
    const unsafeMerged = outcomes.filter((o) => !o.scenario.safe && o.verdict.kind === "merge");
    const safeOnes = outcomes.filter((o) => o.scenario.safe);
    const safeHeld = safeOnes.filter((o) => o.verdict.kind !== "merge");
    console.log(`unsafe merged ${unsafeMerged.length} / safe held ${safeHeld.length}`);

    expect(unsafeMerged.map(label)).toEqual([]);
    expect(safeHeld.length, safeHeld.map(label).join("\n")).toBeLessThanOrEqual(
      Math.floor(safeOnes.length * 0.05),
    );
    // Stopped for its own reason: the rule the scenario is about fails or waits.
    const wrongReason = outcomes.filter((o) => {
      const rule = o.scenario.stoppedBy;
      if (o.scenario.safe || !rule) return false;
      const result = o.verdict.rules.find((r) => r.id === rule)?.result;
      return result !== "fail" && result !== "wait";
    });
    expect(wrongReason.map((o) => `${label(o)} (expected ${o.scenario.stoppedBy})`)).toEqual([]);
    // The collector read what it needed through pagination, like on GitHub.
    const paged = outcomes.find((o) => o.scenario.name === "150 small files, approved");
    expect(paged?.requests.filter((r) => r.includes("/files?")).length).toBe(2);
  });
});
