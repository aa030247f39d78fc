import type { Db } from "../../db/client.ts";
import {
  decideCiFollowUp,
  decideReviewFollowUp,
  type FailedCheck,
  type FollowUpDecision,
} from "../core/follow-up.ts";
import type { RepoRef } from "../core/github-objects.ts";
import { type Actor, hasPermission, isBot } from "../core/intake.ts";
import { findQueuedPullRequest, finishQueuedMerge, recordDequeued } from "../store/merge-queue.ts";
import { addNotice } from "../store/notices.ts";
import {
  findOpenPullRequestsByHead,
  findPullRequest,
  type PullRequestRow,
  setPullRequestState,
} from "../store/pull-requests.ts";
import { appendTaskEvent, getTask, transitionTask } from "../store/tasks.ts";
import type { IntakeDeps } from "./intake-service.ts";

/** The delivery facts every pull request event carries. */
export interface Delivery {
  deliveryId: string;
  event: string;
  action?: string | undefined;
  installationId: number;
  repositoryId: number;
  ref: RepoRef;
}

const ACTIVE = [
  "pushed",
  "review",
  "merging",
  "waiting_human",
  "held",
  "queued",
  "assigned",
  "running",
  "retry_wait",
  "failed",
  "dead",
] as const;

/** A delivery's effects, committed once with it (see `SettleDelivery`). */
function once(deps: IntakeDeps, d: Delivery, effect: (tx: Db) => Promise<string>): Promise<string> {
  const { deliveryId, event, action, installationId } = d;
  return deps.settle({ deliveryId, event, action, installationId }, effect);
}

export type PullRequestClosedEvent = Delivery & {
  prNumber: number;
  merged: boolean;
  /** `pull_request.merge_commit_sha`: for a merge through the queue, the commit it produced. */
  mergeCommitSha?: string | null | undefined;
  sender: Actor;
};
/**
 * What GitHub's merge queue did with a pull request: `merge_group.destroyed` (reason `merged`, with
 * the group's head, now the base's tip; or `invalidated`, the group is built again) or
 * `pull_request.dequeued` (with its reason in words).
 */
export type MergeQueueEvent = Delivery & {
  prNumber: number;
  outcome: "merged" | "dequeued" | "invalidated";
  /** The merge group's head (merged, invalidated) or the pull request's head (dequeued). */
  headSha: string;
  /** The merge group's base branch, when the event named it. */
  baseRef?: string | undefined;
  reason?: string | undefined;
  sender: Actor;
};
export type FailedCheckEvent = Delivery & { headSha: string; failed: FailedCheck[] };
export type ChangesRequestedEvent = Delivery & { prNumber: number; reviewer: Actor; text: string };

/** A pull request was closed: merged → the task is done; closed by a person → the task is cancelled. */
export async function handlePullRequestClosed(
  deps: IntakeDeps,
  d: PullRequestClosedEvent,
): Promise<string> {
  const outcome = await once(deps, d, async (tx) => {
    const pr = await findPullRequest(tx, d.repositoryId, d.prNumber);
    if (!pr) return "not a Conveyor pull request";
    if (d.merged && d.mergeCommitSha) {
      // Merged by the merge queue Conveyor put it in: recorded with the watch on that commit.
      const queued = await finishQueuedMerge(
        tx,
        { repositoryId: d.repositoryId, prNumber: d.prNumber },
        { mergeSha: d.mergeCommitSha, actor: d.sender.login },
      );
      if (queued) return queued === "merged" ? "merged" : "task already finished";
    }
    // A person merging (not Conveyor, not another bot) is what merge.mode report counts.
    await setPullRequestState(tx, d.repositoryId, d.prNumber, d.merged ? "merged" : "closed", {
      mergedByHand: d.merged && !isBot(d.sender),
    });
    if (d.merged) {
      const merged = await transitionTask(tx, {
        taskId: pr.task_id,
        from: ACTIVE,
        to: "merged",
        actor: d.sender.login,
        reason: `pull request #${d.prNumber} merged`,
        set: { finished: true },
      });
      return merged ? "merged" : "task already finished";
    }
    // Conveyor closing its own pull request (a rerun elsewhere) is not a person cancelling.
    if (isBot(d.sender)) return "closed by a bot";
    const cancelled = await transitionTask(tx, {
      taskId: pr.task_id,
      from: ACTIVE,
      to: "cancelled",
      actor: d.sender.login,
      reason: `pull request #${d.prNumber} closed without merging`,
      set: { finished: true },
    });
    return cancelled ? "cancelled" : "task already finished";
  });
  if (outcome === "merged" || outcome === "cancelled") deps.onChange();
  return outcome;
}

/**
 * The merge queue merged, removed or rebuilt the group of a pull request Conveyor enqueued. Events
 * about a pull request that is not Conveyor's, or that Conveyor did not enqueue (or not into that
 * base), change nothing. `invalidated` only notes it on the timeline: the pull request stays in the
 * queue and GitHub builds a new group, so Conveyor does not enqueue it again.
 */
