/**
 * Spreads GitHub writes so a burst stays under the secondary rate limit for content creation
 * (80 requests a minute; https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
 * Every write waits for a slot in a sliding one-minute window shared by all installation clients of
 * this process; reads pass at once.
 */
export function createWritePacer(
  options: { perMinute?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {},
) {
  const perMinute = options.perMinute ?? 80;
  const now = options.now ?? Date.now;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const recent: number[] = [];
  let queue: Promise<void> = Promise.resolve();

  /** Resolves when this write may go. Writes are released in the order they asked. */
  function take(): Promise<void> {
    const turn = queue.then(async () => {
      for (;;) {
        const t = now();
        while (recent.length && t - recent[0]! >= 60_000) recent.shift();
        if (recent.length < perMinute) {
          recent.push(t);
          return;
        }
        await sleep(60_000 - (t - recent[0]!));
      }
    });
    queue = turn.catch(() => {});
    return turn;
  }

  return {
    take,
    /** An Octokit `before request` hook that paces every non-GET request. */
    hook: async (request: { method?: string }) => {
      if (request.method && request.method !== "GET" && request.method !== "HEAD") await take();
    },
  };
}
