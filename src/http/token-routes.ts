import { Hono } from "hono";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { ApiTokenRequest } from "../core/api-tokens.ts";
import {
  type ApiToken,
  ApiTokenNameTakenError,
  createApiToken,
  listApiTokens,
  revokeApiToken,
} from "../store/api-tokens.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";
import { parseJsonBody, smallBody } from "./validation.ts";

/** A token as `GET /api/tokens` and `conveyor tokens list --json` show it: never its secret. */
export interface ApiTokenJson {
  token_id: string;
  name: string;
  role: "admin" | "read";
  status: "active" | "revoked";
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export function toApiTokenJson(token: ApiToken): ApiTokenJson {
  return {
    token_id: token.tokenId,
    name: token.name,
    role: token.role,
    status: token.revokedAt ? "revoked" : "active",
    created_at: token.createdAt.toISOString(),
    last_used_at: token.lastUsedAt?.toISOString() ?? null,
    revoked_at: token.revokedAt?.toISOString() ?? null,
  };
}

/** `/api/tokens`: create, list and revoke API tokens; admin only (tokens are the keys). */
export function createTokenRoutes(deps: { db: Db; auth: ApiAuth; logger: Logger }): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  const logger = deps.logger.child({ component: "admin-api" });

  routes.get("/tokens", deps.auth.admin, async (c) =>
    c.json({ tokens: (await listApiTokens(deps.db)).map(toApiTokenJson) }),
  );

  routes.post("/tokens", deps.auth.admin, smallBody, async (c) => {
    const body = await parseJsonBody(c, ApiTokenRequest);
    if (!body.ok) return body.response;
    try {
      const { token, secret } = await createApiToken(deps.db, body.data);
      logger.info(
        { token: token.name, role: token.role, by: c.get("principal").actor },
        "API token created",
      );
      // The secret is in this response and nowhere else: keep it out of every cache.
      c.header("Cache-Control", "no-store");
      return c.json({ token: toApiTokenJson(token), secret }, 201);
    } catch (error) {
      if (error instanceof ApiTokenNameTakenError) return c.json({ error: error.message }, 409);
      throw error;
    }
  });

  routes.post("/tokens/:ref/revoke", deps.auth.admin, async (c) => {
    const ref = c.req.param("ref");
    const token = await revokeApiToken(deps.db, ref);
    if (!token) return c.json({ error: `no token named ${ref}` }, 404);
    logger.info({ token: token.name, by: c.get("principal").actor }, "API token revoked");
    return c.json(toApiTokenJson(token));
  });

  return routes;
}
