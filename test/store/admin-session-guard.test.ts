import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import {
  ADMIN_TOKEN_FINGERPRINT_KEY,
  endSessionsOfReplacedAdminToken,
  rememberAdminToken,
} from "../../src/dashboard/admin-session-guard.ts";
import { createApiToken } from "../../src/store/api-tokens.ts";
import {
  createDashboardSession,
  findDashboardSession,
} from "../../src/store/dashboard-sessions.ts";
import { BACKENDS } from "../helpers/backends.ts";

const TOKEN_A = "admin-token-a-0123456789abcdef";
const TOKEN_B = "admin-token-b-0123456789abcdef";

describe.each(BACKENDS)("sessions of a replaced admin token on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(async () => {
    await database?.dispose();
  });
  const fingerprintRow = async () =>
    resultRows<{ value: unknown }>(
      await database.db.execute(
        sql`select value from settings where key = ${ADMIN_TOKEN_FINGERPRINT_KEY}`,
      ),
    )[0]?.value;

  it("keeps admin sessions across restarts with the same token, and ends them when it changes", async () => {
    const db = database.db;
    // A new database stays empty until somebody signs in with the admin token.
    expect(await endSessionsOfReplacedAdminToken(db, TOKEN_A)).toBe(0);
    expect(await fingerprintRow()).toBeUndefined();
    await rememberAdminToken(db, TOKEN_A);
    const admin = await createDashboardSession(db, { role: "admin", tokenId: null });
    const { token } = await createApiToken(db, { name: "alice", role: "read" });
    const alice = await createDashboardSession(db, { role: "read", tokenId: token.tokenId });

    // A restart with the same token changes nothing.
    expect(await endSessionsOfReplacedAdminToken(db, TOKEN_A)).toBe(0);
    expect(await findDashboardSession(db, admin.sessionId)).toBeDefined();

    // Rotated: the old token's sessions end; sessions of API tokens are not its business.
    expect(await endSessionsOfReplacedAdminToken(db, TOKEN_B)).toBe(1);
    expect(await findDashboardSession(db, admin.sessionId)).toBeUndefined();
    expect(await findDashboardSession(db, alice.sessionId)).toBeDefined();
    expect(await fingerprintRow()).toBeUndefined();

    // Admin sessions nobody can vouch for (no fingerprint: restored, or from before) end too.
    const unknown = await createDashboardSession(db, { role: "admin", tokenId: null });
    expect(await endSessionsOfReplacedAdminToken(db, TOKEN_B)).toBe(1);
    expect(await findDashboardSession(db, unknown.sessionId)).toBeUndefined();

    // Removed altogether: the same.
    await rememberAdminToken(db, TOKEN_B);
    const another = await createDashboardSession(db, { role: "admin", tokenId: null });
    expect(await endSessionsOfReplacedAdminToken(db, undefined)).toBe(1);
    expect(await findDashboardSession(db, another.sessionId)).toBeUndefined();
    expect(await endSessionsOfReplacedAdminToken(db, undefined)).toBe(0);
  });

  it("stores a salted fingerprint, never the token", async () => {
    await rememberAdminToken(database.db, TOKEN_A);
    const value = await fingerprintRow();
    expect(JSON.stringify(value)).not.toContain(TOKEN_A);
    expect(value).toEqual({ salt: expect.any(String), hash: expect.any(String) });
  });
});
