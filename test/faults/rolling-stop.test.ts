import { sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
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
import { createTcpBalancer, type TcpBalancer } from "../helpers/tcp-balancer.ts";
import { waitFor } from "../helpers/wait-for.ts";
import { createWebhookRelay, type WebhookRelay } from "../helpers/webhook-relay.ts";

const TASKS = 100;
/** Leases of 6 s: runners of the stopped instance reconnect (1 s back-off) well within them. */
const START_OPTIONS = {
  ...TEST_START_OPTIONS,
  dispatchTimings: { ...TEST_START_OPTIONS.dispatchTimings, acceptMs: 6_000, leaseMs: 6_000 },
};
let world: World | undefined;
let relay: WebhookRelay | undefined;
let balancer: TcpBalancer | undefined;
const servers: ConveyorProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const server of servers) server.child.kill("SIGKILL");
  await balancer?.close();
  await relay?.close();
  await world?.close();
});

async function count(w: World, where: ReturnType<typeof sql>): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await w.database.db.execute(sql`select count(*)::int as n from tasks where ${where}`),
  );
  return row?.n ?? 0;
}

it("rolling upgrade: of two instances, one stopped with SIGTERM during a 100-task run; its runners and leases move to the other", async (context) => {
  world = await createWorld({ files: seedFiles(TASKS), env: { LOG_LEVEL: "info" } });
  const w = world;
  const start = async () => {
    const server = spawnConveyorServer({ ...w.env, PORT: "0" }, START_OPTIONS);
    servers.push(server);
    return { server, url: await server.listening };
  };
  const [a, b] = await Promise.all([start(), start()]);
  const logs = () => servers.map((s) => s.output().slice(-3_000)).join("\n---\n");
  // GitHub and the runners reach the instances through load balancers.
  relay = await createWebhookRelay({ kind: "pass" });
  relay.setTargets([a, b].map((i) => `${i.url}/api/github/webhooks`));
  w.sim.setWebhook({ url: relay.url, secret: WEBHOOK_SECRET });
  balancer = await createTcpBalancer();
  balancer.setTargets([a.url, b.url]);
  const target = { conveyor: { url: balancer.url }, database: w.database };
  for (const name of ["r1", "r2", "r3", "r4"]) {
    const runner = await startScriptedRunner(target, name);
    cleanups.push(() => runner.stop());
  }

  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, TASKS));
  // Mid-run: some results in, work held by runners on both instances.
  await waitFor(
    async () =>
      (await count(w, sql`state in ('pushed', 'review')`)) >= 10 &&
      (await count(w, sql`state in ('assigned', 'running')`)) > 0,
    { timeoutMs: 60_000, message: `the run under way\n${logs()}` },
  );
  const before = balancer.connections.get(new URL(a.url).origin) ?? 0;
  const stoppingAt = Date.now();
  b.server.child.kill("SIGTERM");
  const code = await b.server.exited;
  // Exit 0 is the server's own word that every stage stopped within the 10 s `conveyor start`
  // allows (it exits 1 past that); the wall clock adds the signal's delivery and the process's exit.
  expect({ code, withinBudget: Date.now() - stoppingAt < 12_000 }, logs()).toEqual({
    code: 0,
    withinBudget: true,
  });

  const ledger = await expectNothingLostOrDuplicated(w, issues, {
    context,
    faults: 1,
    // 100 pull requests are written one after another (one installation: GitHub asks for serial
    // writes); on a loaded CI machine that alone takes close to two minutes.
    timeoutMs: 180_000,
    state: "review",
    until: "pull request",
    details: logs,
  });
  expect(ledger.tasks).toBe(TASKS);
  // B's runners came over to A.
  expect(balancer.connections.get(new URL(a.url).origin) ?? 0).toBeGreaterThan(before);
}, 300_000);
