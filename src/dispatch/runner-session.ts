import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { HELLO_TIMEOUT_MS, MAX_FRAME_BYTES_BY_TYPE } from "../core/frame-violations.ts";
import {
  BUDGET_EXCEEDED,
  type FieldError,
  fieldErrors,
  type RunnerMessage,
  RunnerMessage as RunnerMessageSchema,
  type ServerMessage,
} from "../protocol/messages.ts";
import { type AttemptRecord, recordAttempt } from "../store/attempts.ts";
import {
  acceptTask,
  completeTask,
  failAttempt,
  heldState,
  heldTasks,
  rejectTask,
  renewLease,
  reopenUnaccepted,
} from "../store/dispatch.ts";
import type { Dispatcher, DispatchTimings, RunnerConnection, TaskProgress } from "./dispatcher.ts";

/** Per-connection limits: rate limiting and the invalid-frame policy (pure core, held per runner). */
export interface FramePolicy {
  /** Takes a token for a frame of this type, or says how long to wait. */
  admit(type: string, now: number): { ok: true } | { ok: false; retryAfterMs: number };
  /** Records an invalid frame; says whether the socket must close. */
  invalid(now: number): { close: false } | { close: true; code: number; reason: string };
  recentlyLimited(now: number): boolean;
}

export interface SessionDeps {
  db: Db;
  dispatcher: Dispatcher;
  logger: Logger;
  timings: DispatchTimings;
  /** The registered runner; `capabilities` bounds what its `hello` may claim. */
  runner: { runnerId: string; name: string; capabilities: readonly string[] };
  policy: FramePolicy;
  /** Most slots filled on this connection; a `hello` asking for more gets this many. */
  maxSlots?: number;
  onChange: () => void;
  /** An error worth counting (a frame the server failed to handle). */
  recordError?: (source: string, error: unknown) => void;
  /** An attempt ended and was recorded (metrics, daily budgets). */
  onAttempt?: (attempt: AttemptRecord) => Promise<void> | void;
  send(message: ServerMessage): void;
  close(code: number, reason: string): void;
}

/** Tail kept per task for the dashboard. */
const LOG_TAIL_BYTES = 16 * 1024;

/**
 * One runner socket: validates every frame against the protocol schemas, applies the rate limit,
 * and turns frames into guarded task transitions. Anything about a task this connection does not
 * hold at that generation is answered `stale` and changes nothing.
 */
