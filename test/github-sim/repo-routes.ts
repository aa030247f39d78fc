import { type ApiRoutes, bodyOf, pagedJson, type RouteRequest, repoOf } from "./api-route.ts";
import { EMPTY_TREE, type TreeEntry } from "./git-store.ts";
import {
  renderLabel,
  renderPullFile,
  renderRepoCommit,
  renderUser,
  repoApiUrl,
} from "./github-objects.ts";
import { HttpError, notFound } from "./http-error.ts";
import { createLabel } from "./issue-actions.ts";
import { requiredChecksFor } from "./protection.ts";
import { renderRepoFor, type SimContext } from "./sim-context.ts";
import { roleOf, type SimRepo } from "./sim-state.ts";

const READ_METADATA = [["metadata", "read"]] as const;
const READ_CONTENTS = [["contents", "read"]] as const;

/** GitHub wraps base64 file content at 60 characters. */
function wrapBase64(data: Buffer): string {
  return (data.toString("base64").match(/.{1,60}/g) ?? []).join("\n") + (data.length ? "\n" : "");
}

function wantsRaw(request: RouteRequest): boolean {
  return /application\/vnd\.github(\.v3)?\.raw/.test(request.headers.get("accept") ?? "");
}

async function resolveRef(ctx: SimContext, repo: SimRepo, ref: string | null): Promise<string> {
  const name = ref ?? repo.defaultBranch;
  const sha = await ctx.git.resolveCommit(repo.fullName, name);
  if (!sha) throw new HttpError(404, `No commit found for the ref ${name}`);
  return sha;
}

function contentEntry(ctx: SimContext, repo: SimRepo, entry: TreeEntry, ref: string) {
  const api = repoApiUrl(ctx.base, repo);
  const type = entry.type === "tree" ? "dir" : entry.type === "commit" ? "submodule" : "file";
  const self = `${api}/contents/${entry.path}?ref=${encodeURIComponent(ref)}`;
  const git = `${api}/git/${entry.type === "tree" ? "trees" : "blobs"}/${entry.sha}`;
  const html = `${ctx.base}/${repo.fullName}/${type === "dir" ? "tree" : "blob"}/${ref}/${entry.path}`;
  return {
    type,
    size: entry.size ?? 0,
    name: entry.path.split("/").at(-1)!,
    path: entry.path,
    sha: entry.sha,
    url: self,
    git_url: git,
    html_url: html,
    download_url: type === "file" ? `${ctx.base}/${repo.fullName}/raw/${ref}/${entry.path}` : null,
    _links: { self, git, html },
  };
}