export async function handleMergeQueueEvent(deps: IntakeDeps, d: MergeQueueEvent): Promise<string> {
  const key = { repositoryId: d.repositoryId, prNumber: d.prNumber };
  const outcome = await once(deps, d, async (tx) => {
    const row = await findQueuedPullRequest(tx, d.repositoryId, d.prNumber);
    const ignored = "not a pull request Conveyor enqueued";
    if (!row) return ignored;
    if (d.baseRef !== undefined && row.queue_plan && row.queue_plan.baseRef !== d.baseRef) {
      return ignored;
    }
    switch (d.outcome) {
      case "merged":
        return (
          (await finishQueuedMerge(tx, key, {
            mergeSha: d.headSha,
            actor: d.sender.login,
            byQueue: true,
          })) ?? ignored
        );
      case "dequeued":
        return (
          (await recordDequeued(tx, key, {
            reason: d.reason ?? "GitHub gave no reason",
            actor: d.sender.login,
            headSha: d.headSha,
          })) ?? ignored
        );
      case "invalidated":
        if (!row.queued_head_sha) return ignored;
        await appendTaskEvent(tx, {
          taskId: row.task_id,
          actor: d.sender.login,
          reason:
            "merge group invalidated (an entry ahead of it left the queue, or the base moved); GitHub builds a new one",
          data: { group_head_sha: d.headSha },
        });
        return "noted";
    }
  });
  if (outcome !== "duplicate" && !outcome.startsWith("not ")) deps.onChange();
  return outcome;
}

async function applyFollowUp(
  tx: Db,
  pr: PullRequestRow,
  decision: FollowUpDecision,
  kind: "ci" | "review",
  actor: string,
  d: { repositoryId: number; installationId: number },
): Promise<string> {
  if (decision.kind === "retry") {
    const moved = await transitionTask(tx, {
      taskId: pr.task_id,
      from: ["review", "waiting_human"],
      to: "queued",
      actor,
      reason: decision.reason,
      set: {
        feedback: decision.feedback,
        enqueuedAt: "now",
        availableAt: new Date(0),
        ...(kind === "ci" ? { ciFixes: decision.count } : { reviewFixes: decision.count }),
      },
    });
    return moved ? `follow-up ${decision.count}` : "task not in review";
  }
  const moved = await transitionTask(tx, {
    taskId: pr.task_id,
    from: ["review"],
    to: "waiting_human",
    actor,
    reason: decision.reason,
  });
  if (moved) {
    await addNotice(tx, {
      dedupeKey: `followups:${pr.task_id}:${kind}:${pr.head_sha}`,
      repositoryId: d.repositoryId,
      installationId: d.installationId,
      issueNumber: pr.pr_number,
      body: decision.comment,
    });
  }
  return moved ? "waiting for a human" : "task not in review";
}

/**
 * A check run or commit status concluded red on a head Conveyor wrote: a follow-up attempt on the
 * same branch with the failure as feedback, up to the cap, then a human. Events about an older
 * head, or about a task that is not in review, change nothing.
 */
export async function handleFailedCheck(deps: IntakeDeps, d: FailedCheckEvent): Promise<string> {
  const loaded = await deps.gateway.loadConfig(d.ref);
  const outcome = await once(deps, d, async (tx) => {
    const prs = await findOpenPullRequestsByHead(tx, d.repositoryId, d.headSha);
    if (prs.length === 0) return "not the head of a Conveyor pull request";
    const results: string[] = [];
    for (const pr of prs) {
      const task = await getTask(tx, pr.task_id);
      if (task?.state !== "review") {
        results.push("task not in review");
        continue;
      }
      const decision = decideCiFollowUp({
        prNumber: pr.pr_number,
        failed: d.failed,
        fixesSoFar: task.ciFixes,
        maxFixes: loaded.config.tasks.max_ci_fixes,
      });
      results.push(await applyFollowUp(tx, pr, decision, "ci", "checks", d));
    }
    return results.join("; ");
  });
  if (outcome.includes("follow-up") || outcome.includes("human")) deps.onChange();
  return outcome;
}

/**
 * A "changes requested" review by someone with write access: a follow-up attempt with its text as
 * feedback (its own cap). `/fix <text>` arrives through the slash commands and uses
 * `requestReviewFix` in its own transaction.
 */
export async function handleChangesRequested(
  deps: IntakeDeps,
  d: ChangesRequestedEvent,
): Promise<string> {
  if (isBot(d.reviewer)) return "review by a bot";
  const permission = await deps.gateway.permission(d.ref, d.reviewer.login);
  if (!hasPermission(permission, "write")) return "reviewer lacks write permission";
  const loaded = await deps.gateway.loadConfig(d.ref);
  const outcome = await once(deps, d, (tx) =>
    requestReviewFix(tx, d, {
      prNumber: d.prNumber,
      reviewer: d.reviewer.login,
      text: d.text,
      maxFixes: loaded.config.tasks.max_review_fixes,
    }),
  );
  if (outcome.includes("follow-up") || outcome.includes("human")) deps.onChange();
  return outcome;
}

/**
 * Inside the caller's transaction: a follow-up attempt on an open Conveyor pull request with the
 * reviewer's text as feedback, or a person once the review-fix cap is reached.
 */
export async function requestReviewFix(
  tx: Db,
  d: { repositoryId: number; installationId: number },
  r: { prNumber: number; reviewer: string; text: string; maxFixes: number },
): Promise<string> {
  const pr = await findPullRequest(tx, d.repositoryId, r.prNumber);
  if (pr?.state !== "open") return "not an open Conveyor pull request";
  const task = await getTask(tx, pr.task_id);
  if (!task) return "no task";
  const decision = decideReviewFollowUp({
    prNumber: pr.pr_number,
    reviewer: r.reviewer,
    text: r.text,
    fixesSoFar: task.reviewFixes,
    maxFixes: r.maxFixes,
  });
  return applyFollowUp(tx, pr, decision, "review", r.reviewer, d);
}