export function createRunnerSession(deps: SessionDeps) {
  const { db, dispatcher, logger, timings } = deps;
  const log = logger.child({ runnerId: deps.runner.runnerId });
  let connection: RunnerConnection | undefined;
  let chain: Promise<void> = Promise.resolve();
  const logTails = new Map<string, string>();
  const progress = new Map<string, TaskProgress>();

  const reply = (message: ServerMessage) => deps.send(message);
  const helloMs = timings.helloMs ?? HELLO_TIMEOUT_MS;
  // A socket that never says hello holds a connection slot and nothing else: close it.
  let helloTimer: ReturnType<typeof setTimeout> | undefined = setTimeout(() => {
    helloTimer = undefined;
    if (connection) return;
    log.warn({ helloMs }, "runner sent no hello in time; closed");
    deps.close(1008, `no hello within ${helloMs / 1000} s`);
  }, helloMs);

  function stale(
    frame: { id?: string | undefined; task_id: string; generation: number },
    reason: string,
  ) {
    connection?.tasks.delete(frame.task_id);
    progress.delete(frame.task_id);
    reply({
      type: "stale",
      id: frame.id,
      task_id: frame.task_id,
      generation: frame.generation,
      reason,
    });
  }

  function holds(frame: { task_id: string; generation: number }): boolean {
    return connection?.tasks.get(frame.task_id) === frame.generation;
  }

  async function attemptEnded(attempt: AttemptRecord) {
    await recordAttempt(db, attempt);
    await deps.onAttempt?.(attempt);
  }

  const fence = (frame: { task_id: string; generation: number }) => ({
    taskId: frame.task_id,
    generation: frame.generation,
    runnerId: deps.runner.runnerId,
  });

  function freed(taskId: string) {
    connection?.tasks.delete(taskId);
    logTails.delete(taskId);
    progress.delete(taskId);
    dispatcher.wake();
    deps.onChange();
  }

  function invalid(
    code: "invalid_json" | "invalid_frame" | "protocol",
    message: string,
    errors: FieldError[] = [],
    id?: string,
  ) {
    reply({ type: "error", id, code, message, errors });
    const verdict = deps.policy.invalid(Date.now());
    if (verdict.close) {
      log.warn({ reason: verdict.reason }, "runner closed for invalid frames");
      deps.close(verdict.code, verdict.reason);
    }
  }

  async function onFrame(frame: RunnerMessage): Promise<void> {
    if (frame.type === "ping") return reply({ type: "pong", id: frame.id });
    if (frame.type === "hello") return onHello(frame);
    if (!connection) {
      return invalid("protocol", `send hello before ${frame.type}`, [], frame.id);
    }
    switch (frame.type) {
      case "accept": {
        if (!holds(frame)) return stale(frame, "task is not assigned to you at this generation");
        const task = await acceptTask(db, fence(frame), timings.leaseMs);
        if (task) {
          deps.onChange();
          return reply({ type: "ack", id: frame.id });
        }
        // Idempotent: an accept sent again (its ack lost in a reconnect) is simply acknowledged.
        const state = await heldState(db, fence(frame));
        if (state === "running") return reply({ type: "ack", id: frame.id });
        return stale(frame, "task moved on before the accept arrived");
      }
      case "reject": {
        if (!holds(frame)) return stale(frame, "task is not assigned to you at this generation");
        const task = await rejectTask(db, fence(frame), frame.reason);
        freed(frame.task_id);
        dispatcher.announceWork();
        return task ? reply({ type: "ack", id: frame.id }) : stale(frame, "task moved on");
      }
      case "heartbeat": {
        if (holds(frame)) {
          progress.set(frame.task_id, {
            generation: frame.generation,
            stage: frame.stage,
            message: frame.message,
            at: new Date().toISOString(),
          });
        }
        if (holds(frame) && (await renewLease(db, fence(frame), timings.leaseMs))) {
          return reply({ type: "ack", id: frame.id });
        }
        // Before `accept` there is no lease to renew (the accept window stands), but the task is
        // still the runner's.
        if (holds(frame) && (await heldState(db, fence(frame))) === "assigned") {
          return reply({ type: "ack", id: frame.id });
        }
        return stale(frame, "you no longer hold this task; stop working on it");
      }
      case "log": {
        if (!holds(frame)) return stale(frame, "you no longer hold this task");
        const tail = (logTails.get(frame.task_id) ?? "") + frame.chunk;
        logTails.set(frame.task_id, tail.slice(-LOG_TAIL_BYTES));
        return reply({ type: "ack", id: frame.id });
      }
      case "complete": {
        if (!holds(frame))
          return stale(frame, "you no longer hold this task; the result was not used");
        const result = await completeTask(db, fence(frame), {
          digest: frame.changes_digest,
          summary: frame.summary,
          stats: frame.stats,
          verification: frame.verification,
        });
        if (result.problem) {
          return reply({
            type: "error",
            id: frame.id,
            code: "conflict",
            message:
              result.problem === "no_change_set"
                ? "upload the change set (PUT /runners/v1/tasks/{task_id}/changes) before complete"
                : "changes_digest does not match the uploaded change set",
            errors: [
              { field: "changes_digest", error: result.problem, detail: frame.changes_digest },
            ],
          });
        }
        if (!result.task) return stale(frame, "task moved on before the result arrived");
        await attemptEnded({
          ...fence(frame),
          outcome: "complete",
          agent: frame.agent,
          stats: frame.stats,
        });
        log.info({ taskId: frame.task_id, generation: frame.generation }, "task completed");
        freed(frame.task_id);
        return reply({ type: "ack", id: frame.id });
      }
      case "fail": {
        if (!holds(frame)) return stale(frame, "you no longer hold this task");
        // The reason with the start of the detail: what the status comment shows.
        const cause = frame.detail
          ? `${frame.reason}: ${frame.detail.slice(0, 2_000)}`
          : frame.reason;
        const task = await failAttempt(db, fence(frame), cause, {
          // A budget overrun would spend the same again: only `/retry` brings the task back.
          retryable: frame.retryable && frame.reason !== BUDGET_EXCEEDED,
          actor: "runner",
          backoffBaseMs: timings.backoffBaseMs,
        });
        if (!task) return stale(frame, "task moved on");
        await attemptEnded({
          ...fence(frame),
          outcome: "fail",
          failReason: frame.reason,
          agent: frame.agent,
          stats: frame.stats,
        });
        log.info(
          { taskId: frame.task_id, state: task.state, reason: frame.reason },
          "attempt failed",
        );
        freed(frame.task_id);
        return reply({ type: "ack", id: frame.id });
      }
      case "drain":
        connection.draining = true;
        return reply({ type: "ack", id: frame.id });
    }
  }

  async function onHello(frame: Extract<RunnerMessage, { type: "hello" }>) {
    if (connection) return invalid("protocol", "hello was already received", [], frame.id);
    if (helloTimer) clearTimeout(helloTimer);
    helloTimer = undefined;
    const held = await heldTasks(db, deps.runner.runnerId, frame.running);
    const tasks = new Map<string, number>();
    for (const task of frame.running)
      if (held.has(task.task_id)) tasks.set(task.task_id, task.generation);
    // Tasks it still holds keep running under a fresh lease; the rest it must drop.
    for (const [taskId, generation] of tasks) {
      await renewLease(db, { taskId, generation, runnerId: deps.runner.runnerId }, timings.leaseMs);
    }
    // Assignments it never accepted and does not name: offered again below (not an attempt).
    // Not those another live connection of the same runner holds here (two processes sharing a
    // token must not both take one task).
    const heldHere = dispatcher
      .connections()
      .filter((c) => c.runnerId === deps.runner.runnerId)
      .flatMap((c) => [...c.tasks.keys()]);
    const unaccepted = await reopenUnaccepted(
      db,
      deps.runner.runnerId,
      [...frame.running.map((t) => t.task_id), ...heldHere],
      timings.acceptMs,
    );
    for (const task of unaccepted) tasks.set(task.task_id, task.generation);
    // A runner offers what it says it has, but only within what it was registered for.
    const allowed = new Set(deps.runner.capabilities);
    const capabilities = frame.capabilities.filter((c) => allowed.has(c));
    const refused = frame.capabilities.filter((c) => !allowed.has(c));
    if (refused.length) {
      log.warn({ refused }, "runner claimed capabilities it was not registered with; ignored");
    }
    const maxSlots = deps.maxSlots ?? frame.slots;
    if (frame.slots > maxSlots) {
      log.warn(
        { slots: frame.slots, maxSlots },
        "runner asked for more slots than allowed; capped",
      );
    }
    connection = {
      runnerId: deps.runner.runnerId,
      name: frame.name,
      capabilities,
      slots: Math.min(frame.slots, maxSlots),
      tasks,
      connectedAt: new Date().toISOString(),
      lastAssignedAt: 0,
      draining: false,
      logTail: (taskId) => logTails.get(taskId),
      progress: (taskId) => progress.get(taskId),
      version: frame.version,
      recentlyRateLimited: () => deps.policy.recentlyLimited(Date.now()),
      send: deps.send,
      close: deps.close,
    };
    reply({
      type: "welcome",
      runner_id: deps.runner.runnerId,
      heartbeat_ms: timings.heartbeatMs,
      lease_ms: timings.leaseMs,
      accept_ms: timings.acceptMs,
      reconcile: frame.running.map((t) => ({
        task_id: t.task_id,
        action: held.has(t.task_id) ? ("continue" as const) : ("cancel" as const),
      })),
    });
    log.info(
      { name: frame.name, capabilities: frame.capabilities, slots: frame.slots, kept: tasks.size },
      "runner connected",
    );
    dispatcher.register(connection);
    // Each continued task's clone details again (a fresh read token): a runner that restarted
    // before its clone finished has nothing else to clone with; an unaccepted assignment is new to
    // the runner and taken (or rejected) like any other. Not awaited: frames go on.
    for (const [taskId, generation] of tasks) {
      void dispatcher.resendAssignment(connection, taskId, generation);
    }
  }

  return {
    /** Handles one raw text frame; frames of one connection are processed in order. */
    receive(raw: string): void {
      chain = chain.then(async () => {
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          return invalid("invalid_json", "frame is not valid JSON");
        }
        const parsed = RunnerMessageSchema.safeParse(json);
        const id =
          typeof (json as { id?: unknown })?.id === "string"
            ? (json as { id: string }).id
            : undefined;
        if (!parsed.success) {
          return invalid(
            "invalid_frame",
            "frame does not match the protocol",
            fieldErrors(parsed.error),
            id,
          );
        }
        // A valid frame padded beyond what its type can need is an invalid frame: counted, so a
        // flood of them closes the socket instead of being parsed forever.
        const limit = MAX_FRAME_BYTES_BY_TYPE[parsed.data.type];
        const bytes = Buffer.byteLength(raw, "utf8");
        if (bytes > limit) {
          return invalid(
            "invalid_frame",
            `a ${parsed.data.type} frame may be at most ${limit} bytes; this one has ${bytes}`,
            [],
            id,
          );
        }
        const admitted = deps.policy.admit(parsed.data.type, Date.now());
        if (!admitted.ok) {
          return reply({ type: "rate_limited", id, retry_after_ms: admitted.retryAfterMs });
        }
        try {
          await onFrame(parsed.data);
        } catch (error) {
          log.error({ err: error, type: parsed.data.type }, "runner frame failed");
          deps.recordError?.("runner-session", error);
          reply({
            type: "error",
            id,
            code: "internal",
            message: "the server could not handle this frame; retry",
            errors: [],
          });
        }
      });
    },
    /** The socket closed: leases run on, so a quick reconnect keeps its tasks. */
    closed(): void {
      if (helloTimer) clearTimeout(helloTimer);
      helloTimer = undefined;
      if (connection) dispatcher.unregister(connection);
    },
  };
}
