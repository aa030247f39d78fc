import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import { isRepoInScope } from "../core/runner-registration.ts";
import { RUNNER_CLASSES, type RunnerClass } from "../core/task-states.ts";
import { createLoop, type Loop } from "../loops/create-loop.ts";
import type { ServerMessage } from "../protocol/messages.ts";

type AssignFrame = Extract<ServerMessage, { type: "assign" }>;

import {
  type Claim,
  type ClaimableTask,
  type ClaimedTask,
  claimTasks,
  failAttempt,
  findClaimable,
  findExpiredTasks,
  heldAssignment,
  lostTasks,
  promoteDueRetries,
  setAssignmentBase,
} from "../store/dispatch.ts";
import { RUNNER_REVOKED_CHANNEL } from "../store/runners.ts";
import { createLeaseRenewals, type LeaseRenewals } from "./lease-renewals.ts";

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
  /** At most one status comment edit per attempt for its progress in this long (30 s). */
  progressEditMs?: number;
}

export const DEFAULT_TIMINGS: DispatchTimings = {
  heartbeatMs: 15_000,
  leaseMs: 60_000,
  acceptMs: 30_000,
  sweepMs: 10_000,
  backoffBaseMs: 30_000,
};

/** Dispatch order of the runner classes: `RUNNER_CLASSES` is lightest first. */
const CLASS_RANK = Object.fromEntries(RUNNER_CLASSES.map((c, i) => [c, i])) as Record<
  RunnerClass,
  number
>;

/** One live runner socket on this instance. */
export interface RunnerConnection {
  runnerId: string;
  name: string;
  capabilities: string[];
  /** Repositories it may take tasks from (`owner/name`, `owner/*`); empty: every one. */
  repos?: string[];
  /**
   * The registered runner's class (`runners add --class`): lighter classes are offered tasks first
   * (see `match`). Absent: `normal`.
   */
  runnerClass?: RunnerClass;
  slots: number;
  /** Most tasks this connection may ever take (1 for a one-time credential); no limit if unset. */
  maxTasks?: number | undefined;
  /** Tasks this connection has taken so far (counted against `maxTasks`). */
  taken?: number;
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
  /** The agent's progress it carried, as last written to the attempt (to skip unchanged ones). */
  reported?: string | undefined;
}

/** What an `assign` needs from GitHub: where to clone, at which commit, with which token. */
export interface Assignment {
  cloneUrl: string;
  baseSha: string;
  issueUrl: string;
  readToken: { value: string; expiresAt: string };
}

/**
 * Runs a read once for every caller that names the same key within one dispatch batch: the tasks
 * of a batch in one repository start from the same head, read once rather than once per task.
 */
export type SharedReads = <T>(key: string, read: () => Promise<T>) => Promise<T>;

/** A fresh `SharedReads`, for one batch. */
export function sharedReads(): SharedReads {
  const reads = new Map<string, Promise<unknown>>();
  return <T>(key: string, read: () => Promise<T>) => {
    let pending = reads.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = read();
      reads.set(key, pending);
    }
    return pending;
  };
}

/**
 * Reads what an assignment needs from GitHub. Called for every task of a batch at once (up to
 * `PREPARE_CONCURRENCY`) before the batch is claimed, with reads shared across the batch, and
 * again for `resendAssignment`.
 */
export type PrepareAssignment = (
  task: Pick<ClaimedTask, "installation_id" | "full_name" | "issue_number" | "pr_head_sha"> &
    Partial<Pick<ClaimableTask, "default_branch" | "head_sha">>,
  shared: SharedReads,
) => Promise<Assignment>;

/** Assignments of one batch prepared at once (GitHub reads); the rest wait for a free one. */
export const PREPARE_CONCURRENCY = 32;

