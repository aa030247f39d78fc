import { HttpError } from "./http-error.ts";
import type { Principal } from "./sim-auth.ts";

/**
 * GitHub's REST rate limits as the simulator plays them
 * (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api): a primary
 * window per installation (every token of one installation shares it), per App (JWT) and for
 * anonymous callers, reported on every answer in the `x-ratelimit-*` headers; `304 Not Modified`
 * answers are free. Enforced on request, and secondary limits scripted by tests.
 */
export interface SimRateLimitOptions {
  /** Requests per window of an installation or the App (GitHub: 5,000 an hour). */
  limit?: number;
  /** The window's length (GitHub: one hour). Tests and benchmarks scale it down. */
  windowMs?: number;
  /**
   * Refuse a request past the limit with GitHub's `403` ("API rate limit exceeded") until the
   * window resets. Off by default: the headers are still sent, nothing is refused.
   */
  enforce?: boolean;
}

/** The next `times` installation or App requests are refused for a secondary rate limit. */
export interface SecondaryLimit {
  times: number;
  /** `retry-after` in seconds; absent: no header (the caller should wait a minute). */
  retryAfterSeconds?: number;
  /** GitHub answers either (default 429). */
  status?: 403 | 429;
}

const DOCS_PRIMARY =
  "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits";
const DOCS_SECONDARY =
  "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";

const UNAUTHENTICATED_LIMIT = 60;

export function createSimRateLimits(clock: () => Date, initial: SimRateLimitOptions = {}) {
  let options: Required<SimRateLimitOptions> = {
    limit: 5_000,
    windowMs: 3_600_000,
    enforce: false,
    ...initial,
  };
  const windows = new Map<string, { used: number; resetAt: number }>();
  const secondary: SecondaryLimit[] = [];
  /** Refusals answered so far, by kind (for tests and the lifecycle-cost benchmark). */
  const refused = { primary: 0, secondary: 0 };

  const keyOf = (principal: Principal | undefined) =>
    principal?.kind === "installation"
      ? `installation:${principal.token.installation.id}`
      : (principal?.kind ?? "anonymous");

  const windowOf = (principal: Principal | undefined) => {
    const key = keyOf(principal);
    const now = clock().getTime();
    let entry = windows.get(key);
    if (!entry || entry.resetAt <= now) {
      // GitHub reports the reset in whole epoch seconds; round up so it is never early.
      entry = { used: 0, resetAt: Math.ceil((now + options.windowMs) / 1000) * 1000 };
      windows.set(key, entry);
    }
    return entry;
  };

  const limitOf = (principal: Principal | undefined) =>
    principal ? options.limit : UNAUTHENTICATED_LIMIT;

  const headersOf = (principal: Principal | undefined) => {
    const entry = windowOf(principal);
    const limit = limitOf(principal);
    return {
      "x-ratelimit-limit": String(limit),
      "x-ratelimit-remaining": String(Math.max(limit - entry.used, 0)),
      "x-ratelimit-reset": String(Math.floor(entry.resetAt / 1000)),
      "x-ratelimit-used": String(Math.min(entry.used, limit)),
      "x-ratelimit-resource": "core",
    };
  };

  return {
    refused,
    configure(next: SimRateLimitOptions) {
      options = { ...options, ...next };
      windows.clear();
    },
    /** Spends `count` requests of an installation's current window, as other work of it would. */
    spend(installationId: number, count: number) {
      const entry = windowOf({
        kind: "installation",
        token: { installation: { id: installationId } },
      } as Principal);
      entry.used += count;
    },
    injectSecondary(limit: SecondaryLimit) {
      secondary.push({ ...limit });
    },
    /** Throws GitHub's refusal when this request is over a limit; runs before the route. */
    check(principal: Principal) {
      const scripted = secondary.find((s) => s.times > 0);
      if (scripted) {
        scripted.times--;
        refused.secondary++;
        const retry: Record<string, string> =
          scripted.retryAfterSeconds === undefined
            ? {}
            : { "retry-after": String(scripted.retryAfterSeconds) };
        throw new HttpError(
          scripted.status ?? 429,
          "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
          { headers: { ...headersOf(principal), ...retry }, documentationUrl: DOCS_SECONDARY },
        );
      }
      if (!options.enforce) return;
      const entry = windowOf(principal);
      if (entry.used < limitOf(principal)) return;
      refused.primary++;
      const who =
        principal.kind === "installation"
          ? `installation ID ${principal.token.installation.id}`
          : `app ID ${principal.app.id}`;
      throw new HttpError(403, `API rate limit exceeded for ${who}.`, {
        headers: headersOf(principal),
        documentationUrl: DOCS_PRIMARY,
      });
    },
    /**
     * The headers of an answer, counting the request against its window: a `304` is free, and a
     * refusal for a rate limit spends nothing more.
     */
    answered(principal: Principal | undefined, status: number, rateLimited: boolean) {
      if (status !== 304 && !rateLimited) windowOf(principal).used += 1;
      return headersOf(principal);
    },
  };
}

export type SimRateLimits = ReturnType<typeof createSimRateLimits>;