export const repoRoutes: ApiRoutes = {
  "GET /repos/{owner}/{repo}": {
    auth: "installation",
    permissions: READ_METADATA,
    handle: (ctx, request) => ({ body: renderRepoFor(ctx, repoOf(request)) }),
  },

  "GET /repos/{owner}/{repo}/contents/{path}": {
    auth: "installation",
    permissions: READ_CONTENTS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const ref = request.query.get("ref") ?? repo.defaultBranch;
      const sha = await resolveRef(ctx, repo, ref);
      const found = await ctx.git.readFile(repo.fullName, sha, request.params.path!);
      if (!found) throw notFound();
      if (found.children) {
        return { body: found.children.map((child) => contentEntry(ctx, repo, child, ref)) };
      }
      if (wantsRaw(request) && found.content) {
        return { raw: { contentType: "text/plain; charset=utf-8", data: found.content } };
      }
      const entry = contentEntry(ctx, repo, found.entry, ref);
      if (!found.content) return { body: entry };
      return {
        body: {
          ...entry,
          size: found.content.length,
          encoding: "base64",
          content: wrapBase64(found.content),
        },
      };
    },
  },

  "GET /repos/{owner}/{repo}/collaborators/{username}/permission": {
    auth: "installation",
    permissions: READ_METADATA,
    handle(ctx, request) {
      const repo = repoOf(request);
      const user = ctx.state.users.get(request.params.username!.toLowerCase());
      if (!user) throw new HttpError(404, `${request.params.username} is not a user`);
      const role = roleOf(repo, user.login);
      // The legacy `permission` field folds maintain into write and triage into read.
      const permission = role === "maintain" ? "write" : role === "triage" ? "read" : role;
      return {
        body: { permission, role_name: role, user: renderUser(ctx.base, user) },
      };
    },
  },

  "GET /repos/{owner}/{repo}/branches/{branch}": {
    auth: "installation",
    permissions: READ_CONTENTS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const branch = request.params.branch!;
      const sha = await ctx.git.readRef(repo.fullName, `refs/heads/${branch}`);
      if (!sha) throw new HttpError(404, "Branch not found");
      const commit = (await ctx.git.readCommit(repo.fullName, sha))!;
      const api = repoApiUrl(ctx.base, repo);
      const protection = repo.branchProtection.get(branch);
      const required = requiredChecksFor(repo, branch);
      return {
        body: {
          name: branch,
          commit: renderRepoCommit(ctx.base, repo, commit),
          _links: {
            self: `${api}/branches/${branch}`,
            html: `${ctx.base}/${repo.fullName}/tree/${branch}`,
          },
          // What branch protection and rulesets require shows to every reader, as on GitHub.
          protected: required.contexts.length > 0 || repo.branchProtection.has(branch),
          protection: {
            enabled: repo.branchProtection.has(branch),
            required_status_checks: {
              enforcement_level: protection ? "non_admins" : "off",
              contexts: protection?.contexts ?? [],
              checks: (protection?.contexts ?? []).map((context) => ({ context, app_id: null })),
            },
          },
          protection_url: `${api}/branches/${branch}/protection`,
        },
      };
    },
  },

  "GET /repos/{owner}/{repo}/commits/{ref}": {
    auth: "installation",
    permissions: READ_CONTENTS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = await ctx.git.resolveCommit(repo.fullName, request.params.ref!);
      if (!sha) throw new HttpError(422, `No commit found for SHA: ${request.params.ref}`);
      if (/application\/vnd\.github(\.v3)?\.sha/.test(request.headers.get("accept") ?? "")) {
        return { raw: { contentType: "application/vnd.github.sha; charset=utf-8", data: sha } };
      }
      const commit = (await ctx.git.readCommit(repo.fullName, sha))!;
      const files = await ctx.git.diff(repo.fullName, commit.parents[0] ?? EMPTY_TREE, sha);
      return { body: renderRepoCommit(ctx.base, repo, commit, files) };
    },
  },

  // https://docs.github.com/rest/commits/commits#compare-two-commits: `base...head` against their
  // merge base, commits oldest first (at most 250), files paged by `per_page`/`page` (at most 300).
  "GET /repos/{owner}/{repo}/compare/{base}...{head}": {
    auth: "installation",
    permissions: READ_CONTENTS,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const base = await ctx.git.resolveCommit(repo.fullName, request.params.base!);
      const head = await ctx.git.resolveCommit(repo.fullName, request.params.head!);
      if (!base || !head) throw new HttpError(404, "Not Found");
      const mergeBase = (await ctx.git.mergeBase(repo.fullName, base, head)) ?? base;
      const ahead = await ctx.git.revList(repo.fullName, mergeBase, head);
      const behind = await ctx.git.revList(repo.fullName, mergeBase, base);
      const files = await ctx.git.diff(repo.fullName, mergeBase, head);
      const perPage = Math.min(100, Number(request.query.get("per_page") ?? 30) || 30);
      const page = Math.max(1, Number(request.query.get("page") ?? 1) || 1);
      const shown = files.slice(0, 300).slice((page - 1) * perPage, page * perPage);
      const commitOf = async (sha: string) =>
        renderRepoCommit(ctx.base, repo, (await ctx.git.readCommit(repo.fullName, sha))!);
      const commits = await Promise.all(ahead.slice(0, 250).map(commitOf));
      const html = `${ctx.base}/${repo.fullName}`;
      const api = repoApiUrl(ctx.base, repo);
      return {
        body: {
          url: `${api}/compare/${base}...${head}`,
          html_url: `${html}/compare/${base}...${head}`,
          permalink_url: `${html}/compare/${base}...${head}`,
          diff_url: `${html}/compare/${base}...${head}.diff`,
          patch_url: `${html}/compare/${base}...${head}.patch`,
          base_commit: await commitOf(base),
          merge_base_commit: await commitOf(mergeBase),
          status:
            ahead.length && behind.length
              ? "diverged"
              : ahead.length
                ? "ahead"
                : behind.length
                  ? "behind"
                  : "identical",
          ahead_by: ahead.length,
          behind_by: behind.length,
          total_commits: ahead.length,
          commits,
          files: shown.map((file) => renderPullFile(ctx.base, repo, head, file)),
        },
      };
    },
  },

  "GET /repos/{owner}/{repo}/labels": {
    auth: "installation",
    permissions: [
      ["issues", "read"],
      ["pull_requests", "read"],
    ],
    handle(ctx, request) {
      const repo = repoOf(request);
      return pagedJson(request, [...repo.labels.values()], (label) =>
        renderLabel(ctx.base, repo, label),
      );
    },
  },

  "GET /repos/{owner}/{repo}/labels/{name}": {
    auth: "installation",
    permissions: [
      ["issues", "read"],
      ["pull_requests", "read"],
    ],
    handle(ctx, request) {
      const repo = repoOf(request);
      const label = repo.labels.get(request.params.name!.toLowerCase());
      if (!label) throw notFound();
      return { body: renderLabel(ctx.base, repo, label) };
    },
  },

  "POST /repos/{owner}/{repo}/labels": {
    auth: "installation",
    permissions: [
      ["issues", "write"],
      ["pull_requests", "write"],
    ],
    handle(ctx, request) {
      const repo = repoOf(request);
      const input = bodyOf<{ name: string; color?: string; description?: string }>(request);
      return { status: 201, body: renderLabel(ctx.base, repo, createLabel(ctx, repo, input)) };
    },
  },
};
