import { Buffer } from "node:buffer";
import type { Logger } from "pino";
import { z } from "zod";
import type { Database } from "../../db/client.ts";
import type { RunnerConnection } from "../dispatch/dispatcher.ts";

/**
 * NOTIFY channel on which instances share what only a runner's own instance knows: which runners
 * hold a socket there, the stage of each task's last heartbeat, and the end of its output.
 */
export const DASHBOARD_CHANNEL = "conveyor_dashboard";

/** A runner socket as the dashboard shows it. */
export interface RunnerPresence {
  runner_id: string;
  name: string;
  version: string | null;
  capabilities: string[];
  slots: number;
  busy: number;
  draining: boolean;
  connected_at: string;
}

/** What the latest heartbeat said about a task, and the end of its output. */
export interface TaskLive {
  task_id: string;
  generation: number;
  runner_id: string;
  stage: string | null;
  message: string | null;
  /** When the heartbeat arrived (ISO 8601). */
  at: string | null;
  tail: string | null;
}

const Presence = z.object({
  runner_id: z.string(),
  name: z.string(),
  version: z.string().nullable(),
  capabilities: z.array(z.string()),
  slots: z.number(),
  busy: z.number(),
  draining: z.boolean(),
  connected_at: z.string(),
});

const Message = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("watch"), instance: z.string() }),
  z.object({ kind: z.literal("runners"), instance: z.string(), runners: z.array(Presence) }),
  z.object({
    kind: z.literal("task"),
    instance: z.string(),
    task_id: z.string(),
    generation: z.number(),
    runner_id: z.string(),
    stage: z.string().nullable(),
    message: z.string().nullable(),
    at: z.string().nullable(),
    tail: z.string().nullable(),
  }),
]);
type Message = z.infer<typeof Message>;

/** Timings; tests shorten them. */
export interface LiveBoardTimings {
  /** How often local sockets are read while anybody watches (default 1 s). */
  tickMs: number;
  /** How often an instance with viewers says so (default 10 s). */
  beaconMs: number;
  /** How often a task's output is sent to other instances at most (default 2 s). */
  tailEveryMs: number;
}

export const DEFAULT_BOARD_TIMINGS: LiveBoardTimings = {
  tickMs: 1_000,
  beaconMs: 10_000,
  tailEveryMs: 2_000,
};

/** Output characters kept per task and shared with other instances. */
export const SHARED_TAIL_CHARS = 2_000;
const RETAIN_GRACE_MS = 30_000;
// pg_notify refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD_BYTES = 7_500;

export interface LiveBoardDeps {
  database: Pick<Database, "listen" | "notify">;
  instanceId: string;
  /** The runner sockets this instance holds. */
  connections: () => readonly RunnerConnection[];
  logger: Logger;
  timings?: Partial<LiveBoardTimings>;
  now?: () => number;
}

export interface LiveBoard {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** How many dashboards this instance serves now; the board works only while somebody watches. */
  setViewers(count: number): void;
  /** Runner sockets on every instance that shares its board (this one's first). */
  runners(): RunnerPresence[];
  /** The latest stage and output of a task, from whichever instance holds its runner. */
  task(taskId: string): TaskLive | undefined;
  /** Forgets tasks that are no longer in flight. */
  retain(taskIds: ReadonlySet<string>): void;
  /** Reads this instance's sockets now (the hub calls it before building a snapshot). */
  refresh(): void;
}

/**
 * What the dashboard knows that is not in the database. A runner's socket lives on one instance,
 * and only that instance sees its heartbeats and output; a dashboard may be served by any
 * instance. So each instance with viewers announces it (`watch`, every few seconds), and while any
 * other instance watches, every instance sends what its sockets know over NOTIFY: the runners it
 * holds, each task's stage when it changes, and its output at most every few seconds. Nobody
 * watching costs nothing; one instance alone sends only its `watch` beacon.
 */
