import type { GitIdentity } from "./git-store.ts";
import { renderReview } from "./github-objects.ts";
import { HttpError, validationFailed } from "./http-error.ts";
import {
  type Acted,
  emitIssueEvent,
  issueEventPayload,
  newSimIssue,
  updateIssue,
} from "./issue-actions.ts";
import { mergeQueueFor, missingRequiredCheck } from "./protection.ts";
import { pullFacts } from "./pull-facts.ts";
import type { PendingDelivery, SimContext } from "./sim-context.ts";
import type { SimApp, SimIssue, SimRepo, SimReview, SimUser } from "./sim-state.ts";

export interface CreatePullInput {
  title: string;
  body?: string | null;
  /** `branch` or `owner:branch` (forks are not simulated). */
  head: string;
  base: string;
  draft?: boolean;
  maintainerCanModify?: boolean;
  user: SimUser;
  viaApp?: SimApp;
}

function headBranch(repo: SimRepo, head: string): string {
  const colon = head.indexOf(":");
  if (colon === -1) return head;
  if (head.slice(0, colon).toLowerCase() !== repo.owner.login.toLowerCase()) {
    throw validationFailed([{ resource: "PullRequest", field: "head", code: "invalid" }]);
  }
  return head.slice(colon + 1);
}

export async function createPull(
  ctx: SimContext,
  repo: SimRepo,
  input: CreatePullInput,
): Promise<Acted<{ issue: SimIssue }>> {
  const head = headBranch(repo, input.head);
  const headSha = await ctx.git.readRef(repo.fullName, `refs/heads/${head}`);
  const baseSha = await ctx.git.readRef(repo.fullName, `refs/heads/${input.base}`);
  const errors = [];
  if (!headSha) errors.push({ resource: "PullRequest", field: "head", code: "invalid" });
  if (!baseSha) errors.push({ resource: "PullRequest", field: "base", code: "invalid" });
  if (!headSha || !baseSha) throw validationFailed(errors);
  const existing = [...repo.issues.values()].find(
    (issue) =>
      issue.pull &&
      issue.state === "open" &&
      issue.pull.headRef === head &&
      issue.pull.baseRef === input.base,
  );
  if (existing) {
    throw validationFailed([
      {
        resource: "PullRequest",
        code: "custom",
        message: `A pull request already exists for ${repo.owner.login}:${head}.`,
      },
    ]);
  }
  if ((await ctx.git.revList(repo.fullName, baseSha, headSha)).length === 0) {
    throw validationFailed([
      {
        resource: "PullRequest",
        code: "custom",
        message: `No commits between ${input.base} and ${head}`,
      },
    ]);
  }
  const issue: SimIssue = newSimIssue(ctx, repo, {
    title: input.title,
    body: input.body ?? null,
    user: input.user,
    assignees: [],
    viaApp: input.viaApp,
    pull: {
      id: ctx.state.nextId(),
      headRef: head,
      headSha,
      baseRef: input.base,
      baseSha,
      draft: input.draft ?? false,
      merged: false,
      mergedAt: null,
      mergedBy: null,
      mergeCommitSha: null,
      maintainerCanModify: input.maintainerCanModify ?? false,
      mergeableOverride: undefined,
      reviews: [],
    },
  });
  repo.issues.set(issue.number, issue);
  const deliveries: PendingDelivery[] = [];
  await emitIssueEvent(ctx, deliveries, repo, issue, "opened", input.user);
  return { issue, deliveries };
}

export interface PullPatch {
  title?: string;
  body?: string | null;
  state?: "open" | "closed";
  base?: string;
  maintainer_can_modify?: boolean;
}

export async function updatePull(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  patch: PullPatch,
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const pull = issue.pull!;
  const deliveries: PendingDelivery[] = [];
  if (patch.maintainer_can_modify !== undefined)
    pull.maintainerCanModify = patch.maintainer_can_modify;
  if (patch.base !== undefined && patch.base !== pull.baseRef) {
    if (!(await ctx.git.readRef(repo.fullName, `refs/heads/${patch.base}`))) {
      throw validationFailed([{ resource: "PullRequest", field: "base", code: "invalid" }]);
    }
    const from = pull.baseRef;
    pull.baseRef = patch.base;
    issue.updatedAt = ctx.state.now();
    await emitIssueEvent(ctx, deliveries, repo, issue, "edited", sender, {
      changes: { base: { ref: { from }, sha: { from: pull.baseSha } } },
    });
  }
  const issuePatch = { title: patch.title, body: patch.body, state: patch.state };
  deliveries.push(...(await updateIssue(ctx, repo, issue, issuePatch, sender)));
  return deliveries;
}

export interface MergeInput {
  sha?: string;
  merge_method?: "merge" | "squash" | "rebase";
  commit_title?: string;
  commit_message?: string;
}

const CLOSING_KEYWORDS = /\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+#(\d+)\b/gi;

