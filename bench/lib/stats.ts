/** Order statistics of a set of samples (milliseconds, or whatever unit they were taken in). */
export interface Summary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The nearest-rank percentile of ascending `sorted` samples: the smallest sample with at least
 * `p` % of the samples at or below it. No interpolation, so every reported value was observed.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Rounds for reports: three significant decimals is far below the noise of any benchmark here. */
export function round(value: number, decimals = 3): number {
  if (!Number.isFinite(value)) return value;
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count: sorted.length,
    min: round(sorted[0] ?? Number.NaN),
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN),
  };
}

/** `ours / theirs`, rounded; undefined when either side is missing or zero. */
export function ratio(ours: number | undefined, theirs: number | undefined): number | undefined {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours)) return undefined;
  if (!Number.isFinite(theirs) || theirs === 0) return undefined;
  return round(ours / theirs, 3);
}

/**
 * Every sample, counted per `resolution` (ms): `[value, count]` pairs in ascending order. Keeps
 * tens of thousands of samples small enough to commit, and loses only their order.
 */
export function histogram(samples: readonly number[], resolution = 0.1): [number, number][] {
  const counts = new Map<number, number>();
  for (const sample of samples) {
    const bucket = round(Math.round(sample / resolution) * resolution, 3);
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => a[0] - b[0]);
}