export interface DispatcherDeps {
  database: Database;
  logger: Logger;
  prepareAssignment: PrepareAssignment;
  agingMs: number;
  /** Tasks one installation may hold assigned or running at once (0 or absent: no limit). */
  maxRunningPerInstallation?: number | undefined;
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
   * A heartbeat for a task the connection holds: its lease is renewed together with the other
   * heartbeats this instance received meanwhile, in one statement (`lease-renewals.ts`). Resolves true when the runner still
   * holds the task (renewed, or assigned and not yet accepted), false when it does not.
   */
  renewLease(fence: { taskId: string; generation: number; runnerId: string }): Promise<boolean>;
  /** An `accept` just set the task's lease in full: heartbeats soon after need not renew it. */
  leaseExtended(fence: { taskId: string; generation: number; runnerId: string }): void;
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
  /** Dispatch passes until no free slot finds work; returns how many tasks were assigned (tests). */
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
  /** Sockets by runner: almost always one, so an array (a Set per runner costs more). */
  const live = new Map<string, RunnerConnection[]>();
  let unlisten: (() => Promise<void>) | undefined;

  // Every pass walks every connection: no intermediate array per runner.
  const all = () => {
    const connections: RunnerConnection[] = [];
    for (const set of live.values()) for (const connection of set) connections.push(connection);
    return connections;
  };

  /** Tasks a connection may still be given now: its free slots, within a one-time runner's one. */
  const room = (c: RunnerConnection) =>
    Math.min(
      c.slots - c.tasks.size,
      c.maxTasks === undefined ? Number.POSITIVE_INFINITY : c.maxTasks - (c.taken ?? 0),
    );
  const canTakeWork = (c: RunnerConnection) =>
    !c.draining && room(c) > 0 && !c.recentlyRateLimited();
  const isLive = (c: RunnerConnection) => live.get(c.runnerId)?.includes(c) === true;

  const renewals: LeaseRenewals = createLeaseRenewals({
    db,
    leaseMs: timings.leaseMs,
    // A lease set or renewed less than a tenth of its time ago (6 s of 60) still has nine tenths
    // left: the heartbeat is answered without a statement, the next one renews. (A whole heartbeat
    // interval would leave a late heartbeat less room than before.)
    freshMs: Math.min(timings.heartbeatMs, timings.leaseMs / 10),
    onError: (error) => {
      logger.warn({ err: error }, "could not renew leases");
      deps.recordError?.("dispatcher", error);
    },
  });

