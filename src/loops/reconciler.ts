import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import { type Db, resultRows } from "../../db/client.ts";
import { QUEUE_COMMAND_REASON } from "../core/commands.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import { repoRef } from "../core/github-objects.ts";
import { decideReconciledSnapshot, isBot } from "../core/intake.ts";
import type { GitHubGateway } from "../core/ports.ts";
import {
  noticeChangedSinceLabel,
  noticeConfigProblems,
  queueIssue,
} from "../intake/queue-issue.ts";
import { rememberDailyBudget } from "../store/budgets.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import { findActiveTask, transitionTask, upsertRepository } from "../store/tasks.ts";

export interface ReconcilerDeps {
  db: Db;
  gateway: GitHubGateway;
  logger: Logger;
  /** Identifies this instance as the lease holder. */
  instanceId: string;
  onChange: () => void;
  recordError?: (source: string, error: unknown) => void;
  /**
   * Reconciliation is optional work: an installation whose GitHub budget is under the reserve is
   * left for the next pass (webhooks still queue its issues meanwhile).
   */
  budget?: Pick<GitHubBudget, "shouldDefer"> | undefined;
  onDeferred?: (work: "reconciliation") => void;
}

export interface ReconcileReport {
  skipped: boolean;
  repositories: number;
  created: number;
  refused: number;
  cancelled: number;
  /** Issues changed since their lost label event: left for a maintainer's `/queue`. */
  unconfirmed: number;
  /** Installations left for the next pass because their GitHub budget is under the reserve. */
  deferred: number;
}

const LEASE = "reconcile";
const LEASE_MS = 10 * 60_000;
// Before a PR exists the issue alone decides; afterwards the PR's life cycle does.
const PRE_PR_STATES = ["queued", "assigned", "running", "retry_wait", "failed", "dead", "held"];

