import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLoop, type Loop } from "./create-loop.ts";

describe("createLoop", () => {
  let loop: Loop | undefined;
  beforeEach(() => {
    vi.useFakeTimers({
      toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "performance"],
    });
  });
  afterEach(async () => {
    await loop?.stop();
    vi.useRealTimers();
  });

  const start = (wakeGapMs?: number) => {
    const runs: number[] = [];
    loop = createLoop({
      name: "test",
      intervalMs: 10_000,
      logger: pino({ level: "silent" }),
      body: async () => {
        runs.push(performance.now());
      },
      ...(wakeGapMs === undefined ? {} : { wakeGapMs }),
    });
    return runs;
  };

  it("runs at once when woken, without a gap", async () => {
    const runs = start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30);
    loop!.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(2);
  });

  it("runs a woken loop once the gap since its last run has passed, for every wake meanwhile", async () => {
    const runs = start(200);
    await vi.advanceTimersByTimeAsync(0);
    const first = runs[0]!;
    await vi.advanceTimersByTimeAsync(50);
    for (let i = 0; i < 10; i++) loop!.wake();
    await vi.advanceTimersByTimeAsync(149);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2);
    expect(runs[1]! - first).toBe(200);
    // Long after the last run, a wake runs at once again.
    await vi.advanceTimersByTimeAsync(1_000);
    loop!.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(3);
  });

  it("never waits longer than its interval for a wake", async () => {
    const runs: number[] = [];
    loop = createLoop({
      name: "test",
      intervalMs: 100,
      wakeGapMs: 5_000,
      logger: pino({ level: "silent" }),
      body: async () => {
        runs.push(performance.now());
      },
    });
    await vi.advanceTimersByTimeAsync(0);
    loop.wake();
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toEqual([runs[0], runs[0]! + 100]);
  });
});
