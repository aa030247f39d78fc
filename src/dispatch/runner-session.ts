import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { HELLO_TIMEOUT_MS, MAX_FRAME_BYTES_BY_TYPE } from "../core/frame-violations.ts";
import { redactSecrets } from "../core/redact-secrets.ts";
import type { RunnerClass } from "../core/task-states.ts";
import {
  BUDGET_EXCEEDED,
  type FieldError,
  fieldErrors,
  type RunnerMessage,
  RunnerMessage as RunnerMessageSchema,
  type ServerMessage,
} from "../protocol/messages.ts";
import {
  type AttemptEnd,
  appendAttemptLog,
  type FinishedAttempt,
  finishAttempt,
  recordProgress,
} from "../store/attempts.ts";
import {
  failAttempt,
  heldState,
  heldTasks,
  rejectTask,
  reopenUnaccepted,
} from "../store/dispatch.ts";
import type { Dispatcher, DispatchTimings, RunnerConnection, TaskProgress } from "./dispatcher.ts";
import type { RunnerWrites } from "./runner-writes.ts";

/** Per-connection limits: rate limiting and the invalid-frame policy (pure core, held per runner). */
export interface FramePolicy {
  /** Takes a token for a frame of this type, or says how long to wait. */
  admit(type: string, now: number): { ok: true } | { ok: false; retryAfterMs: number };
  /** Records an invalid frame; says whether the socket must close. */
  invalid(now: number): { close: false } | { close: true; code: number; reason: string };
  recentlyLimited(now: number): boolean;
  /** Sizes the runner's limits to the slots this connection fills (see `runnerLimits`). */
  fit(slots: number, heartbeatMs: number): void;
}

/** What a session needs of its socket (a `ws` WebSocket, or a fake in tests). */
export interface SessionSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code: number, reason: string): void;
}

/** What every session on this instance shares: one object, not one per socket. */
export interface SessionContext {
  db: Db;
  dispatcher: Dispatcher;
  logger: Logger;
  timings: DispatchTimings;
  /** The server's own secrets, redacted from agent output before it is stored. */
  knownSecrets?: readonly string[];
  /** Most slots filled on this connection; a `hello` asking for more gets this many. */
  maxSlots?: number;
  onChange: () => void;
  /** An error worth counting (a frame the server failed to handle). */
  recordError?: (source: string, error: unknown) => void;
  /** An attempt ended and was recorded (metrics, daily budgets); runs after the commit. */
  onAttempt?: (attempt: FinishedAttempt) => Promise<void> | void;
  /** Sockets waiting for their `hello` (see `createHelloDeadlines`). */
  helloDeadlines: HelloDeadlines;
  /** `accept`, uploads and `complete`, group-committed per instance. */
  writes: RunnerWrites;
}

/** The registered runner; `capabilities` bounds what its `hello` may claim. */
export interface SessionRunner {
  runnerId: string;
  name: string;
  capabilities: readonly string[];
  /** Repositories it may take tasks from (`owner/name`, `owner/*`); empty or absent: every one. */
  repos?: readonly string[];
  /** A one-time credential: at most one task on this connection. */
  oneTime?: boolean;
  /** Its class (`runners add --class`); absent: `normal`. */
  runnerClass?: RunnerClass;
}

/** Tail kept per task for the dashboard. */
const LOG_TAIL_BYTES = 16 * 1024;
/** How often, at most, an attempt's progress makes its status comment owe an edit. */
export const PROGRESS_EDIT_MS = 30_000;
const OPEN = 1;
const settled: Promise<void> = Promise.resolve();

/**
 * Closes sockets that have not sent `hello` within `helloMs` with 1008, using one timer for all of
 * them instead of one per socket: every socket waits the same time, so they are due in the order
 * they opened, and the one timer is armed for the oldest.
 */
export interface HelloDeadlines {
  add(session: RunnerSession): void;
  remove(session: RunnerSession): void;
  /** Stops the timer (shutdown). */
  clear(): void;
}

