import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import { createLoop, type Loop } from "../loops/create-loop.ts";
import type { ServerMessage } from "../protocol/messages.ts";

type AssignFrame = Extract<ServerMessage, { type: "assign" }>;

import {
  type ClaimedTask,
  claimNextTask,
  failAttempt,
  findExpiredTasks,
  heldAssignment,
  lostTasks,
  promoteDueRetries,
  setAssignmentBase,
} from "../store/dispatch.ts";
import { RUNNER_REVOKED_CHANNEL } from "../store/runners.ts";
import { transitionTask } from "../store/tasks.ts";

/** The protocol's timings (docs/protocol.md); tests shorten them. */
export interface DispatchTimings {
  heartbeatMs: number;
  leaseMs: number;
  acceptMs: number;
  sweepMs: number;
  /** First retry backoff; later ones grow ×4 (30 s, 2 min, 8 min …). */
  backoffBaseMs: number;
  /** A new connection that has not sent `hello` by then is closed with 1008. */
  helloMs?: number;
}

export const DEFAULT_TIMINGS: DispatchTimings = {
  heartbeatMs: 15_000,
  leaseMs: 60_000,
  acceptMs: 30_000,
  sweepMs: 10_000,
  backoffBaseMs: 30_000,
};

/** One live runner socket on this instance. */
export interface RunnerConnection {
  runnerId: string;
  name: string;
  capabilities: string[];
  slots: number;
  /** Tasks this connection holds (assigned or running): task id → generation. */
  tasks: Map<string, number>;
  connectedAt: string;
  lastAssignedAt: number;
  draining: boolean;
  /** The end of what the runner reported as the task's output (`log` frames), for the dashboard. */
  logTail(taskId: string): string | undefined;
  /** The stage the runner's last heartbeat for the task named, for the dashboard. */
  progress?(taskId: string): TaskProgress | undefined;
  /** The version the runner's `hello` named. */
  version?: string;
  /** Runners that were rate-limited in the last minute get no new work. */
  recentlyRateLimited(): boolean;
  send(message: ServerMessage): void;
  close(code: number, reason: string): void;
}

/** What a runner's latest heartbeat said about a task it holds. */
export interface TaskProgress {
  generation: number;
  stage: string;
  message: string | undefined;
  /** When that heartbeat arrived (ISO 8601). */
  at: string;
}

/** What an `assign` needs from GitHub: where to clone, at which commit, with which token. */
export interface Assignment {
  cloneUrl: string;
  baseSha: string;
  issueUrl: string;
  readToken: { value: string; expiresAt: string };
}

export type PrepareAssignment = (task: ClaimedTask) => Promise<Assignment>;

export interface DispatcherDeps {
  database: Database;
  logger: Logger;
  prepareAssignment: PrepareAssignment;
  agingMs: number;
  /** `CONVEYOR_INSTALLATION_DAILY_BUDGET_USD`: an installation that spent it today gets no work. */
  installationDailyBudgetUsd?: number | undefined;
  timings: DispatchTimings;
  /** Called when tasks changed (status comments to rewrite). */
  onChange: () => void;
  /** An assign frame went out: the task's lane and seconds since it entered the queue. */
  onAssignSent?: (lane: string, seconds: number) => void;
  /** An error worth counting (the dispatcher's loop failed, an assignment could not be prepared). */
  recordError?: (source: string, error: unknown) => void;
}

/** What the agent should know from before: review or CI feedback, else why the last attempt failed. */
function feedbackFor(task: ClaimedTask): { feedback?: string } {
  if (task.feedback) return { feedback: task.feedback };
  if (task.last_error)
    return { feedback: `The previous attempt did not succeed: ${task.last_error}` };
  return {};
}

