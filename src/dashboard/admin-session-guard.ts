import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
) => Promise<Buffer>;

/** The `settings` key under which the guard keeps its fingerprint of `CONVEYOR_ADMIN_TOKEN`. */
export const ADMIN_TOKEN_FINGERPRINT_KEY = "dashboard.admin_token_fingerprint";

interface Fingerprint {
  salt: string;
  hash: string;
}

async function fingerprint(token: string, salt: Buffer): Promise<string> {
  return (await scryptAsync(token, salt, 32)).toString("base64url");
}

async function readFingerprint(db: Db): Promise<Fingerprint | undefined> {
  const [row] = resultRows<{ value: unknown }>(
    await db.execute(sql`select value from settings where key = ${ADMIN_TOKEN_FINGERPRINT_KEY}`),
  );
  return parseFingerprint(row?.value);
}

async function matches(stored: Fingerprint, token: string): Promise<boolean> {
  const expected = Buffer.from(stored.hash, "base64url");
  const actual = Buffer.from(
    await fingerprint(token, Buffer.from(stored.salt, "base64url")),
    "base64url",
  );
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * A dashboard session started with `CONVEYOR_ADMIN_TOKEN` has no token row that revoking could
 * end. So signing in with the admin token records a salted scrypt fingerprint of it
 * ({@link rememberAdminToken}), and a server starting with a different admin token (rotated
 * because it leaked) or none ends every session signed in with the old one; sessions it cannot
 * vouch for (no fingerprint, e.g. restored from an export) end too. Nothing is written until
 * somebody signs in with the admin token, so a new database stays empty. Returns how many
 * sessions it ended.
 */
export async function endSessionsOfReplacedAdminToken(
  db: Db,
  adminToken: string | undefined,
): Promise<number> {
  const stored = await readFingerprint(db);
  if (stored && adminToken && (await matches(stored, adminToken))) return 0;
  const ended = resultRows<{ session_hash: string }>(
    await db.execute(
      sql`delete from dashboard_sessions where token_id is null returning session_hash`,
    ),
  );
  if (stored) {
    await db.execute(sql`delete from settings where key = ${ADMIN_TOKEN_FINGERPRINT_KEY}`);
  }
  return ended.length;
}

/** Records the admin token's fingerprint when a session is signed in with it (once per token). */
export async function rememberAdminToken(db: Db, adminToken: string): Promise<void> {
  const stored = await readFingerprint(db);
  if (stored && (await matches(stored, adminToken))) return;
  const salt = randomBytes(16);
  const value: Fingerprint = {
    salt: salt.toString("base64url"),
    hash: await fingerprint(adminToken, salt),
  };
  await db.execute(sql`
    insert into settings (key, value, updated_at)
    values (${ADMIN_TOKEN_FINGERPRINT_KEY}, ${JSON.stringify(value)}::jsonb, now())
    on conflict (key) do update set value = excluded.value, updated_at = now()`);
}

function parseFingerprint(value: unknown): Fingerprint | undefined {
  const parsed = typeof value === "string" ? safeJson(value) : value;
  if (
    parsed &&
    typeof parsed === "object" &&
    typeof (parsed as Fingerprint).salt === "string" &&
    typeof (parsed as Fingerprint).hash === "string"
  ) {
    return parsed as Fingerprint;
  }
  return undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