export function createHelloDeadlines(helloMs: number = HELLO_TIMEOUT_MS): HelloDeadlines {
  /** Insertion order is open order, and so deadline order. */
  const waiting = new Map<RunnerSession, number>();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer || waiting.size === 0) return;
    const [, due] = waiting.entries().next().value as [RunnerSession, number];
    timer = setTimeout(fire, Math.max(0, due - Date.now()));
    timer.unref();
  };
  const fire = () => {
    timer = undefined;
    const now = Date.now();
    for (const [session, due] of waiting) {
      if (due > now) break;
      waiting.delete(session);
      session.helloMissed(helloMs);
    }
    arm();
  };
  return {
    add(session) {
      waiting.set(session, Date.now() + helloMs);
      arm();
    },
    remove(session) {
      waiting.delete(session);
    },
    clear() {
      clearTimeout(timer);
      timer = undefined;
      waiting.clear();
    },
  };
}

/**
 * One runner socket: validates every frame against the protocol schemas, applies the rate limit,
 * and turns frames into guarded task transitions. Anything about a task this connection does not
 * hold at that generation is answered `stale` and changes nothing. After `hello` the session is
 * the dispatcher's `RunnerConnection`.
 *
 * A class with its methods on the prototype, and what every session shares in one `context`:
 * 10,000 idle runners cost 10,000 small objects, not 10,000 sets of closures, maps and timers.
 */
export class RunnerSession implements RunnerConnection {
  readonly runnerId: string;
  name = "";
  capabilities: string[] = [];
  slots = 0;
  tasks = new Map<string, number>();
  /** Repositories it may take tasks from; empty: every one. */
  repos: string[] = [];
  /** The registered runner's class: lighter classes are offered tasks first. */
  runnerClass: RunnerClass = "normal";
  /** Most tasks this connection may ever take (1 for a one-time credential); no limit if unset. */
  maxTasks: number | undefined;
  /** Tasks this connection has taken so far (counted against `maxTasks`). */
  taken = 0;
  lastAssignedAt = 0;
  draining = false;
  version: string | undefined;
  /** When `hello` arrived (ms since the epoch); 0 before. */
  private helloAt = 0;
  private chain: Promise<void> = settled;
  private logTails: Map<string, string> | undefined;
  /** A line a `log` chunk left unfinished, per task, completed by the next chunk. */
  private partialLines: Map<string, string> | undefined;
  private progressByTask: Map<string, TaskProgress> | undefined;

  constructor(
    private readonly context: SessionContext,
    readonly runner: SessionRunner,
    private readonly policy: FramePolicy,
    private readonly socket: SessionSocket,
  ) {
    this.runnerId = runner.runnerId;
    this.runnerClass = runner.runnerClass ?? "normal";
    // A socket that never says hello holds a connection slot and nothing else: closed in time.
    context.helloDeadlines.add(this);
  }

  get connectedAt(): string {
    return new Date(this.helloAt).toISOString();
  }

  private get log(): Logger {
    return this.context.logger.child({ runnerId: this.runnerId });
  }

  logTail(taskId: string): string | undefined {
    return this.logTails?.get(taskId);
  }

  progress(taskId: string): TaskProgress | undefined {
    return this.progressByTask?.get(taskId);
  }

  recentlyRateLimited(): boolean {
    return this.policy.recentlyLimited(Date.now());
  }

  /** The socket is open (not closing: a revoked runner's socket is closing at once). */
  isOpen(): boolean {
    return this.socket.readyState === OPEN;
  }

  send(message: ServerMessage): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  /** Called by `HelloDeadlines` when the socket sent no `hello` in time. */
  helloMissed(helloMs: number): void {
    if (this.helloAt) return;
    this.log.warn({ helloMs }, "runner sent no hello in time; closed");
    this.close(1008, `no hello within ${helloMs / 1000} s`);
  }

  /** Handles one raw text frame; frames of one connection are processed in order. */
  receive(raw: string): void {
    this.chain = this.chain.then(() => this.handle(raw));
  }

  /** The socket closed: leases run on, so a quick reconnect keeps its tasks. */
  closed(): void {
    this.context.helloDeadlines.remove(this);
    if (this.helloAt) this.context.dispatcher.unregister(this);
  }

