import { createHash, randomBytes } from "node:crypto";
import { and, eq, gt, isNull, lte, or, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { apiTokens, dashboardSessions } from "../../db/schema.ts";
import type { ApiRole } from "../core/api-tokens.ts";

/** How long a dashboard sign-in lasts unless it is signed out or its token revoked. */
export const DASHBOARD_SESSION_TTL_MS = 12 * 60 * 60_000;

/** A signed-in dashboard session: who it is and what it may do. */
export interface DashboardSession {
  role: ApiRole;
  /** Null when signed in with CONVEYOR_ADMIN_TOKEN. */
  tokenId: string | null;
  /** The token's name, or null for CONVEYOR_ADMIN_TOKEN. */
  tokenName: string | null;
  expiresAt: Date;
}

function hashSessionId(sessionId: string): string {
  return createHash("sha256").update(sessionId).digest("hex");
}

/**
 * Starts a session for a principal that just presented a valid token; returns the random id for
 * the cookie. Only its SHA-256 is stored, so a copy of the database cannot sign anybody in.
 */
export async function createDashboardSession(
  db: Db,
  principal: { role: ApiRole; tokenId: string | null },
  ttlMs: number = DASHBOARD_SESSION_TTL_MS,
): Promise<{ sessionId: string; expiresAt: Date }> {
  const sessionId = randomBytes(32).toString("base64url");
  const [row] = await db
    .insert(dashboardSessions)
    .values({
      sessionHash: hashSessionId(sessionId),
      tokenId: principal.tokenId,
      role: principal.role,
      expiresAt: sql`now() + ${`${Math.max(1, Math.round(ttlMs))} milliseconds`}::interval`,
    })
    .returning({ expiresAt: dashboardSessions.expiresAt });
  return { sessionId, expiresAt: row!.expiresAt };
}

/**
 * The live session with this id: not expired, and its token (if it came from one) not revoked.
 * The role is the smaller of the session's and the token's, so nothing a session holds outlives a
 * change to its token.
 */
export async function findDashboardSession(
  db: Db,
  sessionId: string,
): Promise<DashboardSession | undefined> {
  if (!sessionId || sessionId.length > 200) return undefined;
  const [row] = await db
    .select({
      role: dashboardSessions.role,
      tokenId: dashboardSessions.tokenId,
      tokenName: apiTokens.name,
      tokenRole: apiTokens.role,
      expiresAt: dashboardSessions.expiresAt,
    })
    .from(dashboardSessions)
    .leftJoin(apiTokens, eq(apiTokens.tokenId, dashboardSessions.tokenId))
    .where(
      and(
        eq(dashboardSessions.sessionHash, hashSessionId(sessionId)),
        gt(dashboardSessions.expiresAt, sql`now()`),
        or(isNull(dashboardSessions.tokenId), isNull(apiTokens.revokedAt)),
      ),
    );
  if (!row) return undefined;
  const role: ApiRole = row.tokenRole === "read" ? "read" : row.role;
  return { role, tokenId: row.tokenId, tokenName: row.tokenName, expiresAt: row.expiresAt };
}

/** Signs a session out; true when there was one. */
export async function deleteDashboardSession(db: Db, sessionId: string): Promise<boolean> {
  const rows = await db
    .delete(dashboardSessions)
    .where(eq(dashboardSessions.sessionHash, hashSessionId(sessionId)))
    .returning({ sessionHash: dashboardSessions.sessionHash });
  return rows.length > 0;
}

/** Removes expired sessions; returns how many. */
export async function deleteExpiredDashboardSessions(db: Db): Promise<number> {
  const rows = await db
    .delete(dashboardSessions)
    .where(lte(dashboardSessions.expiresAt, sql`now()`))
    .returning({ sessionHash: dashboardSessions.sessionHash });
  return rows.length;
}
