import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, expect, it } from "vitest";
import { createDatabase, resultRows } from "../../db/client.ts";
import { startCiBot } from "../helpers/ci-bot.ts";
import { createHarness, type Harness } from "../helpers/conveyor-harness.ts";
import {
  auditIssues,
  openScriptedIssue,
  recordFaultCounts,
  seedFiles,
  type TrackedIssue,
  taskScript,
  waitForMerged,
} from "../helpers/fault-ledger.ts";
import { type PostgresCluster, startPostgresCluster } from "../helpers/postgres-cluster.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import type { TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const TASKS = 8;
let cluster: PostgresCluster | undefined;
let h: Harness | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await h?.close();
  await cluster?.stop();
});

/** An empty database on this test's own cluster (the server migrates it when it starts). */
async function databaseOn(server: PostgresCluster): Promise<TestDatabase> {
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin.unsafe("create database conveyor_fault");
  await admin.end();
  const url = new URL(server.url);
  url.pathname = "/conveyor_fault";
  const database = await createDatabase({ url: url.toString(), max: 3 });
  return { ...database, url: url.toString(), drop: () => database.close() };
}

async function count(harness: Harness, states: string[]): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await harness.database.db.execute(
      sql`select count(*)::int as n from tasks where state in ${states}`,
    ),
  );
  return row?.n ?? 0;
}

it("PostgreSQL restarted while tasks run and while pull requests are written: every task is merged once", async (context) => {
  cluster = await startPostgresCluster();
  const server = cluster;
  h = await createHarness({ files: seedFiles(TASKS), database: () => databaseOn(server) });
  const harness = h;
  const ci = startCiBot(harness.sim, harness.repo);
  cleanups.push(() => ci.stop());
  for (const name of ["pg-a", "pg-b"]) {
    const runner = await startScriptedRunner(harness, name);
    cleanups.push(() => runner.stop());
  }
  const issues: TrackedIssue[] = [];
  for (let k = 1; k <= TASKS; k++) {
    const issueNumber = await openScriptedIssue(
      harness.sim,
      harness.repo,
      `Fault task ${k}`,
      taskScript(k, "sleep 800"),
    );
    issues.push({ issueNumber, file: `work/${k}.txt` });
  }

  // Fault 1: while runners hold tasks (heartbeats, uploads and completes hit a database that is
  // gone for a second).
  await waitFor(() => count(harness, ["running"]), { timeoutMs: 20_000 });
  await server.restart({ downMs: 1_000 });
  // Fault 2: while results are turned into pull requests and reviewed.
  await waitFor(() => count(harness, ["pushed", "review", "merging"]), { timeoutMs: 30_000 });
  await server.restart({ downMs: 1_000 });

  const states = await waitForMerged(
    { db: harness.database.db, repositoryId: harness.repositoryId },
    issues.map((i) => i.issueNumber),
    60_000,
  );
  const ledger = await auditIssues(
    {
      db: harness.database.db,
      sim: harness.sim,
      repo: harness.repo,
      repositoryId: harness.repositoryId,
    },
    issues,
  );
  recordFaultCounts(context, ledger, 2);
  expect(
    { lost: ledger.lost, duplicated: ledger.duplicated },
    `${states}\n${ledger.history}`,
  ).toEqual({ lost: [], duplicated: [] });
  // The server came back by itself.
  expect((await fetch(`${harness.conveyor.url}/readyz`)).status).toBe(200);
  expect(harness.sim.violations).toEqual([]);
}, 120_000);
