import { describe, expect, it } from "vitest";
import { deepFreeze, finiteNumbers } from "../../test/helpers/state-checks.ts";
import {
  CLOSE_CODES,
  createViolationState,
  INVALID_FRAME_LIMIT,
  MAX_FRAME_BYTES,
  OFFENCE_DECAY_MS,
  RECONNECT_LADDER_MS,
  reconnectWaitMs,
  recordInvalidFrame,
  type ViolationDecision,
  type ViolationState,
} from "./frame-violations.ts";

const T0 = 1_767_268_800_000; // 2026-01-01T12:00:00Z
const S = 1_000;
const MIN = 60_000;
const HOUR = 60 * MIN;

/** Records an invalid frame at each time; returns every decision and the final state. */
function send(times: readonly number[], state = createViolationState()) {
  const decisions: ViolationDecision[] = [];
  for (const at of times) {
    const decision = recordInvalidFrame(state, at);
    decisions.push(decision);
    state = decision.state;
  }
  return { decisions, state, last: decisions.at(-1)! };
}

/** Ten invalid frames at `at`: one offence. */
function offend(at: number, state = createViolationState()) {
  const { last } = send(Array(INVALID_FRAME_LIMIT).fill(at), state);
  if (!last.close) throw new Error("expected a close");
  return last;
}

/** Offences at each time, in order; returns the waits they set. */
function offences(times: readonly number[]) {
  let state: ViolationState = createViolationState();
  const waits: number[] = [];
  for (const at of times) {
    const decision = offend(at, state);
    waits.push(decision.reconnectAfterMs);
    state = decision.state;
  }
  return { waits, state };
}

describe("constants", () => {
  it("uses the RFC 6455 close codes and a 1 MiB frame limit", () => {
    expect(CLOSE_CODES).toMatchObject({
      normal: 1000,
      goingAway: 1001,
      policyViolation: 1008,
      messageTooBig: 1009,
    });
    expect(MAX_FRAME_BYTES).toBe(1_048_576);
    expect(INVALID_FRAME_LIMIT).toBe(10);
    expect(RECONNECT_LADDER_MS).toEqual([30 * S, 60 * S, 5 * MIN]);
  });
});

describe("invalid frames in the window", () => {
  it.each([
    [1, false],
    [9, false],
    [10, true],
  ])("%i invalid frames at once: close %s", (count, close) => {
    const { decisions, last } = send(Array(count).fill(T0));
    expect(decisions.filter((d) => d.close)).toHaveLength(close ? 1 : 0);
    expect(last.close).toBe(close);
    if (!last.close) expect(last.invalidFrames).toBe(count);
  });

  it("closes with 1008, a short reason and the first step", () => {
    const decision = offend(T0);
    expect(decision).toMatchObject({
      close: true,
      code: 1008,
      reconnectAfterMs: 30 * S,
      offences: 1,
      reason: "10 invalid frames within 1 min; reconnect after 30 s",
    });
    expect(new TextEncoder().encode(decision.reason).length).toBeLessThanOrEqual(123);
  });

  it.each([
    // spacing between ten frames, whether the tenth closes (span = 9 × spacing)
    [0, true],
    [S, true],
    [6_666, true],
    [6_667, false],
    [10 * S, false],
  ])("ten frames %i ms apart: close %s", (spacing, close) => {
    const times = Array.from({ length: 10 }, (_, i) => T0 + i * spacing);
    expect(send(times).last.close).toBe(close);
  });

  it.each([
    // nine frames at T0, then one at T0 + gap: frames 60 s old have left the window
    [59_999, true, 10],
    [MIN, false, 1],
    [HOUR, false, 1],
  ])("nine frames, then one %i ms later: close %s", (gap, close, inWindow) => {
    const { last } = send([...Array(9).fill(T0), T0 + gap]);
    expect(last.close).toBe(close);
    if (!last.close) expect(last.invalidFrames).toBe(inWindow);
  });

  it("slides the window frame by frame", () => {
    // five at T0 and four at T0 + 30 s (nine, no close); at T0 + 61 s the first five have left
    const { decisions, last } = send([
      ...Array(5).fill(T0),
      ...Array(4).fill(T0 + 30 * S),
      T0 + 61 * S,
      T0 + 62 * S,
    ]);
    expect(decisions.every((d) => !d.close)).toBe(true);
    expect(last).toMatchObject({ close: false, invalidFrames: 6 });
  });

  it("starts a fresh window after a close", () => {
    const first = offend(T0);
    const { decisions } = send(Array(9).fill(T0 + S), first.state);
    expect(decisions.every((d) => !d.close)).toBe(true);
    expect(send(Array(10).fill(T0 + S), first.state).last.close).toBe(true);
  });

  it("never changes the state it is given", () => {
    const state = deepFreeze(send(Array(9).fill(T0)).state);
    const snapshot = structuredClone(state);
    expect(recordInvalidFrame(state, T0).close).toBe(true);
    expect(recordInvalidFrame(state, T0 + HOUR).close).toBe(false);
    expect(state).toEqual(snapshot);
  });

  it("keeps its memory bounded however many frames arrive", () => {
    let state = createViolationState();
    for (let i = 0; i < 10_000; i++) state = recordInvalidFrame(state, T0 + i * 10 * S).state;
    expect(state.invalidFrameTimes.length).toBeLessThan(INVALID_FRAME_LIMIT);
    const { state: flooded } = offences(Array.from({ length: 50 }, (_, i) => T0 + i * MIN));
    expect(flooded.offenceTimes.length).toBeLessThanOrEqual(RECONNECT_LADDER_MS.length);
  });
});

