import {
  createViolationState,
  reconnectWaitMs,
  recordInvalidFrame,
  type ViolationState,
} from "../core/frame-violations.ts";
import {
  createRateLimitState,
  frameTier,
  type RateLimitState,
  type TierLimits,
  takeToken,
  wasRateLimitedWithin,
} from "../core/rate-limit.ts";
import type { FramePolicy } from "./runner-session.ts";

/**
 * Keeps each runner's rate-limit and invalid-frame records on this instance, across its
 * reconnects (so closing the socket does not reset a penalty), and adapts the pure core
 * modules to the session's `FramePolicy`.
 */
export function createFramePolicies(
  limits?: TierLimits,
  /** Told about every violation, for the metrics. */
  observer?: {
    rateLimited(tier: string): void;
    invalidFrame(): void;
    closedForViolations(): void;
  },
) {
  const rate = new Map<string, RateLimitState>();
  const violations = new Map<string, ViolationState>();

  return {
    /** How long this runner must still wait before a new connection is accepted (0: none). */
    reconnectWait(runnerId: string, now: number): number {
      const state = violations.get(runnerId);
      return state ? reconnectWaitMs(state, now) : 0;
    },
    forRunner(runnerId: string): FramePolicy {
      return {
        admit(type, now) {
          const decision = takeToken(
            rate.get(runnerId) ?? createRateLimitState(),
            frameTier(type),
            now,
            limits,
          );
          rate.set(runnerId, decision.state);
          if (!decision.allowed) observer?.rateLimited(frameTier(type));
          return decision.allowed
            ? { ok: true }
            : { ok: false, retryAfterMs: decision.retryAfterMs };
        },
        invalid(now) {
          const decision = recordInvalidFrame(
            violations.get(runnerId) ?? createViolationState(),
            now,
          );
          violations.set(runnerId, decision.state);
          observer?.invalidFrame();
          if (decision.close) observer?.closedForViolations();
          return decision.close
            ? { close: true, code: decision.code, reason: decision.reason }
            : { close: false };
        },
        recentlyLimited(now) {
          const state = rate.get(runnerId);
          return state ? wasRateLimitedWithin(state, now) : false;
        },
      };
    },
  };
}
