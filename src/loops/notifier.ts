import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { repoRef } from "../core/github-objects.ts";
import { type GitHubGateway, isWritesClosed } from "../core/ports.ts";
import { renderStatusComment, statusMarker } from "../core/status-comment.ts";
import { budgetPause } from "../store/budgets.ts";
import {
  claimCommandFeedback,
  markFeedbackFailed,
  markFeedbackPosted,
  releaseFeedback,
} from "../store/commands.ts";
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
  type DirtyStatus,
  getTask,
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
  now?: () => Date;
}

const BATCH = 20;
/** GitHub answers 404 for a deleted issue and 410 for one whose repository disabled issues. */
const isGone = (error: unknown) => [404, 410].includes((error as { status?: number }).status ?? 0);

/**
 * Brings issues up to date with the database: the 👀 reaction and the one status comment per task
 * (created once, then edited in place), and queued notices. Runs after changes and on a tick; a
 * burst of changes between two runs costs one edit.
 */
export function createNotifier(deps: NotifierDeps): { runOnce(): Promise<number> } {
  const now = deps.now ?? (() => new Date());

  async function syncStatus(claim: DirtyStatus): Promise<void> {
    const ref = repoRef(claim.installation_id, claim.full_name);
    const task = await getTask(deps.db, claim.task_id);
    if (!task) return;
    try {
      if (!claim.reacted_at) await deps.gateway.addReaction(ref, claim.issue_number, "eyes");
      const body = renderStatusComment({
        taskId: task.taskId,
        state: task.state,
        lane: task.lane,
        attempts: task.attempts,
        maxAttempts: task.maxAttempts,
        queuePosition: await queuePosition(deps.db, task.taskId, deps.agingMs),
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
        budgetPause:
          task.state === "queued"
            ? await budgetPause(deps.db, task.repositoryId, deps.installationDailyBudgetUsd)
            : undefined,
      });
      let commentId = claim.status_comment_id ?? undefined;
      // A crash between creating the comment and saving its id must not make a second comment.
      commentId ??= await deps.gateway.findComment(
        ref,
        claim.issue_number,
        statusMarker(task.taskId),
      );
      if (commentId) await deps.gateway.updateComment(ref, commentId, body);
      else commentId = await deps.gateway.createComment(ref, claim.issue_number, body);
      await markStatusSynced(deps.db, task.taskId, {
        version: claim.status_version,
        commentId,
        reacted: true,
      });
    } catch (error) {
      // Shutting down: the comment stays owed, for the next pass of whichever instance runs it.
      if (isWritesClosed(error))
        return markStatusFailed(deps.db, task.taskId, claim.status_version, 0);
      const gone = isGone(error);
      deps.logger.warn(
        { err: error, taskId: task.taskId, repo: claim.full_name, issueNumber: claim.issue_number },
        gone ? "status comment target is gone" : "status comment update failed",
      );
      await markStatusFailed(deps.db, task.taskId, claim.status_version, gone ? "never" : 15_000);
    }
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
      const claims = await claimDirtyStatuses(deps.db, BATCH);
      for (const claim of claims) await syncStatus(claim);
      const posted = await postNotices();
      const feedback = await postCommandFeedback();
      return claims.length + posted + feedback;
    },
  };
}
