import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import { createPreparedTexts, preparing } from "../../db/prepared-statements.ts";
import * as schema from "../../db/schema.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

describe("prepared statements (PostgreSQL)", () => {
  let test: TestDatabase;
  let client: postgres.Sql;
  beforeAll(async () => {
    test = await createTestDatabase();
    // One connection, so `pg_prepared_statements` (per session) shows what it prepared.
    client = postgres(test.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await client?.end();
    await test?.drop();
  });

  const preparedTexts = async (db: ReturnType<typeof drizzle>) =>
    resultRows<{ statement: string }>(
      await db.execute(sql`select statement from pg_prepared_statements`),
    ).map((r) => r.statement);

  it("prepares statements with parameters, in and out of transactions, up to the bound", async () => {
    const db = drizzle(preparing(client, createPreparedTexts(2)), { schema });
    const one = (n: number) => db.execute(sql`select ${n}::int + 1 as one`);
    expect(resultRows<{ one: number }>(await one(1))).toEqual([{ one: 2 }]);
    await one(2);
    await db.transaction(async (tx) => {
      await tx.execute(sql`select ${"in a transaction"}::text as two`);
    });
    // Without parameters: sent as a simple query, as before (a migration may hold several).
    await db.execute(sql`select 3 as three; select 4 as four`);
    const texts = await preparedTexts(db);
    expect(texts.filter((t) => t.includes("as one"))).toHaveLength(1);
    expect(texts.some((t) => t.includes("as two"))).toBe(true);
    expect(texts.some((t) => t.includes("as three"))).toBe(false);

    // The bound (two texts): a third runs unprepared, and still runs.
    expect(resultRows(await db.execute(sql`select ${5}::int as five`))).toEqual([{ five: 5 }]);
    expect((await preparedTexts(db)).some((t) => t.includes("as five"))).toBe(false);
  });

  it("answers correctly after a table a prepared statement reads changed shape", async () => {
    const db = drizzle(preparing(client, createPreparedTexts()), { schema });
    await db.execute(sql`create table shape_change (a int)`);
    await db.execute(sql`insert into shape_change values (1)`);
    const read = () => db.execute(sql`select * from shape_change where a >= ${0}`);
    expect(resultRows(await read())).toEqual([{ a: 1 }]);
    await db.execute(sql`alter table shape_change add column b text default 'x'`);
    expect(resultRows(await read())).toEqual([{ a: 1, b: "x" }]);
  });

  it("runs the server's connections without JIT compilation", async () => {
    const [setting] = resultRows<{ jit: string }>(await test.db.execute(sql`show jit`));
    expect(setting?.jit).toBe("off");
  });
});
