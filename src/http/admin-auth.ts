import { createHash, timingSafeEqual } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { type ApiRole, hasRole } from "../core/api-tokens.ts";
import { findApiTokenBySecret, hasActiveApiTokens, touchApiToken } from "../store/api-tokens.ts";
import { findDashboardSession } from "../store/dashboard-sessions.ts";
import {
  type ApiRateLimiter,
  type ApiRateLimits,
  createApiRateLimiter,
  DEFAULT_API_RATE_LIMITS,
  type RequestCost,
} from "./api-rate-limiter.ts";

/**
 * Compares a presented token with the admin token in constant time. Both sides are hashed first so
 * the comparison has a fixed length and not even the token's length leaks.
 */
export function isAdminToken(presented: string, adminToken: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(adminToken).digest();
  return timingSafeEqual(a, b);
}

/** Who made a request to the admin API, as routes, logs and task history see it. */
export interface Principal {
  /** How it authenticated: `CONVEYOR_ADMIN_TOKEN`, an API token, or a dashboard session. */
  kind: "admin-token" | "api-token" | "session";
  role: ApiRole;
  /** The API token's name; for the admin token, what its holder is called. */
  name: string;
  /** The API token's id; null for the admin token. */
  tokenId: string | null;
  /**
   * What task history records as the actor: `token:<name>` for API tokens (a prefix, so a token
   * is never mistaken for a GitHub login or for `runner`), the admin token's name otherwise.
   */
  actor: string;
}

/** Hono variables set by the middlewares: `c.get("principal")` in a route behind them. */
export type ApiEnv = { Bindings: HttpBindings; Variables: { principal: Principal } };

/** The principal of a request that passed {@link createApiAuth}'s middleware (any Hono env). */
export function getPrincipal(c: Context): Principal | undefined {
  return (c.get as (key: string) => unknown)("principal") as Principal | undefined;
}

/** The dashboard's session cookie; the middlewares accept it where no bearer token is sent. */
export const SESSION_COOKIE = "conveyor_session";

export interface ApiAuthDeps {
  /** Where API tokens and sessions live; without it only the admin token works. */
  db?: Db | undefined;
  /** `CONVEYOR_ADMIN_TOKEN`: always an admin credential. */
  adminToken: string | undefined;
  logger: Logger;
  /** What the admin token's holder is called in logs and task history. */
  adminName?: string;
  /** Per-client request budgets; `false` turns limiting off (the CLI's in-process API). */
  rateLimits?: ApiRateLimits | false;
  /** Milliseconds, for spacing `last_used_at` writes (tests move it). */
  now?: () => number;
}

export interface ApiAuth {
  /** Any valid credential: `read` or `admin`. */
  read: MiddlewareHandler<ApiEnv>;
  /** Only `admin` credentials; a read token gets 403 naming the role needed. */
  admin: MiddlewareHandler<ApiEnv>;
  /** The same with a chosen cost (`heavy` for export and import); default by method. */
  require(role: ApiRole, options?: { cost?: RequestCost }): MiddlewareHandler<ApiEnv>;
  /**
   * The principal a presented token string stands for, or null for an unknown or revoked one
   * (for the dashboard's sign-in form). Costs no rate-limit budget.
   */
  authenticate(secret: string): Promise<Principal | null>;
}

type Resolution =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401; reason: string; log: string };

const ADMIN_NAME = "CONVEYOR_ADMIN_TOKEN";
// last_used_at is for people ("is this token still in use?"): a minute is precise enough.
const TOUCH_EVERY_MS = 60_000;

const HOW_TO_AUTHENTICATE =
  "send Authorization: Bearer <token>, with an API token (conveyor tokens add) or CONVEYOR_ADMIN_TOKEN";

