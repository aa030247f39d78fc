import {
  type ApiRoutes,
  actorOf,
  bodyOf,
  pagedJson,
  paginate,
  type RouteRequest,
  repoOf,
} from "./api-route.ts";
import { renderPull, renderPullFile, renderRepoCommit, renderReview } from "./github-objects.ts";
import { notFound } from "./http-error.ts";
import {
  createPull,
  type MergeInput,
  mergePull,
  type PullPatch,
  updatePull,
  updatePullBranch,
} from "./pull-actions.ts";
import { pullFacts, pullFiles } from "./pull-facts.ts";
import { requirePull, type SimContext } from "./sim-context.ts";
import type { SimIssue, SimRepo } from "./sim-state.ts";

const READ = [["pull_requests", "read"]] as const;
const WRITE = [["pull_requests", "write"]] as const;

function pullOf(request: RouteRequest): SimIssue {
  return requirePull(repoOf(request), request.params.pull_number!);
}

async function renderFull(ctx: SimContext, repo: SimRepo, issue: SimIssue) {
  return renderPull(ctx.base, repo, issue, await pullFacts(ctx, repo, issue));
}

export const pullRoutes: ApiRoutes = {
  "GET /repos/{owner}/{repo}/pulls": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const { query } = request;
      const state = query.get("state") ?? "open";
      // `head` is `owner:branch`; forks are not simulated, so another owner matches nothing.
      const head = query.get("head");
      const colon = head?.indexOf(":") ?? -1;
      const headBranch = head && colon !== -1 ? head.slice(colon + 1) : head;
      const foreignHead =
        head !== null &&
        colon !== -1 &&
        head.slice(0, colon).toLowerCase() !== repo.owner.login.toLowerCase();
      const base = query.get("base");
      const direction = query.get("direction") ?? "desc";
      const pulls = [...repo.issues.values()]
        .filter((issue) => issue.pull && (state === "all" || issue.state === state))
        .filter((issue) => !foreignHead && (!headBranch || issue.pull!.headRef === headBranch))
        .filter((issue) => !base || issue.pull!.baseRef === base)
        .sort((a, b) => (direction === "asc" ? a.number - b.number : b.number - a.number));
      const { page, headers } = paginate(request, pulls);
      return {
        body: await Promise.all(page.map((issue) => renderFull(ctx, repo, issue))),
        headers,
      };
    },
  },

  "POST /repos/{owner}/{repo}/pulls": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const input = bodyOf<{
        title?: string;
        body?: string;
        head: string;
        base: string;
        draft?: boolean;
        maintainer_can_modify?: boolean;
      }>(request);
      const { issue } = await createPull(ctx, repo, {
        title: input.title ?? input.head,
        body: input.body ?? null,
        head: input.head,
        base: input.base,
        draft: input.draft,
        maintainerCanModify: input.maintainer_can_modify,
        user: actorOf(request),
        viaApp: request.principal.kind === "installation" ? request.principal.app : undefined,
      });
      return { status: 201, body: await renderFull(ctx, repo, issue) };
    },
  },

  "GET /repos/{owner}/{repo}/pulls/{pull_number}": {
    auth: "installation",
    permissions: READ,
    handle: async (ctx, request) => ({
      body: await renderFull(ctx, repoOf(request), pullOf(request)),
    }),
  },

  "PATCH /repos/{owner}/{repo}/pulls/{pull_number}": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const issue = pullOf(request);
      await updatePull(ctx, repo, issue, bodyOf<PullPatch>(request), actorOf(request));
      return { body: await renderFull(ctx, repo, issue) };
    },
  },

  "GET /repos/{owner}/{repo}/pulls/{pull_number}/files": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const issue = pullOf(request);
      const files = await pullFiles(ctx, repo, issue);
      return pagedJson(request, files, (file) =>
        renderPullFile(ctx.base, repo, issue.pull!.headSha, file),
      );
    },
  },

  "GET /repos/{owner}/{repo}/pulls/{pull_number}/commits": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const pull = pullOf(request).pull!;
      const mergeBase =
        (await ctx.git.mergeBase(repo.fullName, pull.baseSha, pull.headSha)) ?? pull.baseSha;
      const shas = await ctx.git.revList(repo.fullName, mergeBase, pull.headSha);
      const { page, headers } = paginate(request, shas);
      const commits = await Promise.all(page.map((sha) => ctx.git.readCommit(repo.fullName, sha)));
      return { body: commits.map((commit) => renderRepoCommit(ctx.base, repo, commit!)), headers };
    },
  },

  "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      const issue = pullOf(request);
      return pagedJson(request, issue.pull!.reviews, (review) =>
        renderReview(ctx.base, repo, issue.number, review),
      );
    },
  },

  "GET /repos/{owner}/{repo}/pulls/{pull_number}/merge": {
    auth: "installation",
    permissions: READ,
    handle(_ctx, request) {
      if (!pullOf(request).pull!.merged) throw notFound();
      return { status: 204 };
    },
  },

  "PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const issue = pullOf(request);
      await updatePullBranch(
        ctx,
        repoOf(request),
        issue,
        bodyOf<{ expected_head_sha?: string }>(request),
        actorOf(request),
      );
      // 202 as documented: GitHub merges in the background (the simulator already has).
      return {
        status: 202,
        body: {
          message: "Updating pull request branch.",
          url: `${ctx.base}/${repoOf(request).fullName}/pull/${issue.number}`,
        },
      };
    },
  },

  "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge": {
    auth: "installation",
    permissions: [["contents", "write"]],
    async handle(ctx, request) {
      const { sha } = await mergePull(
        ctx,
        repoOf(request),
        pullOf(request),
        bodyOf<MergeInput>(request),
        actorOf(request),
      );
      return { body: { sha, merged: true, message: "Pull Request successfully merged" } };
    },
  },
};