  private async handle(raw: string): Promise<void> {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return this.invalid("invalid_json", "frame is not valid JSON");
    }
    const parsed = RunnerMessageSchema.safeParse(json);
    const id =
      typeof (json as { id?: unknown })?.id === "string" ? (json as { id: string }).id : undefined;
    if (!parsed.success) {
      return this.invalid(
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
      return this.invalid(
        "invalid_frame",
        `a ${parsed.data.type} frame may be at most ${limit} bytes; this one has ${bytes}`,
        [],
        id,
      );
    }
    const admitted = this.policy.admit(parsed.data.type, Date.now());
    if (!admitted.ok) {
      return this.send({ type: "rate_limited", id, retry_after_ms: admitted.retryAfterMs });
    }
    try {
      await this.onFrame(parsed.data);
    } catch (error) {
      this.log.error({ err: error, type: parsed.data.type }, "runner frame failed");
      this.context.recordError?.("runner-session", error);
      this.send({
        type: "error",
        id,
        code: "internal",
        message: "the server could not handle this frame; retry",
        errors: [],
      });
    }
  }

  private stale(
    frame: { id?: string | undefined; task_id: string; generation: number },
    reason: string,
  ): void {
    this.tasks.delete(frame.task_id);
    this.progressByTask?.delete(frame.task_id);
    this.send({
      type: "stale",
      id: frame.id,
      task_id: frame.task_id,
      generation: frame.generation,
      reason,
    });
  }

  private holds(frame: { task_id: string; generation: number }): boolean {
    return this.helloAt !== 0 && this.tasks.get(frame.task_id) === frame.generation;
  }

  private fence(frame: { task_id: string; generation: number }) {
    return { taskId: frame.task_id, generation: frame.generation, runnerId: this.runnerId };
  }

  /** After the commit: metrics and daily budgets hear of the attempt that ended. */
  private async attemptEnded(
    frame: { task_id: string; generation: number },
    ended: AttemptEnd,
  ): Promise<void> {
    await this.context.onAttempt?.({ ...this.fence(frame), ...ended });
  }

  private redact(text: string): string {
    return redactSecrets(text, this.context.knownSecrets ?? []);
  }

  private freed(taskId: string): void {
    this.tasks.delete(taskId);
    this.logTails?.delete(taskId);
    this.partialLines?.delete(taskId);
    this.progressByTask?.delete(taskId);
    this.context.dispatcher.wake();
    this.context.onChange();
  }

  private invalid(
    code: "invalid_json" | "invalid_frame" | "protocol",
    message: string,
    errors: FieldError[] = [],
    id?: string,
  ): void {
    this.send({ type: "error", id, code, message, errors });
    const verdict = this.policy.invalid(Date.now());
    if (verdict.close) {
      this.log.warn({ reason: verdict.reason }, "runner closed for invalid frames");
      this.close(verdict.code, verdict.reason);
    }
  }

