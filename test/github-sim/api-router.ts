import { createHash, randomUUID } from "node:crypto";
import type { ApiRoutes, RouteResponse } from "./api-route.ts";
import { HttpError, notFound } from "./http-error.ts";
import type { OpenApiValidator } from "./openapi-validator.ts";
import type { SimRateLimits } from "./rate-limits.ts";
import { type AppCredentials, authenticate, hasAccess, type Principal } from "./sim-auth.ts";
import { findRepo, type SimContext } from "./sim-context.ts";
import { installationFor, type SimRepo } from "./sim-state.ts";
import type { SimViolation } from "./sim-violation.ts";

/** One API request as the simulator saw it. */
export interface RecordedRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** The OpenAPI path template, e.g. `/repos/{owner}/{repo}/issues/{issue_number}`. */
  route: string | undefined;
  query: Record<string, string>;
  body: unknown;
  status: number;
  /** `app` (JWT), `installation` (token) or `none`. */
  auth: Principal["kind"] | "none";
  /** The installation of an installation token. */
  installationId?: number | undefined;
  /** When the request arrived (wall clock, epoch ms). */
  at: number;
}

/**
 * A planned failure for tests: the next `times` requests to `METHOD /route/template` answer
 * `status` — `before` the handler runs (nothing happens), or `after` it (the change is made and
 * the answer is lost, as when GitHub times out after merging).
 */
export interface Fault {
  route: string;
  status: number;
  message: string;
  when: "before" | "after";
  times: number;
}

export interface ApiRouterOptions {
  faults?: Fault[];
  ctx: SimContext;
  validator: OpenApiValidator;
  routes: ApiRoutes;
  credentials: AppCredentials;
  rateLimits: SimRateLimits;
  onViolation(violation: SimViolation): void;
}

function errorResponse(error: HttpError): RouteResponse {
  return { status: error.status, body: error.toJSON(), headers: error.headers };
}

/**
 * The REST side of the simulator: every request is matched against GitHub's OpenAPI description
 * and validated before anything else, so an unknown route or a request GitHub would refuse is both
 * answered like GitHub and recorded as a violation; implemented routes then run with GitHub's
 * authentication and permission rules.
 */
