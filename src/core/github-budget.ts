/**
 * The GitHub request budget of each client (an installation, or the App itself), as GitHub reports
 * it on every answer, and the secondary limits it imposes. Pure: facts in (headers, statuses,
 * the clock), decisions out (wait until when, defer or not).
 * https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api
 */

/**
 * What a GitHub call is for. `essential` work (merges, check runs, pull-request writes, what a
 * task needs to move) spends the budget down to the last request; `optional` work (status-comment
 * edits, reconciliation, analytics reads) waits while the budget is under the reserve.
 */
export type GitHubWork = "essential" | "optional";

/** The rate-limit headers of one answer. */
export interface RateLimitHeaders {
  limit: number;
  remaining: number;
  used: number | undefined;
  /** When the window resets, epoch milliseconds (GitHub sends epoch seconds). */
  resetAt: number;
  resource: string;
}

type Headers = Record<string, string | number | undefined> | undefined;

const header = (headers: Headers, name: string): string | undefined => {
  const value = headers?.[name];
  return value === undefined ? undefined : String(value);
};

const wholeNumber = (value: string | undefined): number | undefined => {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
};

/**
 * Reads `x-ratelimit-limit`, `-remaining`, `-used`, `-reset` and `-resource`; undefined when the
 * answer carries no usable primary-limit headers (a malformed value is ignored, never trusted).
 */
export function parseRateLimitHeaders(headers: Headers): RateLimitHeaders | undefined {
  const limit = wholeNumber(header(headers, "x-ratelimit-limit"));
  const remaining = wholeNumber(header(headers, "x-ratelimit-remaining"));
  const reset = wholeNumber(header(headers, "x-ratelimit-reset"));
  if (limit === undefined || remaining === undefined || reset === undefined) return undefined;
  return {
    limit,
    remaining,
    used: wholeNumber(header(headers, "x-ratelimit-used")),
    resetAt: reset * 1000,
    resource: (header(headers, "x-ratelimit-resource") ?? "core").slice(0, 40),
  };
}

/** A rate-limit refusal and until when nothing more should be sent. */
export interface RateLimitHit {
  kind: "primary" | "secondary";
  /** Epoch milliseconds. */
  until: number;
}

/** How long to wait after a secondary limit without `retry-after` or an exhausted window (GitHub: "at least one minute"). */
export const SECONDARY_DEFAULT_WAIT_MS = 60_000;

/**
 * Whether an answer is a rate-limit refusal, and until when to wait, as GitHub documents it: a
 * `403` or `429`; a primary limit has `x-ratelimit-remaining: 0` (wait until `x-ratelimit-reset`);
 * a secondary limit says so in its message or carries `retry-after` (wait that many seconds, else
 * until the reset when the window is empty, else a minute). A `403` that is neither (no
 * permission) is not a rate limit.
 */
export function classifyRateLimitAnswer(
  status: number,
  headers: Headers,
  message: string | undefined,
  now: number,
): RateLimitHit | undefined {
  if (status !== 403 && status !== 429) return undefined;
  const limits = parseRateLimitHeaders(headers);
  const retryAfter = wholeNumber(header(headers, "retry-after"));
  const secondary = /secondary rate limit|abuse detection/i.test(message ?? "");
  if (secondary || retryAfter !== undefined) {
    if (retryAfter !== undefined) return { kind: "secondary", until: now + retryAfter * 1000 };
    if (limits?.remaining === 0) return { kind: "secondary", until: Math.max(now, limits.resetAt) };
    return { kind: "secondary", until: now + SECONDARY_DEFAULT_WAIT_MS };
  }
  if (limits?.remaining === 0) {
    return { kind: "primary", until: Math.max(now, limits.resetAt) };
  }
  // A 429 with nothing else to go by is still GitHub asking us to slow down.
  if (status === 429) return { kind: "secondary", until: now + SECONDARY_DEFAULT_WAIT_MS };
  return undefined;
}

/** One client's budget as last seen, for metrics and the dashboard. */
export interface BudgetSnapshot {
  /** The installation id, or `app` for the App's own (JWT) requests. */
  client: string;
  resource: string;
  limit: number;
  remaining: number;
  used: number | null;
  /** Requests kept for essential work: optional work waits below this. */
  reserve: number;
  /** ISO time the window resets. */
  reset_at: string;
  /** The optional work waits: under the reserve, or a limit is in force. */
  deferring: boolean;
  /** Set while a secondary limit (or an exhausted window) holds every request back. */
  limited_until: string | null;
  /** The last refusal's kind, while it holds. */
  limited_by: "primary" | "secondary" | null;
  observed_at: string;
}

