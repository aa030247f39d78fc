import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import {
  createRunner,
  findRunnerByName,
  findRunnerByToken,
  hashRunnerToken,
  InvalidRunnerError,
  listRunners,
  RUNNER_REVOKED_CHANNEL,
  RunnerNameTakenError,
  revokeRunner,
} from "../../src/store/runners.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

describe.each(BACKENDS)("runner store on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };

  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(async () => {
    await database?.dispose();
  });

  const storedRows = (name: string) =>
    database.rows<{ token_hash: string; capabilities: string[]; tier: string }>(
      sql`select token_hash, capabilities, tier from runners where name = ${name}`,
    );

  it("returns a cvr_ token once and stores only its SHA-256", async () => {
    const { runner, token } = await createRunner(database.db, {
      name: "hashed",
      capabilities: ["gpu", "docker", "gpu"],
      tier: "heavy",
    });
    expect(token).toMatch(/^cvr_[A-Za-z0-9_-]{43}$/);
    expect(runner).toMatchObject({
      name: "hashed",
      capabilities: ["docker", "gpu"],
      tier: "heavy",
      revokedAt: null,
    });
    expect(runner).not.toHaveProperty("tokenHash");
    const [row] = await storedRows("hashed");
    expect(row?.token_hash).toBe(hashRunnerToken(token));
    expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    // The token is nowhere in the table, in any column.
    const [dump] = resultRows<{ text: string }>(
      await database.db.execute(sql`select string_agg(r::text, '|') as text from runners r`),
    );
    expect(dump?.text).not.toContain(token);
    expect(dump?.text).not.toContain(token.slice(4));
  });

  it("gives every runner a different token", async () => {
    const a = await createRunner(database.db, { name: "unique-a" });
    const b = await createRunner(database.db, { name: "unique-b" });
    expect(a.token).not.toBe(b.token);
    expect(a.runner).toMatchObject({ tier: "normal", capabilities: [] });
  });

  it("refuses a bad name or capability with field errors, storing nothing", async () => {
    const before = (await listRunners(database.db)).length;
    await expect(createRunner(database.db, { name: "Bad Name" })).rejects.toMatchObject({
      name: "InvalidRunnerError",
      errors: [{ field: "name", message: expect.stringContaining("lower-case") }],
    });
    await expect(
      createRunner(database.db, { name: "ok", capabilities: ["GPU"] }),
    ).rejects.toBeInstanceOf(InvalidRunnerError);
    expect(await listRunners(database.db)).toHaveLength(before);
  });

  it("makes one runner when a name is registered many times at once", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => createRunner(database.db, { name: "racer" })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = results.filter((r) => r.status === "rejected");
    expect(refused).toHaveLength(5);
    for (const r of refused) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RunnerNameTakenError);
      expect((r as PromiseRejectedResult).reason.message).toBe(
        "a runner named racer exists; revoke it or pick another name",
      );
    }
    expect(await storedRows("racer")).toHaveLength(1);
  });

  it("lists runners without token hashes", async () => {
    const { token } = await createRunner(database.db, { name: "listed" });
    const all = await listRunners(database.db);
    expect(all.map((r) => r.name)).toContain("listed");
    const text = JSON.stringify(all);
    expect(text).not.toContain(hashRunnerToken(token));
    expect(text).not.toContain(token);
    for (const runner of all) expect(Object.keys(runner)).not.toContain("tokenHash");
  });

  it("finds an active runner by its token, and nothing for a wrong, malformed or revoked one", async () => {
    const { runner, token } = await createRunner(database.db, { name: "finder" });
    expect(await findRunnerByToken(database.db, token)).toEqual(runner);
    expect(await findRunnerByToken(database.db, `${token}x`)).toBeUndefined();
    expect(await findRunnerByToken(database.db, token.slice(4))).toBeUndefined();
    // The stored hash is not a credential.
    expect(await findRunnerByToken(database.db, hashRunnerToken(token))).toBeUndefined();
    expect(await findRunnerByToken(database.db, "")).toBeUndefined();
    await revokeRunner(database.db, "finder");
    expect(await findRunnerByToken(database.db, token)).toBeUndefined();
  });

  it("revokes idempotently and frees the name for a new runner", async () => {
    await createRunner(database.db, { name: "leaving" });
    const first = await revokeRunner(database.db, "leaving");
    expect(first?.revokedAt).toBeInstanceOf(Date);
    const again = await revokeRunner(database.db, "leaving");
    expect(again).toEqual(first);
    expect(await revokeRunner(database.db, "never-existed")).toBeUndefined();
    expect((await listRunners(database.db)).find((r) => r.name === "leaving")?.revokedAt).toEqual(
      first?.revokedAt,
    );
    const replacement = await createRunner(database.db, { name: "leaving" });
    expect(replacement.runner.runnerId).not.toBe(first?.runnerId);
    expect(await findRunnerByName(database.db, "leaving")).toMatchObject({
      runnerId: replacement.runner.runnerId,
      revokedAt: null,
    });
  });
});

describe("revoking a runner on PostgreSQL", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("notifies every listening instance once, when the revocation commits", async () => {
    const listener = postgres(database.url, { max: 1, onnotice: () => {} });
    const received: string[] = [];
    try {
      await listener.listen(RUNNER_REVOKED_CHANNEL, (payload) => received.push(payload));
      const { runner } = await createRunner(database.db, { name: "noisy" });
      await revokeRunner(database.db, "noisy");
      await revokeRunner(database.db, "noisy");
      await waitFor(() => received.length > 0, { message: "revocation notification" });
      // A marker notification after the second revoke proves that one sent nothing.
      await database.db.execute(sql`select pg_notify(${RUNNER_REVOKED_CHANNEL}, 'marker')`);
      await waitFor(() => received.includes("marker"), { message: "marker notification" });
      expect(received).toEqual([runner.runnerId, "marker"]);
    } finally {
      await listener.end();
    }
  });
});
