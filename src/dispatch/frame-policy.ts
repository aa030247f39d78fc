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
  runnerLimits,
  TIER_LIMITS_PER_MINUTE,
  type TierLimits,
  takeToken,
  wasRateLimitedWithin,
} from "../core/rate-limit.ts";
import type { FramePolicy } from "./runner-session.ts";

type Observer = {
  rateLimited(tier: string): void;
  invalidFrame(): void;
  closedForViolations(): void;
};

/** The records every runner's policy reads and writes: one set per instance. */
interface PolicyRecords {
  rate: Map<string, RateLimitState>;
  violations: Map<string, ViolationState>;
  limits: TierLimits;
  /** Limits sized to a runner's slots (its latest `hello`), where they exceed `limits`. */
  sized: Map<string, TierLimits>;
  observer: Observer | undefined;
}

/** One runner's view of the shared records (methods on the prototype: no closures per socket). */
class RunnerFramePolicy implements FramePolicy {
  constructor(
    private readonly records: PolicyRecords,
    private readonly runnerId: string,
  ) {}

  admit(type: string, now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const { rate, limits, observer } = this.records;
    const decision = takeToken(
      rate.get(this.runnerId) ?? createRateLimitState(),
      frameTier(type),
      now,
      this.records.sized.get(this.runnerId) ?? limits,
    );
    rate.set(this.runnerId, decision.state);
    if (!decision.allowed) observer?.rateLimited(frameTier(type));
    return decision.allowed ? { ok: true } : { ok: false, retryAfterMs: decision.retryAfterMs };
  }

  invalid(now: number): { close: false } | { close: true; code: number; reason: string } {
    const { violations, observer } = this.records;
    const decision = recordInvalidFrame(
      violations.get(this.runnerId) ?? createViolationState(),
      now,
    );
    violations.set(this.runnerId, decision.state);
    observer?.invalidFrame();
    if (decision.close) observer?.closedForViolations();
    return decision.close
      ? { close: true, code: decision.code, reason: decision.reason }
      : { close: false };
  }

  fit(slots: number, heartbeatMs: number): void {
    const { sized, limits } = this.records;
    const fitted = runnerLimits(limits, slots, heartbeatMs);
    if (fitted === limits) sized.delete(this.runnerId);
    else sized.set(this.runnerId, fitted);
  }

  recentlyLimited(now: number): boolean {
    const state = this.records.rate.get(this.runnerId);
    return state ? wasRateLimitedWithin(state, now) : false;
  }
}

/**
 * Keeps each runner's rate-limit and invalid-frame records on this instance, across its
 * reconnects (so closing the socket does not reset a penalty), and adapts the pure core
 * modules to the session's `FramePolicy`.
 */
export function createFramePolicies(
  limits?: TierLimits,
  /** Told about every violation, for the metrics. */
  observer?: Observer,
) {
  const records: PolicyRecords = {
    rate: new Map(),
    violations: new Map(),
    limits: limits ?? TIER_LIMITS_PER_MINUTE,
    sized: new Map(),
    observer,
  };
  return {
    /** How long this runner must still wait before a new connection is accepted (0: none). */
    reconnectWait(runnerId: string, now: number): number {
      const state = records.violations.get(runnerId);
      return state ? reconnectWaitMs(state, now) : 0;
    },
    forRunner(runnerId: string): FramePolicy {
      return new RunnerFramePolicy(records, runnerId);
    },
  };
}
