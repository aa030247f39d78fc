import { type ApiRoutes, actorOf, bodyOf, repoOf } from "./api-route.ts";
import type { GitIdentity, TreeChange } from "./git-store.ts";
import { nodeId, renderGitCommit, renderTree, repoApiUrl } from "./github-objects.ts";
import { HttpError, notFound, validationFailed } from "./http-error.ts";
import { branchMoved, noreplyIdentity } from "./pull-actions.ts";
import { hasAccess, type Principal } from "./sim-auth.ts";
import type { SimContext } from "./sim-context.ts";
import type { SimRepo } from "./sim-state.ts";

const READ = [["contents", "read"]] as const;
const WRITE = [["contents", "write"]] as const;

function renderRef(ctx: SimContext, repo: SimRepo, ref: string, sha: string, type: string) {
  const api = repoApiUrl(ctx.base, repo);
  return {
    ref,
    node_id: nodeId("Ref", `${repo.id}:${ref}`),
    url: `${api}/git/${ref}`,
    object: { sha, type, url: `${api}/git/${type}s/${sha}` },
  };
}

async function refAnswer(ctx: SimContext, repo: SimRepo, ref: string, sha: string) {
  const type = (await ctx.git.objectType(repo.fullName, sha)) ?? "commit";
  return renderRef(ctx, repo, ref, sha, type);
}

function branchOf(ref: string): string | undefined {
  return ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : undefined;
}

/**
 * GitHub refuses ref updates from an app without the `workflows` permission when they change
 * `.github/workflows/` (https://docs.github.com/rest/git/refs).
 */
export async function guardWorkflows(
  ctx: SimContext,
  principal: Principal,
  repo: SimRepo,
  from: string | undefined,
  to: string,
) {
  if (
    principal.kind !== "installation" ||
    hasAccess(principal.token.permissions, "workflows", "write")
  )
    return;
  const defaultTip = await ctx.git.readRef(repo.fullName, `refs/heads/${repo.defaultBranch}`);
  const base =
    from ?? (defaultTip ? await ctx.git.mergeBase(repo.fullName, defaultTip, to) : undefined);
  if (!base || (await ctx.git.objectType(repo.fullName, to)) !== "commit") return;
  const touched = (await ctx.git.diff(repo.fullName, base, to)).find(
    (file) =>
      file.filename.startsWith(".github/workflows/") ||
      file.previousFilename?.startsWith(".github/workflows/"),
  );
  if (touched) {
    throw new HttpError(
      403,
      `refusing to allow a GitHub App to create or update workflow \`${touched.filename}\` without \`workflows\` permission`,
    );
  }
}

function identity(
  input: { name?: string; email?: string; date?: string } | undefined,
  fallback: GitIdentity,
): GitIdentity {
  if (!input) return fallback;
  return {
    name: input.name ?? fallback.name,
    email: input.email ?? fallback.email,
    date: input.date ?? fallback.date,
  };
}

function fullRef(param: string): string {
  return param.startsWith("refs/") ? param : `refs/${param}`;
}

