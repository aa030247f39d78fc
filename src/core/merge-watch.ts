import {
  type CheckFact,
  type CheckOutcome,
  checkRunOutcome,
  type StatusFact,
  statusOutcome,
} from "./merge-policy.ts";

/**
 * The post-merge watch (docs/merge-policy.md, "After the merge"): after Conveyor merges, the checks
 * the merge was decided on are watched on the merge commit. A check that passed on the pull request
 * and on the parent commit but fails on the merge commit broke the branch: it is re-requested once
 * (a flaky check passes then), and if it fails again the merge is reverted.
 */

/** A check run on a commit, with what is needed to re-request it and to see that it ran again. */
export interface WatchedRun extends CheckFact {
  checkRunId: number;
  /** The check suite it belongs to: what `POST …/check-suites/{id}/rerequest` names. */
  checkSuiteId: number | null;
  completedAt: string | null;
  summary: string;
}

/** One commit's check runs (Conveyor's own marked `ours`) and commit statuses. */
export interface CommitChecks {
  runs: WatchedRun[];
  statuses: StatusFact[];
}

/** A failing check Conveyor re-requested: the run that failed, so a new result can be told apart. */
export interface RerequestedCheck {
  name: string;
  checkRunId: number;
  completedAt: string | null;
}

export interface FailingCheck {
  name: string;
  /** The conclusion (check run) or state (commit status). */
  result: string;
  summary: string;
}

export interface WatchFacts {
  /** The expected checks the merge was decided on: only these are watched. */
  checks: readonly string[];
  onMerge: CommitChecks;
  /** The merge commit's first parent (the base branch before the merge); null when it has none. */
  onParent: CommitChecks | null;
  /** The failing checks already re-requested (each is re-requested once). */
  rerequested: readonly RerequestedCheck[];
  /** `merge.strict_conclusions`: only `success` passes. */
  strict: boolean;
  /** Reads that failed: the watch waits (never reverts on an incomplete picture). */
  errors: readonly string[];
  now: string;
  deadlineAt: string;
}

export type WatchDecision =
  | { kind: "wait"; reason: string }
  | { kind: "green"; reason: string }
  | { kind: "expired"; reason: string }
  | {
      kind: "rerequest";
      checks: (RerequestedCheck & { checkSuiteId: number | null })[];
      reason: string;
    }
  | { kind: "red"; failing: FailingCheck[]; reason: string };

type Result = { outcome: CheckOutcome | "missing"; run?: WatchedRun; status?: StatusFact };

/** How `name` stands on a commit: its latest run of another app, else its commit status. */
function resultOf(commit: CommitChecks, name: string, strict: boolean): Result {
  const runs = commit.runs.filter((r) => !r.ours && r.name === name);
  // Several apps may report one name: the worst result counts, as GitHub counts required checks.
  const rank: Record<CheckOutcome, number> = { fail: 3, pending: 2, pass: 1, success: 0 };
  let worst: Result | undefined;
  for (const run of runs) {
    const outcome = checkRunOutcome(run, strict);
    if (!worst || rank[outcome] > rank[worst.outcome as CheckOutcome]) worst = { outcome, run };
  }
  const status = commit.statuses.find((s) => s.context === name);
  if (status) {
    const outcome = statusOutcome(status);
    if (!worst || rank[outcome] > rank[worst.outcome as CheckOutcome]) worst = { outcome, status };
  }
  return worst ?? { outcome: "missing" };
}

const passed = (r: Result) => r.outcome === "success" || r.outcome === "pass";

/**
 * Whether {@link decideWatch} needs the parent commit's checks for these facts: only to tell a
 * check that failed on the merge commit from one that was red before. When every watched check
 * passed or is still pending on the merge commit (or its checks could not be read), the parent is
 * never consulted, so the watch does not read it (three requests: the commit, its check runs and
 * its statuses).
 */
export function watchNeedsParent(f: {
  checks: readonly string[];
  onMerge: CommitChecks;
  strict: boolean;
  errors: readonly string[];
}): boolean {
  if (f.errors.length > 0) return false;
  return f.checks.some((name) => {
    const now = resultOf(f.onMerge, name, f.strict);
    return !passed(now) && now.outcome !== "pending" && now.outcome !== "missing";
  });
}

/**
 * What the watch does next. A check counts against the merge only if it passed on the parent
 * commit too (a branch that was red before is not this merge's fault); a failing check run is
 * re-requested once and judged on its new result (a commit status cannot be re-requested, so its
 * failure stands). A re-requested check that has not reported again when the watch ends counts as
 * failed. Pending checks past the deadline end the watch as expired: nothing is reverted on a
 * guess.
 */
