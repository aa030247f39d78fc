import { formatDuration } from "./task-machine.ts";
import type { RateTier } from "./task-states.ts";

/**
 * Per-runner token buckets for frames on the runner WebSocket. Each runner has one
 * bucket per tier; a bucket holds as many tokens as its tier allows per minute and refills
 * continuously. A refused frame is answered with `rate_limited {retry_after_ms}`.
 *
 * Time is a `now` argument in milliseconds. Pass a monotonic clock (for example
 * `performance.timeOrigin + performance.now()`): the state remembers the latest time it has seen and
 * treats an earlier or non-finite `now` as that time, so a clock stepping back never mints tokens
 * (it only delays the refill until the clock has caught up, which fails closed).
 */

/** Seed numbers: frames per minute, which is also the bucket's capacity (the largest burst). */
export const TIER_LIMITS_PER_MINUTE = {
  light: 120,
  normal: 60,
  heavy: 10,
} as const satisfies Record<RateTier, number>;

/** Frames per minute by tier. Every value must be a positive finite number. */
export type TierLimits = Readonly<Record<RateTier, number>>;

/**
 * The tier each runner → server frame type draws from. Frequent, cheap frames are light; a new
 * session is heavy. Results (`complete`, `fail`) are normal: there is at most one per assignment,
 * and a multi-slot runner finishing short tasks must not be held back by them.
 */
export const FRAME_TIERS = {
  hello: "heavy",
  accept: "normal",
  reject: "normal",
  heartbeat: "light",
  log: "normal",
  complete: "normal",
  fail: "normal",
  drain: "heavy",
  ping: "light",
} as const satisfies Record<string, RateTier>;

export type RunnerFrameType = keyof typeof FRAME_TIERS;

/**
 * The tier a frame draws from, by its `type`. Anything else (an unknown, misspelt or non-string
 * type, or a key inherited from `Object.prototype` such as `"constructor"`) counts as heavy, so
 * garbage is the most expensive thing a runner can send.
 */
export function frameTier(type: unknown): RateTier {
  if (typeof type === "string" && Object.hasOwn(FRAME_TIERS, type)) {
    return FRAME_TIERS[type as RunnerFrameType];
  }
  return "heavy";
}

/**
 * One runner's limits: the light tier holds at least twice the heartbeats its filled slots send at
 * the server's `heartbeat_ms` (one per task per interval), so a runner that does what `welcome`
 * asks, pings included, is never refused however many slots it fills.
 */
export function runnerLimits(base: TierLimits, slots: number, heartbeatMs: number): TierLimits {
  const heartbeats = 2 * slots * Math.ceil(60_000 / heartbeatMs);
  return heartbeats > base.light ? { ...base, light: heartbeats } : base;
}

/** `retry_after_ms` for the 1st, 2nd, … refusal of a streak; later refusals get the last step. */
export const RATE_LIMIT_LADDER_MS = [1_000, 2_000, 5_000, 10_000, 30_000] as const;

/**
 * A refusal streak ends after this long without a refusal in the tier, and the dispatcher offers no
 * work to a runner refused within it.
 */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/**
 * Bucket credit is kept in token·ms/min: a frame costs 60 000 and credit accrues at the tier's
 * per-minute number each millisecond. With whole-millisecond clocks every step is integer
 * arithmetic, so "exactly one token after 500 ms" holds exactly, with no float drift.
 */
const TOKEN_COST = 60_000;

export interface TokenBucket {
  /** Credit in token·ms/min (see `TOKEN_COST`): `credit / 60 000` tokens. */
  readonly credit: number;
  /** The time up to which credit has been added. */
  readonly refilledAt: number;
  /** Refusals in the current streak (0 when none within `RATE_LIMIT_WINDOW_MS`). */
  readonly refusals: number;
  readonly lastRefusalAt: number | null;
}

/** One runner's buckets. A tier without a bucket is full and has never refused. */
export interface RateLimitState {
  /** The latest `now` this state has seen; the state's clock never moves backwards. */
  readonly seenAt: number | null;
  readonly buckets: Readonly<Partial<Record<RateTier, TokenBucket>>>;
}

export type RateLimitDecision =
  | { allowed: true; state: RateLimitState }
  | {
      allowed: false;
      state: RateLimitState;
      /** For `rate_limited {retry_after_ms}`: a whole number of ms, at least 1 000. */
      retryAfterMs: number;
      /** Position in the current refusal streak, starting at 1. */
      refusals: number;
      reason: string;
    };

/** A runner's buckets before its first frame: every tier full. */
export function createRateLimitState(): RateLimitState {
  return { seenAt: null, buckets: {} };
}

