import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";

/**
 * Compares a presented token with the admin token in constant time. Both sides are hashed first so
 * the comparison has a fixed length and not even the token's length leaks.
 */
export function isAdminToken(presented: string, adminToken: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(adminToken).digest();
  return timingSafeEqual(a, b);
}

/**
 * Middleware for admin routes: `Authorization: Bearer <CONVEYOR_ADMIN_TOKEN>`. Fails closed: with
 * no admin token configured every request gets 503 saying which setting turns the API on.
 */
export function createAdminAuth(deps: {
  adminToken: string | undefined;
  logger: Logger;
}): MiddlewareHandler {
  return async (c, next) => {
    if (!deps.adminToken) {
      return c.json(
        {
          error:
            "The admin API is off: set CONVEYOR_ADMIN_TOKEN (at least 16 characters) on the server and restart it",
        },
        503,
      );
    }
    const match = /^Bearer +(\S+) *$/i.exec(c.req.header("authorization") ?? "");
    if (!match?.[1] || !isAdminToken(match[1], deps.adminToken)) {
      deps.logger.warn(
        { method: c.req.method, path: c.req.path, presented: Boolean(match) },
        "admin API: refused a request without the admin token",
      );
      c.header("WWW-Authenticate", 'Bearer realm="conveyor"');
      return c.json(
        {
          error: "missing or wrong admin token: send Authorization: Bearer <CONVEYOR_ADMIN_TOKEN>",
        },
        401,
      );
    }
    await next();
  };
}
