import {
  createRateLimitState,
  type RateLimitState,
  type TierLimits,
  takeToken,
  tokensAvailable,
} from "../core/rate-limit.ts";
import { formatDuration } from "../core/task-machine.ts";
import type { RateTier } from "../core/task-states.ts";

/**
 * Requests per minute each client may make to the admin API, which is also the largest burst
 * (token buckets). A client is a token (or the admin token); requests that fail to authenticate
 * are counted per IP address instead, so guessing tokens is slow.
 */
export interface ApiRateLimits {
  /** GET requests: lists, details, metrics. A dashboard polling several panels stays far below. */
  read: number;
  /** Requests that change something: retry, cancel, register, revoke, settings. */
  write: number;
  /** Whole-database work: export and import. */
  heavy: number;
  /** Requests without a valid token, per IP address. */
  unauthenticated: number;
}

export const DEFAULT_API_RATE_LIMITS: ApiRateLimits = {
  read: 600,
  write: 120,
  heavy: 10,
  unauthenticated: 30,
};

/** What a request costs: which of the client's buckets it draws from. */
export type RequestCost = "read" | "write" | "heavy";

// The pure token buckets are per tier; the API's three costs map onto the three tiers.
const TIER: Record<RequestCost, RateTier> = { read: "light", write: "normal", heavy: "heavy" };

export type RateDecision =
  | { allowed: true }
  | { allowed: false; retryAfterMs: number; message: string };

export interface ApiRateLimiter {
  /** Spends one request of `cost` for the client `key`, or refuses with when to come back. */
  take(key: string, cost: RequestCost): RateDecision;
  /** Whether `key` (an unauthenticated client) has nothing left, without spending. */
  exhausted(key: string, cost: RequestCost): boolean;
}

// Entries untouched this long have refilled completely and can be forgotten.
const IDLE_MS = 5 * 60_000;
const PRUNE_ABOVE = 10_000;

/**
 * Per-client token buckets, in memory, per instance (several instances each allow the limit).
 * `unauthenticated` keys (`ip:…`) use the unauthenticated limit for every cost.
 */
export function createApiRateLimiter(
  limits: ApiRateLimits = DEFAULT_API_RATE_LIMITS,
  now: () => number = () => performance.timeOrigin + performance.now(),
): ApiRateLimiter {
  const clients = new Map<string, { state: RateLimitState; seenAt: number }>();
  const tokenLimits: TierLimits = { light: limits.read, normal: limits.write, heavy: limits.heavy };
  const ipLimits: TierLimits = {
    light: limits.unauthenticated,
    normal: limits.unauthenticated,
    heavy: limits.unauthenticated,
  };
  const limitsFor = (key: string) => (key.startsWith("ip:") ? ipLimits : tokenLimits);
  // An unauthenticated address has one budget for everything it tries.
  const tierFor = (key: string, cost: RequestCost) =>
    key.startsWith("ip:") ? "normal" : TIER[cost];

  function prune(t: number): void {
    if (clients.size <= PRUNE_ABOVE) return;
    for (const [key, client] of clients) if (t - client.seenAt > IDLE_MS) clients.delete(key);
  }

  return {
    take(key, cost) {
      const t = now();
      const client = clients.get(key) ?? { state: createRateLimitState(), seenAt: t };
      const tierLimits = limitsFor(key);
      const decision = takeToken(client.state, tierFor(key, cost), t, tierLimits);
      clients.set(key, { state: decision.state, seenAt: t });
      prune(t);
      if (decision.allowed) return { allowed: true };
      const perMinute = tierLimits[tierFor(key, cost)];
      const what = key.startsWith("ip:")
        ? `requests without a valid token are limited to ${perMinute} a minute per address`
        : `${cost === "read" ? "reads" : cost === "write" ? "changes" : "exports and imports"} are limited to ${perMinute} a minute per token`;
      return {
        allowed: false,
        retryAfterMs: decision.retryAfterMs,
        message: `too many requests: ${what}; retry in ${formatDuration(decision.retryAfterMs)}`,
      };
    },
    exhausted(key, cost) {
      const client = clients.get(key);
      if (!client) return false;
      return tokensAvailable(client.state, tierFor(key, cost), now(), limitsFor(key)) < 1;
    },
  };
}
