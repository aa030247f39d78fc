import { createHash, randomBytes } from "node:crypto";
import { and, asc, desc, eq, isNull, or, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { apiTokens, dashboardSessions } from "../../db/schema.ts";
import type { ApiTokenRequest } from "../core/api-tokens.ts";

/** Every API token starts with this, so a leaked one is recognisable (and greppable). */
export const API_TOKEN_PREFIX = "cva_";

/** An API token as the rest of the app sees it: never with its hash. */
export type ApiToken = Omit<typeof apiTokens.$inferSelect, "tokenHash">;

// Selecting these columns explicitly (instead of `select *`) is what keeps the hash in the table.
const PUBLIC_COLUMNS = {
  tokenId: apiTokens.tokenId,
  name: apiTokens.name,
  role: apiTokens.role,
  createdAt: apiTokens.createdAt,
  lastUsedAt: apiTokens.lastUsedAt,
  revokedAt: apiTokens.revokedAt,
};

/** An active token already has the name (a revoked token's name can be used again). */
export class ApiTokenNameTakenError extends Error {
  override name = "ApiTokenNameTakenError";
  constructor(readonly tokenName: string) {
    super(`a token named ${tokenName} exists; revoke it or pick another name`);
  }
}

/** SHA-256 (hex) of an API token: the only form in which a token is stored. */
export function hashApiToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function newApiToken(): string {
  return `${API_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/**
 * Creates a token and returns it with its secret, which exists only in this return value (the
 * table keeps its hash). The unique index on active names decides races: two creations of one
 * name make one token and a {@link ApiTokenNameTakenError}.
 */
export async function createApiToken(
  db: Db,
  request: ApiTokenRequest,
): Promise<{ token: ApiToken; secret: string }> {
  const secret = newApiToken();
  const [token] = await db
    .insert(apiTokens)
    .values({ name: request.name, role: request.role, tokenHash: hashApiToken(secret) })
    .onConflictDoNothing()
    .returning(PUBLIC_COLUMNS);
  if (token) return { token, secret };
  const [active] = await db
    .select(PUBLIC_COLUMNS)
    .from(apiTokens)
    .where(and(eq(apiTokens.name, request.name), isNull(apiTokens.revokedAt)));
  if (active) throw new ApiTokenNameTakenError(request.name);
  // The only other unique column is the hash of 32 random bytes.
  throw new Error("creating the token failed: token hash collision");
}

/** Every token, oldest first, revoked ones included. */
export async function listApiTokens(db: Db): Promise<ApiToken[]> {
  return db
    .select(PUBLIC_COLUMNS)
    .from(apiTokens)
    .orderBy(asc(apiTokens.createdAt), asc(apiTokens.name));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Revokes the token named `nameOrId` (its id also works): it stops working at once, on every
 * instance, because every request looks the hash up. Its dashboard sessions end in the same
 * transaction. Idempotent: revoking a revoked token returns it unchanged. Undefined when no token
 * has that name or id.
 */
export async function revokeApiToken(db: Db, nameOrId: string): Promise<ApiToken | undefined> {
  const match = UUID.test(nameOrId)
    ? or(eq(apiTokens.tokenId, nameOrId), eq(apiTokens.name, nameOrId))
    : eq(apiTokens.name, nameOrId);
  return db.transaction(async (tx) => {
    const [revoked] = await tx
      .update(apiTokens)
      .set({ revokedAt: sql`now()` })
      .where(and(match, isNull(apiTokens.revokedAt)))
      .returning(PUBLIC_COLUMNS);
    if (revoked) {
      await tx.delete(dashboardSessions).where(eq(dashboardSessions.tokenId, revoked.tokenId));
      return revoked;
    }
    // Already revoked: the most recent namesake.
    const [previous] = await tx
      .select(PUBLIC_COLUMNS)
      .from(apiTokens)
      .where(match)
      .orderBy(desc(apiTokens.revokedAt), desc(apiTokens.createdAt))
      .limit(1);
    return previous;
  });
}

/**
 * The token a secret belongs to, revoked or not (the caller tells "revoked" from "unknown"), or
 * undefined. The lookup is by hash, so timing reveals nothing about stored tokens.
 */
export async function findApiTokenBySecret(db: Db, secret: string): Promise<ApiToken | undefined> {
  if (!secret.startsWith(API_TOKEN_PREFIX)) return undefined;
  const [token] = await db
    .select(PUBLIC_COLUMNS)
    .from(apiTokens)
    .where(eq(apiTokens.tokenHash, hashApiToken(secret)));
  return token;
}

/** Whether any token is active: without one and without CONVEYOR_ADMIN_TOKEN, nobody can get in. */
export async function hasActiveApiTokens(db: Db): Promise<boolean> {
  const [row] = await db
    .select({ tokenId: apiTokens.tokenId })
    .from(apiTokens)
    .where(isNull(apiTokens.revokedAt))
    .limit(1);
  return row !== undefined;
}

/**
 * Records that a token was used. The guard skips the write when another request (or instance)
 * recorded it within the last minute, so a busy token costs at most one write a minute.
 */
export async function touchApiToken(db: Db, tokenId: string): Promise<void> {
  await db
    .update(apiTokens)
    .set({ lastUsedAt: sql`now()` })
    .where(
      and(
        eq(apiTokens.tokenId, tokenId),
        sql`(${apiTokens.lastUsedAt} is null or ${apiTokens.lastUsedAt} < now() - interval '1 minute')`,
      ),
    );
}
