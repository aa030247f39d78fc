import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../test/helpers/test-database.ts";
import { pendingSchemaChanges } from "./check-migrations.ts";
import { createDatabase, DataDirLockedError } from "./client.ts";
import { loadMigrations, migrate, migrationStatus } from "./migrate.ts";

const opened: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(opened.map((d) => d.drop()));
});

async function emptyDatabase() {
  const database = await createTestDatabase({ migrated: false });
  opened.push(database);
  return database;
}

describe("migrations", () => {
  it("the committed migrations match db/schema.ts", () => {
    expect(pendingSchemaChanges()).toBe("");
  });

  it("reports pending migrations, applies them once, then reports none", async () => {
    const database = await emptyDatabase();
    const all = loadMigrations().map((m) => m.tag);
    expect(await migrationStatus(database.db)).toEqual({ applied: [], pending: all });
    expect((await migrate(database.db)).applied).toEqual(all);
    expect((await migrate(database.db)).applied).toEqual([]);
    expect(await migrationStatus(database.db)).toEqual({ applied: all, pending: [] });
  });

  it("lets several instances migrate at once: one applies, the others wait and find it done", async () => {
    const first = await emptyDatabase();
    const others = await Promise.all(
      [1, 2, 3].map(() => createDatabase({ url: first.url, max: 1 })),
    );
    try {
      const results = await Promise.all([first, ...others].map((d) => migrate(d.db)));
      const appliers = results.filter((r) => r.applied.length > 0);
      expect(appliers).toHaveLength(1);
      const [row] = await first.rows<{ n: number }>(
        sql`select count(*)::int as n from conveyor_migrations`,
      );
      expect(row?.n).toBe(loadMigrations().length);
    } finally {
      await Promise.all(others.map((d) => d.close()));
    }
  });

  it("refuses a migration that was edited after it was applied", async () => {
    const database = await emptyDatabase();
    const migrations = loadMigrations();
    await migrate(database.db, migrations);
    const edited = migrations.map((m, i) => (i === 0 ? { ...m, hash: "edited" } : m));
    await expect(migrate(database.db, edited)).rejects.toThrow(/changed after it was applied/);
  });
});

describe("embedded database (PGlite)", () => {
  it("runs the same migrations and refuses a second process on the same data directory", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "conveyor-pglite-"));
    const database = await createDatabase({ dataDir });
    try {
      expect(database.kind).toBe("pglite");
      await migrate(database.db);
      expect((await migrationStatus(database.db)).pending).toEqual([]);
    } finally {
      await database.close();
    }
    // A live process (pid 1) holding the lock file: the data directory must not be opened.
    writeFileSync(join(dataDir, "conveyor.pid"), "1");
    await expect(createDatabase({ dataDir })).rejects.toThrow(DataDirLockedError);
    // A stale lock (a pid that is not running) is taken over.
    writeFileSync(join(dataDir, "conveyor.pid"), "2147483646");
    const reopened = await createDatabase({ dataDir });
    await reopened.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
});
