/**
 * GitHub's merge queue, as far as Conveyor's decisions go: whether a base branch requires it, which
 * pull request a merge group is for, and what a dequeue reason means.
 * https://docs.github.com/en/repositories/configuring-branches-and-merges-in-your-repository/configuring-pull-request-merges/managing-a-merge-queue
 */

/** The base branch requires the merge queue (a `merge_queue` rule applies to it). */
export interface MergeQueueFact {
  /** How the queue merges (`merge_method` of the rule): it overrides `merge.method`. */
  mergeMethod: "MERGE" | "SQUASH" | "REBASE";
}

interface RuleLike {
  type: string;
  parameters?: { merge_method?: string } | undefined;
}

/**
 * The merge queue a branch's rules require (`GET /repos/{o}/{r}/rules/branches/{branch}`, rule
 * type `merge_queue`), or null when none applies.
 */
export function mergeQueueFromRules(rules: readonly RuleLike[]): MergeQueueFact | null {
  const rule = rules.find((r) => r.type === "merge_queue");
  if (!rule) return null;
  const method = rule.parameters?.merge_method;
  return {
    mergeMethod: method === "SQUASH" || method === "REBASE" ? method : "MERGE",
  };
}

/**
 * The base branch and pull request number of a merge group's `head_ref`
 * (`refs/heads/gh-readonly-queue/<base>/pr-<number>-<sha>`); undefined for anything else. The base
 * may itself contain slashes (`release/1.x`).
 */
export function parseMergeGroupRef(
  headRef: string,
): { baseRef: string; prNumber: number } | undefined {
  const match = /^(?:refs\/heads\/)?gh-readonly-queue\/(.+)\/pr-(\d+)-[0-9a-f]{40}$/.exec(headRef);
  if (!match) return undefined;
  const prNumber = Number(match[2]);
  if (!Number.isSafeInteger(prNumber) || prNumber <= 0) return undefined;
  return { baseRef: match[1]!, prNumber };
}

/** What each `pull_request.dequeued` reason means, in words for the task and status comment. */
const DEQUEUE_REASONS: Record<string, string> = {
  CI_FAILURE: "a required check failed on the merge group",
  CI_TIMEOUT: "a required check did not report on the merge group in time",
  MERGE_CONFLICT: "the pull request conflicts with the pull requests ahead of it or the base",
  MANUAL: "someone removed it from the queue",
  ALREADY_MERGED: "it was already merged",
  QUEUE_CLEARED: "the queue was cleared",
  ROLL_BACK: "the queue rolled back",
  BRANCH_PROTECTIONS: "the base branch's rules no longer allow the merge",
  GIT_TREE_INVALID: "GitHub could not build the merge group's commit",
  INVALID_MERGE_COMMIT: "the merge group's commit was invalid",
  MERGE: "it was merged",
};

/** A dequeue reason (`UNKNOWN_REMOVAL_REASON`, `CI_FAILURE`, …) in words, with the code kept. */
export function describeDequeueReason(reason: string | null | undefined): string {
  // Only an enum-like code is repeated (it ends up in comments): anything else is "unknown".
  const code = reason && /^[A-Z_]{1,40}$/.test(reason) ? reason : "UNKNOWN_REMOVAL_REASON";
  const words = DEQUEUE_REASONS[code] ?? "GitHub gave no reason";
  return `${words} (${code})`;
}
