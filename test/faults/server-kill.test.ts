import { sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
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
  seededTasks,
  seedFiles,
} from "../helpers/fault-ledger.ts";
import { type ConveyorProcess, spawnConveyorServer } from "../helpers/spawn-conveyor.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import { waitFor } from "../helpers/wait-for.ts";

const TASKS = 4;
/**
 * Accept and lease windows of 8 s (the other suites use 1.5 s and 2 s): long enough for runners to
 * reconnect to the restarted server and reclaim their tasks, as they do within the production
 * 60 s lease. With 2 s every restart would cost every running task an attempt.
 */
const START_OPTIONS = {
  ...TEST_START_OPTIONS,
  dispatchTimings: { ...TEST_START_OPTIONS.dispatchTimings, acceptMs: 8_000, leaseMs: 8_000 },
};
let world: World | undefined;
const servers: ConveyorProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const server of servers) server.child.kill("SIGKILL");
  await world?.close();
});

async function count(w: World, where: ReturnType<typeof sql>): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await w.database.db.execute(sql`select count(*)::int as n from tasks where ${where}`),
  );
  return row?.n ?? 0;
}

it("kill -9 of the app server mid-dispatch and while publishing, restarted on its port: every task is merged once", async (context) => {
  world = await createWorld({ files: seedFiles(TASKS), env: { LOG_LEVEL: "info" } });
  const w = world;
  let port = 0;
  const start = async () => {
    const server = spawnConveyorServer({ ...w.env, PORT: String(port) }, START_OPTIONS);
    servers.push(server);
    const url = await server.listening;
    port = Number(new URL(url).port);
    w.sim.setWebhook({ url: `${url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    return { server, url };
  };
  const kill = async (server: ConveyorProcess) => {
    server.child.kill("SIGKILL");
    await server.exited;
  };
  const logs = () => servers.map((s) => s.output().slice(-3_000)).join("\n---\n");

  let current = await start();
  const target = { conveyor: { url: current.url }, database: w.database };
  const ci = startCiBot(w.sim, w.repo);
  cleanups.push(() => ci.stop());
  for (const name of ["left", "right"]) {
    const runner = await startScriptedRunner(target, name);
    cleanups.push(() => runner.stop());
  }

  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, TASKS / 2, "sleep 800"));

  // Fault 1: mid-dispatch, with tasks assigned and running. Issues labelled while the server is
  // down get no webhook at all (GitHub does not retry): reconciliation at start-up finds them.
  await waitFor(() => count(w, sql`state in ('assigned', 'running')`), { timeoutMs: 20_000 });
  await kill(current.server);
  const lostDeliveries = w.sim.deliveries.length;
  issues.push(
    ...(await openScriptedIssues(w.sim, w.repo, seededTasks(TASKS / 2 + 1, TASKS, "sleep 800"))),
  );
  const missed = w.sim.deliveries.slice(lostDeliveries).filter((d) => d.status === undefined);
  current = await start();

  // Fault 2: while pull requests are being written and merged.
  await waitFor(() => count(w, sql`state in ('pushed', 'review', 'merging')`), {
    timeoutMs: 30_000,
    message: `a task in publishing or review\n${logs()}`,
  });
  await kill(current.server);
  current = await start();

  await expectNothingLostOrDuplicated(w, issues, {
    context,
    faults: 2,
    timeoutMs: 60_000,
    details: logs,
  });
  expect(missed.length).toBeGreaterThan(0);
}, 120_000);
