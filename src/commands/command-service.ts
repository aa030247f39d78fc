import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import {
  allows,
  type Command,
  type CommandLine,
  type CommandPlace,
  interpretCommands,
  parseCommands,
  queueCommandReason,
  renderHelp,
  renderPermissionRefusal,
  requiredPermission,
} from "../core/commands.ts";
import type { RepoRef } from "../core/github-objects.ts";
import { type Actor, isBot } from "../core/intake.ts";
import { untrustedInline } from "../core/pull-request-body.ts";
import type { RepoConfig } from "../core/repo-config.ts";
import type { TaskState } from "../core/task-states.ts";
import type { IntakeDeps } from "../intake/intake-service.ts";
import { requestReviewFix } from "../intake/pull-request-events.ts";
import { queueIssue } from "../intake/queue-issue.ts";
import { latestRound, pickCandidate } from "../store/best-of.ts";
import { setTodaysBudget } from "../store/budgets.ts";
import {
  addApproval,
  type CommandResult,
  type CommandSource,
  countRecentCommands,
  finishCommand,
  insertCommand,
  revokeApprovals,
  setFrozen,
} from "../store/commands.ts";
import { findPullRequest, type PullRequestRow } from "../store/pull-requests.ts";
import { runTaskAction } from "../store/task-queries.ts";
import {
  appendTaskEvent,
  findActiveTask,
  getTask,
  snapshotHash,
  stateBeforeHold,
  type Task,
  transitionTask,
} from "../store/tasks.ts";

export interface CommandDeps extends IntakeDeps {
  /** Wakes the merger: a command changed something a verdict depends on. */
  onPullRequestActivity: () => void;
  /** Command comments one person may write per minute (default 10). */
  commandsPerMinute?: number | undefined;
}

/** A new (or edited) comment or review body that may hold commands. */
export interface CommentEvent {
  deliveryId: string;
  event: string;
  action: string;
  installationId: number;
  repositoryId: number;
  ref: RepoRef;
  source: CommandSource;
  sourceId: number;
  /** The issue or pull request the comment is on. */
  number: number;
  isPullRequest: boolean;
  /** Who wrote the comment. */
  author: Actor;
  /** Who caused this event: for an edit, the editor. */
  sender: Actor;
  body: string;
  /** The issue as it is now (the snapshot `/queue` approves); for a PR, its author. */
  issue: { title: string; body: string; labels: string[]; authorLogin: string };
}

/** Where the delivery's outcome is the only effect. */
function recordOnly(deps: CommandDeps, e: CommentEvent, outcome: string): Promise<string> {
  const { deliveryId, event, action, installationId } = e;
  return deps.settle({ deliveryId, event, action, installationId }, async () => outcome);
}

/** Verbs whose effect can change a merge verdict. */
const PR_VERDICT_VERBS = new Set([
  "approve",
  "unapprove",
  "hold",
  "unhold",
  "merge",
  "refresh",
  "freeze",
  "unfreeze",
]);

/**
 * What a comment comes to when it runs no command, decided from the payload alone: an edit (edits
 * never run commands; someone other than the author putting commands into a comment is logged for
 * an operator), a bot's comment, or one without commands. Undefined when it has commands to run.
 */
export function commentWithoutCommands(
  e: CommentEvent,
  log: Pick<Logger, "warn">,
): string | undefined {
  if (e.action === "edited") {
    if (e.sender.login !== e.author.login && parseCommands(e.body).length > 0) {
      log.warn(
        {
          deliveryId: e.deliveryId,
          editor: e.sender.login,
          author: e.author.login,
          commentId: e.sourceId,
        },
        "comment with commands edited by someone other than its author",
      );
      return `tampering: edited by ${e.sender.login}, not ${e.author.login}`;
    }
    return "edited comments are not commands";
  }
  if (isBot(e.author)) return "comment by a bot";
  if (interpretCommands(e.body, e.isPullRequest ? "pr" : "issue").length === 0) {
    return "no commands";
  }
  return undefined;
}

/**
 * Slash commands in a comment: checks the grammar, the author's permission and the
 * per-person rate limit, carries out each command in one transaction with the comment's id (so a
 * redelivered event does nothing twice), and leaves the feedback (👀, then 👍 or 👎 with a reply)
 * for the notifier to post.
 */
