import { describe, expect, it } from "vitest";
import { decideConflictFollowUp } from "./follow-up.ts";
import {
  breakageComment,
  type CommitChecks,
  decideWatch,
  revertBody,
  revertTitle,
  revertTree,
  type TreeEntry,
  type WatchedRun,
  type WatchFacts,
  watchedChecksPass,
  watchNeedsParent,
} from "./merge-watch.ts";

const run = (
  name: string,
  conclusion: string | null,
  more: Partial<WatchedRun> = {},
): WatchedRun => ({
  name,
  status: conclusion === null ? "in_progress" : "completed",
  conclusion,
  ours: false,
  checkRunId: 1,
  checkSuiteId: 10,
  completedAt: conclusion === null ? null : "2026-01-01T00:00:00Z",
  summary: `${name}: ${conclusion}`,
  ...more,
});
const green: CommitChecks = { runs: [run("ci", "success")], statuses: [] };

function facts(over: Partial<WatchFacts>): WatchFacts {
  return {
    checks: ["ci"],
    onMerge: { runs: [run("ci", "failure")], statuses: [] },
    onParent: green,
    rerequested: [],
    strict: false,
    errors: [],
    now: "2026-01-01T00:10:00Z",
    deadlineAt: "2026-01-01T01:00:00Z",
    ...over,
  };
}

describe("decideWatch", () => {
  it.each<[string, Partial<WatchFacts>, string]>([
    ["nothing expected", { checks: [] }, "green"],
    ["green on the merge commit", { onMerge: green }, "green"],
    [
      "neutral passes unless strict",
      { onMerge: { runs: [run("ci", "neutral")], statuses: [] } },
      "green",
    ],
    [
      "neutral fails when strict: re-request",
      { strict: true, onMerge: { runs: [run("ci", "neutral")], statuses: [] } },
      "rerequest",
    ],
    ["still running", { onMerge: { runs: [run("ci", null)], statuses: [] } }, "wait"],
    ["not reported yet", { onMerge: { runs: [], statuses: [] } }, "wait"],
    [
      "not reported by the deadline",
      { onMerge: { runs: [], statuses: [] }, now: "2026-01-01T02:00:00Z" },
      "expired",
    ],
    ["failed the first time: re-request", {}, "rerequest"],
    [
      "red on the parent too: not this merge",
      { onParent: { runs: [run("ci", "failure")], statuses: [] } },
      "green",
    ],
    ["missing on the parent: not this merge", { onParent: { runs: [], statuses: [] } }, "green"],
    ["no parent", { onParent: null }, "green"],
    [
      "re-requested, the same failed run still latest: wait for the rerun",
      { rerequested: [{ name: "ci", checkRunId: 1, completedAt: "2026-01-01T00:00:00Z" }] },
      "wait",
    ],
    [
      "re-requested, never ran again by the deadline: red",
      {
        rerequested: [{ name: "ci", checkRunId: 1, completedAt: "2026-01-01T00:00:00Z" }],
        now: "2026-01-01T02:00:00Z",
      },
      "red",
    ],
    [
      "re-requested, a new run failed again: red",
      {
        rerequested: [{ name: "ci", checkRunId: 1, completedAt: "2026-01-01T00:00:00Z" }],
        onMerge: { runs: [run("ci", "failure", { checkRunId: 2 })], statuses: [] },
      },
      "red",
    ],
    [
      "re-requested, the same run updated in place and failed again: red",
      {
        rerequested: [{ name: "ci", checkRunId: 1, completedAt: "2026-01-01T00:00:00Z" }],
        onMerge: {
          runs: [run("ci", "failure", { completedAt: "2026-01-01T00:05:00Z" })],
          statuses: [],
        },
      },
      "red",
    ],
    [
      "re-requested, passed on the rerun: green",
      {
        rerequested: [{ name: "ci", checkRunId: 1, completedAt: "2026-01-01T00:00:00Z" }],
        onMerge: { runs: [run("ci", "success", { checkRunId: 2 })], statuses: [] },
      },
      "green",
    ],
    [
      "a failing commit status cannot be re-requested: red",
      {
        onMerge: { runs: [], statuses: [{ context: "ci", state: "failure" }] },
        onParent: { runs: [], statuses: [{ context: "ci", state: "success" }] },
      },
      "red",
    ],
    [
      "Conveyor's own run never counts",
      { onMerge: { runs: [run("ci", "failure", { ours: true })], statuses: [] } },
      "wait",
    ],
    ["a read error never reverts", { errors: ["boom"] }, "wait"],
    [
      "a read error past the deadline ends the watch",
      { errors: ["boom"], now: "2026-01-01T02:00:00Z" },
      "expired",
    ],
  ])("%s", (_name, over, kind) => {
    expect(decideWatch(facts(over)).kind).toBe(kind);
  });

  it("re-requests by check suite, and names the run it saw fail", () => {
    const decision = decideWatch(facts({}));
    expect(decision).toMatchObject({
      kind: "rerequest",
      checks: [
        { name: "ci", checkRunId: 1, checkSuiteId: 10, completedAt: "2026-01-01T00:00:00Z" },
      ],
    });
  });

  it("a check not watched does not count, whatever it says", () => {
    const decision = decideWatch(
      facts({ onMerge: { runs: [run("ci", "success"), run("lint", "failure")], statuses: [] } }),
    );
    expect(decision.kind).toBe("green");
  });

  it("the worst of two apps' runs of one name counts", () => {
    const decision = decideWatch(
      facts({
        onMerge: {
          runs: [run("ci", "success"), run("ci", "failure", { checkRunId: 7 })],
          statuses: [],
        },
      }),
    );
    expect(decision).toMatchObject({ kind: "rerequest", checks: [{ checkRunId: 7 }] });
  });
});

