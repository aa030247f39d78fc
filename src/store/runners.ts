import { createHash, randomBytes } from "node:crypto";
import { and, asc, desc, eq, isNull, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { runners } from "../../db/schema.ts";
import {
  type FieldError,
  OneTimeRunnerRequest,
  type OneTimeRunnerRequestInput,
  RunnerRegistration,
  type RunnerRegistrationInput,
  toFieldErrors,
} from "../core/runner-registration.ts";

/** Every runner token starts with this, so a leaked one is recognisable (and greppable). */
export const RUNNER_TOKEN_PREFIX = "cvr_";

/**
 * `NOTIFY` channel that carries the id of a runner just revoked, so every instance sharing the
 * database (not only the one that revoked it) can close the runner's live sockets.
 */
export const RUNNER_REVOKED_CHANNEL = "conveyor_runner_revoked";

/** A runner identity as the rest of the app sees it: never with its token hash. */
export type Runner = Omit<typeof runners.$inferSelect, "tokenHash">;

// Selecting these columns explicitly (instead of `select *`) is what keeps the hash in the table.
const PUBLIC_COLUMNS = {
  runnerId: runners.runnerId,
  name: runners.name,
  capabilities: runners.capabilities,
  tier: runners.tier,
  createdAt: runners.createdAt,
  revokedAt: runners.revokedAt,
  lastSeenAt: runners.lastSeenAt,
  lastAssignedAt: runners.lastAssignedAt,
  repos: runners.repos,
  oneTime: runners.oneTime,
  expiresAt: runners.expiresAt,
  usedAt: runners.usedAt,
};

/** The registration input broke the name, capability or class rules. */
export class InvalidRunnerError extends Error {
  override name = "InvalidRunnerError";
  constructor(readonly errors: FieldError[]) {
    super(`invalid runner: ${errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`);
  }
}

/** An active runner already has the name (a revoked runner's name can be registered again). */
export class RunnerNameTakenError extends Error {
  override name = "RunnerNameTakenError";
  constructor(readonly runnerName: string) {
    super(`a runner named ${runnerName} exists; revoke it or pick another name`);
  }
}

/** SHA-256 (hex) of a runner token: the only form in which a token is stored. */
export function hashRunnerToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function newRunnerToken(): string {
  return `${RUNNER_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/**
 * Registers a runner and returns it with its token. The token exists only in this return value:
 * the table keeps its hash, so it cannot be shown again. Throws {@link InvalidRunnerError} for a bad
 * name, capability or class and {@link RunnerNameTakenError} when the name is in use (decided by the
 * unique constraint, so two registrations racing for one name make one runner).
 */
export async function createRunner(
  db: Db,
  input: RunnerRegistrationInput,
): Promise<{ runner: Runner; token: string }> {
  const parsed = RunnerRegistration.safeParse(input);
  if (!parsed.success) throw new InvalidRunnerError(toFieldErrors(parsed.error));
  const { name, capabilities, repos } = parsed.data;
  return insertRunner(db, { name, capabilities, repos, tier: parsed.data.class });
}

/**
 * Inserts a runner with a fresh token (returned once, stored hashed). The unique index covers
 * active runners only, so a conflict means an active one has the name; the only other unique
 * column is the hash of 32 random bytes.
 */
async function insertRunner(
  db: Db,
  values: Omit<typeof runners.$inferInsert, "tokenHash" | "expiresAt"> & { expiresAt?: SQL },
): Promise<{ runner: Runner; token: string }> {
  const token = newRunnerToken();
  const [runner] = await db
    .insert(runners)
    .values({ ...values, tokenHash: hashRunnerToken(token) })
    .onConflictDoNothing()
    .returning(PUBLIC_COLUMNS);
  if (runner) return { runner, token };
  if (await findActiveRunnerByName(db, values.name)) throw new RunnerNameTakenError(values.name);
  throw new Error("registering the runner failed: token hash collision");
}

/**
 * Mints a one-time credential: it registers one ephemeral runner (named `jit-<hex>` unless
 * named), good for one connection and at most one task, refused once used or after
 * `ttl_seconds` unused. Like {@link createRunner}, the token exists only in the return value.
 */
export async function createOneTimeRunner(
  db: Db,
  input: OneTimeRunnerRequestInput,
): Promise<{ runner: Runner; token: string }> {
  const parsed = OneTimeRunnerRequest.safeParse(input);
  if (!parsed.success) throw new InvalidRunnerError(toFieldErrors(parsed.error));
  const { capabilities, repos, ttl_seconds: ttlSeconds } = parsed.data;
  const name = parsed.data.name ?? `jit-${randomBytes(6).toString("hex")}`;
  return insertRunner(db, {
    name,
    capabilities,
    repos,
    oneTime: true,
    expiresAt: sql`now() + ${`${ttlSeconds} seconds`}::interval`,
  });
}

/** Every runner, oldest first, revoked ones included (they show `revokedAt`). */
export async function listRunners(db: Db): Promise<Runner[]> {
  return db.select(PUBLIC_COLUMNS).from(runners).orderBy(asc(runners.createdAt), asc(runners.name));
}

async function findActiveRunnerByName(db: Db, name: string): Promise<Runner | undefined> {
  const [runner] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(and(eq(runners.name, name), isNull(runners.revokedAt)));
  return runner;
}

export async function findRunnerById(db: Db, runnerId: string): Promise<Runner | undefined> {
  const [runner] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(eq(runners.runnerId, runnerId));
  return runner;
}

/** The active runner of that name, else its most recently revoked namesake. */
export async function findRunnerByName(db: Db, name: string): Promise<Runner | undefined> {
  const [runner] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(eq(runners.name, name))
    .orderBy(sql`${runners.revokedAt} is null desc`, desc(runners.createdAt))
    .limit(1);
  return runner;
}

/**
 * Revokes the runner named `name`: its token stops working, and a `NOTIFY` on
 * {@link RUNNER_REVOKED_CHANNEL} (sent when the transaction commits) tells every instance to close
 * its sockets. Idempotent: revoking a revoked runner returns it unchanged (same `revokedAt`, no
 * second notification). Undefined when there is no runner of that name.
 */
export async function revokeRunner(db: Db, name: string): Promise<Runner | undefined> {
  return db.transaction(async (tx) => {
    const [revoked] = await tx
      .update(runners)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(runners.name, name), isNull(runners.revokedAt)))
      .returning(PUBLIC_COLUMNS);
    if (revoked) {
      await tx.execute(sql`select pg_notify(${RUNNER_REVOKED_CHANNEL}, ${revoked.runnerId})`);
      return revoked;
    }
    return findRunnerByName(tx, name);
  });
}

/**
 * The active runner a token belongs to, or undefined for an unknown, malformed or revoked token.
 * The lookup is by hash, so timing reveals nothing about stored tokens.
 */
export async function findRunnerByToken(db: Db, token: string): Promise<Runner | undefined> {
  if (!token.startsWith(RUNNER_TOKEN_PREFIX)) return undefined;
  const [runner] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(and(eq(runners.tokenHash, hashRunnerToken(token)), isNull(runners.revokedAt)));
  return runner;
}

/** Why a runner token was refused, as the 401's `{"error"}` says it. */
export type RunnerRefusal =
  | "unknown or revoked runner token (Authorization: Bearer cvr_…)"
  | "one-time runner credential already used (it is good for one connection)"
  | "one-time runner credential expired unused";

/**
 * Authenticates a runner token. With `connect` (a WebSocket upgrade), a one-time credential is
 * spent here, in one guarded statement, so two connections racing with it get one success: a
 * used or expired one is refused with its reason. Without `connect` (a change-set upload on the
 * connection's behalf, a doctor's probe) a one-time credential works until it expires unused or
 * is revoked, which happens when its connection closes ({@link spendOneTimeRunner}).
 */
export async function authenticateRunner(
  db: Db,
  token: string,
  options: { connect: boolean },
): Promise<{ runner: Runner } | { refused: RunnerRefusal }> {
  const unknown = {
    refused: "unknown or revoked runner token (Authorization: Bearer cvr_…)",
  } as const;
  if (!token.startsWith(RUNNER_TOKEN_PREFIX)) return unknown;
  // Revoked ones included: a spent one-time credential is revoked, and says so as "used".
  const [runner] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(eq(runners.tokenHash, hashRunnerToken(token)));
  if (!runner) return unknown;
  if (!runner.oneTime) return runner.revokedAt ? unknown : { runner };
  const used = {
    refused: "one-time runner credential already used (it is good for one connection)",
  } as const;
  if (!options.connect) {
    // An upload belongs to the one connection, while it lasts (and needs a task only it can
    // hold); `conveyor-runner doctor`'s plain probe may check an unused credential.
    if (runner.revokedAt) return runner.usedAt ? used : unknown;
    if (!runner.usedAt && runner.expiresAt && runner.expiresAt.getTime() <= Date.now()) {
      return { refused: "one-time runner credential expired unused" };
    }
    return { runner };
  }
  if (runner.usedAt) return used;
  if (runner.revokedAt) return unknown;
  const [spent] = await db
    .update(runners)
    .set({ usedAt: sql`now()`, lastSeenAt: sql`now()` })
    .where(
      and(
        eq(runners.runnerId, runner.runnerId),
        isNull(runners.usedAt),
        isNull(runners.revokedAt),
        sql`${runners.expiresAt} > now()`,
      ),
    )
    .returning(PUBLIC_COLUMNS);
  if (spent) return { runner: spent };
  const [after] = await db
    .select(PUBLIC_COLUMNS)
    .from(runners)
    .where(eq(runners.runnerId, runner.runnerId));
  if (after?.usedAt) return used;
  if (after && !after.revokedAt) {
    return { refused: "one-time runner credential expired unused" };
  }
  return unknown;
}

/**
 * The connection of a one-time runner closed: its credential is spent for good (revoked), so
 * nothing can upload or connect with it again. Idempotent.
 */
export async function spendOneTimeRunner(db: Db, runnerId: string): Promise<void> {
  await db
    .update(runners)
    .set({ revokedAt: sql`now()` })
    .where(
      and(eq(runners.runnerId, runnerId), eq(runners.oneTime, true), isNull(runners.revokedAt)),
    );
}
