import { describe, expect, it } from "vitest";
import { deepFreeze, finiteNumbers } from "../../test/helpers/state-checks.ts";
import {
  createRateLimitState,
  FRAME_TIERS,
  frameTier,
  lastRateLimitedAt,
  RATE_LIMIT_LADDER_MS,
  type RateLimitDecision,
  type RateLimitState,
  runnerLimits,
  TIER_LIMITS_PER_MINUTE,
  takeToken,
  tokensAvailable,
  wasRateLimitedWithin,
} from "./rate-limit.ts";
import { RATE_TIERS, type RateTier } from "./task-states.ts";

const T0 = 1_767_268_800_000; // 2026-01-01T12:00:00Z
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

/** Takes at `now` until the bucket refuses; returns the state before that refusal and the count. */
function drain(state: RateLimitState, tier: RateTier, now: number) {
  let taken = 0;
  for (;;) {
    const decision = takeToken(state, tier, now);
    if (!decision.allowed || taken > 10_000) return { state, taken };
    state = decision.state;
    taken += 1;
  }
}

/** A state whose `tier` bucket has just been emptied at `now`. */
function drained(tier: RateTier, now: number, state = createRateLimitState()): RateLimitState {
  return drain(state, tier, now).state;
}

function refused(decision: RateLimitDecision) {
  if (decision.allowed) throw new Error("expected a refusal");
  return decision;
}

describe("frame tiers", () => {
  it.each([
    ["hello", "heavy"],
    ["accept", "normal"],
    ["reject", "normal"],
    ["heartbeat", "light"],
    ["log", "normal"],
    ["complete", "normal"],
    ["fail", "normal"],
    ["drain", "heavy"],
    ["ping", "light"],
    // hostile: unknown, server-only, misspelt, prototype keys and non-strings are all heavy
    ["pong", "heavy"],
    ["welcome", "heavy"],
    ["", "heavy"],
    ["PING", "heavy"],
    [" ping", "heavy"],
    ["__proto__", "heavy"],
    ["constructor", "heavy"],
    ["toString", "heavy"],
    ["hasOwnProperty", "heavy"],
    [undefined, "heavy"],
    [null, "heavy"],
    [42, "heavy"],
    [["ping"], "heavy"],
    [{ toString: () => "ping" }, "heavy"],
  ] as [unknown, RateTier][])("%j draws from %s", (type, tier) => {
    expect(frameTier(type)).toBe(tier);
  });

  it("classifies exactly the runner → server frame types", () => {
    expect(Object.keys(FRAME_TIERS).sort()).toEqual(
      ["accept", "complete", "drain", "fail", "heartbeat", "hello", "log", "ping", "reject"].sort(),
    );
    expect(new Set(Object.values(FRAME_TIERS))).toEqual(new Set(RATE_TIERS));
  });
});