export async function handleCommentCommands(deps: CommandDeps, e: CommentEvent): Promise<string> {
  const log = deps.logger.child({
    deliveryId: e.deliveryId,
    repo: `${e.ref.owner}/${e.ref.repo}`,
    issueNumber: e.number,
  });
  const skipped = commentWithoutCommands(e, log);
  if (skipped !== undefined) return recordOnly(deps, e, skipped);
  const place: CommandPlace = e.isPullRequest ? "pr" : "issue";
  const lines = interpretCommands(e.body, place);

  const permission = await deps.gateway.permission(e.ref, e.author.login);
  const needsConfig = lines.some((l) => l.ok && ["queue", "fix"].includes(l.command.verb));
  const config = needsConfig ? (await deps.gateway.loadConfig(e.ref)).config : undefined;
  const limit = deps.commandsPerMinute ?? 10;
  const limited = (await countRecentCommands(deps.db, e.author.login, 60_000)) >= limit;

  let verdictMayChange = false;
  const delivery = {
    deliveryId: e.deliveryId,
    event: e.event,
    action: e.action,
    installationId: e.installationId,
  };
  const outcome = await deps.settle(delivery, async (tx) => {
    const key = { source: e.source, sourceId: e.sourceId };
    const fresh = await insertCommand(tx, {
      ...key,
      repositoryId: e.repositoryId,
      installationId: e.installationId,
      number: e.number,
      isPullRequest: e.isPullRequest,
      actor: e.author.login,
    });
    if (!fresh) return "comment handled before";
    const results: CommandResult[] = [];
    for (const line of lines) {
      const result = limited
        ? refuse(line, `rate limited: at most ${limit} command comments a minute per person`)
        : await runLine(tx, line);
      results.push(result);
      if (result.outcome === "done" && line.ok && PR_VERDICT_VERBS.has(line.command.verb)) {
        verdictMayChange = true;
      }
    }
    const refused = results.some((r) => r.outcome === "refused");
    await finishCommand(tx, key, {
      results,
      reaction: refused ? "-1" : "+1",
      reply: renderReply(e.author.login, results),
    });
    return results.map((r) => `${r.text}: ${r.outcome}`).join("; ");
  });
  log.info({ actor: e.author.login, outcome }, "slash commands handled");
  deps.onChange();
  if (verdictMayChange) deps.onPullRequestActivity();
  return outcome;

  function refuse(line: CommandLine, message: string): CommandResult {
    return { text: line.text, outcome: "refused", message };
  }

  async function runLine(tx: Db, line: CommandLine): Promise<CommandResult> {
    if (!line.ok) return refuse(line, line.error);
    const needed = requiredPermission(line.command);
    if (!allows(permission, needed)) {
      return refuse(line, renderPermissionRefusal(line.command, e.author.login, permission));
    }
    const r = await execute(tx, line.command);
    return { text: line.text, ...r };
  }

  async function execute(tx: Db, command: Command): Promise<Omit<CommandResult, "text">> {
    const actor = e.author.login;
    const done = (message: string, extra: Partial<CommandResult> = {}) => ({
      outcome: "done" as const,
      message,
      ...extra,
    });
    const no = (message: string) => ({ outcome: "refused" as const, message });

    // Repository-wide verbs.
    if (command.verb === "freeze") {
      const reason = command.reason || `frozen by @${actor}`;
      await setFrozen(tx, e.repositoryId, { reason });
      return done(`the repository is frozen (${reason}); nothing merges until /unfreeze`);
    }
    if (command.verb === "unfreeze") {
      await setFrozen(tx, e.repositoryId, null);
      return done("the repository is no longer frozen");
    }
    if (command.verb === "budget") {
      await setTodaysBudget(tx, e.repositoryId, command.usd);
      return done(
        `this repository's daily cost budget is $${command.usd.toFixed(2)} for the rest of today (UTC)`,
      );
    }
    if (command.verb === "help") return done("help", { output: renderHelp(place) });

    // Everything else is about this issue's task, or this pull request's.
    let pr: PullRequestRow | undefined;
    let task: Task | undefined;
    if (e.isPullRequest) {
      pr = await findPullRequest(tx, e.repositoryId, e.number);
      if (!pr) return no(`#${e.number} is not a pull request Conveyor opened`);
      task = await getTask(tx, pr.task_id);
    } else {
      task = await findActiveTask(tx, e.repositoryId, e.number);
    }
    const move = (from: TaskState[], to: TaskState, reason: string, set = {}) =>
      task ? transitionTask(tx, { taskId: task.taskId, from, to, actor, reason, set }) : undefined;
    const note = (reason: string, data?: Record<string, unknown>) =>
      task ? appendTaskEvent(tx, { taskId: task.taskId, actor, reason, data }) : undefined;

    if (command.verb === "queue") return queue(tx, task, config!);
    if (command.verb === "status") {
      if (e.isPullRequest) return done("verdict", { output: "verdict" });
      return done("status", { output: renderTaskStatus(task) });
    }
    if (!task) return no("this issue has no active task; `/queue` starts one");
    const state = task.state;

    switch (command.verb) {
      case "cancel":
      case "retry": {
        if (command.verb === "retry" && pr) {
          const from: TaskState[] = ["review", "waiting_human", "failed", "dead"];
          if (!from.includes(state)) {
            return no(`the task is ${state}; /retry works when it is ${from.join(", ")}`);
          }
          await move([state], "queued", `/retry by @${actor}`, {
            enqueuedAt: "now",
            availableAt: new Date(0),
            lastError: null,
            ...(state === "dead" ? { attempts: 0 } : {}),
            feedback: `@${actor} asked for another attempt (/retry).`,
          });
          return done("queued again");
        }
        // The same decision as the admin API's and the CLI's retry and cancel.
        const r = await runTaskAction(tx, task.taskId, command.verb, {
          actor,
          reason: command.verb === "cancel" ? command.reason || undefined : undefined,
          via: `/${command.verb}`,
        });
        if (r.kind === "refused") return no(r.reason);
        if (r.kind !== "moved") return done(r.kind === "unchanged" ? r.reason : "no task");
        if (command.verb === "retry") return done("queued again");
        return done(
          pr ? "task cancelled; the pull request stays open for a person to close" : "cancelled",
        );
      }
      case "priority": {
        if (task.lane === command.lane) return done(`already in the ${command.lane} lane`);
        await move([state], state, `/priority ${command.lane} by @${actor}`, {
          lane: command.lane,
        });
        return done(`moved to the ${command.lane} lane`);
      }
      case "hold": {
        if (state === "held") return done("already on hold");
        const holdable: TaskState[] = ["queued", "retry_wait", "pushed", "review", "waiting_human"];
        if (!holdable.includes(state)) {
          return no(
            `the task is ${state}: a runner is working on it or it is merging; /hold again when it has finished, or /cancel`,
          );
        }
        const reason = command.reason ? `: ${command.reason}` : "";
        await move([state], "held", `/hold by @${actor}${reason}`);
        return done(pr ? "on hold: it will not be merged" : "on hold: it will not be dispatched");
      }
      case "unhold": {
        if (state !== "held") return done("not on hold");
        const before = await stateBeforeHold(tx, task.taskId);
        const back: TaskState =
          before && ["pushed", "review", "waiting_human"].includes(before) ? "review" : "queued";
        await move(["held"], back, `/unhold by @${actor}`);
        return done(`released (${back})`);
      }
      case "approve": {
        if (pr?.state !== "open") return no("the pull request is not open");
        if (e.issue.authorLogin.toLowerCase() === actor.toLowerCase()) {
          return no("the pull request's author cannot approve it");
        }
        const head = pr.head_sha;
        if (command.sha && !head.startsWith(command.sha)) {
          return no(
            `\`${command.sha}\` is not the head; the head is \`${head.slice(0, 7)}\`: review it and \`/approve ${head.slice(0, 7)}\``,
          );
        }
        await addApproval(tx, {
          repositoryId: e.repositoryId,
          prNumber: e.number,
          sha: head,
          login: actor,
        });
        await note(`/approve ${head.slice(0, 7)} by @${actor}`, { sha: head });
        return done(`approved \`${head.slice(0, 7)}\` (a new push needs a new approval)`);
      }
      case "unapprove": {
        const n = await revokeApprovals(
          tx,
          { repositoryId: e.repositoryId, prNumber: e.number },
          actor,
        );
        if (n === 0) return done("you had no standing approval");
        await note(`/unapprove by @${actor}`);
        return done("approval withdrawn");
      }
      case "merge": {
        if (state === "held") return no("the task is on hold; /unhold first");
        if (!["review", "waiting_human", "pushed"].includes(state)) {
          return no(`the task is ${state}; there is nothing to merge yet`);
        }
        await note(`/merge by @${actor}`);
        return done(
          "the merge policy is evaluated now; Conveyor merges when it allows (see the `Conveyor / safety` check)",
        );
      }
      case "refresh":
        await note(`/refresh by @${actor}`);
        return done("re-evaluating now");
      case "fix": {
        const r = await requestReviewFix(tx, e, {
          prNumber: e.number,
          reviewer: actor,
          text: command.text,
          maxFixes: config!.tasks.max_review_fixes,
        });
        return r.includes("follow-up") || r.includes("human") ? done(r) : no(r);
      }
      case "pick": {
        const round = await latestRound(tx, task.taskId);
        if (round.length === 0) {
          return no("this task did not run as best of N, so there is no candidate to pick");
        }
        const chosen = round.find((c) => c.k === command.k);
        if (!chosen) {
          return no(
            `there is no candidate ${command.k}; this task ran candidates 1 to ${round.length}`,
          );
        }
        if (!chosen.has_change) {
          const why = chosen.failure ? `: ${untrustedInline(chosen.failure, 200)}` : "";
          return no(`candidate ${command.k} has no change to pick${why}`);
        }
        if (chosen.picked) return done(`candidate ${command.k} is already on the pull request`);
        const from: TaskState[] = ["pushed", "review", "waiting_human"];
        if (!from.includes(state)) {
          return no(
            `the task is ${state}; /pick works when its pull request is in review (${from.join(", ")})`,
          );
        }
        const picked = await pickCandidate(tx, {
          taskId: task.taskId,
          from,
          k: command.k,
          round: chosen.round,
          candidateTaskId: chosen.candidate_task_id,
          actor,
        });
        if (!picked) return no("the task moved on meanwhile; try again");
        return done(
          `candidate ${command.k} replaces the pull request's change: its branch is rewritten with a new commit, so approvals of the old head no longer count`,
        );
      }
      case "update": {
        if (!["review", "waiting_human"].includes(state)) {
          return no(`the task is ${state}; /update works when its pull request is in review`);
        }
        await move([state], "queued", `/update by @${actor}: rebuild on the default branch`, {
          enqueuedAt: "now",
          availableAt: new Date(0),
          freshBase: true,
        });
        return done("the change will be rebuilt on the current default branch");
      }
    }
    return no("not handled");
  }

  async function queue(tx: Db, task: Task | undefined, cfg: RepoConfig) {
    const actor = e.author.login;
    const snapshotChanged = task && snapshotHash(e.issue.title, e.issue.body) !== task.snapshotHash;
    if (task && ["queued", "retry_wait", "held"].includes(task.state)) {
      if (!snapshotChanged) return { outcome: "done" as const, message: "already queued" };
      await transitionTask(tx, {
        taskId: task.taskId,
        from: [task.state],
        to: task.state,
        actor,
        reason: `${queueCommandReason(actor)}: the issue's current text is the new snapshot`,
        set: { title: e.issue.title, body: e.issue.body },
      });
      return { outcome: "done" as const, message: "the task now uses the issue's current text" };
    }
    if (task && task.state !== "dead") {
      return {
        outcome: "refused" as const,
        message: `the task is ${task.state}; /cancel it first, or /retry when it has failed`,
      };
    }
    const queued = await queueIssue(tx, {
      repositoryId: e.repositoryId,
      installationId: e.installationId,
      issue: { number: e.number, ...e.issue },
      sender: e.author,
      permission,
      config: cfg,
      reason: queueCommandReason(actor),
    });
    if (queued.kind === "create" || queued.kind === "revive") {
      // The label keeps reconciliation and the issue list in agreement with the queue.
      return { outcome: "done" as const, message: "queued", addLabel: cfg.intake.label };
    }
    return { outcome: "refused" as const, message: queued.reason };
  }
}

/** `/status` on an issue: the task in one paragraph. */
function renderTaskStatus(task: Task | undefined): string {
  if (!task) return "This issue has no active task. `/queue` starts one.";
  const parts = [
    `Task \`${task.taskId.slice(0, 8)}\`: **${task.state}** in the ${task.lane} lane`,
    `attempt ${task.attempts} of ${task.maxAttempts}`,
  ];
  if (task.prNumber) parts.push(`pull request #${task.prNumber}`);
  if (task.lastError) parts.push(`last error: ${task.lastError}`);
  return `${parts.join(", ")}.`;
}

/** The reply comment: refusals one line each, then what `/status` or `/help` asked for. */
function renderReply(login: string, results: CommandResult[]): string | null {
  const refused = results.filter((r) => r.outcome === "refused");
  const outputs = results.filter((r) => r.output && r.output !== "verdict");
  const wantsVerdict = results.some((r) => r.output === "verdict");
  if (refused.length === 0 && outputs.length === 0 && !wantsVerdict) return null;
  const lines = [`@${login}`];
  for (const r of refused) lines.push(`- \`${r.text}\` refused: ${r.message}`);
  for (const r of outputs) lines.push("", r.output!);
  return lines.join("\n");
}
