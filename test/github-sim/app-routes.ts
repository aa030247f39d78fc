import { type ApiRoutes, bodyOf, paginate, repoOf } from "./api-route.ts";
import { renderApp, renderInstallation } from "./github-objects.ts";
import { HttpError, notFound } from "./http-error.ts";
import { hasAccess, newInstallationToken } from "./sim-auth.ts";
import { renderRepoFor, type SimContext } from "./sim-context.ts";
import {
  type AppPermissions,
  installationFor,
  type SimInstallation,
  type SimRepo,
  type SimToken,
  toGitHubTime,
} from "./sim-state.ts";

/** Repositories an installation covers, in creation order. */
export function installationRepos(ctx: SimContext, installation: SimInstallation): SimRepo[] {
  return [...ctx.state.repos.values()].filter(
    (repo) => installationFor(ctx.state, repo, installation.app)?.id === installation.id,
  );
}

function requireInstallation(ctx: SimContext, id: string): SimInstallation {
  const installation = ctx.state.installations.get(Number(id));
  if (!installation || installation.app.id !== ctx.app.id) throw notFound();
  return installation;
}

interface TokenRequest {
  repositories?: string[];
  repository_ids?: number[];
  permissions?: AppPermissions;
}

/** Issues an installation token, optionally narrowed to some repositories and permissions. */
export function issueInstallationToken(
  ctx: SimContext,
  installation: SimInstallation,
  request: TokenRequest = {},
): SimToken {
  const permissions = request.permissions ?? installation.permissions;
  for (const [name, access] of Object.entries(permissions)) {
    if (!hasAccess(installation.permissions, name, access)) {
      throw new HttpError(422, "The permissions requested are not granted to this installation.");
    }
  }
  let repositoryIds: Set<number> | undefined;
  if (request.repositories || request.repository_ids) {
    const covered = installationRepos(ctx, installation);
    repositoryIds = new Set();
    for (const name of request.repositories ?? []) {
      const repo = covered.find((r) => r.name.toLowerCase() === name.toLowerCase());
      if (!repo) {
        throw new HttpError(
          422,
          "There is at least one repository that does not exist or is not accessible to the parent installation.",
        );
      }
      repositoryIds.add(repo.id);
    }
    for (const id of request.repository_ids ?? []) {
      if (!covered.some((repo) => repo.id === id)) {
        throw new HttpError(
          422,
          "There is at least one repository that does not exist or is not accessible to the parent installation.",
        );
      }
      repositoryIds.add(id);
    }
  }
  const token: SimToken = {
    token: newInstallationToken(),
    installation,
    expiresAt: new Date(ctx.state.clock().getTime() + 60 * 60 * 1000),
    permissions,
    repositoryIds,
  };
  ctx.state.tokens.set(token.token, token);
  return token;
}

export const appRoutes: ApiRoutes = {
  "GET /app": {
    auth: "app",
    handle: (ctx) => ({ body: renderApp(ctx.base, ctx.app) }),
  },

  "GET /app/installations": {
    auth: "app",
    handle(ctx, request) {
      const installations = [...ctx.state.installations.values()].filter(
        (installation) => installation.app.id === ctx.app.id,
      );
      const { page, headers } = paginate(request, installations);
      return { body: page.map((i) => renderInstallation(ctx.base, i)), headers };
    },
  },

  "GET /app/installations/{installation_id}": {
    auth: "app",
    handle: (ctx, request) => ({
      body: renderInstallation(ctx.base, requireInstallation(ctx, request.params.installation_id!)),
    }),
  },

  "POST /app/installations/{installation_id}/access_tokens": {
    auth: "app",
    handle(ctx, request) {
      const installation = requireInstallation(ctx, request.params.installation_id!);
      const token = issueInstallationToken(ctx, installation, bodyOf<TokenRequest>(request));
      const body: Record<string, unknown> = {
        token: token.token,
        expires_at: toGitHubTime(token.expiresAt),
        permissions: token.permissions,
        repository_selection: token.repositoryIds ? "selected" : installation.repositorySelection,
      };
      if (token.repositoryIds) {
        body.repositories = installationRepos(ctx, installation)
          .filter((repo) => token.repositoryIds!.has(repo.id))
          .map((repo) => renderRepoFor(ctx, repo));
      }
      return { status: 201, body };
    },
  },

  "GET /repos/{owner}/{repo}/installation": {
    auth: "app",
    handle(ctx, request) {
      const installation = installationFor(ctx.state, repoOf(request), ctx.app);
      if (!installation) throw notFound();
      return { body: renderInstallation(ctx.base, installation) };
    },
  },

  "GET /orgs/{org}/installation": {
    auth: "app",
    handle: (ctx, request) => ({
      body: renderInstallation(ctx.base, accountInstallation(ctx, request.params.org!)),
    }),
  },

  "GET /users/{username}/installation": {
    auth: "app",
    handle: (ctx, request) => ({
      body: renderInstallation(ctx.base, accountInstallation(ctx, request.params.username!)),
    }),
  },

  "GET /installation/repositories": {
    auth: "installation",
    handle(ctx, request) {
      if (request.principal.kind !== "installation") throw notFound();
      const { token } = request.principal;
      const repos = installationRepos(ctx, token.installation).filter(
        (repo) => !token.repositoryIds || token.repositoryIds.has(repo.id),
      );
      const { page, headers } = paginate(request, repos);
      return {
        body: {
          total_count: repos.length,
          repository_selection: token.repositoryIds
            ? "selected"
            : token.installation.repositorySelection,
          repositories: page.map((repo) => renderRepoFor(ctx, repo)),
        },
        headers,
      };
    },
  },
};

function accountInstallation(ctx: SimContext, login: string): SimInstallation {
  const installation = [...ctx.state.installations.values()].find(
    (i) => i.app.id === ctx.app.id && i.account.login.toLowerCase() === login.toLowerCase(),
  );
  if (!installation) throw notFound();
  return installation;
}
