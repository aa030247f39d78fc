import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createDatabase, type Database, type DatabaseOptions } from "../../db/client.ts";
import { createStore } from "../../src/store/create-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

const logger = pino({ level: "silent" });

describe("the store subsystem", () => {
  const made: TestDatabase[] = [];
  afterAll(async () => {
    for (const database of made) await database.drop();
  });

  it("opens the database named after the instance, migrates it at start and closes it at stop", async () => {
    // An empty database: the store's start is what creates the tables.
    const empty = await createTestDatabase({ migrated: false });
    made.push(empty);
    const opened: DatabaseOptions[] = [];
    let database: Database | undefined;
    const store = await createStore({
      config: { databaseUrl: empty.url, dataDir: "/nonexistent" },
      logger,
      open: async (options) => {
        opened.push(options);
        database = await createDatabase(options);
        return database;
      },
    });
    expect(store.database).toBe(database);
    expect(opened).toEqual([
      { url: empty.url, dataDir: "/nonexistent", applicationName: store.instanceId },
    ]);
    expect(store.instanceId).toMatch(/^[0-9a-f]{8}:\d+:[\x20-\x7e]*$/);
    expect(store.instanceId.length).toBeLessThanOrEqual(63);
    const [named] = await store.database.rows<{ name: string }>(
      sql`select current_setting('application_name') as name`,
    );
    expect(named?.name).toBe(store.instanceId);

    const tasksTable = sql`select to_regclass('public.tasks') is not null as present`;
    expect((await store.database.rows<{ present: boolean }>(tasksTable))[0]?.present).toBe(false);
    await store.start();
    expect((await store.database.rows<{ present: boolean }>(tasksTable))[0]?.present).toBe(true);
    // A second start finds nothing to apply.
    await store.start();

    await store.stop();
    await expect(store.database.ping()).rejects.toThrow();
  });

  it("gives every instance its own name", async () => {
    const fake = (options: DatabaseOptions) =>
      Promise.resolve({ kind: "postgres", options } as unknown as Database);
    const config = { databaseUrl: "postgres://nowhere/conveyor", dataDir: "/nonexistent" };
    const a = await createStore({ config, logger, open: fake });
    const b = await createStore({ config, logger, open: fake });
    expect(a.instanceId).not.toBe(b.instanceId);
  });
});
