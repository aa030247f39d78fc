import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { PullRequestRefused } from "../core/change-set-rules.ts";
import { repoRef } from "../core/github-objects.ts";
import { isWritesClosed, type PullRequestWriter } from "../core/ports.ts";
import { pullRequestTitle, renderPullRequestBody } from "../core/pull-request-body.ts";
import type { ChangeSet } from "../protocol/messages.ts";
import { latestRound } from "../store/best-of.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import { addNotice } from "../store/notices.ts";
import { findUnpublished, recordPublished, type UnpublishedTask } from "../store/pull-requests.ts";
import { transitionTask } from "../store/tasks.ts";

export interface PublisherDeps {
  db: Db;
  logger: Logger;
  pullRequests: PullRequestWriter;
  instanceId: string;
  onChange: () => void;
  recordError?: (source: string, error: unknown) => void;
}

const LEASE = "publisher";
const LEASE_MS = 2 * 60_000;
const BATCH = 10;

/**
 * Turns received change sets into commits and pull requests. One instance at a time (a lease), one
 * task after another: GitHub's secondary rate limits punish bursts of writes, and every step is
 * idempotent, so a publish interrupted by a crash is simply done again.
 */
export function createPublisher(deps: PublisherDeps): { runOnce(): Promise<number> } {
  async function publish(task: UnpublishedTask): Promise<void> {
    const log = deps.logger.child({
      taskId: task.task_id,
      generation: task.generation,
      repo: task.full_name,
      issueNumber: task.issue_number,
    });
    const ref = repoRef(task.installation_id, task.full_name);
    const branch = `conveyor/issue-${task.issue_number}`;
    const round = await latestRound(deps.db, task.task_id);
    const body = renderPullRequestBody({
      taskId: task.task_id,
      generation: task.generation,
      issueNumber: task.issue_number,
      summary: task.result?.summary ?? "",
      stats: task.result?.stats,
      runnerName: task.runner_name ?? undefined,
      attempt: task.attempts + 1,
      maxAttempts: task.max_attempts,
      verification: task.result?.verification as never,
      candidates: round.map((c) => ({
        k: c.k,
        agent: c.agent ?? undefined,
        picked: c.picked,
        rank: c.rank,
        verificationPassed: c.verification_passed,
        tier: c.tier,
        checks: c.checks,
        changedLines: c.changed_lines,
        costUsd: c.cost_usd === null ? null : Number(c.cost_usd),
        failure: c.failure,
      })),
    });
    try {
      const written = await deps.pullRequests.write(task.installation_id, {
        owner: ref.owner,
        repo: ref.repo,
        defaultBranch: task.default_branch,
        issueNumber: task.issue_number,
        issueTitle: task.title,
        branch,
        baseSha: task.base_sha ?? "",
        changeSet: task.change_set as ChangeSet,
        body,
        title: pullRequestTitle(task.title, task.issue_number),
        // The merger adds them with the risk label, in one write (`pullRequestLabels`).
        labels: [],
        firstWrite: !task.issue_had_pull_request,
        // A bigint column from raw SQL may arrive as a string.
        repositoryId: Number(task.repository_id),
      });
      await recordPublished(deps.db, {
        taskId: task.task_id,
        generation: task.generation,
        repositoryId: task.repository_id,
        prNumber: written.prNumber,
        branch,
        headSha: written.headSha,
        baseRef: task.default_branch,
        url: written.prUrl,
      });
      log.info({ prNumber: written.prNumber, created: written.created }, "pull request written");
    } catch (error) {
      if (!(error instanceof PullRequestRefused)) throw error;
      // Nothing was written. A person must decide: the same agent would likely do it again.
      log.warn({ reason: error.message }, "change refused before writing");
      await deps.db.transaction(async (tx) => {
        const moved = await transitionTask(tx, {
          taskId: task.task_id,
          generation: task.generation,
          from: ["pushed"],
          to: "dead",
          actor: "publisher",
          reason: `change refused: ${error.message}`,
          set: { lastError: `change refused: ${error.message}` },
        });
        if (moved) {
          await addNotice(tx, {
            dedupeKey: `refused-change:${task.task_id}:${task.generation}`,
            repositoryId: task.repository_id,
            installationId: task.installation_id,
            issueNumber: task.issue_number,
            body: `⚠️ Conveyor did not open a pull request: ${error.message}. Edit the issue and comment \`/retry\`, or make this change by hand.`,
          });
        }
      });
    }
  }

  return {
    async runOnce() {
      if (!(await tryAcquireLease(deps.db, LEASE, deps.instanceId, LEASE_MS))) return 0;
      let done = 0;
      try {
        for (const task of await findUnpublished(deps.db, BATCH)) {
          try {
            await publish(task);
            done++;
          } catch (error) {
            // Shutting down: left for the next instance, nothing went wrong.
            if (isWritesClosed(error)) break;
            // Left for the next pass; the log says why (GitHub down, rate limited …).
            deps.logger.error(
              { err: error, taskId: task.task_id },
              "publishing the pull request failed",
            );
            deps.recordError?.("publisher", error);
          }
        }
      } finally {
        await releaseLease(deps.db, LEASE, deps.instanceId);
      }
      if (done) deps.onChange();
      return done;
    },
  };
}