  private async onFrame(frame: RunnerMessage): Promise<void> {
    const { db, dispatcher, timings } = this.context;
    if (frame.type === "ping") return this.send({ type: "pong", id: frame.id });
    if (frame.type === "hello") return this.onHello(frame);
    if (!this.helloAt) {
      return this.invalid("protocol", `send hello before ${frame.type}`, [], frame.id);
    }
    switch (frame.type) {
      case "accept": {
        if (!this.holds(frame)) {
          return this.stale(frame, "task is not assigned to you at this generation");
        }
        if (await this.context.writes.accept(this.fence(frame))) {
          dispatcher.leaseExtended(this.fence(frame));
          this.context.onChange();
          return this.send({ type: "ack", id: frame.id });
        }
        // Idempotent: an accept sent again (its ack lost in a reconnect) is simply acknowledged.
        const state = await heldState(db, this.fence(frame));
        if (state === "running") return this.send({ type: "ack", id: frame.id });
        return this.stale(frame, "task moved on before the accept arrived");
      }
      case "reject": {
        if (!this.holds(frame)) {
          return this.stale(frame, "task is not assigned to you at this generation");
        }
        const task = await rejectTask(db, this.fence(frame), frame.reason);
        this.freed(frame.task_id);
        dispatcher.announceWork();
        return task ? this.send({ type: "ack", id: frame.id }) : this.stale(frame, "task moved on");
      }
      case "heartbeat": {
        if (this.holds(frame)) {
          this.progressByTask ??= new Map();
          const before = this.progressByTask.get(frame.task_id);
          // The agent's figures go to the attempt (one write) only when the runner reports them
          // and they changed since its last heartbeat: an idle agent's beats cost no write.
          const reported = frame.progress
            ? JSON.stringify([frame.generation, frame.stage, frame.progress])
            : undefined;
          this.progressByTask.set(frame.task_id, {
            generation: frame.generation,
            stage: frame.stage,
            message: frame.message === undefined ? undefined : this.redact(frame.message),
            at: new Date().toISOString(),
            reported,
          });
          if (frame.progress && reported !== before?.reported) {
            const p = frame.progress;
            const tool = p.tool === undefined ? undefined : this.redact(p.tool);
            const shown = await recordProgress(
              db,
              this.fence(frame),
              { ...p, tool, stage: frame.stage },
              timings.progressEditMs ?? PROGRESS_EDIT_MS,
            );
            if (shown) this.context.onChange();
          }
        }
        // Renewed with this instance's other heartbeats in one statement. Before `accept` there
        // is no lease to renew (the accept window stands), but the task is still the runner's:
        // acknowledged too.
        if (this.holds(frame) && (await dispatcher.renewLease(this.fence(frame)))) {
          return this.send({ type: "ack", id: frame.id });
        }
        return this.stale(frame, "you no longer hold this task; stop working on it");
      }
      case "log": {
        if (!this.holds(frame)) return this.stale(frame, "you no longer hold this task");
        this.logTails ??= new Map();
        const tail = (this.logTails.get(frame.task_id) ?? "") + this.redact(frame.chunk);
        this.logTails.set(frame.task_id, tail.slice(-LOG_TAIL_BYTES));
        // Whole lines go to the attempt's log; an unfinished one waits for the rest. Redacted
        // per line as well, so a secret split across two chunks is caught once joined.
        this.partialLines ??= new Map();
        const lines = ((this.partialLines.get(frame.task_id) ?? "") + frame.chunk).split(/\r?\n/);
        const rest = lines.pop() ?? "";
        this.partialLines.set(frame.task_id, rest.slice(-LOG_TAIL_BYTES));
        await appendAttemptLog(
          db,
          this.fence(frame),
          lines.map((line) => this.redact(line.replaceAll("\u0000", ""))),
        );
        return this.send({ type: "ack", id: frame.id });
      }
      case "complete": {
        if (!this.holds(frame)) {
          return this.stale(frame, "you no longer hold this task; the result was not used");
        }
        const ended: AttemptEnd = { outcome: "completed", agent: frame.agent, stats: frame.stats };
        // The move and the attempt's final figures in one statement, shared with the other
        // results that arrive meanwhile.
        const result = await this.context.writes.complete(
          this.fence(frame),
          {
            digest: frame.changes_digest,
            summary: frame.summary,
            stats: frame.stats,
            verification: frame.verification,
          },
          ended,
        );
        if (result.problem) {
          return this.send({
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
        if (!result.moved) return this.stale(frame, "task moved on before the result arrived");
        await this.attemptEnded(frame, ended);
        this.log.info({ taskId: frame.task_id, generation: frame.generation }, "task completed");
        this.freed(frame.task_id);
        return this.send({ type: "ack", id: frame.id });
      }
      case "fail": {
        if (!this.holds(frame)) return this.stale(frame, "you no longer hold this task");
        // The reason with the start of the detail: what the issue's status comment shows.
        const cause = frame.detail
          ? `${frame.reason}: ${frame.detail.slice(0, 2_000)}`
          : frame.reason;
        const ended: AttemptEnd = {
          outcome: "failed",
          failReason: frame.reason,
          agent: frame.agent,
          stats: frame.stats,
        };
        const task = await db.transaction(async (tx) => {
          const moved = await failAttempt(tx, this.fence(frame), cause, {
            // A budget overrun would spend the same again: only `/retry` brings the task back.
            retryable: frame.retryable && frame.reason !== BUDGET_EXCEEDED,
            actor: "runner",
            backoffBaseMs: timings.backoffBaseMs,
          });
          if (moved) await finishAttempt(tx, this.fence(frame), ended);
          return moved;
        });
        if (!task) return this.stale(frame, "task moved on");
        await this.attemptEnded(frame, ended);
        this.log.info(
          { taskId: frame.task_id, state: task.state, reason: frame.reason },
          "attempt failed",
        );
        this.freed(frame.task_id);
        return this.send({ type: "ack", id: frame.id });
      }
      case "drain":
        this.draining = true;
        return this.send({ type: "ack", id: frame.id });
    }
  }

  private async onHello(frame: Extract<RunnerMessage, { type: "hello" }>): Promise<void> {
    const { db, dispatcher, timings } = this.context;
    if (this.helloAt) return this.invalid("protocol", "hello was already received", [], frame.id);
    this.context.helloDeadlines.remove(this);
    const held = await heldTasks(db, this.runnerId, frame.running);
    const tasks = new Map<string, number>();
    for (const task of frame.running) {
      if (held.has(task.task_id)) tasks.set(task.task_id, task.generation);
    }
    // Tasks it still holds keep running under a fresh lease; the rest it must drop.
    await Promise.all(
      [...tasks].map(([taskId, generation]) =>
        dispatcher.renewLease({ taskId, generation, runnerId: this.runnerId }),
      ),
    );
    // Assignments it never accepted and does not name: offered again below (not an attempt).
    // Not those another live connection of the same runner holds here (two processes sharing a
    // token must not both take one task).
    const heldHere = dispatcher
      .connections()
      .filter((c) => c.runnerId === this.runnerId)
      .flatMap((c) => [...c.tasks.keys()]);
    const unaccepted = await reopenUnaccepted(
      db,
      this.runnerId,
      [...frame.running.map((t) => t.task_id), ...heldHere],
      timings.acceptMs,
    );
    for (const task of unaccepted) tasks.set(task.task_id, task.generation);
    // A runner offers what it says it has, but only within what it was registered for.
    const allowed = new Set(this.runner.capabilities);
    const capabilities = frame.capabilities.filter((c) => allowed.has(c));
    const refused = frame.capabilities.filter((c) => !allowed.has(c));
    if (refused.length) {
      this.log.warn({ refused }, "runner claimed capabilities it was not registered with; ignored");
    }
    const maxSlots = this.context.maxSlots ?? frame.slots;
    if (frame.slots > maxSlots) {
      this.log.warn(
        { slots: frame.slots, maxSlots },
        "runner asked for more slots than allowed; capped",
      );
    }
    this.name = frame.name;
    this.capabilities = capabilities;
    this.slots = Math.min(frame.slots, maxSlots);
    this.policy.fit(this.slots, timings.heartbeatMs);
    this.tasks = tasks;
    this.repos = [...(this.runner.repos ?? [])];
    if (this.runner.oneTime) this.maxTasks = 1;
    // A continued task counts against a one-time runner's one task.
    this.taken = tasks.size;
    this.version = frame.version;
    this.helloAt = Date.now();
    this.send({
      type: "welcome",
      runner_id: this.runnerId,
      heartbeat_ms: timings.heartbeatMs,
      lease_ms: timings.leaseMs,
      accept_ms: timings.acceptMs,
      reconcile: frame.running.map((t) => ({
        task_id: t.task_id,
        action: held.has(t.task_id) ? ("continue" as const) : ("cancel" as const),
      })),
    });
    this.log.info(
      { name: frame.name, capabilities: frame.capabilities, slots: frame.slots, kept: tasks.size },
      "runner connected",
    );
    dispatcher.register(this);
    // Each continued task's clone details again (a fresh read token): a runner that restarted
    // before its clone finished has nothing else to clone with; an unaccepted assignment is new to
    // the runner and taken (or rejected) like any other. Not awaited: frames go on.
    for (const [taskId, generation] of tasks) {
      void dispatcher.resendAssignment(this, taskId, generation);
    }
  }
}