describe("reconnect ladder", () => {
  it.each([
    [[0], [30 * S]],
    [
      [0, 10 * MIN],
      [30 * S, 60 * S],
    ],
    [
      [0, 10 * MIN, 20 * MIN],
      [30 * S, 60 * S, 5 * MIN],
    ],
    [
      [0, 1 * MIN, 2 * MIN, 3 * MIN, 4 * MIN],
      [30 * S, 60 * S, 5 * MIN, 5 * MIN, 5 * MIN],
    ],
    // decay: an offence an hour old no longer counts
    [
      [0, HOUR],
      [30 * S, 30 * S],
    ],
    [
      [0, HOUR - 1],
      [30 * S, 60 * S],
    ],
    [
      [0, 30 * MIN, HOUR + 1],
      [30 * S, 60 * S, 60 * S],
    ],
    [
      [0, 30 * MIN, HOUR - 1],
      [30 * S, 60 * S, 5 * MIN],
    ],
    [
      [0, 10 * MIN, 20 * MIN, 30 * MIN, 3 * HOUR],
      [30 * S, 60 * S, 5 * MIN, 5 * MIN, 30 * S],
    ],
    [
      [0, 1 * MIN, 2 * MIN, 3 * MIN, 61 * MIN],
      [30 * S, 60 * S, 5 * MIN, 5 * MIN, 5 * MIN],
    ],
    [
      [0, 1 * MIN, 2 * MIN, 3 * MIN, 62 * MIN + 30 * S],
      [30 * S, 60 * S, 5 * MIN, 5 * MIN, 60 * S],
    ],
  ] as [number[], number[]][])("offences at %j ms wait %j ms", (times, waits) => {
    expect(offences(times.map((t) => T0 + t)).waits).toEqual(waits);
    expect(OFFENCE_DECAY_MS).toBe(HOUR);
  });

  it("names the step in the reason", () => {
    const { state } = offences([T0, T0 + MIN]);
    expect(offend(T0 + 2 * MIN, state).reason).toBe(
      "10 invalid frames within 1 min; reconnect after 5 min",
    );
  });
});

describe("reconnect wait", () => {
  it.each([
    // offences (ms after T0), asked at (ms after T0), wait left
    [[], 0, 0],
    [[0], 0, 30 * S],
    [[0], 10 * S, 20 * S],
    [[0], 30 * S - 1, 1],
    [[0], 30 * S, 0],
    [[0], HOUR, 0],
    [[0, MIN], MIN + 59 * S, S],
    [[0, MIN, 2 * MIN], 2 * MIN + 4 * MIN, MIN],
    [[0, MIN, 2 * MIN], 7 * MIN, 0],
    // hostile: a clock behind the offence waits the full step, never longer
    [[0], -5 * S, 30 * S],
    [[0], -HOUR, 30 * S],
    [[0], -T0, 30 * S],
  ] as [number[], number, number][])(
    "offences at %j, asked at +%i: wait %i ms",
    (times, at, wait) => {
      const { state } = offences(times.map((t) => T0 + t));
      expect(reconnectWaitMs(state, T0 + at)).toBe(wait);
    },
  );

  it("counts invalid frames without an offence as no wait", () => {
    expect(reconnectWaitMs(send(Array(9).fill(T0)).state, T0)).toBe(0);
  });

  it("rounds a fractional wait up, never letting a runner in early", () => {
    const { state } = offences([T0 + 0.25]);
    expect(reconnectWaitMs(state, T0 + 10_001)).toBe(20_000);
  });
});

describe("hostile clocks", () => {
  it("does not let a backwards step push frames out of the window", () => {
    const { state } = send(Array(9).fill(T0));
    expect(recordInvalidFrame(state, T0 - HOUR).close).toBe(true);
    expect(recordInvalidFrame(state, 0).close).toBe(true);
  });

  it("does not let a backwards step decay an offence", () => {
    const { state } = offences([T0, T0 + 30 * MIN]);
    expect(offend(T0 - 2 * HOUR, state).reconnectAfterMs).toBe(5 * MIN);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    "treats a `now` of %s as the last time seen and never stores it",
    (bad) => {
      const { state } = send(Array(9).fill(T0));
      const decision = recordInvalidFrame(state, bad);
      expect(decision).toMatchObject({ close: true, reconnectAfterMs: 30 * S });
      expect(finiteNumbers(decision.state)).toBe(true);
      expect(reconnectWaitMs(decision.state, bad)).toBe(30 * S);
      expect(reconnectWaitMs(decision.state, T0 + 30 * S)).toBe(0);
    },
  );

  it("copes with non-finite times on a fresh state", () => {
    const { state, last } = send(Array(10).fill(Number.NaN));
    expect(last.close).toBe(true);
    expect(finiteNumbers(state)).toBe(true);
    expect(reconnectWaitMs(state, Number.NaN)).toBe(30 * S);
    expect(reconnectWaitMs(state, T0)).toBe(0);
  });

  it("survives a huge gap", () => {
    const { state } = offences([T0, T0 + MIN, T0 + 2 * MIN]);
    const far = Number.MAX_SAFE_INTEGER;
    expect(reconnectWaitMs(state, far)).toBe(0);
    expect(offend(far, state).reconnectAfterMs).toBe(30 * S);
  });
});
