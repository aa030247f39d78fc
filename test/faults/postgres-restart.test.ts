import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, expect, it } from "vitest";
import { createDatabase, resultRows } from "../../db/client.ts";
import { startCiBot } from "../helpers/ci-bot.ts";
import {
  createWorld,
  TEST_START_OPTIONS,
  WEBHOOK_SECRET,
  type World,
} from "../helpers/conveyor-harness.ts";
import {
  expectNothingLostOrDuplicated,
  openScriptedIssues,
  saveOutputs,
  seededTasks,
  seedFiles,
} from "../helpers/fault-ledger.ts";
import { type PostgresCluster, startPostgresCluster } from "../helpers/postgres-cluster.ts";
import { type ConveyorProcess, spawnConveyorServer } from "../helpers/spawn-conveyor.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import type { TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const TASKS = 4;
let cluster: PostgresCluster | undefined;
let world: World | undefined;
let server: ConveyorProcess | undefined;
let supervising = true;
const outputs: Record<string, () => string> = {};
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  supervising = false;
  saveOutputs(
    "postgres-restart",
    Object.fromEntries(Object.entries(outputs).map(([name, output]) => [name, output()])),
  );
  for (const cleanup of cleanups.reverse()) await cleanup();
  server?.child.kill("SIGKILL");
  await world?.close();
  await cluster?.stop();
});

/** An empty database on this test's own cluster (the server migrates it when it starts). */
async function databaseOn(pg: PostgresCluster): Promise<TestDatabase> {
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  await admin.unsafe("create database conveyor_fault");
  await admin.end();
  const url = new URL(pg.url);
  url.pathname = "/conveyor_fault";
  const database = await createDatabase({ url: url.toString(), max: 3 });
  return { ...database, url: url.toString(), drop: () => database.close() };
}

async function count(w: World, states: string[]): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await w.database.db.execute(sql`select count(*)::int as n from tasks where state in ${states}`),
  );
  return row?.n ?? 0;
}

it("PostgreSQL restarted while tasks run: every task is merged once", async (context) => {
  cluster = await startPostgresCluster();
  const pg = cluster;
  // Reconciliation every 3 s: webhooks that arrive while the database is down fail, as they
  // would in production, where the pass runs every 5 minutes.
  world = await createWorld({
    files: seedFiles(TASKS),
    env: { LOG_LEVEL: "info", CONVEYOR_RECONCILE_MINUTES: "0.05" },
    database: () => databaseOn(pg),
  });
  const w = world;
  // The server runs as a process under a supervisor that restarts it if it dies, as systemd or
  // Kubernetes would: postgres.js 3.4.9 can throw an uncaught TypeError when a connection closes
  // under a pending write (porsager/postgres#1154, #1208), which ends the process.
  let port = 0;
  const crashes: string[] = [];
  const start = async (): Promise<string> => {
    const current = spawnConveyorServer({ ...w.env, PORT: String(port) }, TEST_START_OPTIONS);
    server = current;
    outputs[`server-${Object.keys(outputs).length}`] = current.output;
    current.exited.then(() => {
      if (!supervising || server !== current) return;
      crashes.push(current.errors());
      void start();
    });
    const url = await current.listening;
    port = Number(new URL(url).port);
    w.sim.setWebhook({ url: `${url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    return url;
  };
  const url = await start();
  const ci = startCiBot(w.sim, w.repo);
  cleanups.push(() => ci.stop());
  for (const name of ["pg-a", "pg-b"]) {
    const runner = await startScriptedRunner({ conveyor: { url }, database: w.database }, name);
    outputs[name] = runner.runner.output;
    cleanups.push(() => runner.stop());
  }
  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, TASKS, "sleep 800"));

  // The fault: while runners hold tasks and the first results are turned into pull requests
  // (heartbeats, uploads, completes, webhooks and GitHub writes all meet a database that is gone
  // for a second).
  await waitFor(() => count(w, ["running"]), { timeoutMs: 20_000 });
  await pg.restart({ downMs: 1_000 });

  await expectNothingLostOrDuplicated(w, issues, {
    context,
    faults: 1,
    timeoutMs: 60_000,
    details: () => server?.output().slice(-3_000) ?? "",
  });
  context.annotate(`server processes that died and were restarted: ${crashes.length}`);
  // The server is ready again, and if it died, it died of nothing but the known driver bug.
  expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  for (const crash of crashes) {
    expect(crash).toMatch(/Cannot read properties of null \(reading 'write'\)[\s\S]*nextWrite/);
  }
}, 120_000);
