import type { FileChange } from "./git-store.ts";
import type { PullFacts } from "./github-objects.ts";
import { missingRequiredCheck, requiredChecksFor } from "./protection.ts";
import type { SimContext } from "./sim-context.ts";
import type { SimIssue, SimRepo } from "./sim-state.ts";

/** The base tip of an open pull request, refreshed from the branch; frozen once it is closed. */
async function currentBase(ctx: SimContext, repo: SimRepo, issue: SimIssue): Promise<string> {
  const pull = issue.pull!;
  if (issue.state === "open") {
    const tip = await ctx.git.readRef(repo.fullName, `refs/heads/${pull.baseRef}`);
    if (tip) pull.baseSha = tip;
  }
  return pull.baseSha;
}

/** The files a pull request changes: head against its merge base with the base branch. */
export async function pullFiles(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
): Promise<FileChange[]> {
  const pull = issue.pull!;
  const baseSha = await currentBase(ctx, repo, issue);
  const mergeBase = (await ctx.git.mergeBase(repo.fullName, baseSha, pull.headSha)) ?? baseSha;
  return ctx.git.diff(repo.fullName, mergeBase, pull.headSha);
}

function hasFailingChecks(repo: SimRepo, sha: string): boolean {
  const failing = new Set([
    "failure",
    "cancelled",
    "timed_out",
    "action_required",
    "startup_failure",
  ]);
  return (
    repo.checkRuns.some((run) => run.headSha === sha && failing.has(run.conclusion ?? "")) ||
    repo.statuses.some(
      (status) => status.sha === sha && (status.state === "failure" || status.state === "error"),
    )
  );
}

/**
 * What GitHub computes about a pull request from git: base sha, mergeability (a real
 * `git merge-tree`, unless a test forced it), commit count and diff stats.
 */
export async function pullFacts(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
): Promise<PullFacts> {
  const pull = issue.pull!;
  const baseSha = await currentBase(ctx, repo, issue);
  const mergeBase = (await ctx.git.mergeBase(repo.fullName, baseSha, pull.headSha)) ?? baseSha;
  const files = await ctx.git.diff(repo.fullName, mergeBase, pull.headSha);
  const commits = (await ctx.git.revList(repo.fullName, mergeBase, pull.headSha)).length;
  let mergeable: boolean | null = null;
  let mergeableState = "unknown";
  if (issue.state === "open") {
    mergeable =
      pull.mergeableOverride ??
      (await ctx.git.mergeTree(repo.fullName, baseSha, pull.headSha)).clean;
    // As GitHub reports it: a conflict first, then a draft, then the base branch's rules (a
    // required check that has not passed → blocked; required to be up to date and not → behind).
    const required = requiredChecksFor(repo, pull.baseRef);
    mergeableState = !mergeable
      ? "dirty"
      : pull.draft
        ? "draft"
        : missingRequiredCheck(repo, pull.baseRef, pull.headSha) !== undefined
          ? "blocked"
          : required.strict && !(await ctx.git.isAncestor(repo.fullName, baseSha, pull.headSha))
            ? "behind"
            : hasFailingChecks(repo, pull.headSha)
              ? "unstable"
              : "clean";
  }
  return {
    baseSha,
    mergeable,
    mergeableState,
    commits,
    additions: files.reduce((sum, file) => sum + file.additions, 0),
    deletions: files.reduce((sum, file) => sum + file.deletions, 0),
    changedFiles: files.length,
  };
}
