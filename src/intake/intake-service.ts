import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import { type Db, resultRows } from "../../db/client.ts";
import type { IssueSnapshot, RepoRef } from "../core/github-objects.ts";
import { type Actor, classifyIssueEvent, confirmIssueEvent, isBot } from "../core/intake.ts";
import type { GitHubGateway } from "../core/ports.ts";
import { findQueuedPullRequest } from "../store/merge-queue.ts";
import { setPullRequestState } from "../store/pull-requests.ts";
import {
  findActiveTask,
  removeRepositories,
  transitionTask,
  upsertRepository,
} from "../store/tasks.ts";
import { type DeliveryKey, isPayloadCurrent, issueSubject } from "../store/webhook-deliveries.ts";
import { noticeConfigProblems, queueIssue } from "./queue-issue.ts";

/**
 * Writes a delivery's effect and marks the delivery handled in one transaction; returns the
 * effect's outcome, or "duplicate" when the delivery was handled before (nothing is written).
 */
export type SettleDelivery = (
  delivery: DeliveryKey,
  effect: (tx: Db) => Promise<string>,
) => Promise<string>;

export interface IntakeDeps {
  db: Db;
  gateway: GitHubGateway;
  logger: Logger;
  /** Called after a commit that changed tasks or notices (wakes the notifier and dispatcher). */
  onChange: () => void;
  /** How the effect is committed with its delivery (the intake loop's claim on it). */
  settle: SettleDelivery;
}

export interface IssuesEvent {
  deliveryId: string;
  action: string;
  installationId: number;
  repository: { id: number; fullName: string; defaultBranch?: string; private?: boolean };
  ref: RepoRef;
  issue: IssueSnapshot;
  label?: string | undefined;
  sender: Actor;
}

export type HandledOutcome = { outcome: string };

/**
 * A request to queue is acted on from its payload, without reading the issue from GitHub, when the
 * delivery arrived less than this long ago and the payload's `updated_at` is as recent: GitHub
 * sends a webhook within about a second of the event.
 */
export const FRESH_PAYLOAD_MS = 5_000;
/**
 * …and no other `issues` delivery about the issue arrived from this long before it on: an
 * `unlabeled` or `closed` that overtook the `labeled` before it would otherwise go unnoticed.
 */
export const QUIET_SUBJECT_MS = 60_000;
/** The `issues` actions that can queue work (`classifyIssueEvent`). */
const QUEUE_ACTIONS = new Set(["labeled", "opened", "reopened"]);

/**
 * An `issues` webhook: queue, cancel or ignore. The delivery is marked handled in the same
 * transaction as the effect, so a redelivered or duplicated event changes nothing. The issue's
 * title and body are the payload's: the issue as it was when the event happened.
 */