export function createLiveBoard(deps: LiveBoardDeps): LiveBoard {
  const timings = { ...DEFAULT_BOARD_TIMINGS, ...deps.timings };
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: "dashboard-board" });
  const self = deps.instanceId;
  // What this instance knows about tasks (its own sockets and what others sent), kept after the
  // runner is done with a task so the dashboard still shows how it ended.
  const tasks = new Map<string, TaskLive & { seenAt: number }>();
  const remoteRunners = new Map<string, { at: number; runners: RunnerPresence[] }>();
  const watchers = new Map<string, number>();
  // What was sent last, so only changes go out: per task, and the runner list.
  const sent = new Map<string, { key: string; tailAt: number; tail: string | null }>();
  let sentRunners = { key: "", at: 0 };
  let viewers = 0;
  let lastBeacon = 0;
  let timer: NodeJS.Timeout | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let stopped = false;

  const othersWatch = () => {
    const t = now();
    for (const [instance, until] of watchers) {
      if (until <= t) watchers.delete(instance);
    }
    return watchers.size > 0;
  };

  function send(message: Message): void {
    let payload = JSON.stringify(message);
    if (message.kind === "task") {
      // Escaped or multi-byte output is longer on the wire than in characters: keep its end.
      let tail = message.tail;
      while (tail && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
        tail = tail.slice(Math.ceil(tail.length / 4));
        payload = JSON.stringify({ ...message, tail });
      }
    }
    deps.database.notify(DASHBOARD_CHANNEL, payload).catch((error: unknown) => {
      logger.warn({ err: error }, "dashboard: sharing live state failed");
    });
  }

  function localPresence(): RunnerPresence[] {
    return deps.connections().map((c) => ({
      runner_id: c.runnerId,
      name: c.name,
      version: c.version ?? null,
      capabilities: [...c.capabilities],
      slots: c.slots,
      busy: c.tasks.size,
      draining: c.draining,
      connected_at: c.connectedAt,
    }));
  }

  function refresh(): void {
    const t = now();
    for (const c of deps.connections()) {
      for (const [taskId, generation] of c.tasks) {
        const progress = c.progress?.(taskId);
        const tail = c.logTail(taskId);
        const known = tasks.get(taskId);
        const current = progress?.generation === generation ? progress : undefined;
        tasks.set(taskId, {
          task_id: taskId,
          generation,
          runner_id: c.runnerId,
          stage: current?.stage ?? (known?.generation === generation ? known.stage : null),
          message: current?.message ?? (known?.generation === generation ? known.message : null),
          at: current?.at ?? (known?.generation === generation ? known.at : null),
          tail:
            tail !== undefined
              ? tail.slice(-SHARED_TAIL_CHARS)
              : known?.generation === generation
                ? known.tail
                : null,
          seenAt: t,
        });
      }
    }
  }

  function publish(): void {
    const t = now();
    const presence = localPresence();
    const runnersKey = JSON.stringify(presence);
    // Sent when it changes, and again now and then: other instances forget silent ones.
    if (runnersKey !== sentRunners.key || t - sentRunners.at >= timings.beaconMs) {
      sentRunners = { key: runnersKey, at: t };
      send({ kind: "runners", instance: self, runners: presence });
    }
    const local = new Set(deps.connections().flatMap((c) => [...c.tasks.keys()]));
    for (const taskId of local) {
      const live = tasks.get(taskId);
      if (!live) continue;
      const key = `${live.generation}|${live.stage}|${live.message}`;
      const last = sent.get(taskId);
      const tail = live.tail?.slice(-SHARED_TAIL_CHARS) ?? null;
      const tailDue =
        tail !== (last?.tail ?? null) && t - (last?.tailAt ?? 0) >= timings.tailEveryMs;
      if (last && last.key === key && !tailDue) continue;
      sent.set(taskId, {
        key,
        tailAt: tailDue ? t : (last?.tailAt ?? 0),
        tail: tailDue ? tail : (last?.tail ?? null),
      });
      send({
        kind: "task",
        instance: self,
        task_id: taskId,
        generation: live.generation,
        runner_id: live.runner_id,
        stage: live.stage,
        message: live.message,
        at: live.at,
        tail: tailDue ? tail : (last?.tail ?? null),
      });
    }
    for (const taskId of sent.keys()) if (!local.has(taskId)) sent.delete(taskId);
  }

  function tick(): void {
    timer = undefined;
    if (stopped) return;
    const t = now();
    const watched = othersWatch();
    if (viewers > 0 && t - lastBeacon >= timings.beaconMs) {
      lastBeacon = t;
      send({ kind: "watch", instance: self });
    }
    if (viewers > 0 || watched) refresh();
    if (watched) publish();
    if (viewers > 0 || watched) schedule();
  }

  function schedule(delay = timings.tickMs): void {
    if (stopped || timer) return;
    timer = setTimeout(tick, delay);
    timer.unref();
  }

  function onMessage(payload: string): void {
    let parsed: Message;
    try {
      parsed = Message.parse(JSON.parse(payload));
    } catch {
      logger.warn("dashboard: ignored a malformed live-state message");
      return;
    }
    if (parsed.instance === self) return;
    const t = now();
    switch (parsed.kind) {
      case "watch": {
        const wasWatched = othersWatch();
        watchers.set(parsed.instance, t + timings.beaconMs * 2.5);
        if (!wasWatched) {
          // A new audience: everything goes out again.
          sent.clear();
          sentRunners = { key: "", at: 0 };
          schedule(0);
        }
        return;
      }
      case "runners":
        remoteRunners.set(parsed.instance, { at: t, runners: parsed.runners });
        return;
      case "task": {
        const known = tasks.get(parsed.task_id);
        if (known && known.generation > parsed.generation) return;
        tasks.set(parsed.task_id, {
          task_id: parsed.task_id,
          generation: parsed.generation,
          runner_id: parsed.runner_id,
          stage: parsed.stage,
          message: parsed.message,
          at: parsed.at,
          tail: parsed.tail ?? (known?.generation === parsed.generation ? known.tail : null),
          seenAt: t,
        });
        return;
      }
    }
  }

  return {
    async start() {
      unlisten = await deps.database.listen(DASHBOARD_CHANNEL, onMessage);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await unlisten?.();
      unlisten = undefined;
    },
    setViewers(count) {
      const before = viewers;
      viewers = count;
      if (before === 0 && count > 0) {
        lastBeacon = 0;
        schedule(0);
      }
    },
    runners() {
      const t = now();
      const all = localPresence();
      const seen = new Set(all.map((r) => r.runner_id));
      for (const [instance, entry] of remoteRunners) {
        // Instances refresh their list every beacon; one that stopped sending has gone.
        if (t - entry.at > timings.beaconMs * 3) {
          remoteRunners.delete(instance);
          continue;
        }
        for (const runner of entry.runners) {
          if (!seen.has(runner.runner_id)) all.push(runner);
          seen.add(runner.runner_id);
        }
      }
      return all;
    },
    task(taskId) {
      const live = tasks.get(taskId);
      if (!live) return undefined;
      const { seenAt: _, ...rest } = live;
      return rest;
    },
    retain(taskIds) {
      // A task the database did not list yet (assigned since the query) is kept a while.
      const before = now() - RETAIN_GRACE_MS;
      for (const [taskId, live] of tasks) {
        if (!taskIds.has(taskId) && live.seenAt < before) tasks.delete(taskId);
      }
    },
    refresh,
  };
}