export function decideWatch(f: WatchFacts): WatchDecision {
  if (f.checks.length === 0) {
    return { kind: "green", reason: "no expected checks to watch on the merge commit" };
  }
  const overdue = Date.parse(f.now) >= Date.parse(f.deadlineAt);
  if (f.errors.length > 0) {
    return overdue
      ? { kind: "expired", reason: `the checks could not be read: ${f.errors.join("; ")}` }
      : { kind: "wait", reason: `the checks could not be read: ${f.errors.join("; ")}` };
  }
  const confirmed: FailingCheck[] = [];
  const awaitingRerun: FailingCheck[] = [];
  const toRerequest: (RerequestedCheck & { checkSuiteId: number | null })[] = [];
  const pending: string[] = [];
  const redBefore: string[] = [];
  for (const name of f.checks) {
    const now = resultOf(f.onMerge, name, f.strict);
    if (passed(now)) continue;
    if (now.outcome === "pending" || now.outcome === "missing") {
      pending.push(name);
      continue;
    }
    // Failing here: only this merge's fault if the branch was green on the parent.
    if (!f.onParent || !passed(resultOf(f.onParent, name, f.strict))) {
      redBefore.push(name);
      continue;
    }
    const failing: FailingCheck = {
      name,
      result: now.run ? (now.run.conclusion ?? "no conclusion") : (now.status?.state ?? "failure"),
      summary: now.run?.summary ?? "",
    };
    const asked = f.rerequested.find((r) => r.name === name);
    if (now.run && !asked) {
      toRerequest.push({
        name,
        checkRunId: now.run.checkRunId,
        completedAt: now.run.completedAt,
        checkSuiteId: now.run.checkSuiteId,
      });
    } else if (
      now.run &&
      asked &&
      asked.checkRunId === now.run.checkRunId &&
      asked.completedAt === now.run.completedAt
    ) {
      // Still the result that was re-requested: the rerun has not reported yet.
      awaitingRerun.push(failing);
    } else {
      confirmed.push(failing);
    }
  }
  if (toRerequest.length > 0) {
    return {
      kind: "rerequest",
      checks: toRerequest,
      reason: `re-requested ${toRerequest.map((c) => c.name).join(", ")} once, which failed on the merge commit`,
    };
  }
  if (awaitingRerun.length > 0 && !overdue) {
    return {
      kind: "wait",
      reason: `waiting for ${awaitingRerun.map((c) => c.name).join(", ")} to run again`,
    };
  }
  const failing = [...confirmed, ...awaitingRerun];
  if (failing.length > 0) {
    return {
      kind: "red",
      failing,
      reason: `${failing.map((c) => `${c.name} (${c.result})`).join(", ")} failed on the merge commit after passing on the pull request and on the parent commit`,
    };
  }
  if (pending.length === 0) {
    return {
      kind: "green",
      reason:
        redBefore.length === 0
          ? "every watched check passed on the merge commit"
          : `no check turned red: ${redBefore.join(", ")} failed on the merge commit but had not passed on the parent either`,
    };
  }
  if (overdue) {
    return {
      kind: "expired",
      reason: `${pending.join(", ")} did not report on the merge commit before the watch ended`,
    };
  }
  return { kind: "wait", reason: `waiting for ${pending.join(", ")} on the merge commit` };
}

/** Whether every watched check passed on a commit (the revert's head, under `merge.revert: auto`). */
export function watchedChecksPass(
  commit: CommitChecks,
  checks: readonly string[],
  strict: boolean,
): boolean {
  const names = checks.length > 0 ? checks : commit.runs.filter((r) => !r.ours).map((r) => r.name);
  return names.length > 0 && names.every((name) => passed(resultOf(commit, name, strict)));
}

/** A tree entry as `GET …/git/trees/{sha}?recursive=1` lists it (blobs and submodules). */
export interface TreeEntry {
  mode: string;
  type: string;
  sha: string;
}

export interface RevertTree {
  /** For `POST …/git/trees` on top of the base tip's tree; `sha: null` deletes the path. */
  entries: { path: string; mode: string; type: string; sha: string | null }[];
  /** Paths changed by the merge that changed again since: the inverse would undo others' work. */
  conflicts: string[];
}

/**
 * The inverse of a merge, to apply on the base branch's tip: every path the merge commit changed
 * against its parent goes back to the parent's version (or is deleted, if the merge added it). A
 * path that changed again after the merge is a conflict: then no revert is written by Conveyor.
 */
