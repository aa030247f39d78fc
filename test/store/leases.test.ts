import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../db/client.ts";
import { releaseLease, tryAcquireLease } from "../../src/store/leases.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

describe("leases between instances (PostgreSQL)", () => {
  let test: TestDatabase;
  // Two app instances: each names its connections after itself, as `startConveyor` does.
  let alpha: Database;
  let beta: Database;
  beforeAll(async () => {
    test = await createTestDatabase();
    alpha = await createDatabase({ url: test.url, max: 2, applicationName: "alpha" });
    beta = await createDatabase({ url: test.url, max: 2, applicationName: "beta" });
    await alpha.ping();
    await beta.ping();
  });
  afterAll(async () => {
    await alpha?.close();
    await beta?.close();
    await test?.drop();
  });

  it("gives a lease to one live instance at a time, and back after a release", async () => {
    expect(await tryAcquireLease(alpha.db, "publisher", "alpha", 60_000)).toBe(true);
    expect(await tryAcquireLease(beta.db, "publisher", "beta", 60_000)).toBe(false);
    // Renewing one's own lease works.
    expect(await tryAcquireLease(alpha.db, "publisher", "alpha", 60_000)).toBe(true);
    await releaseLease(alpha.db, "publisher", "alpha");
    expect(await tryAcquireLease(beta.db, "publisher", "beta", 60_000)).toBe(true);
    await releaseLease(beta.db, "publisher", "beta");
  });

  it("frees the lease of an instance whose connections are gone at once, not when it expires", async () => {
    const doomed = await createDatabase({ url: test.url, max: 1, applicationName: "doomed" });
    expect(await tryAcquireLease(doomed.db, "merger", "doomed", 10 * 60_000)).toBe(true);
    expect(await tryAcquireLease(beta.db, "merger", "beta", 60_000)).toBe(false);
    // The process dies without releasing: its sessions end.
    await doomed.close();
    expect(await tryAcquireLease(beta.db, "merger", "beta", 60_000)).toBe(true);
    const [row] = await test.rows<{ holder: string }>(
      sql`select holder from leases where name = 'merger'`,
    );
    expect(row?.holder).toBe("beta");
  });
});
