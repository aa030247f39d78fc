import { describe, expect, it } from "vitest";
import {
  afterFailedAttempt,
  backoffMs,
  canTransition,
  effectiveLane,
  formatDuration,
  queueOrder,
  statesLeadingTo,
} from "./task-machine.ts";
import type { Lane } from "./task-states.ts";

const MIN = 60_000;
const now = new Date("2026-01-01T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);

describe("transitions", () => {
  it.each([
    ["queued", "assigned", true],
    ["assigned", "running", true],
    ["running", "pushed", true],
    ["dead", "queued", true],
    ["merged", "queued", false],
    ["cancelled", "queued", false],
    ["queued", "merged", false],
    ["retry_wait", "assigned", false],
  ] as const)("%s → %s allowed: %s", (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
  });

  it("derives the guard states of a transition", () => {
    expect(statesLeadingTo("assigned")).toEqual(["queued"]);
    expect(statesLeadingTo("cancelled")).not.toContain("merged");
  });
});

describe("attempts and backoff", () => {
  it.each([
    [1, 30_000],
    [2, 2 * MIN],
    [3, 8 * MIN],
    [4, 32 * MIN],
    [9, 60 * MIN],
  ])("after %i failed attempts waits %i ms", (failed, ms) => {
    expect(backoffMs(failed)).toBe(ms);
  });

  it("retries with backoff until the last attempt, then dies with its reason", () => {
    const first = afterFailedAttempt({ attempts: 0, maxAttempts: 3 }, "lease expired", now);
    expect(first).toEqual({
      state: "retry_wait",
      attempts: 1,
      availableAt: new Date(now.getTime() + 30_000),
      reason: "lease expired; attempt 1 of 3 failed, retrying in 30 s",
    });
    const second = afterFailedAttempt({ attempts: 1, maxAttempts: 3 }, "agent failed", now);
    expect(second).toMatchObject({ state: "retry_wait", attempts: 2 });
    const last = afterFailedAttempt({ attempts: 2, maxAttempts: 3 }, "agent failed", now);
    expect(last).toEqual({
      state: "dead",
      attempts: 3,
      reason: "agent failed; gave up after 3 of 3 attempts",
    });
  });
});

describe("lanes and aging", () => {
  it.each([
    ["low", 0, "low"],
    ["low", 29 * MIN, "low"],
    ["low", 30 * MIN, "normal"],
    ["low", 61 * MIN, "high"],
    ["low", 10 * 60 * MIN, "urgent"],
    ["urgent", 60 * MIN, "urgent"],
  ] as [Lane, number, Lane][])("%s waiting %i ms competes as %s", (lane, waited, expected) => {
    expect(effectiveLane(lane, ago(waited), now, 30 * MIN)).toBe(expected);
  });

  it("serves strict lanes, FIFO inside a lane, and lets an aged low task overtake", () => {
    const tasks = [
      { taskId: "low-new", lane: "low" as Lane, enqueuedAt: ago(1 * MIN) },
      { taskId: "normal-old", lane: "normal" as Lane, enqueuedAt: ago(5 * MIN) },
      { taskId: "urgent", lane: "urgent" as Lane, enqueuedAt: ago(0) },
      { taskId: "normal-new", lane: "normal" as Lane, enqueuedAt: ago(2 * MIN) },
      { taskId: "low-aged", lane: "low" as Lane, enqueuedAt: ago(65 * MIN) },
    ];
    expect(queueOrder(tasks, now, 30 * MIN).map((t) => t.taskId)).toEqual([
      "urgent",
      "low-aged",
      "normal-old",
      "normal-new",
      "low-new",
    ]);
  });

  it("formats durations for people", () => {
    expect([45_000, 2 * MIN, 65 * MIN, 120 * MIN].map(formatDuration)).toEqual([
      "45 s",
      "2 min",
      "1 h 5 min",
      "2 h",
    ]);
  });
});