async function finishedSince(
  db: Db,
  repositoryId: number,
  issueNumber: number,
  since: string,
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      select 1 from tasks
      where repository_id = ${repositoryId} and issue_number = ${issueNumber}
        and finished_at >= ${since}::timestamptz`),
  );
  return rows.length > 0;
}

/**
 * The safety net behind webhooks: every open issue carrying the intake label in every installed
 * repository has a task, and every pre-PR task whose issue closed or lost the label is cancelled.
 * One instance at a time (a lease), at start-up and every few minutes.
 */
export function createReconciler(deps: ReconcilerDeps): { runOnce(): Promise<ReconcileReport> } {
  const { db, gateway, logger } = deps;

  async function reconcileRepository(
    installationId: number,
    repo: { repositoryId: number; fullName: string },
    report: ReconcileReport,
    startedAt: string,
  ): Promise<void> {
    const ref = repoRef(installationId, repo.fullName);
    const log = logger.child({ repo: repo.fullName, installationId });
    // A push webhook that never arrived must not keep the config cached at an old head.
    try {
      await gateway.refreshDefaultHead?.(ref);
    } catch (error) {
      log.warn({ err: error }, "default branch head not refreshed");
    }
    const loaded = await gateway.loadConfig(ref);
    if (loaded.ok) {
      await rememberDailyBudget(db, repo.repositoryId, loaded.config.tasks.daily_budget_usd);
    }
    const label = loaded.config.intake.label;
    const issues = await gateway.listOpenIssuesWithLabel(ref, label);
    const open = new Set(issues.map((i) => i.number));

    for (const issue of issues) {
      if (await findActiveTask(db, repo.repositoryId, issue.number)) continue;
      // The listing can lag behind the tasks: an issue whose task finished (merged, cancelled)
      // since this pass began may be listed as it was before. The next pass sees it as it is now.
      if (await finishedSince(db, repo.repositoryId, issue.number, startedAt)) continue;
      const labelEvent = await gateway.lastLabeller(ref, issue.number, label);
      if (!labelEvent) {
        log.warn({ issueNumber: issue.number }, "labelled issue without a label event; not queued");
        continue;
      }
      // The text now may not be the text that was labelled: an edit since then by someone
      // without write access must not become an approved instruction.
      const snapshot = decideReconciledSnapshot({
        labelledAt: labelEvent.labelledAt,
        updatedAt: issue.updatedAt,
      });
      if (snapshot.kind === "confirm") {
        const noticed = await noticeChangedSinceLabel(
          db,
          { repositoryId: repo.repositoryId, installationId, issueNumber: issue.number },
          { label, labelledAt: labelEvent.labelledAt, updatedAt: issue.updatedAt },
        );
        report.unconfirmed++;
        log.warn(
          { issueNumber: issue.number, reason: snapshot.reason, noticed },
          "labelled issue changed since its lost label event; waiting for /queue",
        );
        continue;
      }
      const labeller = labelEvent.actor;
      const permission = isBot(labeller)
        ? undefined
        : await gateway.permission(ref, labeller.login);
      const outcome = await db.transaction(async (tx) => {
        const result = await queueIssue(tx, {
          repositoryId: repo.repositoryId,
          installationId,
          issue,
          sender: labeller,
          permission,
          config: loaded.config,
          reason: "reconciliation: labelled issue had no task (missed webhook)",
        });
        if (!loaded.ok && result.kind === "create") {
          await noticeConfigProblems(
            tx,
            { repositoryId: repo.repositoryId, installationId, issueNumber: issue.number },
            loaded.problems,
          );
        }
        return result.kind;
      });
      if (outcome === "create") report.created++;
      if (outcome === "refuse") report.refused++;
      log.info({ issueNumber: issue.number, outcome }, "reconciled labelled issue");
    }

    // A task `/queue` queued within the minute before this pass may be waiting for its label,
    // which the command adds after queueing: not a label removed.
    const stale = resultRows<{ task_id: string; issue_number: number }>(
      await db.execute(sql`
        select task_id, issue_number from tasks
        where repository_id = ${repo.repositoryId}
          and state in (${sql.join(
            PRE_PR_STATES.map((s) => sql`${s}`),
            sql`, `,
          )})
          and not exists (
            select 1 from task_events e
            where e.task_id = tasks.task_id and e.reason like ${`${QUEUE_COMMAND_REASON}%`}
              and e.at > ${startedAt}::timestamptz - interval '1 minute')`),
    ).filter((t) => !open.has(t.issue_number));
    for (const task of stale) {
      // The listing can lag; confirm with the issue itself before cancelling anything.
      const issue = await gateway.getIssue(ref, task.issue_number);
      const stillWanted =
        issue?.state === "open" &&
        issue.labels.some((l) => l.toLowerCase() === label.toLowerCase());
      if (stillWanted) continue;
      const reason = !issue
        ? "reconciliation: issue no longer exists"
        : issue.state === "closed"
          ? "reconciliation: issue closed"
          : `reconciliation: label ${label} removed`;
      const moved = await transitionTask(db, {
        taskId: task.task_id,
        to: "cancelled",
        actor: "reconciler",
        reason,
        set: { finished: true },
      });
      if (moved) report.cancelled++;
    }
  }

  return {
    async runOnce() {
      const report: ReconcileReport = {
        skipped: false,
        repositories: 0,
        created: 0,
        refused: 0,
        cancelled: 0,
        unconfirmed: 0,
        deferred: 0,
      };
      if (!(await tryAcquireLease(db, LEASE, deps.instanceId, LEASE_MS))) {
        return { ...report, skipped: true };
      }
      try {
        // The database's clock, like the `finished_at` it is compared with, which is its
        // transaction's start: the margin covers one that committed after this pass began.
        const [clock] = resultRows<{ now: string }>(
          await db.execute(sql`select (now() - interval '30 seconds')::text as now`),
        );
        const startedAt = clock?.now ?? new Date().toISOString();
        for (const installationId of await gateway.listInstallations()) {
          if (deps.budget?.shouldDefer(installationId)) {
            report.deferred++;
            deps.onDeferred?.("reconciliation");
            logger.info({ installationId }, "reconciliation deferred: GitHub budget under reserve");
            continue;
          }
          for (const repo of await gateway.listInstallationRepositories(installationId)) {
            await upsertRepository(db, { installationId, ...repo });
            report.repositories++;
            try {
              await reconcileRepository(installationId, repo, report, startedAt);
            } catch (error) {
              // One broken repository must not stop the others.
              logger.error(
                { err: error, repo: repo.fullName },
                "reconciliation of repository failed",
              );
              deps.recordError?.("reconciler", error);
            }
          }
        }
      } finally {
        await releaseLease(db, LEASE, deps.instanceId);
      }
      logger.info(report, "reconciliation done");
      if (report.created || report.cancelled || report.refused || report.unconfirmed) {
        deps.onChange();
      }
      return report;
    },
  };
}
