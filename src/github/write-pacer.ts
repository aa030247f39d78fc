import { GitHubWritesClosed } from "../core/ports.ts";

/**
 * Spreads GitHub writes so a burst stays under the secondary rate limit for content creation
 * (80 requests a minute; https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
 * Every write waits for a slot in a sliding one-minute window shared by all installation clients of
 * this process; reads pass at once. `close` (graceful shutdown) refuses every write still waiting
 * and every later one with `GitHubWritesClosed`: a backlog must not hold the process for minutes,
 * and what was not written stays owed in Postgres for the next instance.
 */
export function createWritePacer(
  options: { perMinute?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {},
) {
  const perMinute = options.perMinute ?? 80;
  const now = options.now ?? Date.now;
  const sleep =
    options.sleep ??
    ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref()));
  const recent: number[] = [];
  let queue: Promise<void> = Promise.resolve();
  let closed = false;
  /** The writes not yet released, refused at once by `close`. */
  const waiting = new Set<(error: GitHubWritesClosed) => void>();
  let stopSleeping: (() => void) | undefined;

  /** Resolves when this write may go. Writes are released in the order they asked. */
  function take(): Promise<void> {
    if (closed) return Promise.reject(new GitHubWritesClosed());
    const turn = queue.then(async () => {
      for (;;) {
        if (closed) throw new GitHubWritesClosed();
        const t = now();
        while (recent.length && t - recent[0]! >= 60_000) recent.shift();
        if (recent.length < perMinute) {
          recent.push(t);
          return;
        }
        await new Promise<void>((resolve) => {
          stopSleeping = resolve;
          sleep(60_000 - (t - recent[0]!)).then(resolve);
        });
        stopSleeping = undefined;
      }
    });
    queue = turn.catch(() => {});
    return new Promise<void>((resolve, reject) => {
      waiting.add(reject);
      turn.then(resolve, reject).finally(() => waiting.delete(reject));
    });
  }

  return {
    take,
    /**
     * An Octokit `before request` hook that paces every non-GET request, except a GraphQL query
     * (a read sent as `POST /graphql`; its mutations are paced like any write).
     */
    hook: async (request: { method?: string; url?: string; query?: unknown }) => {
      if (!request.method || request.method === "GET" || request.method === "HEAD") return;
      if (isGraphqlQuery(request)) return;
      await take();
    },
    /** Refuses the waiting writes and all later ones (shutdown). Idempotent. */
    close() {
      closed = true;
      stopSleeping?.();
      for (const refuse of waiting) refuse(new GitHubWritesClosed());
      waiting.clear();
    },
  };
}

/**
 * Whether a request is a GraphQL query: a read, which GitHub does not count among the
 * content-creating requests its secondary limit allows 80 of a minute
 * (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
 * Only a document whose one operation is a named or anonymous `query` counts; anything else is
 * paced as a write.
 */
export function isGraphqlQuery(request: { url?: string; query?: unknown }): boolean {
  if (request.url !== "/graphql" || typeof request.query !== "string") return false;
  const document = request.query.trim();
  return /^(query\b|\{)/.test(document) && !/\b(mutation|subscription)\b/.test(document);
}
