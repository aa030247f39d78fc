import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { LANES } from "../core/task-states.ts";
import { pruneErrorEvents } from "../store/error-events.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import {
  insertSamples,
  latestEventId,
  markRunnersSeen,
  pruneSamples,
  queueDepthByLane,
  readEventCursor,
  type SampleRow,
  type TailEvent,
  tailEvents,
  writeEventCursor,
} from "../store/metrics.ts";

/** Series the sampler writes to `metric_samples`. */
export const SAMPLE_METRICS = {
  /** Tasks waiting (queued or in backoff); labels `lane=<lane>`, '' for all lanes. */
  queueDepth: "queue_depth",
  /** Slots a connected runner offers; labels `runner=<runner id>`. */
  runnerSlots: "runner_slots",
  /** Slots in use on a connected runner; labels `runner=<runner id>`. */
  runnerBusy: "runner_busy",
} as const;

/** Samples older than this are deleted (charts show at most a day). */
export const SAMPLE_RETENTION_MS = 2 * 24 * 60 * 60_000;
/** Error events older than this are deleted. */
export const ERROR_RETENTION_MS = 30 * 24 * 60 * 60_000;

/** A socket on this instance, as the sampler sees it. */
export interface SampledConnection {
  runnerId: string;
  slots: number;
  tasks: { size: number };
}

export interface MetricsSamplerDeps {
  db: Db;
  logger: Logger;
  instanceId: string;
  /** The runner sockets this instance holds. */
  connections: () => readonly SampledConnection[];
  /** Receives every task transition once (across instances): histograms and counters. */
  observe: (event: TailEvent) => void;
  /** Sampling interval; leases last a few of them, so a dead holder is replaced soon. */
  sampleIntervalMs: number;
  tickIntervalMs: number;
  now?: () => Date;
  /** How old an event must be before the tail reads it (default 2 s); see `tailEvents`. */
  settleMs?: number;
}

const TAIL_LEASE = "metrics-tail";
const SAMPLE_LEASE = "metrics-sampler";
const TAIL_BATCH = 500;
const TAIL_BATCHES_PER_TICK = 20;
const PRUNE_EVERY_MS = 10 * 60_000;

/**
 * The metrics' background work, in two cadences:
 *
 * - `tick` (every few seconds, every instance): stamps the runners whose sockets this instance
 *   holds as seen (so "online" is known everywhere), and, on the one instance holding the tail
 *   lease, feeds new task transitions to the histograms exactly once, keeping its place in the
 *   database so a successor carries on where it stopped;
 * - `sample` (every 30 s): each instance writes its runners' slots and busy slots; the one holding
 *   the sampler lease writes queue depth by lane (one series however many instances) and prunes.
 */
export function createMetricsSampler(deps: MetricsSamplerDeps) {
  const now = deps.now ?? (() => new Date());
  const settleMs = deps.settleMs ?? 2_000;
  const tailLeaseMs = Math.max(30_000, deps.tickIntervalMs * 5);
  const sampleLeaseMs = Math.max(60_000, deps.sampleIntervalMs * 3);
  let lastPrune = 0;
  let holdsTail = false;
  let holdsSampler = false;

  async function tail(): Promise<number> {
    holdsTail = await tryAcquireLease(deps.db, TAIL_LEASE, deps.instanceId, tailLeaseMs);
    if (!holdsTail) return 0;
    let cursor = await readEventCursor(deps.db);
    if (cursor === undefined) {
      // The first tail ever starts at the present: history is in /api/metrics, not replayed here.
      cursor = await latestEventId(deps.db);
      await writeEventCursor(deps.db, cursor);
    }
    let observed = 0;
    for (let batch = 0; batch < TAIL_BATCHES_PER_TICK; batch++) {
      const events = await tailEvents(deps.db, cursor, settleMs, TAIL_BATCH);
      if (events.length === 0) break;
      for (const event of events) deps.observe(event);
      cursor = events.at(-1)!.eventId;
      observed += events.length;
      await writeEventCursor(deps.db, cursor);
      if (events.length < TAIL_BATCH) break;
    }
    return observed;
  }

  return {
    /** Runner presence, then the event tail; returns how many transitions were observed. */
    async tick(): Promise<number> {
      const ids = [...new Set(deps.connections().map((c) => c.runnerId))];
      await markRunnersSeen(deps.db, ids, now());
      return tail();
    },

    /** Returns whether this instance wrote the queue's samples (it holds the sampler lease). */
    async sample(): Promise<boolean> {
      const at = now();
      const perRunner = new Map<string, { slots: number; busy: number }>();
      for (const c of deps.connections()) {
        const entry = perRunner.get(c.runnerId) ?? { slots: 0, busy: 0 };
        entry.slots += c.slots;
        entry.busy += c.tasks.size;
        perRunner.set(c.runnerId, entry);
      }
      const rows: SampleRow[] = [...perRunner].flatMap(([runnerId, s]) => [
        { metric: SAMPLE_METRICS.runnerSlots, labels: `runner=${runnerId}`, at, value: s.slots },
        { metric: SAMPLE_METRICS.runnerBusy, labels: `runner=${runnerId}`, at, value: s.busy },
      ]);
      holdsSampler = await tryAcquireLease(deps.db, SAMPLE_LEASE, deps.instanceId, sampleLeaseMs);
      if (holdsSampler) {
        const depth = await queueDepthByLane(deps.db);
        const total = LANES.reduce((sum, lane) => sum + (depth[lane] ?? 0), 0);
        rows.push({ metric: SAMPLE_METRICS.queueDepth, labels: "", at, value: total });
        for (const lane of LANES) {
          rows.push({
            metric: SAMPLE_METRICS.queueDepth,
            labels: `lane=${lane}`,
            at,
            value: depth[lane] ?? 0,
          });
        }
      }
      await insertSamples(deps.db, rows);
      if (holdsSampler && at.getTime() - lastPrune >= PRUNE_EVERY_MS) {
        lastPrune = at.getTime();
        await pruneSamples(
          deps.db,
          Object.values(SAMPLE_METRICS),
          new Date(at.getTime() - SAMPLE_RETENTION_MS),
        );
        await pruneErrorEvents(deps.db, new Date(at.getTime() - ERROR_RETENTION_MS));
      }
      return holdsSampler;
    },

    /** Hands the leases back so another instance takes over at once. */
    async stop(): Promise<void> {
      try {
        if (holdsTail) await releaseLease(deps.db, TAIL_LEASE, deps.instanceId);
        if (holdsSampler) await releaseLease(deps.db, SAMPLE_LEASE, deps.instanceId);
      } catch (error) {
        deps.logger.warn({ err: error }, "could not release the metrics leases");
      }
    },
  };
}