export async function handleIssuesEvent(deps: IntakeDeps, e: IssuesEvent): Promise<HandledOutcome> {
  const { gateway, logger } = deps;
  const log = logger.child({
    deliveryId: e.deliveryId,
    repo: e.repository.fullName,
    issueNumber: e.issue.number,
  });
  // Whether the payload may stand for the issue, read beside the config when the event could
  // queue (a label added, an issue opened or reopened), and used only if it does.
  const currentRead = QUEUE_ACTIONS.has(e.action) ? payloadIsCurrent(deps, e) : undefined;
  currentRead?.catch(() => {});
  // The repository's row is written with the effect (one commit); until then, a repository seen
  // for the first time has no marks and its config is read without the cache.
  const loaded = await gateway.loadConfig(e.ref);
  const classified = classifyIssueEvent({
    action: e.action,
    label: e.label,
    issueLabels: e.issue.labels,
    issueState: e.issue.state,
    isPullRequest: e.issue.isPullRequest,
    config: loaded.config,
  });
  // Permission is only worth an API call when the event would queue work; read beside the issue
  // (usually from the cache), and only used if the issue confirms the event.
  const permissionRead =
    classified.kind === "queue" && !isBot(e.sender)
      ? gateway.permission(e.ref, e.sender.login)
      : undefined;
  permissionRead?.catch(() => {});
  // The payload may be old (late, out of order, replayed): act only on what is still true.
  const confirmed =
    classified.kind !== "ignore" && (await worthConfirming(deps, e, classified.kind));
  const kind = !confirmed
    ? classified
    : confirmIssueEvent(
        classified,
        { action: e.action, config: loaded.config },
        classified.kind === "queue" && (await (currentRead ?? payloadIsCurrent(deps, e)))
          ? e.issue
          : await gateway.getIssue(e.ref, e.issue.number),
      );
  // An issue closed by the merge of its pull request is done, not cancelled: GitHub sends
  // `issues.closed` and `pull_request.closed` in no guaranteed order, and either may be lost.
  const mergedPr =
    kind.kind === "cancel" && e.action === "closed"
      ? await mergedPullRequest(deps, e.ref, e.repository.id, e.issue.number)
      : undefined;
  const permission = kind.kind === "queue" ? await permissionRead : undefined;

  const delivery = {
    deliveryId: e.deliveryId,
    event: "issues",
    action: e.action,
    installationId: e.installationId,
  };
  const outcome = await deps.settle(delivery, async (tx) => {
    await upsertRepository(tx, {
      repositoryId: e.repository.id,
      installationId: e.installationId,
      fullName: e.repository.fullName,
      defaultBranch: e.repository.defaultBranch,
      private: e.repository.private,
      // An invalid file keeps the budget last read: a typo must not lift a spending limit.
      dailyBudgetUsd: loaded.ok ? (loaded.config.tasks.daily_budget_usd ?? null) : undefined,
    });
    // A stale event's reason is kept with the delivery: it says why a signed event did nothing.
    if (kind.kind === "ignore") return kind.reason.startsWith("stale:") ? kind.reason : "ignored";
    if (kind.kind === "cancel") {
      const active = await findActiveTask(tx, e.repository.id, e.issue.number);
      // A task queued since the look-up: the cancel was not confirmed against the issue, so it is
      // retried (and then confirmed) instead of cancelling on a payload that may be stale.
      if (active && !confirmed) throw new Error("a task appeared before an unconfirmed cancel");
      if (active && mergedPr !== undefined && active.prNumber === mergedPr) {
        // A pull request Conveyor put in GitHub's merge queue is recorded as merged by the queue's
        // own report (`merge_group`, `pull_request.closed`, or the merger's next read, if those
        // were lost), which also starts the post-merge watch planned at the enqueue: settling the
        // task here first would skip the watch.
        const queued = await findQueuedPullRequest(tx, e.repository.id, mergedPr);
        if (queued?.queued_head_sha && queued.queue_plan) {
          return "merged by the merge queue: left to its report";
        }
        await setPullRequestState(tx, e.repository.id, mergedPr, "merged");
        const merged = await transitionTask(tx, {
          taskId: active.taskId,
          to: "merged",
          actor: e.sender.login,
          reason: `pull request #${mergedPr} merged (the issue was closed by the merge)`,
          set: { finished: true },
        });
        if (merged) return "merged";
      }
      const cancelled = active
        ? await transitionTask(tx, {
            taskId: active.taskId,
            to: "cancelled",
            actor: e.sender.login,
            reason: kind.reason,
            set: { finished: true },
          })
        : undefined;
      return cancelled ? "cancelled" : "nothing to cancel";
    }
    const queued = await queueIssue(tx, {
      repositoryId: e.repository.id,
      installationId: e.installationId,
      issue: e.issue,
      sender: e.sender,
      permission,
      config: loaded.config,
      reason: kind.reason,
    });
    if (!loaded.ok && !isBot(e.sender)) {
      await noticeConfigProblems(
        tx,
        {
          repositoryId: e.repository.id,
          installationId: e.installationId,
          issueNumber: e.issue.number,
        },
        loaded.problems,
      );
    }
    return queued.kind;
  });
  log.info({ action: e.action, outcome, reason: kind.reason }, "issues event handled");
  if (outcome !== "duplicate" && outcome !== "ignored" && !outcome.startsWith("stale:")) {
    deps.onChange();
  }
  return { outcome };
}

