import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { budgetPause, rememberDailyBudget, setTodaysBudget } from "../../src/store/budgets.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Daily budgets over real SQL: repositories 1 and 2 share installation 10, repository 3 is alone
 * in installation 20. Today repository 1 spent $3 (and $50 yesterday, which no longer counts),
 * repository 2 spent $4, repository 3 $1.
 */
let database: TestDatabase;

async function spend(repositoryId: number, installationId: number, usd: number, ago: string) {
  const taskId = randomUUID();
  await database.db.execute(sql`
    insert into tasks (task_id, repository_id, installation_id, issue_number, state, title,
                       snapshot_hash, queued_by)
    values (${taskId}, ${repositoryId}, ${installationId},
            (select coalesce(max(issue_number), 0) + 1 from tasks), 'cancelled', 't', 'h', 'o')`);
  await database.db.execute(sql`
    insert into attempts (task_id, generation, outcome, cost_usd, finished_at)
    values (${taskId}, 1, 'completed', ${usd}, now() - ${ago}::interval)`);
}

beforeAll(async () => {
  database = await createTestDatabase();
  await database.db.execute(sql`
    insert into repositories (repository_id, installation_id, full_name)
    values (1, 10, 'acme/one'), (2, 10, 'acme/two'), (3, 20, 'other/three')`);
  await spend(1, 10, 3, "1 second");
  await spend(1, 10, 50, "2 days");
  await spend(2, 10, 4, "1 second");
  await spend(3, 20, 1, "1 second");
});
afterAll(async () => {
  await database?.drop();
});

describe("daily budgets", () => {
  it("pauses nothing without a budget", async () => {
    for (const repo of [1, 2, 3]) {
      expect(await budgetPause(database.db, repo, undefined)).toBeUndefined();
    }
  });

  it("pauses a repository that spent its own budget today, not yesterday's", async () => {
    await rememberDailyBudget(database.db, 1, 3);
    await rememberDailyBudget(database.db, 2, 10);
    expect(await budgetPause(database.db, 1, undefined)).toEqual({
      scope: "repository",
      spentUsd: 3,
      budgetUsd: 3,
    });
    expect(await budgetPause(database.db, 2, undefined)).toBeUndefined();
  });

  it("pauses every repository of an installation that spent the installation's budget", async () => {
    await rememberDailyBudget(database.db, 1, undefined);
    // Installation 10 spent $7 today; installation 20 $1.
    expect(await budgetPause(database.db, 1, 7)).toEqual({
      scope: "installation",
      spentUsd: 7,
      budgetUsd: 7,
    });
    expect(await budgetPause(database.db, 2, 7)).toMatchObject({ scope: "installation" });
    expect(await budgetPause(database.db, 3, 7)).toBeUndefined();
    expect(await budgetPause(database.db, 1, 7.01)).toBeUndefined();
  });

  it("/budget sets today's budget in place of the config's, up or down", async () => {
    await rememberDailyBudget(database.db, 2, 10);
    await setTodaysBudget(database.db, 2, 3.5);
    expect(await budgetPause(database.db, 2, undefined)).toEqual({
      scope: "repository",
      spentUsd: 4,
      budgetUsd: 3.5,
    });
    await setTodaysBudget(database.db, 2, 25);
    expect(await budgetPause(database.db, 2, undefined)).toBeUndefined();
    // A /budget of another day no longer applies: the config's value does.
    await database.db.execute(
      sql`update repositories set budget_set_on = (now() at time zone 'UTC')::date - 1, budget_set_usd = 100
          where repository_id = 2`,
    );
    await rememberDailyBudget(database.db, 2, 4);
    expect(await budgetPause(database.db, 2, undefined)).toMatchObject({ budgetUsd: 4 });
  });
});
