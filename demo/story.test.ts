import { describe, expect, it } from "vitest";
import { parseScript } from "../runners/scripted-agent.ts";
import { renderCandidatesTable } from "../src/core/best-of.ts";
import {
  awaitsApproval,
  BEST_OF_REPO,
  BEST_OF_REPO_FILES,
  type CandidatesTable,
  CI,
  describeExpectation,
  type IssueView,
  issueBody,
  issueRef,
  judge,
  MERGE_QUEUE_REPO,
  MERGE_QUEUE_RULESET,
  parseCandidatesTable,
  REPO,
  readQueueTrip,
  STORY,
  type StoryKey,
  scriptedPaths,
} from "./story.ts";

const story = (key: StoryKey) => STORY.find((s) => s.key === key)!;

/** A view of an issue whose pull request is open and reviewed; rows override what matters. */
function view(overrides: Partial<IssueView> = {}): IssueView {
  return {
    key: "tier1",
    number: 1,
    title: "t",
    issueState: "open",
    task: "waiting_human",
    runner: "runner-1",
    pr: 6,
    prState: "open",
    headSha: "a".repeat(40),
    tier: 1,
    safety: { status: "completed", conclusion: "success", title: "Ready to merge" },
    ci: { status: "completed", conclusion: "success" },
    approval: undefined,
    reason: undefined,
    failureReported: false,
    comments: [],
    ...overrides,
  };
}

/** The candidates table of a best-of-2 pull request with candidate `picked` on it. */
function table(picked: 1 | 2): CandidatesTable {
  const body = renderCandidatesTable(
    [1, 2].map((k) => ({
      k,
      agent: k === 1 ? "claude / claude-sonnet-4-5" : "command",
      picked: k === picked,
      rank: k === picked ? 1 : 2,
      verificationPassed: k === 1,
      tier: k === 1 ? 1 : 3,
      checks: "green",
      changedLines: 2,
      costUsd: k === 1 ? 0.03 : 0.01,
      failure: null,
    })),
  );
  return parseCandidatesTable(`Closes #1\n\n${body}\n`)!;
}

const merged = (tier: 1 | 2 | 3, extra: Partial<IssueView> = {}) =>
  view({ task: "merged", prState: "merged", issueState: "closed", tier, ...extra });
const heldTier3 = (title: string, extra: Partial<IssueView> = {}) =>
  view({
    tier: 3,
    safety: { status: "completed", conclusion: "neutral", title },
    ...extra,
  });