describe("token buckets", () => {
  it.each([
    ["light", 120],
    ["normal", 60],
    ["heavy", 10],
  ] as [RateTier, number][])("a fresh %s bucket allows a burst of exactly %i", (tier, capacity) => {
    expect(TIER_LIMITS_PER_MINUTE[tier]).toBe(capacity);
    const { state, taken } = drain(createRateLimitState(), tier, T0);
    expect(taken).toBe(capacity);
    expect(tokensAvailable(state, tier, T0)).toBe(0);
    expect(takeToken(state, tier, T0).allowed).toBe(false);
  });

  it.each([
    // tier, ms after emptying, tokens available
    ["light", 499, 0],
    ["light", 500, 1],
    ["light", 1_000, 2],
    ["light", 30_000, 60],
    ["light", 59_999, 119],
    ["light", MIN, 120],
    ["normal", 999, 0],
    ["normal", 1_000, 1],
    ["normal", 59_999, 59],
    ["normal", MIN, 60],
    ["heavy", 5_999, 0],
    ["heavy", 6_000, 1],
    ["heavy", 30_000, 5],
    ["heavy", MIN, 10],
    // never beyond capacity, however long the runner was quiet
    ["heavy", 2 * MIN, 10],
    ["light", DAY, 120],
    ["normal", 1e15, 60],
    ["heavy", Number.MAX_SAFE_INTEGER - T0, 10],
  ] as [RateTier, number, number][])(
    "an emptied %s bucket has refilled after %i ms to %i tokens",
    (tier, after, tokens) => {
      const state = drained(tier, T0);
      expect(tokensAvailable(state, tier, T0 + after)).toBe(tokens);
      expect(drain(state, tier, T0 + after).taken).toBe(tokens);
    },
  );

  it("refills continuously: small steps add up to exactly the same tokens as one big step", () => {
    let state = drained("heavy", T0);
    // 3 × 2 000 ms is one token; in floats 1/3 + 1/3 + 1/3 might not reach it
    for (const at of [2_000, 4_000]) {
      const decision = takeToken(state, "heavy", T0 + at);
      expect(decision.allowed).toBe(false);
      state = decision.state;
    }
    expect(takeToken(state, "heavy", T0 + 6_000).allowed).toBe(true);
  });

  it("spends a refilled token once", () => {
    const state = drained("normal", T0);
    const first = takeToken(state, "normal", T0 + 1_000);
    expect(first.allowed).toBe(true);
    expect(takeToken(first.state, "normal", T0 + 1_000).allowed).toBe(false);
  });

  it("keeps tiers apart", () => {
    const state = drained("heavy", T0);
    expect(takeToken(state, "heavy", T0).allowed).toBe(false);
    expect(drain(state, "light", T0).taken).toBe(120);
    expect(drain(state, "normal", T0).taken).toBe(60);
  });

  it("never changes the state it is given", () => {
    const state = deepFreeze(drained("light", T0));
    const snapshot = structuredClone(state);
    takeToken(state, "light", T0);
    takeToken(state, "light", T0 + MIN);
    takeToken(state, "heavy", T0);
    expect(state).toEqual(snapshot);
  });

  it("honours other limits when given", () => {
    const limits = { light: 2, normal: 1, heavy: 1 };
    let state = createRateLimitState();
    for (const expected of [true, true, false]) {
      const decision = takeToken(state, "light", T0, limits);
      expect(decision.allowed).toBe(expected);
      state = decision.state;
    }
    expect(refused(takeToken(state, "light", T0, limits)).retryAfterMs).toBe(30_000);
    expect(tokensAvailable(state, "light", T0 + 30_000, limits)).toBe(1);
  });
});

describe("retry_after ladder", () => {
  it("climbs 1, 2, 5, 10, 30 s and stays at 30 s", () => {
    let state = drained("light", T0);
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const decision = refused(takeToken(state, "light", T0));
      expect(decision.refusals).toBe(i + 1);
      waits.push(decision.retryAfterMs);
      state = decision.state;
    }
    expect(waits).toEqual([1_000, 2_000, 5_000, 10_000, 30_000, 30_000, 30_000, 30_000]);
    expect(RATE_LIMIT_LADDER_MS).toEqual([1_000, 2_000, 5_000, 10_000, 30_000]);
  });

  it.each([
    // heavy refills one token per 6 s: the wait is max(ladder step, time until a token)
    [[0], 6_000],
    [[0, 4_000], 2_000],
    [[0, 4_000, 5_000], 5_000],
    [[0, 5_999], 2_000],
    [[0, 1_000, 2_000], 5_000],
    [[0, 0, 0, 0], 10_000],
  ] as [number[], number][])(
    "heavy refusals at %j ms after emptying: the last waits %i ms",
    (times, wait) => {
      let state = drained("heavy", T0);
      let last: ReturnType<typeof refused> | undefined;
      for (const at of times) {
        last = refused(takeToken(state, "heavy", T0 + at));
        state = last.state;
      }
      expect(last?.retryAfterMs).toBe(wait);
    },
  );

  it("never tells the runner to come back before a token is there", () => {
    const limits = { light: 120, normal: 60, heavy: 1 };
    const first = refused(takeToken(drain(createRateLimitState(), "heavy", T0).state, "heavy", T0));
    expect(first.retryAfterMs).toBe(6_000);
    let state = createRateLimitState();
    state = (takeToken(state, "heavy", T0, limits) as { state: RateLimitState }).state;
    // 1/min: the next token is 60 s away, longer than the ladder's top step
    const slow = refused(takeToken(state, "heavy", T0 + 1, limits));
    expect(slow.retryAfterMs).toBe(MIN - 1);
    const after = takeToken(slow.state, "heavy", T0 + slow.retryAfterMs + 1, limits);
    expect(after.allowed).toBe(true);
  });

  it.each([
    // ms after the first refusal when the bucket is emptied and refused again, step expected
    [1_000, 2_000],
    [59_999, 2_000],
    [MIN, 1_000],
    [10 * MIN, 1_000],
  ])("a refusal %i ms after the last one gets the %i ms step", (gap, wait) => {
    const first = refused(takeToken(drained("light", T0), "light", T0));
    const again = drained("light", T0 + gap, first.state);
    expect(refused(takeToken(again, "light", T0 + gap)).retryAfterMs).toBe(wait);
  });

  it("does not reset the streak on a successful take", () => {
    let state = drained("light", T0);
    state = refused(takeToken(state, "light", T0)).state;
    const through = takeToken(state, "light", T0 + 1_000);
    expect(through.allowed).toBe(true);
    const after = drained("light", T0 + 1_000, through.state);
    expect(refused(takeToken(after, "light", T0 + 1_000)).retryAfterMs).toBe(2_000);
  });

  it("keeps a streak per tier, so a log flood does not slow heartbeats", () => {
    let state = drained("normal", T0);
    for (let i = 0; i < 5; i++) state = refused(takeToken(state, "normal", T0)).state;
    state = drained("light", T0, state);
    const heartbeat = refused(takeToken(state, "light", T0));
    expect(heartbeat.retryAfterMs).toBe(1_000);
    expect(heartbeat.refusals).toBe(1);
  });

  it("explains the refusal", () => {
    const decision = refused(takeToken(drained("heavy", T0), "heavy", T0));
    expect(decision.reason).toBe(
      "heavy frames are limited to 10/min; refusal 1 in a row, retry in 6 s",
    );
  });
});