describe("watchNeedsParent", () => {
  it.each<[string, Partial<WatchFacts>, boolean]>([
    ["a watched check failed on the merge commit", {}, true],
    ["green on the merge commit", { onMerge: green }, false],
    ["pending on the merge commit", { onMerge: { runs: [run("ci", null)], statuses: [] } }, false],
    ["not reported yet", { onMerge: { runs: [], statuses: [] } }, false],
    ["a check not watched failed", { checks: ["lint"], onMerge: green }, false],
    [
      "a failing commit status",
      { onMerge: { runs: [], statuses: [{ context: "ci", state: "failure" }] } },
      true,
    ],
    [
      "neutral when strict",
      { strict: true, onMerge: { runs: [run("ci", "neutral")], statuses: [] } },
      true,
    ],
    ["unreadable checks", { errors: ["boom"] }, false],
  ])("%s", (_name, over, expected) => {
    expect(watchNeedsParent(facts(over))).toBe(expected);
  });

  it("agrees with decideWatch: without the parent, a decision that does not need it is the same", () => {
    for (const onMerge of [green, { runs: [run("ci", null)], statuses: [] }]) {
      expect(decideWatch(facts({ onMerge, onParent: null }))).toEqual(
        decideWatch(facts({ onMerge })),
      );
    }
  });
});

describe("watchedChecksPass", () => {
  it.each<[string, CommitChecks, string[], boolean]>([
    ["all green", green, ["ci"], true],
    ["one pending", { runs: [run("ci", null)], statuses: [] }, ["ci"], false],
    ["missing", { runs: [], statuses: [] }, ["ci"], false],
    ["nothing watched, nothing ran", { runs: [], statuses: [] }, [], false],
    ["nothing watched, others green", green, [], true],
  ])("%s", (_name, commit, checks, expected) => {
    expect(watchedChecksPass(commit, checks, false)).toBe(expected);
  });
});