/**
 * Whether an event's effect is worth reading the issue for. A cancel with no active task to cancel
 * changes nothing whatever the issue says now (the transaction finds no task either): most such
 * events are the `issues.closed` GitHub sends when a merged pull request closes its issue, after
 * the task is already merged. A queue request is always confirmed.
 */
async function worthConfirming(
  deps: IntakeDeps,
  e: IssuesEvent,
  kind: "queue" | "cancel",
): Promise<boolean> {
  if (kind === "queue") return true;
  return (await findActiveTask(deps.db, e.repository.id, e.issue.number)) !== undefined;
}

/**
 * Whether the payload may stand for the issue as it is now (`isPayloadCurrent`): a fresh delivery
 * with no other event about the issue around it. A cancel is always confirmed against GitHub.
 */
function payloadIsCurrent(deps: IntakeDeps, e: IssuesEvent): Promise<boolean> {
  return isPayloadCurrent(
    deps.db,
    {
      deliveryId: e.deliveryId,
      subject: issueSubject(e.repository.id, e.issue.number),
      issueUpdatedAt: e.issue.updatedAt,
    },
    { freshMs: FRESH_PAYLOAD_MS, quietMs: QUIET_SUBJECT_MS },
  );
}

/** The number of the active task's pull request if GitHub says it was merged. */
async function mergedPullRequest(
  deps: IntakeDeps,
  ref: RepoRef,
  repositoryId: number,
  issueNumber: number,
): Promise<number | undefined> {
  const active = await findActiveTask(deps.db, repositoryId, issueNumber);
  if (!active?.prNumber) return undefined;
  return (await deps.gateway.pullRequestMerged(ref, active.prNumber)) ? active.prNumber : undefined;
}

export interface InstallationEvent {
  deliveryId: string;
  event: "installation" | "installation_repositories";
  action: string;
  installationId: number;
  added: { id: number; fullName: string; private?: boolean }[];
  removed: { id: number; fullName: string }[];
  /** installation.deleted: everything of this installation goes. */
  removeAll: boolean;
}

/** Keeps `repositories` in sync; uninstalling cancels the tasks of what was removed. */
export async function handleInstallationEvent(
  deps: IntakeDeps,
  e: InstallationEvent,
): Promise<HandledOutcome> {
  const delivery = {
    deliveryId: e.deliveryId,
    event: e.event,
    action: e.action,
    installationId: e.installationId,
  };
  const outcome = await deps.settle(delivery, async (tx) => {
    for (const repo of e.added) {
      await upsertRepository(tx, {
        repositoryId: repo.id,
        installationId: e.installationId,
        fullName: repo.fullName,
        private: repo.private,
      });
    }
    const removedIds = e.removeAll
      ? await removeRepositories(tx, { installationId: e.installationId })
      : e.removed.length
        ? await removeRepositories(tx, {
            installationId: e.installationId,
            repositoryIds: e.removed.map((r) => r.id),
          })
        : [];
    let cancelled = 0;
    if (removedIds.length) {
      const ids = resultRows<{ task_id: string }>(
        await tx.execute(sql`
          select task_id from tasks
          where repository_id in ${removedIds} and state not in ('merged', 'cancelled')`),
      );
      for (const { task_id } of ids) {
        const moved = await transitionTask(tx, {
          taskId: task_id,
          to: "cancelled",
          actor: "github",
          reason: "Conveyor was uninstalled from the repository",
          set: { finished: true },
        });
        if (moved) cancelled++;
      }
    }
    return `synced: +${e.added.length} -${removedIds.length}, ${cancelled} tasks cancelled`;
  });
  deps.logger.info(
    { deliveryId: e.deliveryId, installationId: e.installationId, outcome },
    "installation synced",
  );
  return { outcome };
}
