import type { HookableOctokit } from "./instrument-github.ts";

export interface RetryOptions {
  enabled?: boolean;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** Statuses never retried: the answer would be the same (default as `@octokit/plugin-retry`). */
  doNotRetry?: number[];
  /** The wait before retry n is n² times this (default 1 s: 1 s, 4 s, 9 s). */
  retryAfterBaseValue?: number;
}

const DO_NOT_RETRY = [400, 401, 403, 404, 410, 422, 451];

/**
 * Retries a request GitHub failed (5xx, or no answer at all) after 1 s, 4 s and 9 s, as
 * `@octokit/plugin-retry` does (same options, same statuses left alone), without its Bottleneck
 * limiter: that one is built per request and schedules every request through several zero-delay
 * timers before it leaves the process, tens of milliseconds on a busy machine for each of the
 * intake's and dispatch's reads. Rate-limit refusals (403, 429) are the budget plugin's and the
 * throttling plugin's to wait out. Installed in Probot's place (`retry.enabled: false` for
 * Probot's own), with the same `retry` options.
 */
export function createRetryPlugin(
  options: { sleep?: (ms: number) => Promise<void> } = {},
): (octokit: HookableOctokit, octokitOptions: { conveyorRetry?: RetryOptions }) => void {
  const sleep =
    options.sleep ??
    ((ms: number) =>
      new Promise<void>((resolve) => {
        setTimeout(resolve, ms).unref();
      }));
  return (octokit, octokitOptions) => {
    const settings = octokitOptions.conveyorRetry ?? {};
    if (settings.enabled === false) return;
    const retries = settings.retries ?? 3;
    const doNotRetry = settings.doNotRetry ?? DO_NOT_RETRY;
    const base = settings.retryAfterBaseValue ?? 1_000;
    octokit.hook.wrap("request", async (request, requestOptions) => {
      const own = (requestOptions as { request?: { retries?: number } }).request;
      const allowed = own?.retries ?? retries;
      for (let attempt = 0; ; attempt++) {
        try {
          return await request(requestOptions);
        } catch (error) {
          const status = (error as { status?: number }).status;
          // A RequestError (GitHub answered, or the request failed on the way) that another try
          // could change.
          const retryable =
            (error as { request?: unknown }).request !== undefined &&
            (status === undefined || status >= 400) &&
            !doNotRetry.includes(status ?? 0);
          if (!retryable || attempt >= allowed) throw error;
          await sleep((attempt + 1) ** 2 * base);
        }
      }
    });
  };
}
