import type { Principal } from "./sim-auth.ts";
import type { SimContext } from "./sim-context.ts";
import type { AccessLevel, SimRepo, SimUser } from "./sim-state.ts";

/** A request that matched an OpenAPI operation, passed validation and authenticated. */
export interface RouteRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body (already validated against the operation's schema), or undefined. */
  body: unknown;
  headers: Headers;
  /** The absolute request URL (for `Link` headers). */
  url: URL;
  principal: Principal;
  /** The `{owner}/{repo}` of the path, resolved and access-checked. */
  repo: SimRepo | undefined;
}

export interface RouteResponse {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** A non-JSON answer (raw file contents). */
  raw?: { contentType: string; data: string | Buffer };
}

export interface ApiRoute {
  /** `app`: a JWT; `installation`: an installation token. */
  auth: "app" | "installation";
  /** Any one of these permissions suffices (e.g. issues or pull_requests for `/issues/{n}`). */
  permissions?: ReadonlyArray<readonly [string, AccessLevel]>;
  handle(ctx: SimContext, request: RouteRequest): RouteResponse | Promise<RouteResponse>;
}

/** Routes keyed by `METHOD /openapi/path/{template}`. */
export type ApiRoutes = Record<string, ApiRoute>;

/** The repository of a repo-scoped route (the router has resolved it). */
export function repoOf(request: RouteRequest): SimRepo {
  if (!request.repo) throw new Error("route used repoOf without {owner}/{repo} in its path");
  return request.repo;
}

/** The user GitHub records as the actor: the app's bot for installation tokens. */
export function actorOf(request: RouteRequest): SimUser {
  const { principal } = request;
  return principal.kind === "installation" ? principal.actor : principal.app.bot;
}

export function bodyOf<T>(request: RouteRequest): T {
  return (request.body ?? {}) as T;
}

/**
 * Slices `items` by `per_page` (default 30, max 100) and `page`, and builds GitHub's `Link` header
 * (`first`/`prev`/`next`/`last`) from the request URL.
 */
/**
 * A list GitHub wraps in an object with its total (`{total_count, check_runs: [...]}`), paginated
 * like any other list; `total_count` counts every item, not the page.
 */
export function countedPage<T>(
  request: RouteRequest,
  items: T[],
  key: string,
  render: (item: T) => unknown,
): RouteResponse {
  const { page, headers } = paginate(request, items);
  return { body: { total_count: items.length, [key]: page.map(render) }, headers };
}

export function paginate<T>(
  request: RouteRequest,
  items: T[],
): { page: T[]; headers: Record<string, string> } {
  const perPage = Math.min(Math.max(Number(request.query.get("per_page") ?? 30) || 30, 1), 100);
  const page = Math.max(Number(request.query.get("page") ?? 1) || 1, 1);
  const last = Math.max(Math.ceil(items.length / perPage), 1);
  const linkTo = (target: number) => {
    const url = new URL(request.url);
    url.searchParams.set("per_page", String(perPage));
    url.searchParams.set("page", String(target));
    return url.toString();
  };
  const links: string[] = [];
  if (page > 1) {
    links.push(`<${linkTo(page - 1)}>; rel="prev"`);
    links.push(`<${linkTo(1)}>; rel="first"`);
  }
  if (page < last) {
    links.push(`<${linkTo(page + 1)}>; rel="next"`);
    links.push(`<${linkTo(last)}>; rel="last"`);
  }
  return {
    page: items.slice((page - 1) * perPage, page * perPage),
    headers: links.length > 0 ? { link: links.join(", ") } : {},
  };
}

/** A paginated JSON array answer. */
export function pagedJson<T>(
  request: RouteRequest,
  items: T[],
  render: (item: T) => unknown,
): RouteResponse {
  const { page, headers } = paginate(request, items);
  return { body: page.map(render), headers };
}
