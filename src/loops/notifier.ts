import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import { repoRef } from "../core/github-objects.ts";
import { type GitHubGateway, isWritesClosed } from "../core/ports.ts";
import {
  estimateWait,
  renderStatusComment,
  type StatusFacts,
  statusDigestText,
  statusMarker,
} from "../core/status-comment.ts";
import { latestAttempt } from "../store/attempts.ts";
import { latestRound } from "../store/best-of.ts";
import { budgetPause } from "../store/budgets.ts";
import {
  claimCommandFeedback,
  markFeedbackFailed,
  markFeedbackPosted,
  releaseFeedback,
} from "../store/commands.ts";
import { mergeQueueNote } from "../store/merge-queue.ts";
import { latestWatch } from "../store/merge-watches.ts";
import {
  claimNotices,
  markNoticeFailed,
  markNoticePosted,
  releaseNotice,
} from "../store/notices.ts";
import { pullRequestUrl } from "../store/pull-requests.ts";
import { findRunnerById } from "../store/runners.ts";
import {
  claimDirtyStatuses,
  claimStalePositions,
  countStartedSince,
  type DirtyStatus,
  getTask,
  markStatusCommentAttempted,
  markStatusFailed,
  markStatusSynced,
  queuePosition,
  reasonForState,
} from "../store/tasks.ts";

export interface NotifierDeps {
  db: Db;
  gateway: GitHubGateway;
  logger: Logger;
  /** Aging interval of the queue, for the position shown. */
  agingMs: number;
  /** `CONVEYOR_INSTALLATION_DAILY_BUDGET_USD`, to say when it pauses the queue. */
  installationDailyBudgetUsd?: number | undefined;
  /** The merge verdict of a pull request, rule by rule (for `/status` on a PR). */
  describePullRequest?: (repositoryId: number, prNumber: number) => Promise<string>;
  /** `CONVEYOR_PUBLIC_URL`: with it, the comment links the task's dashboard page. */
  publicUrl?: string | undefined;
  /** How edits of one comment are spaced and when queue positions are refreshed. */
  pacing?: Partial<StatusCommentPacing> | undefined;
  now?: () => Date;
  /**
   * Status comments are optional work: while an installation's GitHub budget is under the reserve
   * (or a rate limit holds it back) they wait for the window's reset; the database keeps them owed.
   */
  budget?: Pick<GitHubBudget, "deferredUntil"> | undefined;
  /** Counts each status comment put off for the budget. */
  onDeferred?: (work: "status_comment") => void;
}

/**
 * How the notifier spaces status-comment edits. A change waits until the task kept still for
 * `debounceMs` (at most `maxDelayMs` after the previous edit), so the states a task passes through
 * within a moment cost one edit; every state stays in `task_events` and the dashboard. A waiting
 * task's position is rewritten when it moved by a place or more, at most once per
 * `positionMinIntervalMs`, and every `positionRefreshMs` for the wait estimate, nearest the head
 * of the queue first; at most `positionEditsPerMinute` such edits (per instance, spread evenly
 * over the minute), and only in a
 * pass that owed nothing else, so a draining queue of hundreds never crowds out state changes
 * inside the write pacer's budget (80 writes a minute).
 */
export interface StatusCommentPacing {
  debounceMs: number;
  maxDelayMs: number;
  positionMinIntervalMs: number;
  positionRefreshMs: number;
  positionEditsPerMinute: number;
  /** The window of recent throughput the wait estimate is taken from. */
  throughputWindowMs: number;
}

export const DEFAULT_STATUS_PACING: StatusCommentPacing = {
  debounceMs: 1_500,
  maxDelayMs: 15_000,
  positionMinIntervalMs: 60_000,
  positionRefreshMs: 5 * 60_000,
  positionEditsPerMinute: 20,
  throughputWindowMs: 30 * 60_000,
};

const BATCH = 20;
const digestOf = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32);
/** GitHub answers 404 for a deleted issue and 410 for one whose repository disabled issues. */
const isGone = (error: unknown) => [404, 410].includes((error as { status?: number }).status ?? 0);

/**
 * Brings issues up to date with the database: the 👀 reaction and the one status comment per task
 * (created once, then edited in place), and queued notices. Runs after changes and on a tick; a
 * burst of changes between two runs costs one edit.
 */