/**
 * Authentication, roles and rate limits for the admin API. Routes pick `read` or `admin`:
 *
 * - `Authorization: Bearer <CONVEYOR_ADMIN_TOKEN>` is always admin; `Bearer cva_…` is an API token
 *   looked up by hash on every request, so revoking one works at once on every instance. The
 *   dashboard's session cookie is accepted without a bearer token; with it, requests that change
 *   something must come from the same origin.
 * - Wrong or missing → 401, revoked → 401 saying so, a read token on an admin route → 403 naming
 *   the role. With no credential configured at all (no admin token, no active API token) → 503
 *   saying how to create one.
 * - Each client (token; or IP address while unauthenticated) has token buckets; over them → 429
 *   with `Retry-After`.
 *
 * Register the middlewares per route, not with `use("*")` on a sub-app mounted at `/api`: that
 * would also take in sibling routes such as the GitHub webhook.
 */
export function createApiAuth(deps: ApiAuthDeps): ApiAuth {
  const logger = deps.logger.child({ component: "api-auth" });
  const adminName = deps.adminName ?? ADMIN_NAME;
  const limiter: ApiRateLimiter | undefined =
    deps.rateLimits === false
      ? undefined
      : createApiRateLimiter(deps.rateLimits ?? DEFAULT_API_RATE_LIMITS);
  const now = deps.now ?? Date.now;
  const touchedAt = new Map<string, number>();

  const adminPrincipal: Principal = {
    kind: "admin-token",
    role: "admin",
    name: adminName,
    tokenId: null,
    actor: adminName,
  };

  async function resolveSecret(secret: string): Promise<Resolution> {
    if (deps.adminToken && isAdminToken(secret, deps.adminToken)) {
      return { ok: true, principal: adminPrincipal };
    }
    const token = deps.db ? await findApiTokenBySecret(deps.db, secret) : undefined;
    if (!token) {
      return {
        ok: false,
        status: 401,
        reason: `unknown token: ${HOW_TO_AUTHENTICATE}`,
        log: "unknown token",
      };
    }
    if (token.revokedAt) {
      return {
        ok: false,
        status: 401,
        reason: `token ${token.name} was revoked on ${token.revokedAt.toISOString()}: ask an admin for a new one (conveyor tokens add)`,
        log: `revoked token ${token.name}`,
      };
    }
    touch(token.tokenId);
    return {
      ok: true,
      principal: {
        kind: "api-token",
        role: token.role,
        name: token.name,
        tokenId: token.tokenId,
        actor: `token:${token.name}`,
      },
    };
  }

  async function resolveSession(c: Context): Promise<Resolution | undefined> {
    const sessionId = deps.db ? getCookie(c, SESSION_COOKIE) : undefined;
    if (!deps.db || !sessionId) return undefined;
    const session = await findDashboardSession(deps.db, sessionId);
    if (!session) {
      return {
        ok: false,
        status: 401,
        reason: "your dashboard session has expired or was signed out: sign in again",
        log: "unknown or expired session",
      };
    }
    if (session.tokenId) touch(session.tokenId);
    const name = session.tokenName ?? adminName;
    return {
      ok: true,
      principal: {
        kind: "session",
        role: session.role,
        name,
        tokenId: session.tokenId,
        actor: session.tokenName ? `token:${session.tokenName}` : adminName,
      },
    };
  }

  /** At most one `last_used_at` write per token a minute from this instance (and the SQL guard). */
  function touch(tokenId: string): void {
    const t = now();
    const last = touchedAt.get(tokenId);
    if (last !== undefined && t - last < TOUCH_EVERY_MS) return;
    touchedAt.set(tokenId, t);
    if (touchedAt.size > 10_000) touchedAt.clear();
    touchApiToken(deps.db!, tokenId).catch((error: unknown) =>
      logger.warn({ err: error }, "recording a token's last use failed"),
    );
  }

  async function resolve(c: Context): Promise<Resolution> {
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const match = /^Bearer +(\S+) *$/i.exec(header);
      if (match?.[1]) return resolveSecret(match[1]);
    } else {
      const session = await resolveSession(c);
      if (session) return session;
    }
    return {
      ok: false,
      status: 401,
      reason: `missing token: ${HOW_TO_AUTHENTICATE}`,
      log: header === undefined ? "no credentials" : "malformed Authorization header",
    };
  }

  function refuseRate(c: Context, decision: { retryAfterMs: number; message: string }) {
    c.header("Retry-After", String(Math.ceil(decision.retryAfterMs / 1000)));
    return c.json({ error: decision.message, retry_after_ms: decision.retryAfterMs }, 429);
  }

  function require(role: ApiRole, options: { cost?: RequestCost } = {}) {
    const middleware: MiddlewareHandler<ApiEnv> = async (c, next) => {
      const cost: RequestCost =
        options.cost ?? (c.req.method === "GET" || c.req.method === "HEAD" ? "read" : "write");
      const resolved = await resolve(c);
      if (!resolved.ok) {
        const address = clientAddress(c);
        const decision = limiter?.take(`ip:${address}`, cost);
        if (decision && !decision.allowed) return refuseRate(c, decision);
        if (!deps.adminToken && !(deps.db && (await hasActiveApiTokens(deps.db)))) {
          return c.json(
            {
              error:
                "The admin API has no credentials yet: set CONVEYOR_ADMIN_TOKEN (at least 16 characters) on the server and restart it, or create a token with `conveyor tokens add <name> --role admin`",
            },
            503,
          );
        }
        logger.warn(
          { method: c.req.method, path: c.req.path, address, why: resolved.log },
          "admin API: refused an unauthenticated request",
        );
        c.header("WWW-Authenticate", 'Bearer realm="conveyor"');
        return c.json({ error: resolved.reason }, resolved.status);
      }
      const { principal } = resolved;
      const decision = limiter?.take(`${principal.tokenId ?? "admin-token"}`, cost);
      if (decision && !decision.allowed) {
        logger.warn(
          { method: c.req.method, path: c.req.path, token: principal.name },
          "admin API: rate limited a client",
        );
        return refuseRate(c, decision);
      }
      if (principal.kind === "session" && !isSafeMethod(c.req.method) && !isSameOrigin(c)) {
        return c.json(
          {
            error:
              "cross-site request refused: changes made with a dashboard session must come from the dashboard's own origin",
          },
          403,
        );
      }
      if (!hasRole(principal.role, role)) {
        logger.warn(
          { method: c.req.method, path: c.req.path, token: principal.name, role: principal.role },
          "admin API: refused a request that needs a stronger role",
        );
        return c.json(
          {
            error: `this needs the ${role} role, and ${describe(principal)} has the ${principal.role} role: use a token created with --role ${role}`,
          },
          403,
        );
      }
      c.set("principal", principal);
      await next();
    };
    return middleware;
  }

  return {
    read: require("read"),
    admin: require("admin"),
    require,
    async authenticate(secret) {
      const resolved = await resolveSecret(secret);
      return resolved.ok ? resolved.principal : null;
    },
  };
}

/**
 * Middleware for routes that need `CONVEYOR_ADMIN_TOKEN` or an admin API token (with `db`).
 * Kept for route modules written before roles; new ones take an {@link ApiAuth}.
 */
export function createAdminAuth(deps: {
  adminToken: string | undefined;
  logger: Logger;
  db?: Db | undefined;
}): MiddlewareHandler {
  return createApiAuth(deps).admin as unknown as MiddlewareHandler;
}

function describe(principal: Principal): string {
  if (principal.kind === "admin-token") return principal.name;
  return principal.kind === "session"
    ? `this dashboard session (token ${principal.name})`
    : `token ${principal.name}`;
}

function isSafeMethod(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

/** Browsers send Origin on cross-site POSTs (and Sec-Fetch-Site); a cookie alone proves nothing. */
function isSameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site) return site === "same-origin";
  const origin = c.req.header("origin");
  if (!origin) return false;
  try {
    return new URL(origin).host === c.req.header("host");
  } catch {
    return false;
  }
}

/** The peer's address (no proxy headers are trusted), or "unknown" outside a Node server. */
function clientAddress(c: Context): string {
  const env = c.env as Partial<HttpBindings> | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "unknown";
}