/** The `assign` frame for a claimed (or continued) task and its prepared assignment. */
function assignFrame(task: ClaimedTask, assignment: Assignment): AssignFrame {
  const limits = task.limits as Record<string, number | undefined> & { verify?: string[][] };
  return {
    type: "assign",
    task_id: task.task_id,
    generation: task.generation,
    repo: {
      full_name: task.full_name,
      clone_url: assignment.cloneUrl,
      default_branch: task.default_branch,
      base_sha: assignment.baseSha,
    },
    issue: {
      number: task.issue_number,
      title: task.title,
      body: task.body,
      url: assignment.issueUrl,
    },
    branch: `conveyor/issue-${task.issue_number}`,
    read_token: { value: assignment.readToken.value, expires_at: assignment.readToken.expiresAt },
    limits: {
      wall_clock_minutes: limits.wall_clock_minutes,
      idle_minutes: limits.idle_minutes,
      output_bytes: limits.output_bytes,
      max_cost_usd: limits.max_cost_usd,
      max_tokens: limits.max_tokens,
      max_turns: limits.max_turns,
    },
    verify: limits.verify ?? [],
    ...feedbackFor(task),
  };
}

/** NOTIFY channel: new work for any instance, cancels and revocations for the socket's holder. */
export const DISPATCH_CHANNEL = "conveyor_dispatch";

type Notice =
  | { kind: "work" }
  | { kind: "cancel"; runner_id: string; task_id: string; generation: number; reason: string };

export interface Dispatcher {
  register(connection: RunnerConnection): void;
  unregister(connection: RunnerConnection): void;
  /** Look for work to hand out soon (coalesced). */
  wake(): void;
  /** Tell every instance there is new work. */
  announceWork(): void;
  /**
   * Closes a revoked runner's sockets on this instance at once. Other instances hear the
   * `RUNNER_REVOKED_CHANNEL` notification that revoking sends (from the API or the CLI).
   */
  revokeRunner(runnerId: string): void;
  connections(): RunnerConnection[];
  /**
   * Sends the `assign` of a task this connection continues (after `welcome` said `continue`) once
   * more, at the same generation, with a fresh read token and the commit the attempt started
   * from: a runner that restarted before its clone finished can clone again. Sends nothing if the
   * connection no longer holds the task; a failure to prepare it is logged, not thrown.
   */
  resendAssignment(connection: RunnerConnection, taskId: string, generation: number): Promise<void>;
  /** The latest output a connected runner reported for the task. */
  logTail(taskId: string): string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One dispatch pass; returns how many tasks were assigned (tests). */
  dispatchOnce(): Promise<number>;
  sweepOnce(): Promise<void>;
}

/**
 * Hands queued tasks to the runners connected to this instance. Event driven (a task queued, a
 * runner connected or freed, a result in) with a periodic sweep as the safety net: expired leases
 * and deadlines become failed attempts, finished backoffs return to the queue.
 */
