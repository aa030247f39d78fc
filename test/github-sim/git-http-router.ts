import type { RecordedRequest } from "./api-router.ts";
import { runGitHttpBackend } from "./git-http-backend.ts";
import { branchMoved } from "./pull-actions.ts";
import { hasAccess } from "./sim-auth.ts";
import type { SimContext } from "./sim-context.ts";
import { installationFor, type SimToken } from "./sim-state.ts";

const GIT_PATH = /^\/([^/]+)\/([^/]+?)\.git\/(info\/refs|git-upload-pack|git-receive-pack)$/;

function unauthorized(): Response {
  return new Response("Authentication required\n", {
    status: 401,
    headers: { "www-authenticate": 'Basic realm="GitHub"', "content-type": "text/plain" },
  });
}

/** The installation token in HTTP basic auth (`x-access-token:<token>`, or the token as user). */
function basicAuthToken(ctx: SimContext, header: string | null): SimToken | undefined {
  const basic = /^basic\s+(\S+)$/i.exec(header ?? "");
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const token =
    ctx.state.tokens.get(decoded.slice(colon + 1)) ?? ctx.state.tokens.get(decoded.slice(0, colon));
  if (!token || token.expiresAt.getTime() <= ctx.state.clock().getTime()) return undefined;
  return token;
}

/**
 * Git smart HTTP (`/{owner}/{repo}.git/info/refs`, `git-upload-pack`, `git-receive-pack`) for
 * clones and pushes with an installation token, like `https://x-access-token:<token>@github.com/…`.
 * These are not REST routes, so OpenAPI validation does not apply. A push moves branches, so open
 * pull requests on them get `synchronize` as after any push.
 */
export function createGitHttpRouter(ctx: SimContext, projectRoot: string) {
  const serve = async (
    request: Request,
    url: URL,
    match: RegExpExecArray,
    token: SimToken | undefined,
  ) => {
    const [, owner, name, service] = match as unknown as [string, string, string, string];
    const wantsPush =
      service === "git-receive-pack" || url.searchParams.get("service") === "git-receive-pack";
    if (!token) return unauthorized();
    const repo = ctx.state.repos.get(`${owner}/${name}`.toLowerCase());
    const covered =
      repo &&
      installationFor(ctx.state, repo, token.installation.app)?.id === token.installation.id &&
      (!token.repositoryIds || token.repositoryIds.has(repo.id));
    if (!repo || !covered) return new Response("Repository not found.\n", { status: 404 });
    if (!hasAccess(token.permissions, "contents", wantsPush ? "write" : "read")) {
      return wantsPush
        ? new Response("Write access to repository not granted.\n", { status: 403 })
        : new Response("Repository not found.\n", { status: 404 });
    }
    const before = wantsPush ? await ctx.git.listRefs(repo.fullName, "refs/heads/") : [];
    const answer = await runGitHttpBackend({
      projectRoot,
      pathInfo: `/${repo.owner.login}/${repo.name}.git/${service}`,
      method: request.method,
      queryString: url.search.slice(1),
      headers: request.headers,
      body: Buffer.from(await request.arrayBuffer()),
      remoteUser: wantsPush ? token.installation.app.bot.login : undefined,
    });
    if (service === "git-receive-pack") {
      const after = await ctx.git.listRefs(repo.fullName, "refs/heads/");
      for (const ref of new Set([...before, ...after].map((r) => r.ref))) {
        const old = before.find((r) => r.ref === ref)?.sha;
        const now = after.find((r) => r.ref === ref)?.sha;
        if (old !== now) {
          await branchMoved(
            ctx,
            repo,
            ref.slice("refs/heads/".length),
            now,
            token.installation.app.bot,
          );
        }
      }
    }
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
  };

  /** Answers a git request, or returns undefined when `url` is not a git smart-HTTP path. */
  return async function handle(
    request: Request,
    url: URL,
  ): Promise<{ response: Response; record: RecordedRequest } | undefined> {
    const match = GIT_PATH.exec(url.pathname);
    if (!match) return undefined;
    const token = basicAuthToken(ctx, request.headers.get("authorization"));
    const response = await serve(request, url, match, token);
    return {
      response,
      record: {
        at: Date.now(),
        method: request.method,
        path: url.pathname,
        route: `/{owner}/{repo}.git/${match[3]}`,
        query: Object.fromEntries(url.searchParams),
        body: undefined,
        status: response.status,
        auth: token ? "installation" : "none",
      },
    };
  };
}
