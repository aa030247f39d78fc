import { createHash } from "node:crypto";
import type { Db } from "../../db/client.ts";
import type { BudgetSnapshot } from "../core/github-budget.ts";
import {
  type LatencySummary,
  queueTrend,
  rate,
  round,
  type Sample,
  summariseLatency,
  utilisation,
  windowStats,
} from "../core/metrics-math.ts";
import { LANES, type Lane } from "../core/task-states.ts";
import { SAMPLE_METRICS } from "../loops/metrics-sampler.ts";
import {
  aggregateDurations,
  countOutcomes,
  type DurationKind,
  durationsFrom,
  firstEventIdSince,
  type OutcomeCounts,
  queueDepthByLane,
  readSampleSeries,
  runnersWithBusySlots,
  type TrustRow,
  trustByRepository,
} from "../store/metrics.ts";

/** `GET /api/metrics`: what the dashboard charts and an operator reads. */
export interface MetricsReport {
  generated_at: string;
  window: { minutes: number; from: string };
  queue: {
    /** Tasks waiting for a runner: queued, or in backoff before their next attempt. */
    depth: { total: number; by_lane: Record<Lane, number> };
    trend: { direction: "growing" | "shrinking" | "stable"; per_minute: number; change: number };
    window_1h: { max: number | null; avg: number | null; samples: number };
    /** The window's samples, oldest first (one per sampler interval), for charts. */
    series: { at: string; total: number; by_lane: Partial<Record<Lane, number>> }[];
  };
  latency_seconds: Record<DurationKind, { window_1h: LatencySummary; cumulative: LatencySummary }>;
  runners: {
    registered: number;
    online: number;
    utilisation: {
      /** Busy slots / offered slots of the runners online now. */
      current: number | null;
      /** The same over the window, from the samples: a runner online half the time weighs half. */
      window_1h: number | null;
      per_runner: {
        runner_id: string;
        name: string;
        online: boolean;
        slots: number | null;
        busy: number;
        current: number | null;
        window_1h: number | null;
      }[];
    };
  };
  rates: { window_1h: RateFigures; cumulative: RateFigures };
  /**
   * `merge.mode: approve | report`: per repository, the pull requests Conveyor would have merged
   * and how many of them people merged by hand, over all history (repositories with none left out).
   */
  trust: { by_repository: TrustRow[] };
  /**
   * Each GitHub client's request budget (an installation by its id, or `app` for the App's own
   * requests) as this instance last saw it in GitHub's rate-limit headers, ordered by client.
   */
  github_budget: { clients: BudgetSnapshot[] };
}

export interface RateFigures {
  attempts: number;
  failed_attempts: number;
  /** Failed attempts / attempts that ended. */
  failure_rate: number | null;
  merged: number;
  dead: number;
  cancelled: number;
  /** Tasks that died / tasks that reached an outcome of their own (merged or dead). */
  dead_rate: number | null;
}

const WINDOW_MS = 60 * 60_000;
const KINDS: DurationKind[] = ["wait", "run", "end_to_end"];

const rates = (o: OutcomeCounts): RateFigures => ({
  attempts: o.attempts,
  failed_attempts: o.failedAttempts,
  failure_rate: rate(o.failedAttempts, o.attempts),
  merged: o.merged,
  dead: o.dead,
  cancelled: o.cancelled,
  dead_rate: rate(o.dead, o.dead + o.merged),
});

const summary = (a: Awaited<ReturnType<typeof aggregateDurations>>): LatencySummary => ({
  count: a.count,
  p50: round(a.p50),
  p90: round(a.p90),
  p99: round(a.p99),
  mean: round(a.mean),
  max: round(a.max),
});

/**
 * Builds `/api/metrics` from the database alone, so it survives restarts and every instance
 * answers the same. Computed at most once per `cacheMs` however many dashboards poll (concurrent
 * requests share one computation); the all-history figures, which scan `task_events`, at most once
 * per `cumulativeCacheMs`. Each result carries an ETag so a poller that already has it gets a 304.
 */