describe("recently rate limited", () => {
  it.each([
    // refusal time (null: none), check time, window, expected
    [null, T0, MIN, false],
    [T0, T0, MIN, true],
    [T0, T0 + 59_999, MIN, true],
    [T0, T0 + MIN, MIN, false],
    [T0, T0 + DAY, MIN, false],
    [T0, T0 + 9_999, 10_000, true],
    [T0, T0 + 10_000, 10_000, false],
    // hostile: a clock behind the refusal, or no number at all, fails closed
    [T0, T0 - 5_000, MIN, true],
    [T0, 0, MIN, true],
    [T0, Number.NaN, MIN, true],
    [T0, Number.NEGATIVE_INFINITY, MIN, true],
  ] as [number | null, number, number, boolean][])(
    "refused at %s, asked at %s within %i ms: %s",
    (refusedAt, now, windowMs, expected) => {
      let state = createRateLimitState();
      if (refusedAt !== null) {
        state = refused(takeToken(drained("heavy", refusedAt), "heavy", refusedAt)).state;
      }
      expect(wasRateLimitedWithin(state, now, windowMs)).toBe(expected);
    },
  );

  it("defaults to 60 s", () => {
    const state = refused(takeToken(drained("light", T0), "light", T0)).state;
    expect(wasRateLimitedWithin(state, T0 + 59_999)).toBe(true);
    expect(wasRateLimitedWithin(state, T0 + MIN)).toBe(false);
  });

  it("is not set by busy but allowed traffic, and remembers the latest refusal of any tier", () => {
    const busy = drained("light", T0);
    expect(wasRateLimitedWithin(busy, T0)).toBe(false);
    expect(lastRateLimitedAt(busy)).toBeNull();
    let state = refused(takeToken(busy, "light", T0)).state;
    state = refused(takeToken(drained("heavy", T0 + 30_000, state), "heavy", T0 + 30_000)).state;
    expect(lastRateLimitedAt(state)).toBe(T0 + 30_000);
    expect(wasRateLimitedWithin(state, T0 + 89_999)).toBe(true);
    expect(wasRateLimitedWithin(state, T0 + 90_000)).toBe(false);
  });
});