describe("revertTree", () => {
  const e = (sha: string, mode = "100644"): TreeEntry => ({ mode, type: "blob", sha });
  const map = (o: Record<string, TreeEntry>) => new Map(Object.entries(o));
  it("restores changed files, deletes added ones, recreates deleted ones", () => {
    const parent = map({ "a.txt": e("a1"), "gone.txt": e("g1"), "same.txt": e("s") });
    const merged = map({ "a.txt": e("a2"), "new.txt": e("n1"), "same.txt": e("s") });
    const tip = map({
      "a.txt": e("a2"),
      "new.txt": e("n1"),
      "same.txt": e("s"),
      "later.txt": e("l"),
    });
    expect(revertTree(parent, merged, tip)).toEqual({
      entries: [
        { path: "a.txt", mode: "100644", type: "blob", sha: "a1" },
        { path: "gone.txt", mode: "100644", type: "blob", sha: "g1" },
        { path: "new.txt", mode: "100644", type: "blob", sha: null },
      ],
      conflicts: [],
    });
  });
  it("a mode change is reverted too", () => {
    const result = revertTree(
      map({ "x.sh": e("x") }),
      map({ "x.sh": e("x", "100755") }),
      map({ "x.sh": e("x", "100755") }),
    );
    expect(result.entries).toEqual([{ path: "x.sh", mode: "100644", type: "blob", sha: "x" }]);
  });
  it("a path changed again after the merge is a conflict", () => {
    const result = revertTree(
      map({ "a.txt": e("a1") }),
      map({ "a.txt": e("a2") }),
      map({ "a.txt": e("a3") }),
    );
    expect(result).toEqual({ entries: [], conflicts: ["a.txt"] });
  });
});

describe("texts", () => {
  it("names the revert as GitHub does, within GitHub's title limit", () => {
    expect(revertTitle("Fix the thing")).toBe('Revert "Fix the thing"');
    expect(revertTitle("x".repeat(400)).length).toBeLessThanOrEqual(256);
  });
  it("the revert body starts with Reverts #N and lists the checks", () => {
    const body = revertBody({
      prNumber: 7,
      mergeSha: "abcdef1234",
      baseRef: "main",
      failing: [{ name: "ci `x`", result: "failure", summary: "" }],
    });
    expect(body.split("\n")[0]).toBe("Reverts #7");
    expect(body).toContain("abcdef1");
    expect(body).toContain("`ci 'x'`: failure");
  });
  it("the comment says what happens next", () => {
    const base = {
      prNumber: 7,
      mergeSha: "abcdef1234",
      baseRef: "main",
      failing: [{ name: "ci", result: "failure", summary: "" }],
    };
    expect(
      breakageComment({ ...base, revert: { kind: "pr", number: 9, auto: true }, frozen: "r" }),
    ).toContain("merges it once its checks pass");
    expect(breakageComment({ ...base, revert: { kind: "off" }, frozen: null })).toContain(
      "`merge.revert` is `off`",
    );
    expect(
      breakageComment({ ...base, revert: { kind: "conflict", paths: ["a.txt"] }, frozen: null }),
    ).toContain("`a.txt` changed again");
  });
});

describe("decideConflictFollowUp", () => {
  it.each([
    [0, 2, "retry"],
    [1, 2, "retry"],
    [2, 2, "human"],
    [0, 0, "human"],
  ])("after %i of %i retries: %s", (retriesSoFar, maxRetries, kind) => {
    const decision = decideConflictFollowUp({
      prNumber: 4,
      baseRef: "main",
      baseSha: "0123456789abcdef0123456789abcdef01234567",
      retriesSoFar,
      maxRetries,
    });
    expect(decision.kind).toBe(kind);
    if (decision.kind === "retry") {
      expect(decision.feedback).toContain(
        "Rebase onto 0123456789abcdef0123456789abcdef01234567 and keep the change",
      );
      expect(decision.count).toBe(retriesSoFar + 1);
    }
  });
});
