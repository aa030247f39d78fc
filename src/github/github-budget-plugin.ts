import { classifyRateLimitAnswer, type GitHubBudget } from "../core/github-budget.ts";
import { GitHubWritesClosed } from "../core/ports.ts";

import type { HookableOctokit, Response } from "./instrument-github.ts";

export interface BudgetPluginOptions {
  budget: GitHubBudget;
  /** Counts each refusal GitHub answered, by kind. */
  onLimited?: (kind: "primary" | "secondary") => void;
  /** Refusals of one request waited out and retried before its caller sees the error (default 3). */
  retries?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Spends the GitHub budget as GitHub asks
 * (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit):
 * every answer's rate-limit headers update the client's budget; while a client is limited (a
 * secondary limit's `retry-after`, or an empty window until its reset) its requests wait instead
 * of going out, so a limit costs one refused request, not a storm of them; a refused request is
 * retried after the wait, a few times, so the work it carried is not lost. `close` ends every wait
 * with `GitHubWritesClosed` (shutdown: what was not sent stays owed in Postgres).
 */
export function createBudgetPlugin(options: BudgetPluginOptions) {
  const { budget } = options;
  const now = options.now ?? Date.now;
  const retries = options.retries ?? 3;
  const sleeping = new Set<() => void>();
  let closed = false;
  const sleep =
    options.sleep ??
    ((ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        timer.unref();
        function done() {
          clearTimeout(timer);
          sleeping.delete(done);
          resolve();
        }
        sleeping.add(done);
      }));

  const waitFor = async (client: string) => {
    for (;;) {
      const until = budget.blockedUntil(client);
      if (until === undefined || until <= now()) return;
      if (closed) throw new GitHubWritesClosed();
      await sleep(until - now());
    }
  };

  const plugin = (
    octokit: HookableOctokit,
    octokitOptions: { auth?: { installationId?: number | string } },
  ) => {
    const installationId = octokitOptions.auth?.installationId;
    const client = installationId ? String(installationId) : "app";
    octokit.hook.wrap("request", async (request, requestOptions) => {
      for (let attempt = 0; ; attempt++) {
        await waitFor(client);
        try {
          const response = await request(requestOptions);
          budget.observe(client, response.headers);
          return response;
        } catch (error) {
          const failure = error as {
            status?: number;
            message?: string;
            response?: Response & { data?: { message?: unknown } };
          };
          const headers = failure.response?.headers;
          budget.observe(client, headers);
          const data = failure.response?.data;
          const message = typeof data?.message === "string" ? data.message : failure.message;
          const hit = classifyRateLimitAnswer(failure.status ?? 0, headers, message, now());
          if (!hit) throw error;
          budget.limited(client, hit);
          options.onLimited?.(hit.kind);
          if (attempt >= retries) throw error;
        }
      }
    });
  };

  return {
    plugin,
    /** Ends every wait (shutdown); later requests of a limited client fail at once. */
    close() {
      closed = true;
      for (const wake of [...sleeping]) wake();
    },
  };
}
