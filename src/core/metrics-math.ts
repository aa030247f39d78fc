/**
 * The arithmetic behind `/api/metrics` and the queue-growth alert: percentiles, queue trends and
 * utilisation. Pure: numbers in, numbers out; times are milliseconds since the epoch.
 */

/** Percentiles reported for every latency. */
export const PERCENTILES = [50, 90, 99] as const;

export interface LatencySummary {
  /** How many durations the figures are computed from. */
  count: number;
  /** Seconds; null when there is nothing to summarise. */
  p50: number | null;
  p90: number | null;
  p99: number | null;
  mean: number | null;
  max: number | null;
}

/** True for a number that can be a duration or a count: finite and not negative. */
const usable = (value: number) => Number.isFinite(value) && value >= 0;

/**
 * The `p`th percentile (0–100) of ascending `sorted` values by linear interpolation between the
 * closest ranks: the same definition as PostgreSQL's `percentile_cont(p / 100)`, so a figure
 * computed here and one computed by the database agree. Null for no values.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0 || !Number.isFinite(p)) return null;
  const clamped = Math.min(100, Math.max(0, p));
  const rank = (clamped / 100) * (sorted.length - 1);
  const lower = Math.floor(rank);
  const upper = Math.ceil(rank);
  const low = sorted[lower]!;
  const high = sorted[upper]!;
  return low + (high - low) * (rank - lower);
}

/**
 * Count, p50/p90/p99, mean and max of durations in seconds. Values that cannot be durations
 * (negative: a clock step; NaN, infinite) are left out rather than allowed to skew the figures.
 */
export function summariseLatency(values: readonly number[]): LatencySummary {
  const sorted = values.filter(usable).sort((a, b) => a - b);
  if (sorted.length === 0) {
    return { count: 0, p50: null, p90: null, p99: null, mean: null, max: null };
  }
  const sum = sorted.reduce((total, v) => total + v, 0);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    mean: round(sum / sorted.length),
    max: round(sorted.at(-1)!),
  };
}

/** Three decimals: milliseconds for durations, enough for rates. */
export function round(value: number | null): number | null {
  return value === null ? null : Math.round(value * 1000) / 1000;
}

export interface Sample {
  /** Milliseconds since the epoch. */
  at: number;
  value: number;
}

export type TrendDirection = "growing" | "shrinking" | "stable";

export interface QueueTrend {
  /**
   * `growing` when each of the last `checks` samples was above the one before, `shrinking` when
   * each was below, else `stable`: the same reading the queue-growth alert takes.
   */
  direction: TrendDirection;
  /** Least-squares slope over the samples given, in tasks per minute (0 with fewer than two). */
  perMinute: number;
  /** The latest value minus the earliest, over the samples given. */
  change: number;
}

/** Differences between consecutive samples (by time), oldest first. */
export function deltas(samples: readonly Sample[]): number[] {
  const ordered = orderSamples(samples);
  const result: number[] = [];
  for (let i = 1; i < ordered.length; i++) result.push(ordered[i]!.value - ordered[i - 1]!.value);
  return result;
}

/** Samples by time, dropping any that are not finite (a corrupt row must not poison a trend). */
export function orderSamples(samples: readonly Sample[]): Sample[] {
  return samples
    .filter((s) => Number.isFinite(s.at) && Number.isFinite(s.value))
    .sort((a, b) => a.at - b.at);
}

/**
 * True when the last `checks` changes between consecutive samples all satisfy `test`: e.g. three
 * increases in a row. Fewer samples than that never qualify.
 */
export function lastChangesAll(
  samples: readonly Sample[],
  checks: number,
  test: (delta: number) => boolean,
): boolean {
  if (!Number.isInteger(checks) || checks < 1) return false;
  const changes = deltas(samples);
  if (changes.length < checks) return false;
  return changes.slice(-checks).every(test);
}

/** Direction from the last `checks` changes, slope and net change over all samples given. */
export function queueTrend(samples: readonly Sample[], checks = 3): QueueTrend {
  const ordered = orderSamples(samples);
  const direction: TrendDirection = lastChangesAll(ordered, checks, (d) => d > 0)
    ? "growing"
    : lastChangesAll(ordered, checks, (d) => d < 0)
      ? "shrinking"
      : "stable";
  const change = ordered.length >= 2 ? ordered.at(-1)!.value - ordered[0]!.value : 0;
  return { direction, perMinute: round(slopePerMinute(ordered)) ?? 0, change };
}

/** Least-squares slope of value over time, per minute; 0 when time does not vary. */
function slopePerMinute(ordered: readonly Sample[]): number {
  if (ordered.length < 2) return 0;
  const t0 = ordered[0]!.at;
  const xs = ordered.map((s) => (s.at - t0) / 60_000);
  const ys = ordered.map((s) => s.value);
  const meanX = xs.reduce((a, b) => a + b, 0) / xs.length;
  const meanY = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - meanX) * (ys[i]! - meanY);
    den += (xs[i]! - meanX) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface WindowStats {
  /** Null when there are no samples in the window. */
  max: number | null;
  avg: number | null;
  samples: number;
}

/** Max and mean of the sample values (samples are taken at a fixed interval, so a plain mean). */
export function windowStats(samples: readonly Sample[]): WindowStats {
  const values = orderSamples(samples).map((s) => s.value);
  if (values.length === 0) return { max: null, avg: null, samples: 0 };
  return {
    max: Math.max(...values),
    avg: round(values.reduce((a, b) => a + b, 0) / values.length),
    samples: values.length,
  };
}

/**
 * Busy slots over offered slots, 0–1; null when nothing was offered. Inputs are sums over samples
 * (each sample one runner at one tick), so a runner online for half the window weighs half.
 */
export function utilisation(busy: number, slots: number): number | null {
  if (!usable(busy) || !usable(slots) || slots === 0) return null;
  return round(Math.min(1, busy / slots));
}

/** `part / whole` as a fraction 0–1; null when `whole` is 0 (no rate without events). */
export function rate(part: number, whole: number): number | null {
  if (!usable(part) || !usable(whole) || whole === 0) return null;
  return round(Math.min(1, part / whole));
}
