import { createHash } from "node:crypto";
import type { Db } from "../../db/client.ts";
import { planBestOf } from "../core/best-of.ts";
import {
  type Actor,
  decideQueueRequest,
  type Permission,
  parseTaskLabels,
  type QueueDecision,
} from "../core/intake.ts";
import type { ConfigProblem, RepoConfig } from "../core/repo-config.ts";
import { budgetFor, REPO_CONFIG_PATH } from "../core/repo-config.ts";
import { addNotice } from "../store/notices.ts";
import { createTask, findActiveTask, type Task, transitionTask } from "../store/tasks.ts";

export interface QueueRequest {
  repositoryId: number;
  installationId: number;
  issue: { number: number; title: string; body: string; labels: readonly string[] };
  sender: Actor;
  permission: Permission | undefined;
  config: RepoConfig;
  /** Why the request was made, for the task's history. */
  reason: string;
}

export type QueueOutcome = QueueDecision & { task?: Task | undefined };

/**
 * Carries out a request to queue an issue inside the caller's transaction: creates the task,
 * revives a dead one as a new series, or queues a polite refusal. Shared by the webhook handler,
 * reconciliation and `/queue`.
 */
export async function queueIssue(db: Db, request: QueueRequest): Promise<QueueOutcome> {
  const active = await findActiveTask(db, request.repositoryId, request.issue.number);
  const decision = decideQueueRequest({
    sender: request.sender,
    permission: request.permission,
    intakeLabel: request.config.intake.label,
    activeTask: active,
  });
  const { lane, capabilities } = parseTaskLabels(request.issue.labels, request.config);
  switch (decision.kind) {
    case "create": {
      const bestOf = planBestOf(request.issue.labels, request.config.tasks.best_of);
      const { task } = await createTask(
        db,
        {
          repositoryId: request.repositoryId,
          installationId: request.installationId,
          issueNumber: request.issue.number,
          title: request.issue.title,
          body: request.issue.body,
          lane,
          capabilities,
          maxAttempts: request.config.tasks.max_attempts,
          limits: {
            ...request.config.tasks.limits,
            ...budgetFor(request.config, request.issue.labels),
            deadline_minutes: request.config.tasks.deadline_minutes,
            verify: request.config.verify.commands,
            ...(request.config.tasks.max_running === undefined
              ? {}
              : { max_running: request.config.tasks.max_running }),
          },
          queuedBy: request.sender.login,
          bestOf: bestOf.n,
          bestOfAdapters: bestOf.adapters,
        },
        request.reason,
      );
      if (bestOf.problem) {
        await addNotice(db, {
          dedupeKey: `best-of:${request.repositoryId}:${request.issue.number}:${task.taskId}`,
          repositoryId: request.repositoryId,
          installationId: request.installationId,
          issueNumber: request.issue.number,
          body: `⚠️ Conveyor: ${bestOf.problem}.`,
        });
      }
      return { ...decision, task };
    }
    case "revive": {
      const task = await transitionTask(db, {
        taskId: active!.taskId,
        from: ["dead"],
        to: "queued",
        actor: request.sender.login,
        reason: decision.reason,
        set: {
          attempts: 0,
          enqueuedAt: "now",
          availableAt: new Date(0),
          lastError: null,
          lane,
          title: request.issue.title,
          body: request.issue.body,
        },
      });
      return { ...decision, task };
    }
    case "refuse":
      await addNotice(db, {
        dedupeKey: `refused:${request.repositoryId}:${request.issue.number}:${request.sender.login}`,
        repositoryId: request.repositoryId,
        installationId: request.installationId,
        issueNumber: request.issue.number,
        body: decision.reply,
      });
      return decision;
    case "ignore":
      return { ...decision, task: active };
  }
}

/** Queues one comment per distinct set of config problems on the issue that hit them. */
export async function noticeConfigProblems(
  db: Db,
  target: { repositoryId: number; installationId: number; issueNumber: number },
  problems: ConfigProblem[],
): Promise<void> {
  const lines = problems.map((p) => `- \`${p.key || "(file)"}\`: ${p.message}`);
  const digest = createHash("sha256").update(lines.join("\n")).digest("hex").slice(0, 16);
  await addNotice(db, {
    dedupeKey: `config:${target.repositoryId}:${target.issueNumber}:${digest}`,
    ...target,
    body: [
      `⚠️ Conveyor could not use \`${REPO_CONFIG_PATH}\` on the default branch:`,
      "",
      ...lines,
      "",
      "Conveyor is using the safe defaults until the file is fixed. " +
        "See docs/configuration.md for every key.",
    ].join("\n"),
  });
}

/**
 * Tells the issue, once per lost label event, that reconciliation did not queue it because it
 * changed after it was labelled; returns false when it was told before.
 */
export async function noticeChangedSinceLabel(
  db: Db,
  target: { repositoryId: number; installationId: number; issueNumber: number },
  facts: { label: string; labelledAt: string; updatedAt: string },
): Promise<boolean> {
  return addNotice(db, {
    dedupeKey: `changed-since-label:${target.repositoryId}:${target.issueNumber}:${facts.labelledAt}`,
    ...target,
    body: [
      `⚠️ Conveyor missed GitHub's event for the \`${facts.label}\` label added at ` +
        `${facts.labelledAt}, and this issue has changed since then (last updated ` +
        `${facts.updatedAt}). GitHub cannot show the text as it was when it was labelled, so ` +
        "Conveyor has not queued it: an edit made after the label must not become an instruction.",
      "",
      "A maintainer (write access or more) can confirm the current title and description by " +
        `commenting \`/queue\`, or remove and add the \`${facts.label}\` label again.`,
      "",
      "(GitHub also counts comments and other labels as changes, so this can appear when the " +
        "text itself was not edited.)",
    ].join("\n"),
  });
}