export const gitRoutes: ApiRoutes = {
  "POST /repos/{owner}/{repo}/git/blobs": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const { content, encoding } = bodyOf<{ content: string; encoding?: string }>(request);
      if (encoding !== undefined && encoding !== "utf-8" && encoding !== "base64") {
        throw validationFailed([{ resource: "Blob", field: "encoding", code: "invalid" }]);
      }
      const data = Buffer.from(content, encoding === "base64" ? "base64" : "utf8");
      const sha = await ctx.git.writeBlob(repo.fullName, data);
      return { status: 201, body: { url: `${repoApiUrl(ctx.base, repo)}/git/blobs/${sha}`, sha } };
    },
  },

  "GET /repos/{owner}/{repo}/git/blobs/{file_sha}": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const sha = request.params.file_sha!;
      const data = await ctx.git.readBlob(repo.fullName, sha);
      if (!data) throw notFound();
      return {
        body: {
          sha,
          node_id: nodeId("Blob", sha),
          size: data.length,
          url: `${repoApiUrl(ctx.base, repo)}/git/blobs/${sha}`,
          content: (data.toString("base64").match(/.{1,60}/g) ?? []).join("\n"),
          encoding: "base64",
        },
      };
    },
  },

  "POST /repos/{owner}/{repo}/git/trees": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const input = bodyOf<{ tree: TreeChange[]; base_tree?: string }>(request);
      for (const [index, entry] of input.tree.entries()) {
        if (entry.content !== undefined && entry.sha !== undefined) {
          throw validationFailed(
            [{ resource: "Tree", field: `tree[${index}]`, code: "invalid" }],
            "Must supply either tree.sha or tree.content, not both",
          );
        }
      }
      if (input.base_tree !== undefined) {
        const type = await ctx.git.objectType(repo.fullName, input.base_tree);
        if (type !== "tree" && type !== "commit") {
          throw validationFailed(
            [{ resource: "Tree", field: "base_tree", code: "invalid" }],
            "base_tree is not a valid tree oid",
          );
        }
      }
      let sha: string;
      try {
        sha = await ctx.git.createTree(repo.fullName, input.base_tree, input.tree);
      } catch (error) {
        throw validationFailed(
          [{ resource: "Tree", field: "tree", code: "invalid" }],
          `GitRPC::BadObjectState (${error instanceof Error ? error.message : String(error)})`,
        );
      }
      const entries = (await ctx.git.readTree(repo.fullName, sha))?.entries ?? [];
      return { status: 201, body: renderTree(ctx.base, repo, sha, entries) };
    },
  },

  "GET /repos/{owner}/{repo}/git/trees/{tree_sha}": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const recursive = request.query.has("recursive");
      const tree = await ctx.git.readTree(repo.fullName, request.params.tree_sha!, recursive);
      if (!tree) throw notFound();
      const { sha, entries } = tree;
      return { body: renderTree(ctx.base, repo, sha, entries) };
    },
  },

  "POST /repos/{owner}/{repo}/git/commits": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const input = bodyOf<{
        message: string;
        tree: string;
        parents?: string[];
        author?: { name?: string; email?: string; date?: string };
        committer?: { name?: string; email?: string; date?: string };
      }>(request);
      if ((await ctx.git.objectType(repo.fullName, input.tree)) !== "tree") {
        throw validationFailed(
          [{ resource: "Commit", field: "tree", code: "invalid" }],
          "Tree SHA does not exist",
        );
      }
      for (const parent of input.parents ?? []) {
        if ((await ctx.git.objectType(repo.fullName, parent)) !== "commit") {
          throw validationFailed(
            [{ resource: "Commit", field: "parents", code: "invalid" }],
            "Parent SHA does not exist or is not a commit object",
          );
        }
      }
      const actor = noreplyIdentity(actorOf(request), ctx.state.now());
      const author = identity(input.author, actor);
      const committer = identity(input.committer ?? input.author, actor);
      const sha = await ctx.git.createCommit(repo.fullName, {
        tree: input.tree,
        parents: input.parents ?? [],
        message: input.message,
        author,
        committer,
      });
      // GitHub signs commits an app creates through the API when it keeps the default committer.
      if (!input.committer && !input.author) repo.signedCommits.add(sha);
      return {
        status: 201,
        body: renderGitCommit(ctx.base, repo, (await ctx.git.readCommit(repo.fullName, sha))!),
      };
    },
  },

  "GET /repos/{owner}/{repo}/git/commits/{commit_sha}": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const commit = await ctx.git.readCommit(repo.fullName, request.params.commit_sha!);
      if (!commit) throw notFound();
      return { body: renderGitCommit(ctx.base, repo, commit) };
    },
  },

  "GET /repos/{owner}/{repo}/git/ref/{ref}": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const ref = fullRef(request.params.ref!);
      const sha = await ctx.git.readRef(repo.fullName, ref).catch(() => undefined);
      if (!sha || !(ref.startsWith("refs/heads/") || ref.startsWith("refs/tags/")))
        throw notFound();
      return { body: await refAnswer(ctx, repo, ref, sha) };
    },
  },

  "GET /repos/{owner}/{repo}/git/matching-refs/{ref}": {
    auth: "installation",
    permissions: READ,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const prefix = fullRef(request.params.ref!);
      const refs = (await ctx.git.listRefs(repo.fullName)).filter((r) => r.ref.startsWith(prefix));
      return { body: await Promise.all(refs.map((r) => refAnswer(ctx, repo, r.ref, r.sha))) };
    },
  },

  "POST /repos/{owner}/{repo}/git/refs": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const { ref, sha } = bodyOf<{ ref: string; sha: string }>(request);
      if (!/^refs\/[^/]+\/.+/.test(ref)) {
        throw validationFailed(
          [{ resource: "Reference", field: "ref", code: "invalid" }],
          "Reference name must start with 'refs/' and have at least two slashes.",
        );
      }
      if (!(await ctx.git.objectType(repo.fullName, sha))) {
        throw validationFailed(
          [{ resource: "Reference", field: "sha", code: "invalid" }],
          "Object does not exist",
        );
      }
      if (await ctx.git.readRef(repo.fullName, ref).catch(() => undefined)) {
        throw validationFailed(
          [{ resource: "Reference", field: "ref", code: "already_exists" }],
          "Reference already exists",
        );
      }
      await guardWorkflows(ctx, request.principal, repo, undefined, sha);
      if (!(await ctx.git.updateRef(repo.fullName, ref, sha, ""))) {
        throw validationFailed(
          [{ resource: "Reference", field: "ref", code: "already_exists" }],
          "Reference already exists",
        );
      }
      const branch = branchOf(ref);
      if (branch) ctx.onBranchHead?.(repo, branch, sha);
      return { status: 201, body: await refAnswer(ctx, repo, ref, sha) };
    },
  },

  "PATCH /repos/{owner}/{repo}/git/refs/{ref}": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const ref = fullRef(request.params.ref!);
      const { sha, force } = bodyOf<{ sha: string; force?: boolean }>(request);
      const current = await ctx.git.readRef(repo.fullName, ref).catch(() => undefined);
      if (!current)
        throw validationFailed(
          [{ resource: "Reference", field: "ref", code: "invalid" }],
          "Reference does not exist",
        );
      if ((await ctx.git.objectType(repo.fullName, sha)) !== "commit") {
        throw validationFailed(
          [{ resource: "Reference", field: "sha", code: "invalid" }],
          "Object does not exist",
        );
      }
      if (!force && !(await ctx.git.isAncestor(repo.fullName, current, sha))) {
        throw validationFailed(
          [{ resource: "Reference", field: "sha", code: "invalid" }],
          "Update is not a fast forward",
        );
      }
      await guardWorkflows(ctx, request.principal, repo, current, sha);
      if (!(await ctx.git.updateRef(repo.fullName, ref, sha, current))) {
        throw validationFailed(
          [{ resource: "Reference", field: "sha", code: "invalid" }],
          "Reference cannot be updated",
        );
      }
      const branch = branchOf(ref);
      if (branch) await branchMoved(ctx, repo, branch, sha, actorOf(request));
      return { body: await refAnswer(ctx, repo, ref, sha) };
    },
  },

  "DELETE /repos/{owner}/{repo}/git/refs/{ref}": {
    auth: "installation",
    permissions: WRITE,
    async handle(ctx, request) {
      const repo = repoOf(request);
      const ref = fullRef(request.params.ref!);
      if (!(await ctx.git.readRef(repo.fullName, ref).catch(() => undefined))) {
        throw validationFailed(
          [{ resource: "Reference", field: "ref", code: "invalid" }],
          "Reference does not exist",
        );
      }
      await ctx.git.deleteRef(repo.fullName, ref);
      const branch = branchOf(ref);
      if (branch) await branchMoved(ctx, repo, branch, undefined, actorOf(request));
      return { status: 204 };
    },
  },
};
