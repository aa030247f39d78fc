import {
  type ApiRoute,
  type ApiRoutes,
  actorOf,
  bodyOf,
  pagedJson,
  type RouteRequest,
  repoOf,
} from "./api-route.ts";
import {
  renderComment,
  renderIssue,
  renderIssueEvent,
  renderLabel,
  renderReaction,
} from "./github-objects.ts";
import { notFound } from "./http-error.ts";
import {
  addLabels,
  addReaction,
  createComment,
  createIssue,
  deleteComment,
  type IssuePatch,
  removeLabel,
  requireComment,
  updateComment,
  updateIssue,
} from "./issue-actions.ts";
import { requireIssue, type SimContext } from "./sim-context.ts";
import type { ReactionContent, SimIssue, SimReaction, SimRepo } from "./sim-state.ts";

const READ = [
  ["issues", "read"],
  ["pull_requests", "read"],
] as const;
const WRITE = [
  ["issues", "write"],
  ["pull_requests", "write"],
] as const;

function issueOf(request: RouteRequest): SimIssue {
  return requireIssue(repoOf(request), request.params.issue_number!);
}

function viaAppOf(request: RouteRequest) {
  return request.principal.kind === "installation" ? request.principal.app : undefined;
}

function labelNames(body: unknown): string[] {
  const labels = Array.isArray(body) ? body : ((body as { labels?: unknown[] }).labels ?? []);
  return labels.map((label) =>
    typeof label === "string" ? label : (label as { name: string }).name,
  );
}

function issueLabels(ctx: SimContext, repo: SimRepo, issue: SimIssue) {
  return issue.labels.map((name) =>
    renderLabel(ctx.base, repo, repo.labels.get(name.toLowerCase())!),
  );
}

/** A change to an issue's (or pull request's) labels, answered with its labels afterwards. */
function labelRoute(
  change: (
    ctx: SimContext,
    repo: SimRepo,
    issue: SimIssue,
    request: RouteRequest,
  ) => Promise<unknown>,
): ApiRoute {
  return {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const issue = issueOf(request);
      await change(ctx, repo, issue, request);
      return { body: issueLabels(ctx, repo, issue) };
    },
  };
}

function listReactions(ctx: SimContext, request: RouteRequest, reactions: SimReaction[]) {
  const content = request.query.get("content");
  const selected = content ? reactions.filter((r) => r.content === content) : reactions;
  return pagedJson(request, selected, (reaction) => renderReaction(ctx.base, reaction));
}

function react(ctx: SimContext, request: RouteRequest, reactions: SimReaction[]) {
  const { content } = bodyOf<{ content: ReactionContent }>(request);
  const { reaction, created } = addReaction(ctx, reactions, content, actorOf(request));
  return { status: created ? 201 : 200, body: renderReaction(ctx.base, reaction) };
}

function deleteReaction(request: RouteRequest, reactions: SimReaction[]) {
  const index = reactions.findIndex((r) => r.id === Number(request.params.reaction_id));
  if (index === -1) throw notFound();
  reactions.splice(index, 1);
  return { status: 204 };
}

