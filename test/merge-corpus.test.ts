/**
 * The merge corpus (issue #19): pull requests in GitHub's REST shapes, each read by the real fact
 * collector through a GitHub-shaped stub that paginates like GitHub, then judged by the policy.
 * No unsafe pull request may merge, each is stopped by the rule it is about, and at most 5 % of the
 * safe twins may be held. The collector gets each scenario's task: the branch it was made for
 * (`expectedBaseRef`) and the commit the runner started from (`baseSha`, whose checks are expected).
 */
import { describe, expect, it } from "vitest";
import { evaluateMergePolicy, type Verdict } from "../src/core/merge-policy.ts";
import { collectPrFacts } from "../src/github/pr-facts.ts";
import { FACTS_SCENARIOS } from "./fixtures/merge-corpus/facts-scenarios.ts";
import {
  BASE_SHA,
  HEAD_SHA,
  OWNER,
  PR_NUMBER,
  REPO,
} from "./fixtures/merge-corpus/github-shapes.ts";
import { createGitHubStub } from "./fixtures/merge-corpus/github-stub.ts";
import { buildScenario, type Scenario } from "./fixtures/merge-corpus/scenario.ts";
import { SCENARIOS } from "./fixtures/merge-corpus/scenarios.ts";

const CORPUS: Scenario[] = [...SCENARIOS, ...FACTS_SCENARIOS];

/** The lists the collector reads; each must be asked for with GitHub's largest page. */
const LISTS = ["/files", "/reviews", "/check-runs", "/status", "/rules/branches/"];

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
  it("is big enough, with unsafe pull requests and safe twins in every family", () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(150);
    expect(new Set(CORPUS.map((s) => `${s.family}: ${s.name}`)).size).toBe(CORPUS.length);
    // Every unsafe pull request names the rule that must stop it.
    expect(CORPUS.filter((s) => !s.safe && !s.stoppedBy).map((s) => s.name)).toEqual([]);
    // Every class of issue #19 has unsafe pull requests and a safe twin.
    const families = [...new Set(CORPUS.map((s) => s.family))];
    const lopsided = families.filter((family) => {
      const members = CORPUS.filter((s) => s.family === family);
      return !members.some((s) => s.safe) || !members.some((s) => !s.safe);
    });
    expect(lopsided).toEqual([]);
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
    console.log(
      `merge corpus: ${outcomes.length} pull requests, ${outcomes.length - safeOnes.length} unsafe, ${safeOnes.length} safe`,
    );
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
    // The collector read what it needed through pagination, like on GitHub: 100 a page, every
    // page, following the Link header.
    const requests = (name: string) => {
      const found = outcomes.find((o) => o.scenario.name === name);
      if (!found) throw new Error(`no scenario ${name}`);
      return found.requests;
    };
    const notFullPages = outcomes.flatMap((o) =>
      o.requests.filter(
        (r) =>
          LISTS.some((l) => r.includes(l)) &&
          new URLSearchParams(r.split("?")[1] ?? "").get("per_page") !== "100",
      ),
    );
    expect(notFullPages).toEqual([]);
    const pagesOf = (name: string, part: string) =>
      requests(name).filter((r) => r.includes(part)).length;
    expect(pagesOf("150 small files, approved", "/files?")).toBe(2);
    expect(pagesOf("2,999 files, approved", "/files?")).toBe(30);
    expect(pagesOf("a red check on page 2 of 101", `/commits/${HEAD_SHA}/check-runs?`)).toBe(2);
    expect(pagesOf("a red check on page 3 of 250", `/commits/${HEAD_SHA}/check-runs?`)).toBe(3);
    expect(pagesOf("a red commit status on page 2 of 101", `/commits/${HEAD_SHA}/status?`)).toBe(2);
    expect(pagesOf("a change request on the second page of reviews", "/reviews?")).toBe(2);
  });

  it("reads a pull request in the documented order", async () => {
    const clean = CORPUS.find((s) => s.name === "a clean tier-1 pull request");
    if (!clean) throw new Error("no clean scenario");
    const { requests, violations } = await judge(clean);
    expect(violations).toEqual([]);
    const repo = `/repos/${OWNER}/${REPO}`;
    expect(requests.map((r) => r.replace(/\?.*$/, ""))).toEqual([
      // The one query first; the stub answers it 502, so every REST read follows.
      "POST /graphql",
      `GET ${repo}/pulls/${PR_NUMBER}`,
      `GET ${repo}/pulls/${PR_NUMBER}/files`,
      `GET ${repo}/commits/${HEAD_SHA}/check-runs`,
      `GET ${repo}/commits/${HEAD_SHA}/status`,
      `GET ${repo}/pulls/${PR_NUMBER}/reviews`,
      `GET ${repo}/branches/main`,
      `GET ${repo}/branches/main/protection/required_status_checks`,
      `GET ${repo}/rules/branches/main`,
      `GET ${repo}/commits/${BASE_SHA}/check-runs`,
      `GET ${repo}/commits/${BASE_SHA}/status`,
    ]);
    expect(requests.filter((r) => r.includes("/check-runs?"))).toEqual(
      requests.filter((r) => r.includes("/check-runs?") && r.includes("filter=latest")),
    );
  });
});
