import { formatDuration } from "./task-machine.ts";

/**
 * The invalid-frame policy of the runner WebSocket. A frame that fails validation gets
 * an `error` reply; a runner that sends `INVALID_FRAME_LIMIT` of them within
 * `INVALID_FRAME_WINDOW_MS` is disconnected with 1008, and its next connection must wait on the
 * 30 s / 60 s / 5 min ladder. The state is per runner, not per connection, so reconnecting neither
 * empties the window nor resets the ladder.
 *
 * Time is a `now` argument in milliseconds. Pass a monotonic clock: the state remembers the latest
 * time it has seen and treats an earlier or non-finite `now` as that time, so a clock stepping back
 * can neither push invalid frames out of the window nor shorten a wait.
 */

/** WebSocket close codes we send (RFC 6455 §7.4.1, plus 1013 from the IANA registry). */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

/** Largest frame a runner may send; a bigger one closes the socket with `messageTooBig` (1009). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Largest frame of each runner → server type, in UTF-8 bytes: room for every field at its schema
 * maximum, JSON-escaped. Only `complete` (the change set's summary and verification output) may
 * be large. A bigger frame of a valid type is answered `invalid_frame` and counts toward the
 * invalid-frame limit, so a runner cannot pad valid frames to 1 MiB and have each one parsed.
 */
export const MAX_FRAME_BYTES_BY_TYPE = {
  hello: 64 * 1024,
  accept: 4 * 1024,
  reject: 16 * 1024,
  heartbeat: 16 * 1024,
  log: 448 * 1024,
  complete: MAX_FRAME_BYTES,
  fail: 160 * 1024,
  drain: 1024,
  ping: 1024,
} as const satisfies Record<string, number>;

/** Seconds a new connection has to send `hello` before the server closes it with 1008. */
export const HELLO_TIMEOUT_MS = 10_000;

/** Invalid frames within `INVALID_FRAME_WINDOW_MS` that close the connection. */
export const INVALID_FRAME_LIMIT = 10;
export const INVALID_FRAME_WINDOW_MS = 60_000;

/** Wait before the next connection after the 1st, 2nd, 3rd and later offence. */
export const RECONNECT_LADDER_MS = [30_000, 60_000, 5 * 60_000] as const;

/** An offence (a 1008 close) this old no longer counts toward the reconnect ladder. */
export const OFFENCE_DECAY_MS = 60 * 60_000;

export interface ViolationState {
  /** The latest `now` this state has seen; the state's clock never moves backwards. */
  readonly seenAt: number | null;
  /** Times of the invalid frames still inside the window, oldest first. */
  readonly invalidFrameTimes: readonly number[];
  /**
   * Times of offences younger than `OFFENCE_DECAY_MS`, oldest first. Only the newest
   * `RECONNECT_LADDER_MS.length` are kept: older ones cannot raise the step any further.
   */
  readonly offenceTimes: readonly number[];
  /** When the last offence closed the connection, and how long the runner must then wait. */
  readonly blockedAt: number | null;
  readonly blockedForMs: number;
}

export type ViolationDecision =
  | {
      state: ViolationState;
      close: false;
      /** Invalid frames inside the window, this one included. */
      invalidFrames: number;
    }
  | {
      state: ViolationState;
      close: true;
      code: typeof CLOSE_CODES.policyViolation;
      /** For the close frame, which RFC 6455 §5.5 limits to 123 bytes of UTF-8. */
      reason: string;
      reconnectAfterMs: number;
      /** Offences that count, this one included (1 → 30 s, 2 → 60 s, 3 or more → 5 min). */
      offences: number;
    };

/** A runner with a clean record. */
export function createViolationState(): ViolationState {
  return {
    seenAt: null,
    invalidFrameTimes: [],
    offenceTimes: [],
    blockedAt: null,
    blockedForMs: 0,
  };
}

/**
 * Count an invalid frame at `now`. The `INVALID_FRAME_LIMIT`-th inside the window is an offence:
 * close with 1008 and block reconnects for the ladder's step. The window then starts empty, since
 * the frames that led to the offence have been paid for.
 */
export function recordInvalidFrame(state: ViolationState, now: number): ViolationDecision {
  const t = clockTime(state.seenAt, now);
  // At most LIMIT - 1 times are stored (the LIMIT-th closes and empties the window), so this is bounded.
  const invalidFrameTimes = [
    ...state.invalidFrameTimes.filter((at) => t - at < INVALID_FRAME_WINDOW_MS),
    t,
  ];

  if (invalidFrameTimes.length < INVALID_FRAME_LIMIT) {
    return {
      state: { ...state, seenAt: t, invalidFrameTimes },
      close: false,
      invalidFrames: invalidFrameTimes.length,
    };
  }

  const offenceTimes = [...state.offenceTimes.filter((at) => t - at < OFFENCE_DECAY_MS), t].slice(
    -RECONNECT_LADDER_MS.length,
  );
  const offences = offenceTimes.length;
  const reconnectAfterMs = RECONNECT_LADDER_MS[offences - 1]!;
  return {
    state: {
      seenAt: t,
      invalidFrameTimes: [],
      offenceTimes,
      blockedAt: t,
      blockedForMs: reconnectAfterMs,
    },
    close: true,
    code: CLOSE_CODES.policyViolation,
    reason: `${INVALID_FRAME_LIMIT} invalid frames within ${formatDuration(INVALID_FRAME_WINDOW_MS)}; reconnect after ${formatDuration(reconnectAfterMs)}`,
    reconnectAfterMs,
    offences,
  };
}

/**
 * Milliseconds the runner must still wait before a new connection is accepted; 0 if it may connect.
 * A `now` earlier than the offence (or not a number) counts as the moment of the offence, so the
 * answer is never more than the step that was set, and never less than what is left of it.
 */
export function reconnectWaitMs(state: ViolationState, now: number): number {
  if (state.blockedAt === null) return 0;
  const elapsed = clockTime(state.seenAt, now) - state.blockedAt;
  return Math.max(0, Math.ceil(state.blockedForMs - elapsed));
}

/** `now`, but never earlier than what the state has already seen, and never NaN or ±Infinity. */
function clockTime(seenAt: number | null, now: number): number {
  if (!Number.isFinite(now)) return seenAt ?? 0;
  return seenAt === null ? now : Math.max(seenAt, now);
}
