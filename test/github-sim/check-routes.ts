import {
  type ApiRoutes,
  actorOf,
  bodyOf,
  countedPage,
  paginate,
  type RouteRequest,
  repoOf,
} from "./api-route.ts";
import {
  type CheckRunInput,
  createCheckRun,
  createStatus,
  renderCheckRunFor,
  type StatusInput,
  updateCheckRun,
} from "./check-actions.ts";
import {
  combinedState,
  latestStatuses,
  renderCheckSuite,
  renderStatus,
  repoApiUrl,
} from "./github-objects.ts";
import { HttpError, notFound } from "./http-error.ts";
import { renderRepoFor, type SimContext } from "./sim-context.ts";
import type { SimCheckRun, SimRepo } from "./sim-state.ts";

const READ_CHECKS = [["checks", "read"]] as const;
const WRITE_CHECKS = [["checks", "write"]] as const;
const READ_STATUSES = [["statuses", "read"]] as const;

async function commitOf(ctx: SimContext, request: RouteRequest, repo: SimRepo): Promise<string> {
  const sha = await ctx.git.resolveCommit(repo.fullName, request.params.ref!);
  if (!sha) throw new HttpError(422, `No commit found for SHA: ${request.params.ref}`);
  return sha;
}

function requireRun(repo: SimRepo, id: string): SimCheckRun {
  const run = repo.checkRuns.find((candidate) => candidate.id === Number(id));
  if (!run) throw notFound();
  return run;
}

export const checkRoutes: ApiRoutes = {
  "POST /repos/{owner}/{repo}/check-runs": {
    auth: "installation",
    permissions: WRITE_CHECKS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const { run } = await createCheckRun(
        ctx,
        repo,
        bodyOf<CheckRunInput>(request),
        request.principal.app,
      );
      return { status: 201, body: renderCheckRunFor(ctx, repo, run) };
    },
  },

  "GET /repos/{owner}/{repo}/check-runs/{check_run_id}": {
    auth: "installation",
    permissions: READ_CHECKS,
    handle(ctx, request) {
      const repo = repoOf(request);
      return { body: renderCheckRunFor(ctx, repo, requireRun(repo, request.params.check_run_id!)) };
    },
  },

  "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}": {
    auth: "installation",
    permissions: WRITE_CHECKS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const run = requireRun(repo, request.params.check_run_id!);
      // Only the app that created a check run may update it.
      const { app } = request.principal;
      if (run.app.id !== app.id) {
        throw new HttpError(
          403,
          `Invalid app_id \`${app.id}\` - check run can only be modified by the GitHub App that created it.`,
        );
      }
      await updateCheckRun(ctx, repo, run, bodyOf<CheckRunInput>(request));
      return { body: renderCheckRunFor(ctx, repo, run) };
    },
  },

  // Re-runs every check run of the suite: GitHub resets the suite to `queued` and tells the App
  // that owns it (a CI provider of the simulator runs the commit again, as Actions re-runs jobs).
  "POST /repos/{owner}/{repo}/check-suites/{check_suite_id}/rerequest": {
    auth: "installation",
    permissions: WRITE_CHECKS,
    handle(ctx, request) {
      const repo = repoOf(request);
      const suite = repo.checkSuites.find(
        (candidate) => candidate.id === Number(request.params.check_suite_id),
      );
      if (!suite) throw notFound();
      suite.updatedAt = ctx.state.now();
      ctx.onCheckSuiteRerequested?.(repo, suite);
      return { status: 201, body: {} };
    },
  },

  "GET /repos/{owner}/{repo}/commits/{ref}/check-runs": {
    auth: "installation",
    permissions: READ_CHECKS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = await commitOf(ctx, request, repo);
      const { query } = request;
      let runs = repo.checkRuns.filter((run) => run.headSha === sha).reverse();
      if ((query.get("filter") ?? "latest") === "latest") {
        const seen = new Set<string>();
        runs = runs.filter((run) => {
          const key = `${run.app.id}/${run.name}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      }
      const name = query.get("check_name");
      const status = query.get("status");
      const appId = query.get("app_id");
      runs = runs
        .filter((run) => !name || run.name === name)
        .filter((run) => !status || run.status === status)
        .filter((run) => !appId || run.app.id === Number(appId));
      return countedPage(request, runs, "check_runs", (run) => renderCheckRunFor(ctx, repo, run));
    },
  },

  "GET /repos/{owner}/{repo}/commits/{ref}/check-suites": {
    auth: "installation",
    permissions: READ_CHECKS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = await commitOf(ctx, request, repo);
      const appId = request.query.get("app_id");
      const name = request.query.get("check_name");
      const suites = repo.checkSuites
        .filter((suite) => suite.headSha === sha)
        .filter((suite) => !appId || suite.app.id === Number(appId))
        .filter(
          (suite) =>
            !name || repo.checkRuns.some((run) => run.suite.id === suite.id && run.name === name),
        );
      return countedPage(request, suites, "check_suites", (suite) =>
        renderCheckSuite(ctx.base, repo, suite, repo.checkRuns),
      );
    },
  },

  "GET /repos/{owner}/{repo}/commits/{ref}/status": {
    auth: "installation",
    permissions: READ_STATUSES,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = await commitOf(ctx, request, repo);
      const statuses = latestStatuses(repo.statuses, sha);
      const { page, headers } = paginate(request, statuses);
      const api = repoApiUrl(ctx.base, repo);
      return {
        body: {
          state: combinedState(statuses),
          statuses: page.map((status) => renderStatus(ctx.base, repo, status)),
          sha,
          total_count: statuses.length,
          repository: renderRepoFor(ctx, repo),
          commit_url: `${api}/commits/${sha}`,
          url: `${api}/commits/${sha}/status`,
        },
        headers,
      };
    },
  },

  "GET /repos/{owner}/{repo}/commits/{ref}/statuses": {
    auth: "installation",
    permissions: READ_STATUSES,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = await commitOf(ctx, request, repo);
      const statuses = repo.statuses.filter((status) => status.sha === sha).reverse();
      const { page, headers } = paginate(request, statuses);
      return { body: page.map((status) => renderStatus(ctx.base, repo, status)), headers };
    },
  },

  "POST /repos/{owner}/{repo}/statuses/{sha}": {
    auth: "installation",
    permissions: [["statuses", "write"]],
    async handle(ctx, request) {
      const repo = repoOf(request);
      const { status } = await createStatus(
        ctx,
        repo,
        request.params.sha!,
        bodyOf<StatusInput>(request),
        actorOf(request),
      );
      return { status: 201, body: renderStatus(ctx.base, repo, status) };
    },
  },
};