/** The `users.noreply` address GitHub uses for a user's web commits. */
export function noreplyIdentity(user: SimUser, date: string): GitIdentity {
  return { name: user.login, email: `${user.id}+${user.login}@users.noreply.github.com`, date };
}

/**
 * Merges like `PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge`: 409 when `sha` is not the
 * head, 405 when not mergeable or the base moved meanwhile; writes a real commit on the base
 * branch, closes the pull request and the issues its body closes (`Closes #N`).
 */
export async function mergePull(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  input: MergeInput,
  merger: SimUser,
): Promise<Acted<{ sha: string }>> {
  const pull = issue.pull!;
  if (issue.state !== "open" || pull.merged) {
    throw new HttpError(405, "Pull Request is not mergeable");
  }
  if (input.sha !== undefined && input.sha !== pull.headSha) {
    throw new HttpError(409, "Head branch was modified. Review and try the merge again.");
  }
  const facts = await pullFacts(ctx, repo, issue);
  if (!facts.mergeable || pull.draft) throw new HttpError(405, "Pull Request is not mergeable");
  // The base branch's rules hold for the API as for the button.
  const missing = missingRequiredCheck(repo, pull.baseRef, pull.headSha);
  if (missing !== undefined) {
    throw new HttpError(405, `Required status check "${missing}" is expected.`);
  }
  if (facts.mergeableState === "behind") {
    throw new HttpError(405, "Head branch is not up to date with the base branch.");
  }
  // A branch whose rules require the merge queue refuses direct merges, as GitHub does.
  if (mergeQueueFor(repo, pull.baseRef)) {
    throw new HttpError(405, "Changes must be made through the merge queue");
  }
  const baseTip = facts.baseSha;
  const method = input.merge_method ?? "merge";
  const mergeSha = await writeMergeCommit(
    ctx,
    repo,
    issue,
    { ...input, merge_method: method },
    {
      baseTip,
      merger,
    },
  );
  if (!mergeSha) throw new HttpError(405, "Pull Request is not mergeable");
  if (!(await ctx.git.updateRef(repo.fullName, `refs/heads/${pull.baseRef}`, mergeSha, baseTip))) {
    throw new HttpError(405, "Base branch was modified. Review and try the merge again.");
  }
  ctx.onBranchHead?.(repo, pull.baseRef, mergeSha);
  return { sha: mergeSha, deliveries: await recordMerged(ctx, repo, issue, mergeSha, merger) };
}

/**
 * Writes the commit a merge of the pull request's head onto `baseTip` makes (`merge`, `squash` or
 * `rebase`, committed and signed by GitHub) without moving any branch; undefined on a conflict.
 */
export async function writeMergeCommit(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  input: MergeInput & { merge_method: "merge" | "squash" | "rebase" },
  at: { baseTip: string; merger: SimUser },
): Promise<string | undefined> {
  const pull = issue.pull!;
  const { baseTip, merger } = at;
  const now = ctx.state.now();
  const committer: GitIdentity = { name: "GitHub", email: "noreply@github.com", date: now };
  const method = input.merge_method;
  if (method === "rebase") {
    const commits = await ctx.git.rebase(repo.fullName, baseTip, pull.headSha, committer);
    if (!commits || commits.length === 0) return undefined;
    for (const sha of commits) repo.signedCommits.add(sha);
    return commits.at(-1)!;
  }
  const merged = await ctx.git.mergeTree(repo.fullName, baseTip, pull.headSha);
  if (!merged.clean) return undefined;
  const mergeBase = (await ctx.git.mergeBase(repo.fullName, baseTip, pull.headSha)) ?? baseTip;
  const picked = await ctx.git.revList(repo.fullName, mergeBase, pull.headSha);
  const messages = await Promise.all(
    picked.map(async (sha) => (await ctx.git.readCommit(repo.fullName, sha))!.message.trim()),
  );
  const title =
    input.commit_title ??
    (method === "squash"
      ? `${issue.title} (#${issue.number})`
      : `Merge pull request #${issue.number} from ${repo.owner.login}/${pull.headRef}`);
  const body =
    input.commit_message ??
    (method === "squash" ? messages.map((message) => `* ${message}`).join("\n\n") : issue.title);
  const mergeSha = await ctx.git.createCommit(repo.fullName, {
    tree: merged.tree,
    parents: method === "squash" ? [baseTip] : [baseTip, pull.headSha],
    message: body ? `${title}\n\n${body}\n` : `${title}\n`,
    author: method === "squash" ? noreplyIdentity(issue.user, now) : noreplyIdentity(merger, now),
    committer,
  });
  repo.signedCommits.add(mergeSha);
  return mergeSha;
}

/**
 * The pull request is merged at `mergeSha` (already on its base branch): closed and marked
 * merged by `merger`, and the issues its body closes (`Closes #N`) closed when the base is the
 * default branch. The webhooks it causes.
 */