interface ClientState {
  limit: number;
  remaining: number;
  used: number | undefined;
  resetAt: number;
  resource: string;
  observedAt: number;
  hit: RateLimitHit | undefined;
}

export interface GitHubBudgetOptions {
  /**
   * Percent of a client's window kept for essential work: optional work waits while fewer
   * requests than this remain (default 10: 500 of 5,000).
   */
  reservePercent?: number;
  now?: () => number;
}

export const DEFAULT_RESERVE_PERCENT = 10;

/** Clients tracked at most; the oldest seen is dropped beyond (installations come and go). */
const MAX_CLIENTS = 1_000;

/** The budget of every client this process talks to GitHub as. */
export interface GitHubBudget {
  /** Records the rate-limit headers of an answer (only the `core` resource counts). */
  observe(client: string, headers: Headers): void;
  /** Records a refusal: nothing more goes out for this client until `hit.until`. */
  limited(client: string, hit: RateLimitHit): void;
  /** Epoch ms before which no request of this client should be sent, or undefined. */
  blockedUntil(client: string): number | undefined;
  /** Whether optional work for this client waits now. */
  shouldDefer(client: string | number): boolean;
  /** When a deferral of this client ends (the window's reset, or the limit's end). */
  deferredUntil(client: string | number): number | undefined;
  /** The reserve, in requests, for a window of `limit`. */
  reserveFor(limit: number): number;
  snapshot(): BudgetSnapshot[];
}

export function createGitHubBudget(options: GitHubBudgetOptions = {}): GitHubBudget {
  const now = options.now ?? Date.now;
  const percent = options.reservePercent ?? DEFAULT_RESERVE_PERCENT;
  const clients = new Map<string, ClientState>();

  const state = (client: string): ClientState | undefined => {
    const s = clients.get(client);
    if (!s) return undefined;
    const t = now();
    if (s.hit && s.hit.until <= t) s.hit = undefined;
    // A window that has reset is full again until GitHub says otherwise.
    if (s.resetAt <= t && s.remaining < s.limit) {
      s.remaining = s.limit;
      s.used = 0;
    }
    return s;
  };

  const reserveFor = (limit: number) => Math.ceil((limit * percent) / 100);

  const touch = (client: string, s: ClientState) => {
    clients.delete(client);
    clients.set(client, s);
    if (clients.size > MAX_CLIENTS) clients.delete(clients.keys().next().value as string);
  };

  const deferredUntil = (client: string | number): number | undefined => {
    const s = state(String(client));
    if (!s) return undefined;
    if (s.hit) return s.hit.until;
    if (s.limit > 0 && s.remaining < reserveFor(s.limit) && s.resetAt > now()) return s.resetAt;
    return undefined;
  };

  return {
    observe(client, headers) {
      const parsed = parseRateLimitHeaders(headers);
      if (parsed?.resource !== "core") return;
      const previous = clients.get(client);
      touch(client, {
        limit: parsed.limit,
        remaining: parsed.remaining,
        used: parsed.used,
        resetAt: parsed.resetAt,
        resource: parsed.resource,
        observedAt: now(),
        hit: previous?.hit,
      });
    },
    limited(client, hit) {
      const s = clients.get(client) ?? {
        limit: 0,
        remaining: 0,
        used: undefined,
        resetAt: hit.until,
        resource: "core",
        observedAt: now(),
        hit: undefined,
      };
      if (!s.hit || s.hit.until < hit.until) s.hit = hit;
      if (hit.kind === "primary") {
        s.remaining = 0;
        s.resetAt = Math.max(s.resetAt, hit.until);
      }
      touch(client, s);
    },
    blockedUntil(client) {
      const s = state(client);
      if (!s) return undefined;
      const t = now();
      if (s.hit && s.hit.until > t) return s.hit.until;
      if (s.limit > 0 && s.remaining === 0 && s.resetAt > t) return s.resetAt;
      return undefined;
    },
    shouldDefer: (client) => deferredUntil(client) !== undefined,
    deferredUntil,
    reserveFor,
    snapshot() {
      const rows: BudgetSnapshot[] = [];
      for (const client of [...clients.keys()]) {
        const s = state(client)!;
        rows.push({
          client,
          resource: s.resource,
          limit: s.limit,
          remaining: s.remaining,
          used: s.used ?? null,
          reserve: reserveFor(s.limit),
          reset_at: new Date(s.resetAt).toISOString(),
          deferring: deferredUntil(client) !== undefined,
          limited_until: s.hit ? new Date(s.hit.until).toISOString() : null,
          limited_by: s.hit?.kind ?? null,
          observed_at: new Date(s.observedAt).toISOString(),
        });
      }
      return rows.sort((a, b) => a.client.localeCompare(b.client));
    },
  };
}
