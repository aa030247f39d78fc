import { performance } from "node:perf_hooks";
import type { NodeHandler } from "../http/node-handler.ts";
import type { ConveyorMetrics } from "../metrics/create-metrics.ts";

export type RequestOptions = { method?: string; url?: string };
export type Response = {
  status: number;
  headers: Record<string, string | number | undefined>;
};

/** The part of Octokit a plugin touches (this one and the budget plugin). */
export interface HookableOctokit {
  hook: {
    wrap(
      name: "request",
      wrapper: (
        request: (options: RequestOptions) => Promise<Response>,
        options: RequestOptions,
      ) => Promise<Response>,
    ): void;
  };
}

/** What a number after these path segments stands for, in GitHub's own route templates. */
const ID_NAMES: Record<string, string> = {
  issues: "{issue_number}",
  pulls: "{pull_number}",
  comments: "{comment_id}",
  "check-runs": "{check_run_id}",
  "check-suites": "{check_suite_id}",
  installations: "{installation_id}",
  repositories: "{repository_id}",
  reactions: "{reaction_id}",
};

/**
 * A route label with bounded values. Conveyor calls GitHub with route templates
 * (`/repos/{owner}/{repo}/pulls`), but `paginate` sends the expanded URL
 * (`/repos/acme/widgets/issues`) and follows absolute `Link` URLs
 * (`https://api.github.com/repositories/42/issues?page=2`): owner and repository names, numbers
 * and SHAs are folded back into template parameters, so one route is one series.
 */
export function routeLabel(url: string | undefined): string {
  if (!url) return "unknown";
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, "").split("?")[0] ?? "";
  if (path.includes("{")) return path.slice(0, 120);
  const segments = path.split("/");
  const folded = segments.map((segment, i) => {
    const before = segments[i - 1] ?? "";
    if (i === 2 && before === "repos") return "{owner}";
    if (i === 3 && segments[1] === "repos") return "{repo}";
    if (i === 2 && (before === "orgs" || before === "users")) return `{${before.slice(0, -1)}}`;
    if (/^\d+$/.test(segment)) return ID_NAMES[before] ?? "{id}";
    if (/^[0-9a-f]{40}$/i.test(segment)) return "{sha}";
    return segment;
  });
  return folded.join("/").slice(0, 120) || "/";
}

/**
 * An Octokit plugin that counts every GitHub call (method, route, status, duration) and records
 * the rate-limit headers of every answer. Added to the Octokit class Probot builds clients from, so
 * app, installation and webhook-context clients are all covered.
 */
export function octokitMetricsPlugin(
  metrics: Pick<ConveyorMetrics, "githubRequest" | "githubRateLimit">,
) {
  return (octokit: HookableOctokit, options: { auth?: { installationId?: number | string } }) => {
    const installationId = options.auth?.installationId;
    const client = installationId ? String(installationId) : "app";
    octokit.hook.wrap("request", async (request, requestOptions) => {
      const start = performance.now();
      const method = (requestOptions.method ?? "GET").toUpperCase();
      const route = routeLabel(requestOptions.url);
      const record = (status: number, headers: Response["headers"] | undefined) => {
        metrics.githubRequest(method, route, status, (performance.now() - start) / 1000);
        const remaining = headers?.["x-ratelimit-remaining"];
        if (remaining !== undefined) {
          metrics.githubRateLimit(
            client,
            String(headers?.["x-ratelimit-resource"] ?? "core"),
            Number(remaining),
            Number(headers?.["x-ratelimit-limit"]),
          );
        }
      };
      try {
        const response = await request(requestOptions);
        record(response.status, response.headers);
        return response;
      } catch (error) {
        const failure = error as { status?: number; response?: Response };
        record(typeof failure.status === "number" ? failure.status : 0, failure.response?.headers);
        throw error;
      }
    });
  };
}

/**
 * Wraps Probot's webhook handler: every delivery is counted by event and outcome (from the status
 * it was answered with) and timed from arrival to answer.
 */
export function instrumentWebhooks(
  handler: NodeHandler,
  metrics: Pick<ConveyorMetrics, "webhook">,
): NodeHandler {
  return async (req, res) => {
    const start = performance.now();
    const header = req.headers["x-github-event"];
    const event = Array.isArray(header) ? header[0] : header;
    const done = () => metrics.webhook(event, res.statusCode, (performance.now() - start) / 1000);
    res.once("finish", done);
    const handled = await handler(req, res);
    if (handled === false) res.off("finish", done);
    return handled;
  };
}