export function createNotifier(deps: NotifierDeps): { runOnce(): Promise<number> } {
  const now = deps.now ?? (() => new Date());
  const pacing = { ...DEFAULT_STATUS_PACING, ...deps.pacing };
  /** Recent throughput, read at most once per pass. */
  let started: Promise<number> | undefined;

  /**
   * The position-edit budget, a token bucket that refills evenly over the minute and holds a
   * tenth of it: edits spread out instead of being spent at once on the first start of a minute,
   * so each pass keeps the head of the queue current.
   */
  const capacity = Math.max(1, Math.ceil(pacing.positionEditsPerMinute / 10));
  let tokens = capacity;
  let filledAt = now().getTime();

  /** Brings one comment up to date; true when it was written (created or edited). */
  async function syncStatus(claim: DirtyStatus): Promise<boolean> {
    const deferredUntil = deps.budget?.deferredUntil(claim.installation_id);
    if (deferredUntil !== undefined) {
      // Leased until the budget allows it: the latest version goes out then, in one edit.
      deps.onDeferred?.("status_comment");
      const waitMs = Math.max(1_000, deferredUntil - Date.now());
      await markStatusFailed(deps.db, claim.task_id, claim.status_version, waitMs);
      return false;
    }
    const ref = repoRef(claim.installation_id, claim.full_name);
    const task = await getTask(deps.db, claim.task_id);
    if (!task) return false;
    try {
      if (!claim.reacted_at) await deps.gateway.addReaction(ref, claim.issue_number, "eyes");
      const attempt = await latestAttempt(deps.db, task.taskId);
      const position = await queuePosition(deps.db, task.taskId, deps.agingMs);
      if (position !== undefined) {
        started ??= countStartedSince(
          deps.db,
          new Date(now().getTime() - pacing.throughputWindowMs),
        );
      }
      const facts: StatusFacts = {
        taskId: task.taskId,
        state: task.state,
        lane: task.lane,
        attempts: task.attempts,
        maxAttempts: task.maxAttempts,
        queuePosition: position,
        waitEstimateMs:
          position === undefined
            ? undefined
            : estimateWait(position, {
                started: await started!,
                windowMs: pacing.throughputWindowMs,
              }),
        runnerName: task.runnerId
          ? (await findRunnerById(deps.db, task.runnerId))?.name
          : undefined,
        createdAt: task.createdAt,
        finishedAt: task.finishedAt,
        now: now(),
        lastError: task.lastError,
        prUrl: await pullRequestUrl(deps.db, task.taskId),
        snapshotHash: task.snapshotHash,
        availableAt: task.availableAt,
        waitingReason:
          task.state === "waiting_human"
            ? await reasonForState(deps.db, task.taskId, "waiting_human")
            : undefined,
        // A new attempt that has not reported yet does not show the last one's figures as its own.
        agent:
          attempt &&
          (attempt.generation === task.generation || !["assigned", "running"].includes(task.state))
            ? {
                turns: attempt.turns,
                tokens: attempt.tokens,
                costUsd: attempt.cost_usd,
                tool: attempt.generation === task.generation ? attempt.tool : undefined,
              }
            : undefined,
        taskPageUrl: deps.publicUrl
          ? `${deps.publicUrl.replace(/\/+$/, "")}/dashboard/tasks/${task.taskId}`
          : undefined,
        bestOf:
          task.bestOf > 1
            ? {
                n: task.bestOf,
                picked: (await latestRound(deps.db, task.taskId)).find((c) => c.picked)?.k,
              }
            : undefined,
        mergeQueue:
          task.state === "merging" ? await mergeQueueNote(deps.db, task.taskId) : undefined,
        afterMerge:
          task.state === "merged" ? (await latestWatch(deps.db, task.taskId))?.note : undefined,
        budgetPause:
          task.state === "queued"
            ? await budgetPause(deps.db, task.repositoryId, deps.installationDailyBudgetUsd)
            : undefined,
      };
      const digest = digestOf(statusDigestText(facts));
      const synced = { version: claim.status_version, reacted: true, digest, position };
      // Nothing a reader would see changed but the clock: no edit.
      if (claim.status_comment_id && claim.status_digest === digest) {
        await markStatusSynced(deps.db, task.taskId, {
          ...synced,
          commentId: claim.status_comment_id,
        });
        return false;
      }
      const body = renderStatusComment(facts);
      let commentId = claim.status_comment_id ?? undefined;
      // A crash between creating the comment and saving its id must not make a second comment:
      // once a creation was attempted, the comment is looked for first (never before: one listing
      // fewer per task).
      if (!commentId && claim.status_comment_attempted) {
        commentId = await deps.gateway.findComment(
          ref,
          claim.issue_number,
          statusMarker(task.taskId),
        );
      }
      if (commentId) await deps.gateway.updateComment(ref, commentId, body);
      else {
        await markStatusCommentAttempted(deps.db, task.taskId);
        commentId = await deps.gateway.createComment(ref, claim.issue_number, body);
      }
      await markStatusSynced(deps.db, task.taskId, { ...synced, commentId });
      return true;
    } catch (error) {
      // Shutting down: the comment stays owed, for the next pass of whichever instance runs it.
      if (isWritesClosed(error)) {
        await markStatusFailed(deps.db, task.taskId, claim.status_version, 0);
        return false;
      }
      const gone = isGone(error);
      deps.logger.warn(
        { err: error, taskId: task.taskId, repo: claim.full_name, issueNumber: claim.issue_number },
        gone ? "status comment target is gone" : "status comment update failed",
      );
      await markStatusFailed(deps.db, task.taskId, claim.status_version, gone ? "never" : 15_000);
      return false;
    }
  }

  /** Refreshes the stale queue positions this minute's budget allows, nearest the head first. */
  async function refreshPositions(): Promise<void> {
    const t = now().getTime();
    tokens = Math.min(
      capacity,
      tokens + (Math.max(0, t - filledAt) * pacing.positionEditsPerMinute) / 60_000,
    );
    filledAt = t;
    const allowance = Math.min(BATCH, Math.floor(tokens));
    if (allowance <= 0) return;
    const claims = await claimStalePositions(deps.db, allowance, {
      agingMs: deps.agingMs,
      minIntervalMs: pacing.positionMinIntervalMs,
      refreshMs: pacing.positionRefreshMs,
    });
    for (const claim of claims) if (await syncStatus(claim)) tokens -= 1;
  }

  async function postNotices(): Promise<number> {
    const notices = await claimNotices(deps.db, BATCH);
    for (const notice of notices) {
      const ref = repoRef(notice.installation_id, notice.full_name);
      try {
        const commentId = await deps.gateway.createComment(ref, notice.issue_number, notice.body);
        await markNoticePosted(deps.db, notice.notice_id, commentId);
      } catch (error) {
        if (isWritesClosed(error)) {
          await releaseNotice(deps.db, notice.notice_id);
          continue;
        }
        const final = isGone(error) || notice.attempts >= 9;
        deps.logger.warn(
          { err: error, repo: notice.full_name, issueNumber: notice.issue_number },
          "notice failed",
        );
        await markNoticeFailed(deps.db, notice.notice_id, (error as Error).message, 30_000, final);
      }
    }
    return notices.length;
  }

  /** The reactions (👀 on receipt, then 👍 or 👎) and the reply each command comment is owed. */
  async function postCommandFeedback(): Promise<number> {
    const pending = await claimCommandFeedback(deps.db, BATCH);
    for (const item of pending) {
      const ref = repoRef(item.installation_id, item.full_name);
      const key = { source: item.source, sourceId: item.source_id };
      try {
        // GitHub has no reactions on review bodies; the reply speaks for itself there.
        if (item.source === "issue_comment") {
          await deps.gateway.addCommentReaction(ref, item.source_id, "eyes");
          if (item.reaction)
            await deps.gateway.addCommentReaction(ref, item.source_id, item.reaction);
        }
        for (const label of new Set(
          item.results.flatMap((r) => (r.addLabel ? [r.addLabel] : [])),
        )) {
          await deps.gateway.addLabels(ref, item.number, [label]);
        }
        let reply = item.reply;
        if (reply !== null && item.results.some((r) => r.output === "verdict")) {
          const verdict = deps.describePullRequest
            ? await deps.describePullRequest(item.repository_id, item.number)
            : "The merge verdict is not available on this instance.";
          reply = `${reply}\n\n${verdict}`;
        }
        if (reply !== null) await deps.gateway.createComment(ref, item.number, reply);
        await markFeedbackPosted(deps.db, key);
      } catch (error) {
        if (isWritesClosed(error)) {
          await releaseFeedback(deps.db, key);
          continue;
        }
        deps.logger.warn(
          { err: error, repo: item.full_name, issueNumber: item.number },
          "command feedback failed",
        );
        const final = isGone(error) || item.feedback_attempts >= 9;
        await markFeedbackFailed(deps.db, key, (error as Error).message, 30_000, final);
      }
    }
    return pending.length;
  }

  return {
    /** One pass; returns how many items it handled (the loop runs again at once if it was full). */
    async runOnce() {
      started = undefined;
      const claims = await claimDirtyStatuses(deps.db, BATCH, pacing);
      for (const claim of claims) await syncStatus(claim);
      // Positions only when nothing else was owed: state changes always go first.
      if (claims.length === 0) await refreshPositions();
      const posted = await postNotices();
      const feedback = await postCommandFeedback();
      return claims.length + posted + feedback;
    },
  };
}