export const issueRoutes: ApiRoutes = {
  "GET /repos/{owner}/{repo}/issues": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      const { query } = request;
      const state = query.get("state") ?? "open";
      const labels = (query.get("labels") ?? "")
        .split(",")
        .map((label) => label.trim().toLowerCase())
        .filter(Boolean);
      const creator = query.get("creator")?.toLowerCase();
      const since = query.get("since");
      const sort = query.get("sort") ?? "created";
      const direction = query.get("direction") ?? "desc";
      const issues = [...repo.issues.values()]
        .filter((issue) => state === "all" || issue.state === state)
        .filter((issue) =>
          labels.every((label) => issue.labels.some((l) => l.toLowerCase() === label)),
        )
        .filter((issue) => !creator || issue.user.login.toLowerCase() === creator)
        .filter((issue) => !since || issue.updatedAt >= since)
        .sort((a, b) => {
          const key = sort === "updated" ? "updatedAt" : "createdAt";
          const order = a[key] === b[key] ? a.number - b.number : a[key] < b[key] ? -1 : 1;
          return direction === "asc" ? order : -order;
        });
      return pagedJson(request, issues, (issue) => renderIssue(ctx.base, repo, issue));
    },
  },

  "POST /repos/{owner}/{repo}/issues": {
    auth: "installation",
    permissions: [["issues", "write"]],
    async handle(ctx, request) {
      const repo = repoOf(request);
      const input = bodyOf<{
        title: string | number;
        body?: string;
        labels?: unknown[];
        assignees?: string[];
      }>(request);
      const { issue } = await createIssue(ctx, repo, {
        title: String(input.title),
        body: input.body ?? null,
        labels: labelNames({ labels: input.labels ?? [] }),
        assignees: input.assignees ?? [],
        user: actorOf(request),
        viaApp: viaAppOf(request),
      });
      return { status: 201, body: renderIssue(ctx.base, repo, issue) };
    },
  },

  "GET /repos/{owner}/{repo}/issues/{issue_number}": {
    auth: "installation",
    permissions: READ,
    handle: (ctx, request) => ({ body: renderIssue(ctx.base, repoOf(request), issueOf(request)) }),
  },

  "GET /repos/{owner}/{repo}/issues/{issue_number}/events": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      return pagedJson(request, issueOf(request).timeline, (event) =>
        renderIssueEvent(ctx.base, repo, event),
      );
    },
  },

  "PATCH /repos/{owner}/{repo}/issues/{issue_number}": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const issue = issueOf(request);
      const input = bodyOf<IssuePatch & { labels?: unknown[]; title?: string | number }>(request);
      const patch: IssuePatch = {
        ...input,
        title: input.title === undefined ? undefined : String(input.title),
      };
      if (input.labels !== undefined) patch.labels = labelNames({ labels: input.labels });
      await updateIssue(ctx, repo, issue, patch, actorOf(request));
      return { body: renderIssue(ctx.base, repo, issue) };
    },
  },

  "GET /repos/{owner}/{repo}/issues/{issue_number}/comments": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      const issue = issueOf(request);
      const since = request.query.get("since");
      const comments = [...repo.comments.values()].filter(
        (comment) => comment.issueNumber === issue.number && (!since || comment.updatedAt >= since),
      );
      return pagedJson(request, comments, (comment) => renderComment(ctx.base, repo, comment));
    },
  },

  "POST /repos/{owner}/{repo}/issues/{issue_number}/comments": {
    auth: "installation",
    permissions: WRITE,
    handle(ctx, request) {
      const repo = repoOf(request);
      const { comment } = createComment(ctx, repo, issueOf(request), {
        body: bodyOf<{ body: string }>(request).body,
        user: actorOf(request),
        viaApp: viaAppOf(request),
      });
      return { status: 201, body: renderComment(ctx.base, repo, comment) };
    },
  },

  "GET /repos/{owner}/{repo}/issues/comments/{comment_id}": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      return {
        body: renderComment(ctx.base, repo, requireComment(repo, request.params.comment_id!)),
      };
    },
  },

  "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}": {
    auth: "installation",
    permissions: WRITE,
    handle(ctx, request) {
      const repo = repoOf(request);
      const comment = requireComment(repo, request.params.comment_id!);
      updateComment(ctx, repo, comment, bodyOf<{ body: string }>(request).body, actorOf(request));
      return { body: renderComment(ctx.base, repo, comment) };
    },
  },

  "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}": {
    auth: "installation",
    permissions: WRITE,
    handle(ctx, request) {
      const repo = repoOf(request);
      deleteComment(ctx, repo, requireComment(repo, request.params.comment_id!), actorOf(request));
      return { status: 204 };
    },
  },

  "GET /repos/{owner}/{repo}/issues/{issue_number}/labels": {
    auth: "installation",
    permissions: READ,
    handle(ctx, request) {
      const repo = repoOf(request);
      const issue = issueOf(request);
      return pagedJson(request, issue.labels, (name) =>
        renderLabel(ctx.base, repo, repo.labels.get(name.toLowerCase())!),
      );
    },
  },

  "POST /repos/{owner}/{repo}/issues/{issue_number}/labels": labelRoute(
    (ctx, repo, issue, request) =>
      addLabels(ctx, repo, issue, labelNames(request.body ?? {}), actorOf(request)),
  ),

  "PUT /repos/{owner}/{repo}/issues/{issue_number}/labels": labelRoute(
    (ctx, repo, issue, request) =>
      updateIssue(ctx, repo, issue, { labels: labelNames(request.body ?? {}) }, actorOf(request)),
  ),

  "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}": labelRoute(
    (ctx, repo, issue, request) =>
      removeLabel(ctx, repo, issue, request.params.name!, actorOf(request)),
  ),

  "GET /repos/{owner}/{repo}/issues/{issue_number}/reactions": {
    auth: "installation",
    permissions: READ,
    handle: (ctx, request) => listReactions(ctx, request, issueOf(request).reactions),
  },

  "POST /repos/{owner}/{repo}/issues/{issue_number}/reactions": {
    auth: "installation",
    permissions: WRITE,
    handle: (ctx, request) => react(ctx, request, issueOf(request).reactions),
  },

  "DELETE /repos/{owner}/{repo}/issues/{issue_number}/reactions/{reaction_id}": {
    auth: "installation",
    permissions: WRITE,
    handle: (_ctx, request) => deleteReaction(request, issueOf(request).reactions),
  },

  "GET /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions": {
    auth: "installation",
    permissions: READ,
    handle: (ctx, request) =>
      listReactions(
        ctx,
        request,
        requireComment(repoOf(request), request.params.comment_id!).reactions,
      ),
  },

  "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions": {
    auth: "installation",
    permissions: WRITE,
    handle: (ctx, request) =>
      react(ctx, request, requireComment(repoOf(request), request.params.comment_id!).reactions),
  },

  "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions/{reaction_id}": {
    auth: "installation",
    permissions: WRITE,
    handle: (_ctx, request) =>
      deleteReaction(
        request,
        requireComment(repoOf(request), request.params.comment_id!).reactions,
      ),
  },
};
