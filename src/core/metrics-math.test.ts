import { describe, expect, it } from "vitest";
import {
  deltas,
  lastChangesAll,
  percentile,
  queueTrend,
  rate,
  type Sample,
  summariseLatency,
  utilisation,
  windowStats,
} from "./metrics-math.ts";

const series = (...values: number[]): Sample[] =>
  values.map((value, i) => ({ at: 1_000_000 + i * 30_000, value }));

describe("percentile (PostgreSQL's percentile_cont)", () => {
  // Expected values computed with `select percentile_cont(p) within group (order by v)`.
  it.each([
    { values: [1], p: 50, expected: 1 },
    { values: [1], p: 99, expected: 1 },
    { values: [1, 2], p: 50, expected: 1.5 },
    { values: [1, 2, 3, 4], p: 50, expected: 2.5 },
    { values: [1, 2, 3, 4], p: 90, expected: 3.7 },
    { values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p: 99, expected: 9.91 },
    { values: [0, 0, 0, 100], p: 90, expected: 70 },
    { values: [5, 5, 5], p: 0, expected: 5 },
    { values: [1, 9], p: 100, expected: 9 },
    { values: [1, 9], p: 250, expected: 9 },
    { values: [1, 9], p: -5, expected: 1 },
  ])("$values at p$p is $expected", ({ values, p, expected }) => {
    expect(percentile(values, p)).toBeCloseTo(expected, 10);
  });

  it("has no percentile of nothing, or of a nonsense rank", () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([1, 2], Number.NaN)).toBeNull();
  });
});

describe("summariseLatency", () => {
  it("summarises durations in seconds, rounded to milliseconds", () => {
    expect(summariseLatency([3, 1, 2, 4])).toEqual({
      count: 4,
      p50: 2.5,
      p90: 3.7,
      p99: 3.97,
      mean: 2.5,
      max: 4,
    });
  });

  it.each([
    { name: "nothing", values: [] },
    { name: "only negative durations (a clock step)", values: [-1, -30] },
    { name: "only NaN and infinities", values: [Number.NaN, Infinity, -Infinity] },
  ])("reports an empty summary for $name", ({ values }) => {
    expect(summariseLatency(values)).toEqual({
      count: 0,
      p50: null,
      p90: null,
      p99: null,
      mean: null,
      max: null,
    });
  });

  it("leaves unusable values out instead of letting them skew the figures", () => {
    const s = summariseLatency([10, Number.NaN, -5, Infinity, 20]);
    expect(s).toMatchObject({ count: 2, p50: 15, max: 20, mean: 15 });
  });
});

describe("queue trend", () => {
  it.each([
    { values: [1, 2, 3, 4], direction: "growing" },
    { values: [4, 3, 2, 1], direction: "shrinking" },
    { values: [1, 2, 3, 3], direction: "stable" },
    { values: [1, 2, 3], direction: "stable" },
    { values: [5, 1, 2, 3, 4], direction: "growing" },
    { values: [1, 2, 1, 2, 3], direction: "stable" },
    { values: [], direction: "stable" },
  ])("$values is $direction", ({ values, direction }) => {
    expect(queueTrend(series(...values)).direction).toBe(direction);
  });

  it("reads samples by time, whatever order they come in", () => {
    const shuffled = [...series(1, 2, 3, 4)].reverse();
    expect(queueTrend(shuffled)).toMatchObject({ direction: "growing", change: 3 });
  });

  it("measures the slope in tasks per minute (samples 30 s apart)", () => {
    expect(queueTrend(series(0, 1, 2, 3)).perMinute).toBe(2);
    expect(queueTrend(series(7)).perMinute).toBe(0);
  });

  it("drops corrupt samples instead of being poisoned by them", () => {
    const samples = [...series(1, 2, 3, 4), { at: Number.NaN, value: 100 }, { at: 5, value: NaN }];
    expect(queueTrend(samples).direction).toBe("growing");
    expect(deltas(samples)).toEqual([1, 1, 1]);
  });

  it("counts changes in a row only with enough samples", () => {
    expect(lastChangesAll(series(1, 2, 3), 3, (d) => d > 0)).toBe(false);
    expect(lastChangesAll(series(1, 2, 3, 4), 3, (d) => d > 0)).toBe(true);
    expect(lastChangesAll(series(1, 2, 3, 4), 0, (d) => d > 0)).toBe(false);
    expect(lastChangesAll(series(1, 2, 3, 4), 1.5, (d) => d > 0)).toBe(false);
  });
});

describe("window stats, utilisation and rates", () => {
  it("takes max and mean of the samples", () => {
    expect(windowStats(series(1, 5, 3))).toEqual({ max: 5, avg: 3, samples: 3 });
    expect(windowStats([])).toEqual({ max: null, avg: null, samples: 0 });
  });

  it.each([
    { busy: 1, slots: 2, expected: 0.5 },
    { busy: 0, slots: 4, expected: 0 },
    { busy: 3, slots: 2, expected: 1 },
    { busy: 1, slots: 0, expected: null },
    { busy: -1, slots: 2, expected: null },
    { busy: Number.NaN, slots: 2, expected: null },
  ])("utilisation $busy/$slots is $expected", ({ busy, slots, expected }) => {
    expect(utilisation(busy, slots)).toBe(expected);
  });

  it.each([
    { part: 1, whole: 3, expected: 0.333 },
    { part: 0, whole: 0, expected: null },
    { part: 5, whole: 4, expected: 1 },
    { part: Infinity, whole: 4, expected: null },
  ])("rate $part/$whole is $expected", ({ part, whole, expected }) => {
    expect(rate(part, whole)).toBe(expected);
  });
});