  async function resendAssignment(
    connection: RunnerConnection,
    taskId: string,
    generation: number,
  ): Promise<void> {
    const log = logger.child({ taskId, generation, runnerId: connection.runnerId });
    try {
      const task = await heldAssignment(db, { taskId, generation, runnerId: connection.runnerId });
      if (!task || connection.tasks.get(taskId) !== generation) return;
      const assignment = await deps.prepareAssignment(task, sharedReads());
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

  /**
   * Which free connection takes which task: tasks in service order, each to a connection whose
   * capabilities cover the task's, whose scope holds its repository and that has a slot left;
   * among those the lightest class wins (light, then normal, then heavy), and within a class the
   * least recently assigned. A connection that just got one goes to the back of its class, so
   * slots fill round robin within a class, and a heavier (costlier) machine gets a task only when
   * no lighter one can take it.
   */
  function match(
    tasks: readonly ClaimableTask[],
    free: readonly RunnerConnection[],
  ): { task: ClaimableTask; connection: RunnerConnection }[] {
    const rank = (c: RunnerConnection) => CLASS_RANK[c.runnerClass ?? "normal"];
    const order = [...free].sort(
      (a, b) => rank(a) - rank(b) || a.lastAssignedAt - b.lastAssignedAt,
    );
    const left = new Map(order.map((c) => [c, room(c)]));
    const pairs: { task: ClaimableTask; connection: RunnerConnection }[] = [];
    for (const task of tasks) {
      const index = order.findIndex(
        (c) =>
          task.capabilities.every((capability) => c.capabilities.includes(capability)) &&
          isRepoInScope(task.full_name, c.repos ?? []),
      );
      if (index < 0) continue;
      const connection = order[index]!;
      pairs.push({ task, connection });
      order.splice(index, 1);
      const remaining = left.get(connection)! - 1;
      left.set(connection, remaining);
      if (remaining > 0) {
        // The back of its class: before the first connection of a heavier one.
        const heavier = order.findIndex((c) => rank(c) > rank(connection));
        order.splice(heavier < 0 ? order.length : heavier, 0, connection);
      }
    }
    return pairs;
  }

  /** Capability sets no other set contains: a task one of them covers is one some runner can take. */
  function widestSets(connections: readonly RunnerConnection[]): string[][] {
    const sets = [...new Map(connections.map((c) => [[...c.capabilities].sort().join("\0"), c]))]
      .map(([, c]) => [...new Set(c.capabilities)])
      .sort((a, b) => b.length - a.length);
    const kept: string[][] = [];
    for (const set of sets) {
      if (!kept.some((wider) => set.every((capability) => wider.includes(capability)))) {
        kept.push(set);
      }
    }
    return kept;
  }

  /**
   * What the free runners can take, for `findClaimable`: without scoped runners, the widest
   * capability sets; with any, every distinct (capabilities, scope) pair, so a task is read only
   * when one runner both covers its needs and may take its repository.
   */
  function runnerKinds(connections: readonly RunnerConnection[]): {
    capabilitySets: string[][];
    scopes: string[][];
  } {
    if (!connections.some((c) => c.repos?.length)) {
      const capabilitySets = widestSets(connections);
      return { capabilitySets, scopes: capabilitySets.map(() => []) };
    }
    const kinds = new Map<string, { capabilities: string[]; repos: string[] }>();
    for (const c of connections) {
      const capabilities = [...new Set(c.capabilities)].sort();
      const repos = [...new Set(c.repos ?? [])].sort();
      kinds.set(`${capabilities.join("\0")}\n${repos.join("\0")}`, { capabilities, repos });
    }
    const list = [...kinds.values()];
    return { capabilitySets: list.map((k) => k.capabilities), scopes: list.map((k) => k.repos) };
  }

  /** Runs `work` over `items`, at most `limit` at a time; results in the items' order. */
  async function pooled<T, R>(
    items: readonly T[],
    limit: number,
    work: (item: T) => Promise<R>,
  ): Promise<PromiseSettledResult<R>[]> {
    const results: PromiseSettledResult<R>[] = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        try {
          results[index] = { status: "fulfilled", value: await work(items[index]!) };
        } catch (reason) {
          results[index] = { status: "rejected", reason };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
  }

  /**
   * One batch for every free slot on this instance: read the tasks the free runners can take (one
   * statement), match them to runners, prepare every assignment at once (GitHub), then claim the
   * batch with the assignment bases in one statement and send the `assign` frames. Returns how
   * many were assigned, and whether another pass could find more (a claim lost to another
   * instance or an assignment that could not be prepared leaves work the next pass may take).
   */
  async function dispatchPass(): Promise<{ assigned: number; again: boolean }> {
    const free = all().filter(canTakeWork);
    if (free.length === 0) return { assigned: 0, again: false };
    const limit = free.reduce((sum, c) => sum + room(c), 0);
    const candidates = await findClaimable(db, {
      ...runnerKinds(free),
      limit,
      agingMs: deps.agingMs,
      maxRunningPerInstallation: deps.maxRunningPerInstallation,
      installationDailyBudgetUsd: deps.installationDailyBudgetUsd,
    });
    const pairs = match(candidates, free);
    if (pairs.length === 0) return { assigned: 0, again: false };
    const startedAt = performance.now();
    const shared = sharedReads();
    const prepared = await pooled(pairs, PREPARE_CONCURRENCY, ({ task }) =>
      deps.prepareAssignment(task, shared),
    );
    const claims: Claim[] = [];
    const defer: string[] = [];
    const assignments = new Map<string, Assignment>();
    pairs.forEach(({ task, connection }, index) => {
      const outcome = prepared[index]!;
      if (outcome.status === "rejected") {
        logger.warn(
          { err: outcome.reason, taskId: task.task_id, runnerId: connection.runnerId },
          "could not prepare the assignment; task offered again in 30 s",
        );
        deps.recordError?.("dispatcher", outcome.reason);
        defer.push(task.task_id);
        return;
      }
      // A runner that left or began draining meanwhile gets nothing; the next pass decides.
      if (!isLive(connection) || connection.draining) return;
      assignments.set(task.task_id, outcome.value);
      claims.push({
        taskId: task.task_id,
        generation: task.generation,
        runnerId: connection.runnerId,
        baseSha: outcome.value.baseSha,
      });
    });
    const claimed = await claimTasks(db, claims, { acceptMs: timings.acceptMs, defer });
    const connectionOf = new Map(pairs.map((p) => [p.task.task_id, p.connection]));
    const now = Date.now();
    for (const task of claimed) {
      const connection = connectionOf.get(task.task_id)!;
      connection.tasks.set(task.task_id, task.generation);
      connection.taken = (connection.taken ?? 0) + 1;
      connection.lastAssignedAt = now;
      connection.send(assignFrame(task, assignments.get(task.task_id)!));
      if (task.queued_seconds !== null) {
        deps.onAssignSent?.(
          task.lane,
          Number(task.queued_seconds) + (performance.now() - startedAt) / 1000,
        );
      }
      logger.info(
        {
          taskId: task.task_id,
          generation: task.generation,
          runnerId: task.runner_id,
          repo: task.full_name,
          issueNumber: task.issue_number,
        },
        "task assigned",
      );
    }
    if (claimed.length || defer.length) deps.onChange();
    return {
      assigned: claimed.length,
      again: claimed.length > 0 || claims.length > claimed.length || defer.length > 0,
    };
  }

  async function dispatchOnce(): Promise<number> {
    let assigned = 0;
    // Every pass removes what it claimed, lost or deferred from what the next one can find, so
    // this ends: when no free slot is left, or the queue has nothing the free runners can take.
    for (;;) {
      const pass = await dispatchPass();
      assigned += pass.assigned;
      if (!pass.again) return assigned;
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
          // Read a moment ago: a runner that reconnected and renewed its lease since keeps it.
          expired: true,
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

  let lastSweepAt = Number.NEGATIVE_INFINITY;
  const loop: Loop = createLoop({
    name: "dispatcher",
    intervalMs: timings.sweepMs,
    logger,
    initialDelayMs: 0,
    onError: (error) => deps.recordError?.("loop:dispatcher", error),
    body: async () => {
      // Wakes (work queued, a slot freed) only dispatch; the safety-net sweep keeps its interval,
      // and runs after the dispatch a wake asked for, so the task that woke it never waits on it
      // (then dispatches again: tasks it requeued are due at once).
      await dispatchOnce();
      if (performance.now() - lastSweepAt >= timings.sweepMs) {
        lastSweepAt = performance.now();
        await sweepOnce();
        await dispatchOnce();
      }
    },
  });

  return {
    register(connection) {
      const same = live.get(connection.runnerId);
      if (!same) live.set(connection.runnerId, [connection]);
      else if (!same.includes(connection)) same.push(connection);
      loop.wake();
    },
    unregister(connection) {
      // Its tasks stay leased: a reconnect within the lease reclaims them, else the sweep requeues.
      const same = live.get(connection.runnerId);
      const rest = same?.filter((c) => c !== connection) ?? [];
      if (rest.length) live.set(connection.runnerId, rest);
      else live.delete(connection.runnerId);
    },
    wake: () => loop.wake(),
    announceWork() {
      loop.wake();
      notify({ kind: "work" }).catch((error) => logger.warn({ err: error }, "notify failed"));
    },
    revokeRunner: closeLocally,
    connections: all,
    renewLease: (fence) => renewals.renew(fence),
    leaseExtended: (fence) => renewals.extended(fence),
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
      await renewals.flush();
      await unlisten?.();
      unlisten = undefined;
      for (const connection of all()) connection.close(1001, "server shutting down");
    },
    dispatchOnce,
    sweepOnce,
  };
}