export async function recordMerged(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  mergeSha: string,
  merger: SimUser,
): Promise<PendingDelivery[]> {
  const pull = issue.pull!;
  const now = ctx.state.now();
  repo.pushedAt = now;
  pull.merged = true;
  pull.mergedAt = now;
  pull.mergedBy = merger;
  pull.mergeCommitSha = mergeSha;
  issue.state = "closed";
  issue.closedAt = now;
  issue.closedBy = merger;
  issue.updatedAt = now;
  const deliveries: PendingDelivery[] = [];
  await emitIssueEvent(ctx, deliveries, repo, issue, "closed", merger);
  if (pull.baseRef === repo.defaultBranch) {
    for (const match of (issue.body ?? "").matchAll(CLOSING_KEYWORDS)) {
      const closed = repo.issues.get(Number(match[1]));
      if (closed && !closed.pull && closed.state === "open") {
        deliveries.push(
          ...(await updateIssue(
            ctx,
            repo,
            closed,
            { state: "closed", state_reason: "completed" },
            merger,
          )),
        );
      }
    }
  }
  return deliveries;
}

/**
 * Reacts to a branch moving (API ref update, push, merge): open pull requests with that head get
 * `synchronize`; if the branch was deleted they are closed, as on GitHub.
 */
export async function branchMoved(
  ctx: SimContext,
  repo: SimRepo,
  branch: string,
  after: string | undefined,
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const deliveries: PendingDelivery[] = [];
  repo.pushedAt = ctx.state.now();
  if (after !== undefined) ctx.onBranchHead?.(repo, branch, after);
  for (const issue of repo.issues.values()) {
    const pull = issue.pull;
    if (!pull || issue.state !== "open" || pull.headRef !== branch) continue;
    if (after === undefined) {
      deliveries.push(...(await updateIssue(ctx, repo, issue, { state: "closed" }, sender)));
    } else if (after !== pull.headSha) {
      const before = pull.headSha;
      pull.headSha = after;
      issue.updatedAt = ctx.state.now();
      await emitIssueEvent(ctx, deliveries, repo, issue, "synchronize", sender, { before, after });
    }
  }
  return deliveries;
}

export async function submitReview(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  input: { user: SimUser; state: SimReview["state"]; body?: string },
): Promise<Acted<{ review: SimReview }>> {
  const pull = issue.pull!;
  const review: SimReview = {
    id: ctx.state.nextId(),
    user: input.user,
    state: input.state,
    body: input.body ?? "",
    commitId: pull.headSha,
    submittedAt: ctx.state.now(),
  };
  pull.reviews.push(review);
  // Webhooks spell the review state in lower case ("approved"), the REST API in upper case.
  const rendered = renderReview(ctx.base, repo, issue.number, review);
  const { payload } = await issueEventPayload(ctx, repo, issue, "submitted", {
    review: { ...rendered, state: review.state.toLowerCase() },
  });
  delete payload.number;
  return { review, deliveries: [ctx.emit(repo, "pull_request_review", payload, input.user)] };
}

/**
 * `PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch`: merges the base branch's tip into
 * the head branch with a real merge commit (parents: the head, then the base tip; committed and
 * signed by GitHub, authored by the requester), as GitHub's "Update branch" does. 422 when
 * `expected_head_sha` is not the head, when there is nothing new on the base, or on a conflict.
 */
export async function updatePullBranch(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  input: { expected_head_sha?: string },
  sender: SimUser,
): Promise<Acted<{ sha: string }>> {
  const pull = issue.pull!;
  if (issue.state !== "open" || pull.merged) {
    throw validationFailed([{ resource: "PullRequest", code: "custom", message: "not open" }]);
  }
  if (input.expected_head_sha !== undefined && input.expected_head_sha !== pull.headSha) {
    throw new HttpError(422, "expected head sha didn't match current head ref.");
  }
  const facts = await pullFacts(ctx, repo, issue);
  const baseTip = facts.baseSha;
  if (await ctx.git.isAncestor(repo.fullName, baseTip, pull.headSha)) {
    throw new HttpError(422, "There are no new commits on the base branch.");
  }
  const merged = await ctx.git.mergeTree(repo.fullName, pull.headSha, baseTip);
  if (!merged.clean) throw new HttpError(422, "merge conflict between base and head");
  const now = ctx.state.now();
  const sha = await ctx.git.createCommit(repo.fullName, {
    tree: merged.tree,
    parents: [pull.headSha, baseTip],
    message: `Merge branch '${pull.baseRef}' into ${pull.headRef}\n`,
    author: noreplyIdentity(sender, now),
    committer: { name: "GitHub", email: "noreply@github.com", date: now },
  });
  repo.signedCommits.add(sha);
  if (!(await ctx.git.updateRef(repo.fullName, `refs/heads/${pull.headRef}`, sha, pull.headSha))) {
    throw new HttpError(422, "expected head sha didn't match current head ref.");
  }
  return { sha, deliveries: await branchMoved(ctx, repo, pull.headRef, sha, sender) };
}