export function createMetricsReport(deps: {
  db: Db;
  sampleIntervalMs: number;
  onlineWindowMs: number;
  now?: () => number;
  cacheMs?: number;
  cumulativeCacheMs?: number;
  /** The GitHub budget of this instance's clients (absent: an empty list). */
  githubBudget?: () => BudgetSnapshot[];
}) {
  const now = deps.now ?? Date.now;
  const cacheMs = deps.cacheMs ?? 2_000;
  const cumulativeCacheMs = deps.cumulativeCacheMs ?? 60_000;
  let cached: { at: number; value: Promise<{ report: MetricsReport; etag: string }> } | undefined;
  type Cumulative = { latency: Record<DurationKind, LatencySummary>; rates: RateFigures };
  let cumulative: { at: number; value: Cumulative } | undefined;
  let refreshing: Promise<Cumulative> | undefined;
  async function readCumulative() {
    const [wait, run, endToEnd, outcomes] = await Promise.all([
      aggregateDurations(deps.db, "wait"),
      aggregateDurations(deps.db, "run"),
      aggregateDurations(deps.db, "end_to_end"),
      countOutcomes(deps.db, 0),
    ]);
    return {
      latency: { wait: summary(wait), run: summary(run), end_to_end: summary(endToEnd) },
      rates: rates(outcomes),
    };
  }

  /**
   * The all-history figures, refreshed at most once per `cumulativeCacheMs`. Once there is a
   * value, a refresh happens in the background and requests get the last one meanwhile: on a big
   * history the scan takes seconds, and a dashboard should not wait for it every minute.
   */
  function currentCumulative(at: number): Promise<Cumulative> {
    const stale = !cumulative || at - cumulative.at >= cumulativeCacheMs || at < cumulative.at;
    if (stale && !refreshing) {
      const started = readCumulative().then((value) => {
        cumulative = { at, value };
        return value;
      });
      refreshing = started;
      started
        .catch(() => {})
        .finally(() => {
          if (refreshing === started) refreshing = undefined;
        });
    }
    if (cumulative) return Promise.resolve(cumulative.value);
    return refreshing!;
  }

  async function build(at: number): Promise<MetricsReport> {
    const since = new Date(at - WINDOW_MS);
    const fromEvent = await firstEventIdSince(deps.db, since);
    const [
      depth,
      depthSeries,
      slotSeries,
      busySeries,
      runners,
      outcomes,
      trust,
      all,
      ...durations
    ] = await Promise.all([
      queueDepthByLane(deps.db),
      readSampleSeries(deps.db, SAMPLE_METRICS.queueDepth, since),
      readSampleSeries(deps.db, SAMPLE_METRICS.runnerSlots, since),
      readSampleSeries(deps.db, SAMPLE_METRICS.runnerBusy, since),
      runnersWithBusySlots(deps.db),
      countOutcomes(deps.db, fromEvent),
      trustByRepository(deps.db),
      currentCumulative(at),
      ...KINDS.map((kind) => durationsFrom(deps.db, kind, fromEvent)),
    ]);

    const byLane = Object.fromEntries(LANES.map((lane) => [lane, depth[lane] ?? 0])) as Record<
      Lane,
      number
    >;
    const totalSeries = depthSeries.get("") ?? [];
    const laneSeries = new Map(
      LANES.map((lane) => [
        lane,
        new Map((depthSeries.get(`lane=${lane}`) ?? []).map((s) => [s.at, s.value])),
      ]),
    );

    // Utilisation: per runner from its samples over the window; now from its latest sample of
    // slots and the tasks it holds in the database.
    const fresh = at - Math.max(3 * deps.sampleIntervalMs, deps.onlineWindowMs);
    const sum = (samples: Sample[] | undefined) =>
      (samples ?? []).reduce((total, s) => total + s.value, 0);
    let windowBusy = 0;
    let windowSlots = 0;
    let nowBusy = 0;
    let nowSlots = 0;
    const perRunner = runners
      .filter((r) => !r.revoked || slotSeries.has(`runner=${r.runnerId}`))
      .map((r) => {
        const key = `runner=${r.runnerId}`;
        const slots = slotSeries.get(key);
        const busy = busySeries.get(key);
        windowBusy += sum(busy);
        windowSlots += sum(slots);
        const online =
          !r.revoked && r.lastSeenAt !== null && r.lastSeenAt >= at - deps.onlineWindowMs;
        const latest = slots?.at(-1);
        const currentSlots = online && latest && latest.at >= fresh ? latest.value : null;
        if (currentSlots !== null) {
          nowBusy += Math.min(r.busy, currentSlots);
          nowSlots += currentSlots;
        }
        return {
          runner_id: r.runnerId,
          name: r.name,
          online,
          slots: currentSlots,
          busy: r.busy,
          current: currentSlots === null ? null : utilisation(r.busy, currentSlots),
          window_1h: utilisation(sum(busy), sum(slots)),
        };
      });

    return {
      generated_at: new Date(at).toISOString(),
      window: { minutes: WINDOW_MS / 60_000, from: since.toISOString() },
      queue: {
        depth: { total: LANES.reduce((t, lane) => t + byLane[lane], 0), by_lane: byLane },
        trend: (() => {
          const t = queueTrend(totalSeries.slice(-30));
          return { direction: t.direction, per_minute: t.perMinute, change: t.change };
        })(),
        window_1h: windowStats(totalSeries),
        series: totalSeries.map((s) => ({
          at: new Date(s.at).toISOString(),
          total: s.value,
          by_lane: Object.fromEntries(
            LANES.flatMap((lane) => {
              const value = laneSeries.get(lane)?.get(s.at);
              return value === undefined ? [] : [[lane, value]];
            }),
          ),
        })),
      },
      latency_seconds: Object.fromEntries(
        KINDS.map((kind, i) => [
          kind,
          { window_1h: summariseLatency(durations[i] ?? []), cumulative: all.latency[kind] },
        ]),
      ) as MetricsReport["latency_seconds"],
      runners: {
        registered: runners.filter((r) => !r.revoked).length,
        online: perRunner.filter((r) => r.online).length,
        utilisation: {
          current: utilisation(nowBusy, nowSlots),
          window_1h: utilisation(windowBusy, windowSlots),
          per_runner: perRunner,
        },
      },
      rates: { window_1h: rates(outcomes), cumulative: all.rates },
      trust: { by_repository: trust },
      github_budget: { clients: deps.githubBudget?.() ?? [] },
    };
  }

  return {
    /** The report and its ETag, from the cache when it is fresh. */
    get(): Promise<{ report: MetricsReport; etag: string }> {
      const at = now();
      if (!cached || at - cached.at >= cacheMs || at < cached.at) {
        const value = build(at).then((report) => {
          const { generated_at: _, ...stable } = report;
          const etag = `"${createHash("sha1").update(JSON.stringify(stable)).digest("base64url")}"`;
          return { report, etag };
        });
        cached = { at, value };
        value.catch(() => {
          if (cached?.value === value) cached = undefined;
        });
      }
      return cached.value;
    },
  };
}