export function createApiRouter(options: ApiRouterOptions) {
  const { ctx, validator, routes } = options;
  const { rateLimits } = options;

  /** Finds `{owner}/{repo}` and checks an installation token may see it (404 otherwise, like GitHub). */
  const resolveRepo = (
    params: Record<string, string>,
    principal: Principal,
  ): SimRepo | undefined => {
    if (params.owner === undefined || params.repo === undefined) return undefined;
    const repo = findRepo(ctx, `${params.owner}/${params.repo}`);
    if (!repo) throw notFound();
    if (principal.kind === "installation") {
      const { token } = principal;
      const installation = installationFor(ctx.state, repo, principal.app);
      if (installation?.id !== token.installation.id) throw notFound();
      if (token.repositoryIds && !token.repositoryIds.has(repo.id)) throw notFound();
    }
    return repo;
  };

  const violation = (method: string, pathWithQuery: string, message: string) =>
    options.onViolation({ kind: "request", method, path: pathWithQuery, message });

  return async function handle(
    request: Request,
    url: URL,
  ): Promise<{ response: Response; record: RecordedRequest }> {
    const method = request.method.toUpperCase();
    const pathWithQuery = `${url.pathname}${url.search}`;
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      route: undefined,
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      status: 0,
      auth: "none",
      at: Date.now(),
    };
    let principal: Principal | undefined;
    let answer: RouteResponse;
    let rateLimited = false;
    try {
      const text = await request.text();
      if (text.length > 0) {
        try {
          record.body = JSON.parse(text);
        } catch {
          violation(
            method,
            pathWithQuery,
            `${method} ${url.pathname}: request body is not valid JSON`,
          );
          throw new HttpError(400, "Problems parsing JSON");
        }
      }
      const match = validator.match(method, url.pathname);
      if (!match) {
        violation(
          method,
          pathWithQuery,
          `${method} ${url.pathname} is not an operation in GitHub's OpenAPI description`,
        );
        throw notFound();
      }
      record.route = match.route;
      const problems = validator.validate(match, url.searchParams, record.body);
      if (problems.length > 0) {
        const message = problems.map((problem) => problem.message).join("; ");
        violation(method, pathWithQuery, `${method} ${match.route}: ${message}`);
        throw new HttpError(422, `Invalid request.\n\n${message}`, {
          errors: problems.map((problem) => ({
            resource: match.operationId ?? match.route,
            field: problem.field,
            code: problem.code,
            message: problem.message,
          })),
        });
      }
      const route = routes[`${method} ${match.route}`];
      if (!route) {
        violation(method, pathWithQuery, `simulator does not implement ${method} ${match.route}`);
        throw new HttpError(501, `simulator does not implement ${method} ${match.route}`);
      }
      principal = authenticate(
        ctx.state,
        options.credentials,
        request.headers.get("authorization") ?? undefined,
      );
      record.auth = principal.kind;
      if (principal.kind === "installation")
        record.installationId = principal.token.installation.id;
      try {
        rateLimits.check(principal);
      } catch (error) {
        rateLimited = true;
        throw error;
      }
      if (route.auth === "app" && principal.kind !== "app") {
        throw new HttpError(401, "A JSON web token could not be decoded");
      }
      if (route.auth === "installation" && principal.kind !== "installation") {
        throw new HttpError(403, "Resource not accessible by integration");
      }
      const repo = resolveRepo(match.params, principal);
      if (principal.kind === "installation" && route.permissions) {
        const { token } = principal;
        if (
          !route.permissions.some(([name, access]) => hasAccess(token.permissions, name, access))
        ) {
          throw new HttpError(403, "Resource not accessible by integration");
        }
      }
      const fault = options.faults?.find(
        (f) => f.route === `${method} ${match.route}` && f.times > 0,
      );
      if (fault) fault.times--;
      if (fault?.when === "before") throw new HttpError(fault.status, fault.message);
      answer = await route.handle(ctx, {
        params: match.params,
        query: url.searchParams,
        body: record.body,
        headers: request.headers,
        url,
        principal,
        repo,
      });
      if (fault?.when === "after") throw new HttpError(fault.status, fault.message);
    } catch (error) {
      if (error instanceof HttpError) {
        answer = errorResponse(error);
      } else {
        const message = error instanceof Error ? error.message : String(error);
        violation(
          method,
          pathWithQuery,
          `simulator error on ${method} ${url.pathname}: ${message}`,
        );
        ctx.logger.error(
          { err: error, method, path: url.pathname },
          "github simulator route failed",
        );
        answer = errorResponse(new HttpError(500, `simulator error: ${message}`));
      }
    }
    let status = answer.status ?? 200;
    let body: string | Buffer | null = null;
    let contentType: string | undefined;
    if (answer.raw) {
      contentType = answer.raw.contentType;
      body = answer.raw.data;
    } else if (answer.body !== undefined && status !== 204) {
      contentType = "application/json; charset=utf-8";
      body = JSON.stringify(answer.body);
    }
    // Conditional requests, as GitHub answers them: a successful GET carries an `ETag` of its
    // body; the same GET with that tag in `If-None-Match` gets `304 Not Modified` with no body,
    // which is not counted against the rate limit
    // (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate).
    const etag =
      method === "GET" && status === 200 && body !== null
        ? entityTag(body, contentType)
        : undefined;
    if (etag && noneMatch(request.headers.get("if-none-match"), etag)) {
      status = 304;
      body = null;
      contentType = undefined;
    }
    record.status = status;
    const headers: Record<string, string> = {
      "x-github-request-id": randomUUID(),
      "x-github-media-type": "github.v3; format=json",
      ...rateLimits.answered(principal, status, rateLimited),
      ...answer.headers,
      ...(etag ? { etag } : {}),
      ...(contentType ? { "content-type": contentType } : {}),
    };
    return { response: new Response(body, { status, headers }), record };
  };
}

/** A weak entity tag of an answer's body (GitHub's JSON answers carry `W/"…"` tags). */
function entityTag(body: string | Buffer, contentType: string | undefined): string {
  const hash = createHash("sha256")
    .update(contentType ?? "")
    .update("\n")
    .update(body)
    .digest("hex");
  return `W/"${hash.slice(0, 32)}"`;
}

/**
 * Whether `If-None-Match` names `etag`: a comma-separated list of tags or `*`, compared weakly
 * (RFC 9110 §13.1.2: `W/"x"` and `"x"` match).
 */
function noneMatch(header: string | null, etag: string): boolean {
  if (!header) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim() === "*" || opaque(tag) === opaque(etag));
}