describe("hostile clocks", () => {
  it("does not mint tokens when time goes backwards and forwards again", () => {
    let state = drained("light", T0);
    for (const at of [T0 - MIN, T0 - DAY, 0, -1e15, T0]) {
      const decision = takeToken(state, "light", at);
      expect(decision.allowed).toBe(false);
      state = decision.state;
    }
    expect(tokensAvailable(state, "light", T0 + 499)).toBe(0);
    expect(tokensAvailable(state, "light", T0 + 500)).toBe(1);
  });

  it("records a refusal at a backwards time as the latest time seen", () => {
    let state = refused(takeToken(drained("heavy", T0), "heavy", T0)).state;
    state = refused(takeToken(state, "heavy", T0 - 2 * MIN)).state;
    expect(lastRateLimitedAt(state)).toBe(T0);
    expect(wasRateLimitedWithin(state, T0 + 30_000)).toBe(true);
    // and the streak goes on: third refusal, 5 s step (a token is 5 s away too)
    expect(refused(takeToken(state, "heavy", T0 + 1_000)).retryAfterMs).toBe(5_000);
  });

  it("counts a backwards step as no time passing for the retry hint", () => {
    const state = drained("heavy", T0);
    const decision = refused(takeToken(state, "heavy", T0 - MIN));
    expect(decision.retryAfterMs).toBe(6_000);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    "treats a `now` of %s as no time passing and never stores it",
    (bad) => {
      let state = drained("light", T0);
      const decision = refused(takeToken(state, "light", bad));
      expect(Number.isInteger(decision.retryAfterMs)).toBe(true);
      expect(decision.retryAfterMs).toBe(1_000);
      expect(finiteNumbers(decision.state)).toBe(true);
      state = decision.state;
      expect(takeToken(state, "light", T0 + 500).allowed).toBe(true);
      expect(tokensAvailable(state, "light", bad)).toBe(0);
    },
  );

  it("copes with a non-finite `now` on a fresh state", () => {
    const decision = takeToken(createRateLimitState(), "heavy", Number.NaN);
    expect(decision.allowed).toBe(true);
    expect(finiteNumbers(decision.state)).toBe(true);
    expect(drain(decision.state, "heavy", T0).taken).toBe(10);
  });

  it("survives a huge gap with finite, whole answers", () => {
    let state = drained("normal", T0);
    const far = Number.MAX_SAFE_INTEGER;
    const { state: after, taken } = drain(state, "normal", far);
    expect(taken).toBe(60);
    state = after;
    const decision = refused(takeToken(state, "normal", far));
    expect(decision.retryAfterMs).toBe(1_000);
    expect(finiteNumbers(decision.state)).toBe(true);
  });

  it("answers with whole milliseconds on a fractional clock", () => {
    const state = drained("heavy", 1_000.25);
    const decision = refused(takeToken(state, "heavy", 1_500.75));
    expect(Number.isInteger(decision.retryAfterMs)).toBe(true);
    expect(decision.retryAfterMs).toBe(5_500);
  });
});

describe("limits sized to a runner's slots", () => {
  it("keeps the seed limits while the filled slots' heartbeats fit in them", () => {
    // 15 s heartbeats: 4 a minute a slot, 8 doubled; 15 slots need 120.
    expect(runnerLimits(TIER_LIMITS_PER_MINUTE, 1, 15_000)).toBe(TIER_LIMITS_PER_MINUTE);
    expect(runnerLimits(TIER_LIMITS_PER_MINUTE, 15, 15_000)).toBe(TIER_LIMITS_PER_MINUTE);
  });

  it("raises only the light tier to twice the heartbeats of the filled slots", () => {
    expect(runnerLimits(TIER_LIMITS_PER_MINUTE, 32, 15_000)).toEqual({
      ...TIER_LIMITS_PER_MINUTE,
      light: 256,
    });
    // A 300 ms heartbeat (the tests' timings) with 2 slots: 2 × 200 × 2.
    expect(runnerLimits(TIER_LIMITS_PER_MINUTE, 2, 300).light).toBe(800);
    // An interval that does not divide a minute rounds the heartbeats up.
    expect(runnerLimits(TIER_LIMITS_PER_MINUTE, 20, 7_000).light).toBe(2 * 20 * 9);
  });

  it("lets a runner spend its sized light tier before refusing", () => {
    const limits = runnerLimits(TIER_LIMITS_PER_MINUTE, 32, 15_000);
    let state = createRateLimitState();
    for (let i = 0; i < 256; i++) {
      const taken = takeToken(state, "light", 1_000, limits);
      expect(taken.allowed).toBe(true);
      state = taken.state;
    }
    expect(takeToken(state, "light", 1_000, limits).allowed).toBe(false);
  });
});