export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const { database, logger, timings } = deps;
  const db = database.db;
  const live = new Map<string, Set<RunnerConnection>>();
  let unlisten: (() => Promise<void>) | undefined;

  // Every pass walks every connection: no intermediate array per runner.
  const all = () => {
    const connections: RunnerConnection[] = [];
    for (const set of live.values()) for (const connection of set) connections.push(connection);
    return connections;
  };

  const canTakeWork = (c: RunnerConnection) =>
    !c.draining && c.tasks.size < c.slots && !c.recentlyRateLimited();

  async function offer(connection: RunnerConnection): Promise<boolean> {
    const claimed = await claimNextTask(db, {
      runnerId: connection.runnerId,
      capabilities: connection.capabilities,
      agingMs: deps.agingMs,
      acceptMs: timings.acceptMs,
      installationDailyBudgetUsd: deps.installationDailyBudgetUsd,
    });
    if (!claimed) return false;
    const claimedAt = performance.now();
    connection.tasks.set(claimed.task_id, claimed.generation);
    connection.lastAssignedAt = Date.now();
    const log = logger.child({
      taskId: claimed.task_id,
      generation: claimed.generation,
      runnerId: connection.runnerId,
    });
    let assignment: Assignment;
    try {
      assignment = await deps.prepareAssignment(claimed);
    } catch (error) {
      // Not the runner's fault and not an attempt: put the task back and try again shortly.
      log.warn({ err: error }, "could not prepare the assignment; task requeued");
      deps.recordError?.("dispatcher", error);
      connection.tasks.delete(claimed.task_id);
      await transitionTask(db, {
        taskId: claimed.task_id,
        generation: claimed.generation,
        from: ["assigned"],
        to: "queued",
        actor: "dispatcher",
        reason: `could not prepare the assignment: ${(error as Error).message}`,
        set: { runnerId: null, leaseExpiresAt: null, availableAt: new Date(Date.now() + 30_000) },
      });
      return true;
    }
    await setAssignmentBase(
      db,
      { taskId: claimed.task_id, generation: claimed.generation },
      assignment.baseSha,
    );
    connection.send(assignFrame(claimed, assignment));
    if (claimed.queued_seconds !== null) {
      deps.onAssignSent?.(
        claimed.lane,
        Number(claimed.queued_seconds) + (performance.now() - claimedAt) / 1000,
      );
    }
    log.info({ repo: claimed.full_name, issueNumber: claimed.issue_number }, "task assigned");
    deps.onChange();
    return true;
  }

  async function resendAssignment(
    connection: RunnerConnection,
    taskId: string,
    generation: number,
  ): Promise<void> {
    const log = logger.child({ taskId, generation, runnerId: connection.runnerId });
    try {
      const task = await heldAssignment(db, { taskId, generation, runnerId: connection.runnerId });
      if (!task || connection.tasks.get(taskId) !== generation) return;
      const assignment = await deps.prepareAssignment(task);
      // Same attempt, same commit: only the token is new.
      const baseSha = task.base_sha ?? assignment.baseSha;
      if (!task.base_sha) await setAssignmentBase(db, { taskId, generation }, baseSha);
      if (connection.tasks.get(taskId) !== generation) return;
      connection.send(assignFrame(task, { ...assignment, baseSha }));
      log.info("assignment sent again to a continuing runner");
    } catch (error) {
      log.warn({ err: error }, "could not send the assignment again");
      deps.recordError?.("dispatcher", error);
    }
  }

  async function dispatchOnce(): Promise<number> {
    let assigned = 0;
    // Capability sets whose claim found nothing in this run. A runner offering a subset of one
    // cannot find anything either, so it is not asked: with thousands of idle runners every run
    // would otherwise make one futile claim per runner. Work queued meanwhile wakes another run.
    const exhausted: Set<string>[] = [];
    const futile = (c: RunnerConnection) =>
      exhausted.some((set) => c.capabilities.every((capability) => set.has(capability)));
    // Round robin in least-recently-assigned order: one task per runner per pass.
    for (;;) {
      const candidates = all()
        .filter((c) => !futile(c) && canTakeWork(c))
        .sort((a, b) => a.lastAssignedAt - b.lastAssignedAt);
      let progressed = false;
      for (const connection of candidates) {
        if (futile(connection) || !canTakeWork(connection)) continue;
        if (await offer(connection)) {
          progressed = true;
          assigned++;
        } else exhausted.push(new Set(connection.capabilities));
      }
      if (!progressed) return assigned;
    }
  }

  async function sweepOnce(): Promise<void> {
    const promoted = await promoteDueRetries(db);
    const expired = await findExpiredTasks(db);
    for (const task of expired) {
      const failed = await failAttempt(
        db,
        { taskId: task.task_id, generation: task.generation },
        task.why,
        {
          retryable: true,
          actor: "dispatcher",
          // A silent runner is the runner's fault, not the task's: offer it again at once (it
          // still counts as an attempt). A passed deadline backs off like any failed attempt.
          backoffBaseMs: task.why === "deadline passed" ? timings.backoffBaseMs : 0,
        },
      );
      if (!failed) continue;
      logger.warn(
        {
          taskId: task.task_id,
          generation: task.generation,
          runnerId: task.runner_id,
          why: task.why,
        },
        "attempt expired",
      );
      if (task.runner_id) {
        await sendCancel(task.runner_id, task.task_id, task.generation, task.why);
      }
    }
    // Tasks whose runner went silent are due now: back in the queue in this same sweep.
    const requeued = expired.length ? await promoteDueRetries(db) : 0;
    if (promoted || requeued || expired.length) deps.onChange();
    await cancelLostTasks();
  }

  /**
   * Tells runners to stop work the database no longer gives them, whatever the cause: the issue
   * was closed or unlabelled, the App uninstalled, the task reclaimed on another instance.
   */
  async function cancelLostTasks(): Promise<void> {
    const held = all().flatMap((c) =>
      [...c.tasks].map(([taskId, generation]) => ({ taskId, generation, runnerId: c.runnerId })),
    );
    for (const lost of await lostTasks(db, held)) {
      const reason =
        lost.state === "cancelled" ? "task cancelled" : `task is ${lost.state ?? "gone"}`;
      cancelLocally(lost.runner_id, lost.task_id, lost.generation, reason);
    }
  }

  /** Cancels locally if the runner's socket is here, else asks the instance that holds it. */
  async function sendCancel(runnerId: string, taskId: string, generation: number, reason: string) {
    if (!cancelLocally(runnerId, taskId, generation, reason)) {
      await notify({ kind: "cancel", runner_id: runnerId, task_id: taskId, generation, reason });
    }
  }

  function cancelLocally(
    runnerId: string,
    taskId: string,
    generation: number,
    reason: string,
  ): boolean {
    let found = false;
    for (const connection of live.get(runnerId) ?? []) {
      if (connection.tasks.get(taskId) === generation) {
        connection.tasks.delete(taskId);
        connection.send({ type: "cancel", task_id: taskId, generation, reason });
        found = true;
      }
    }
    if (found) loop.wake();
    return found;
  }

  function closeLocally(runnerId: string): void {
    for (const connection of live.get(runnerId) ?? [])
      connection.close(1008, "runner token revoked");
  }

  async function notify(notice: Notice): Promise<void> {
    await database.notify(DISPATCH_CHANNEL, JSON.stringify(notice));
  }

  function onNotice(payload: string): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload) as Notice;
    } catch {
      return;
    }
    if (notice.kind === "work") loop.wake();
    else if (notice.kind === "cancel") {
      cancelLocally(notice.runner_id, notice.task_id, notice.generation, notice.reason);
    }
  }

  const loop: Loop = createLoop({
    name: "dispatcher",
    intervalMs: timings.sweepMs,
    logger,
    initialDelayMs: 0,
    onError: (error) => deps.recordError?.("loop:dispatcher", error),
    body: async () => {
      await sweepOnce();
      await dispatchOnce();
    },
  });

  return {
    register(connection) {
      let set = live.get(connection.runnerId);
      if (!set) {
        set = new Set();
        live.set(connection.runnerId, set);
      }
      set.add(connection);
      loop.wake();
    },
    unregister(connection) {
      // Its tasks stay leased: a reconnect within the lease reclaims them, else the sweep requeues.
      live.get(connection.runnerId)?.delete(connection);
      if (live.get(connection.runnerId)?.size === 0) live.delete(connection.runnerId);
    },
    wake: () => loop.wake(),
    announceWork() {
      loop.wake();
      notify({ kind: "work" }).catch((error) => logger.warn({ err: error }, "notify failed"));
    },
    revokeRunner: closeLocally,
    connections: all,
    resendAssignment,
    logTail(taskId) {
      for (const connection of all()) {
        const tail = connection.logTail(taskId);
        if (tail !== undefined) return tail;
      }
      return undefined;
    },
    async start() {
      const stopWork = await database.listen(DISPATCH_CHANNEL, onNotice);
      const stopRevoked = await database.listen(RUNNER_REVOKED_CHANNEL, closeLocally);
      unlisten = async () => {
        await stopWork();
        await stopRevoked();
      };
    },
    async stop() {
      await loop.stop();
      await unlisten?.();
      unlisten = undefined;
      for (const connection of all()) connection.close(1001, "server shutting down");
    },
    dispatchOnce,
    sweepOnce,
  };
}