describe("the demo's story", () => {
  it("has a script the scripted agent accepts for every issue, and files what the tiers need", () => {
    for (const issue of STORY) {
      const parsed = parseScript(issue.script.join("\n"));
      expect(parsed, issue.key).toMatchObject({ ok: true });
      expect(issueBody(issue)).toContain("```conveyor-script\n");
    }
    expect(scriptedPaths(story("tier1"))).toEqual(["src/sizes.js"]);
    expect(scriptedPaths(story("tier2"))).toEqual(["src/farewell.js", "test/farewell.test.js"]);
    expect(scriptedPaths(story("tier3"))).toEqual(["package.json"]);
    expect(scriptedPaths(story("verify"))).toEqual(["src/label.js"]);
    // Best of 2 on its own repository, whose tasks.best_of names an adapter per candidate; the
    // issue asks Claude's stand-in for a recording and the scripted agent for its script.
    expect(scriptedPaths(story("bestof"))).toEqual(["src/price.js"]);
    expect(story("bestof")).toMatchObject({ repo: BEST_OF_REPO, labels: ["conveyor:best-of-2"] });
    expect(issueBody(story("bestof"))).toContain("<!-- demo: replay claude-two-decimals.jsonl -->");
    expect(BEST_OF_REPO_FILES[".github/conveyor.yml"]).toMatch(/best_of: \[claude, scripted\]/);
    expect(STORY.filter((s) => s.key !== "bestof").every((s) => s.repo === undefined)).toBe(true);
    expect(story("urgent").labels).toEqual(["priority:urgent"]);
    // The urgent issue is filed last, so running first shows the lanes at work.
    expect(STORY.at(-1)!.key).toBe("urgent");
    expect(STORY.map((s) => describeExpectation(s.expect))).toEqual([
      "merged (tier 1)",
      "merged after /approve (tier 2)",
      "left for a human (tier 3)",
      "verification failure reported",
      "best of 2: candidate 1 merged by the queue (tier 1)",
      "merged (tier 1)",
    ]);
    // The best-of repository requires GitHub's merge queue, with the CI required on the group;
    // its issue expects the queue's merge, and no other issue is filed there.
    expect(MERGE_QUEUE_REPO).toBe(BEST_OF_REPO);
    expect(MERGE_QUEUE_RULESET).toMatchObject({
      branches: ["~DEFAULT_BRANCH"],
      requiredChecks: [CI.name],
      mergeQueue: { merge_method: "SQUASH" },
    });
    expect(STORY.filter((s) => s.repo === MERGE_QUEUE_REPO).map((s) => s.expect)).toEqual([
      expect.objectContaining({ kind: "best_of", mergeQueue: true }),
    ]);
  });

  it.each<[string, StoryKey, IssueView, { ok: boolean; final: boolean; detail?: RegExp }]>([
    ["tier 1 merged", "tier1", merged(1), { ok: true, final: true }],
    [
      "tier 1 merged as tier 2",
      "tier1",
      merged(2),
      { ok: false, final: true, detail: /as tier 2/ },
    ],
    ["tier 1 still in review", "tier1", view({ task: "review" }), { ok: false, final: false }],
    ["tier 1 dead", "tier1", view({ task: "dead", pr: undefined }), { ok: false, final: true }],
    [
      "tier 2 merged after an accepted /approve",
      "tier2",
      merged(2, { approval: { commentId: 1, answer: "+1" } }),
      { ok: true, final: true },
    ],
    [
      "tier 2 merged without an approval",
      "tier2",
      merged(2),
      { ok: false, final: true, detail: /without an accepted \/approve/ },
    ],
    [
      "tier 2 whose /approve was refused",
      "tier2",
      view({ tier: 2, approval: { commentId: 1, answer: "-1" } }),
      { ok: false, final: true, detail: /refused/ },
    ],
    [
      "tier 2 whose /approve is not answered yet",
      "tier2",
      view({ tier: 2, approval: { commentId: 1, answer: "none" } }),
      { ok: false, final: false, detail: /not answered/ },
    ],
    [
      "tier 3 left open for the protected path",
      "tier3",
      heldTier3("Blocked: tier 3, never auto-merged: package.json is protected (package.json)"),
      { ok: true, final: true, detail: /package\.json is protected/ },
    ],
    [
      "tier 3 held for another reason",
      "tier3",
      heldTier3("Blocked: tier 3, never auto-merged: src/x is a binary file"),
      { ok: false, final: true, detail: /another reason/ },
    ],
    [
      "tier 3 merged anyway",
      "tier3",
      merged(3),
      { ok: false, final: true, detail: /merged although/ },
    ],
    [
      "verification failure reported on the issue",
      "verify",
      heldTier3("Blocked: verification failed", { failureReported: true }),
      { ok: true, final: true },
    ],
    [
      "verification failure not reported (yet)",
      "verify",
      heldTier3("Blocked: verification failed"),
      { ok: false, final: false, detail: /does not say/ },
    ],
    [
      "verification failure whose PR was closed",
      "verify",
      heldTier3("Blocked", { prState: "closed" }),
      { ok: false, final: true },
    ],
    [
      "best of 2 merged from the expected candidate",
      "bestof",
      merged(1, { repo: BEST_OF_REPO, candidates: table(1) }),
      { ok: true, final: true, detail: /candidate 1 of 2 merged as PR gadgets#6/ },
    ],
    [
      "best of 2 merged from the other candidate",
      "bestof",
      merged(1, { repo: BEST_OF_REPO, candidates: table(2) }),
      { ok: false, final: true, detail: /candidate 2 of 2 on the PR, expected 1 of 2/ },
    ],
    [
      "best of 2 whose PR still shows the other candidate",
      "bestof",
      view({ repo: BEST_OF_REPO, candidates: table(2) }),
      { ok: false, final: false, detail: /candidate 2 of 2/ },
    ],
    [
      "best of 2 merged without a candidates table",
      "bestof",
      merged(1, { repo: BEST_OF_REPO }),
      { ok: false, final: true, detail: /without a candidates table/ },
    ],
    [
      "best of 2 merged as tier 2",
      "bestof",
      merged(2, { repo: BEST_OF_REPO, candidates: table(1) }),
      { ok: false, final: true, detail: /as tier 2/ },
    ],
    [
      "best of 2 still deciding",
      "bestof",
      view({ repo: BEST_OF_REPO, task: "running", pr: undefined, prState: undefined }),
      { ok: false, final: false },
    ],
  ])("judges %s", (_name, key, issueView, want) => {
    const judgement = judge(story(key), issueView);
    expect({ ok: judgement.ok, final: judgement.final }).toEqual({
      ok: want.ok,
      final: want.final,
    });
    if (want.detail) expect(judgement.detail).toMatch(want.detail);
  });

  it("approves only a tier-2 pull request that waits for nothing but an approval", () => {
    const needs = {
      status: "in_progress",
      conclusion: null,
      title: "Needs approval: 0 of 1 approvals",
    };
    expect(awaitsApproval(view({ tier: 2, safety: needs }))).toBe(true);
    expect(awaitsApproval(view({ tier: 2, safety: { ...needs, title: "Waiting: ci" } }))).toBe(
      false,
    );
    expect(awaitsApproval(view({ tier: 3, safety: needs }))).toBe(false);
    expect(awaitsApproval(view({ tier: 2, safety: needs, task: "review" }))).toBe(false);
    expect(awaitsApproval(view({ tier: 2, safety: needs, prState: "merged" }))).toBe(false);
  });

  it("reads the candidates table back out of a pull request body", () => {
    expect(table(1)).toEqual({
      picked: 1,
      header: ["k", "agent", "verification", "tier", "checks", "changed lines", "cost", ""],
      rows: [
        ["1", "`claude / claude-sonnet-4-5`", "✅", "1", "green", "2", "$0.03", "**picked**"],
        ["2", "`command`", "❌", "3", "green", "2", "$0.01", "#2, branch deleted"],
      ],
    });
    expect(parseCandidatesTable("Closes #1\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n")).toBe(
      undefined,
    );
  });

  it("reads a task's trip through the merge queue out of its history", () => {
    const enqueuing = {
      reason:
        "enqueuing 1a2b3c4 in the merge queue (squash); its checks on the merge group are the last gate",
    };
    const merged = {
      reason: "pull request #2 merged by the merge queue at 9f8e7d6",
      data: { merge_sha: `9f8e7d6${"0".repeat(33)}`, head_sha: `1a2b3c4${"0".repeat(33)}` },
    };
    expect(
      readQueueTrip([
        { reason: "reviewing" },
        enqueuing,
        { reason: "in GitHub's merge queue at position 2 (1a2b3c4)" },
        {
          reason:
            "merge group invalidated (an entry ahead of it left the queue, or the base moved); GitHub builds a new one",
        },
        merged,
      ]),
    ).toEqual({ head: "1a2b3c4", method: "squash", position: 2, mergeSha: merged.data.merge_sha });
    // Never enqueued: a direct merge's history says nothing about the queue.
    expect(readQueueTrip([{ reason: "merging 1a2b3c4" }, { reason: "merged" }])).toBeUndefined();
    // Enqueued, still waiting: no merge commit yet; a position for another head is not this one's.
    expect(
      readQueueTrip([enqueuing, { reason: "in GitHub's merge queue at position 1 (ffffff0)" }]),
    ).toEqual({ head: "1a2b3c4", method: "squash", position: undefined, mergeSha: undefined });
    // Without the event's data, the short SHA of its reason; data naming another commit is ignored.
    expect(readQueueTrip([enqueuing, { reason: merged.reason, data: null }])?.mergeSha).toBe(
      "9f8e7d6",
    );
    expect(
      readQueueTrip([enqueuing, { reason: merged.reason, data: { merge_sha: "a".repeat(40) } }])
        ?.mergeSha,
    ).toBe("9f8e7d6");
    // A merge noted before any enqueue is not a trip through the queue.
    expect(readQueueTrip([merged])).toBeUndefined();
  });

  it("names issues of the second repository by repository", () => {
    expect(issueRef({}, 3)).toBe("#3");
    expect(issueRef({ repo: REPO }, 3)).toBe("#3");
    expect(issueRef({ repo: BEST_OF_REPO }, 3)).toBe("gadgets#3");
  });
});
