import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
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
    await releaseLease(beta.db, "merger", "beta");
  });

  it("leaves a caller whose connections do not carry its holder name waiting for the expiry", async () => {
    // Both holders share one pool named `conveyor`, like tools and tests do.
    expect(await tryAcquireLease(test.db, "sweep", "tool-a", 60_000)).toBe(true);
    expect(await tryAcquireLease(test.db, "sweep", "tool-b", 60_000)).toBe(false);
    expect(await tryAcquireLease(test.db, "sweep", "tool-b", 1)).toBe(false);
    await releaseLease(test.db, "sweep", "tool-a");
    expect(await tryAcquireLease(test.db, "sweep", "tool-b", 60_000)).toBe(true);
  });
});

describe("leases on PGlite", () => {
  it("lets a new process take over the lease a crashed one left at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "conveyor-lease-"));
    try {
      const first = await createDatabase({ dataDir: dir, applicationName: "first" });
      await migrate(first.db);
      expect(await tryAcquireLease(first.db, "publisher", "first", 10 * 60_000)).toBe(true);
      await first.close();
      const second = await createDatabase({ dataDir: dir, applicationName: "second" });
      expect(await tryAcquireLease(second.db, "publisher", "second", 60_000)).toBe(true);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