/**
 * Spend one token of `tier` at `now`, or refuse. A refusal's `retryAfterMs` is the streak's step on
 * the 1/2/5/10/30 s ladder, but never less than the time until a token is actually available.
 *
 * The streak is per tier, so a flood of `log` frames cannot push the wait for a `heartbeat` to
 * 30 s and cost the runner its lease. It ends only after `RATE_LIMIT_WINDOW_MS` without a refusal
 * in that tier, not on the next successful take: a runner that ignores `retry_after_ms` and keeps
 * sending gets a frame through whenever a token refills, and resetting then would keep it on the
 * lowest step forever. The ladder is advice to the runner; the bucket alone decides what passes.
 */
export function takeToken(
  state: RateLimitState,
  tier: RateTier,
  now: number,
  limits: TierLimits = TIER_LIMITS_PER_MINUTE,
): RateLimitDecision {
  const t = clockTime(state.seenAt, now);
  const perMinute = limits[tier];
  const bucket = refill(state.buckets[tier], t, perMinute);
  const streak = isStreakAlive(bucket, t) ? bucket.refusals : 0;

  if (bucket.credit >= TOKEN_COST) {
    const next = { ...bucket, credit: bucket.credit - TOKEN_COST, refusals: streak };
    return { allowed: true, state: withBucket(state, t, tier, next) };
  }

  const refusals = streak + 1;
  const step = RATE_LIMIT_LADDER_MS[Math.min(refusals, RATE_LIMIT_LADDER_MS.length) - 1]!;
  const untilToken = Math.ceil((TOKEN_COST - bucket.credit) / perMinute);
  const retryAfterMs = Math.max(step, untilToken);
  const next = { ...bucket, refusals, lastRefusalAt: t };
  return {
    allowed: false,
    state: withBucket(state, t, tier, next),
    retryAfterMs,
    refusals,
    reason: `${tier} frames are limited to ${perMinute}/min; refusal ${refusals} in a row, retry in ${formatDuration(retryAfterMs)}`,
  };
}

/** Whole tokens `tier` could spend at `now` (for metrics and tests; does not change the state). */
export function tokensAvailable(
  state: RateLimitState,
  tier: RateTier,
  now: number,
  limits: TierLimits = TIER_LIMITS_PER_MINUTE,
): number {
  const bucket = refill(state.buckets[tier], clockTime(state.seenAt, now), limits[tier]);
  return Math.floor(bucket.credit / TOKEN_COST);
}

/** When any tier last refused a frame, or null if none ever did (e.g. to store on the runner row). */
export function lastRateLimitedAt(state: RateLimitState): number | null {
  let latest: number | null = null;
  for (const bucket of Object.values(state.buckets)) {
    const at = bucket?.lastRefusalAt ?? null;
    if (at !== null && (latest === null || at > latest)) latest = at;
  }
  return latest;
}

/**
 * Whether any tier refused a frame less than `windowMs` before `now`. The dispatcher offers no work
 * to such a runner. A `now` earlier than the refusal counts as within the window (fails closed).
 */
export function wasRateLimitedWithin(
  state: RateLimitState,
  now: number,
  windowMs: number = RATE_LIMIT_WINDOW_MS,
): boolean {
  const last = lastRateLimitedAt(state);
  if (last === null) return false;
  return clockTime(state.seenAt, now) - last < windowMs;
}

/** `now`, but never earlier than what the state has already seen, and never NaN or ±Infinity. */
function clockTime(seenAt: number | null, now: number): number {
  if (!Number.isFinite(now)) return seenAt ?? 0;
  return seenAt === null ? now : Math.max(seenAt, now);
}

function refill(bucket: TokenBucket | undefined, t: number, perMinute: number): TokenBucket {
  const capacity = perMinute * TOKEN_COST;
  if (!bucket) return { credit: capacity, refilledAt: t, refusals: 0, lastRefusalAt: null };
  // t comes from clockTime(), so it is finite and never before refilledAt: elapsed is never negative
  // or NaN. A huge gap may make the product Infinity, which min() caps at a full bucket.
  const elapsed = t - bucket.refilledAt;
  const credit = Math.min(capacity, bucket.credit + elapsed * perMinute);
  return { ...bucket, credit, refilledAt: t };
}

function isStreakAlive(bucket: TokenBucket, t: number): boolean {
  return bucket.lastRefusalAt !== null && t - bucket.lastRefusalAt < RATE_LIMIT_WINDOW_MS;
}

function withBucket(
  state: RateLimitState,
  t: number,
  tier: RateTier,
  bucket: TokenBucket,
): RateLimitState {
  return { seenAt: t, buckets: { ...state.buckets, [tier]: bucket } };
}