export function revertTree(
  parent: ReadonlyMap<string, TreeEntry>,
  merged: ReadonlyMap<string, TreeEntry>,
  tip: ReadonlyMap<string, TreeEntry>,
): RevertTree {
  const same = (a: TreeEntry | undefined, b: TreeEntry | undefined) =>
    a?.sha === b?.sha && a?.mode === b?.mode && a?.type === b?.type;
  const entries: RevertTree["entries"] = [];
  const conflicts: string[] = [];
  const paths = [...new Set([...parent.keys(), ...merged.keys()])].sort();
  for (const path of paths) {
    const before = parent.get(path);
    const after = merged.get(path);
    if (same(before, after)) continue;
    if (!same(tip.get(path), after)) {
      conflicts.push(path);
      continue;
    }
    entries.push(
      before
        ? { path, mode: before.mode, type: before.type, sha: before.sha }
        : { path, mode: after!.mode, type: after!.type, sha: null },
    );
  }
  return { entries, conflicts };
}

const MAX_TITLE = 256;
const MAX_TEXT = 8_000;

/** `Revert "<title>"`, as GitHub's own revert button names it. */
export function revertTitle(prTitle: string): string {
  const title = `Revert "${prTitle}"`;
  return title.length > MAX_TITLE ? `${title.slice(0, MAX_TITLE - 2)}…"` : title;
}

function checkList(failing: readonly FailingCheck[]): string {
  return failing.map((c) => `- \`${c.name.replace(/`/g, "'")}\`: ${c.result}`).join("\n");
}

export function revertBody(w: {
  prNumber: number;
  mergeSha: string;
  baseRef: string;
  failing: readonly FailingCheck[];
}): string {
  return [
    `Reverts #${w.prNumber}`,
    "",
    `These checks passed on #${w.prNumber} and on the parent commit, then failed on its merge ` +
      `commit ${w.mergeSha.slice(0, 7)} of \`${w.baseRef}\` (re-requested once first):`,
    "",
    checkList(w.failing),
  ].join("\n");
}

/** The freeze that pauses auto-merge in the repository, naming the cause. */
export function freezeReason(w: {
  prNumber: number;
  mergeSha: string;
  baseRef: string;
  failing: readonly FailingCheck[];
}): string {
  return `checks failed on ${w.baseRef} at ${w.mergeSha.slice(0, 7)} after #${w.prNumber} merged (${w.failing.map((c) => c.name).join(", ")})`;
}

/** The comment on the merged pull request. */
export function breakageComment(w: {
  prNumber: number;
  mergeSha: string;
  baseRef: string;
  failing: readonly FailingCheck[];
  revert:
    | { kind: "pr"; number: number; auto: boolean }
    | { kind: "off" }
    | { kind: "conflict"; paths: string[] };
  frozen: string | null;
}): string {
  const next =
    w.revert.kind === "pr"
      ? `Conveyor opened #${w.revert.number} to revert it${w.revert.auto ? ", and merges it once its checks pass" : "; a maintainer can merge it"}. The issue is queued again once the revert has merged.`
      : w.revert.kind === "off"
        ? "`merge.revert` is `off`, so Conveyor did not open a revert; a maintainer decides."
        : `Conveyor did not write a revert: ${w.revert.paths.map((p) => `\`${p}\``).join(", ")} changed again since the merge. A maintainer decides.`;
  return [
    `⚠️ These checks passed on this pull request and on the parent commit, then failed on its merge commit ${w.mergeSha.slice(0, 7)} of \`${w.baseRef}\` (each re-requested once first):`,
    "",
    checkList(w.failing),
    "",
    next,
    w.frozen
      ? `Auto-merge is paused in this repository (frozen: ${w.frozen}); \`/unfreeze\` resumes it.`
      : "",
  ]
    .filter((line, i, all) => line !== "" || i < all.length - 1)
    .join("\n");
}

/** The feedback the issue is queued again with, once the revert has merged. */
export function revertFeedback(w: {
  prNumber: number;
  revertNumber: number;
  mergeSha: string;
  baseRef: string;
  failing: readonly FailingCheck[];
}): string {
  return [
    `Your change (#${w.prNumber}) was merged into \`${w.baseRef}\` and then reverted (#${w.revertNumber}): ` +
      `these checks failed on the merge commit ${w.mergeSha.slice(0, 7)} although they passed on ` +
      "the pull request. Make the change again so that they pass after the merge too.",
    "",
    ...w.failing.map((c) => `### ${c.name} (${c.result})\n\n${c.summary.trim() || "(no output)"}`),
  ]
    .join("\n")
    .slice(0, MAX_TEXT);
}
