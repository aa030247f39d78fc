import { sql } from "drizzle-orm";
import { afterAll, it } from "vitest";
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
import { createWebhookRelay, type WebhookRelay } from "../helpers/webhook-relay.ts";

const TASKS = 4;
let world: World | undefined;
let relay: WebhookRelay | undefined;
const servers: ConveyorProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const server of servers) server.child.kill("SIGKILL");
  await relay?.close();
  await world?.close();
});

/** Tasks held (assigned or running) by the runners with these names. */
async function heldBy(w: World, names: string[]): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await w.database.db.execute(sql`
      select count(*)::int as n from tasks t join runners r using (runner_id)
      where r.name in ${names} and t.state in ('assigned', 'running')`),
  );
  return row?.n ?? 0;
}

it("two app instances with runners on both, one killed with -9 mid-task: every task is merged once", async (context) => {
  world = await createWorld({ files: seedFiles(TASKS), env: { LOG_LEVEL: "info" } });
  const w = world;
  const start = async (port = 0) => {
    const server = spawnConveyorServer({ ...w.env, PORT: String(port) }, TEST_START_OPTIONS);
    servers.push(server);
    return { server, url: await server.listening };
  };
  const [a, b] = await Promise.all([start(), start()]);
  const logs = () => servers.map((s) => s.output().slice(-3_000)).join("\n---\n");
  // GitHub reaches both instances through a load balancer.
  relay = await createWebhookRelay({ kind: "pass" });
  relay.setTargets([a, b].map((i) => `${i.url}/api/github/webhooks`));
  w.sim.setWebhook({ url: relay.url, secret: WEBHOOK_SECRET });
  const ci = startCiBot(w.sim, w.repo);
  cleanups.push(() => ci.stop());
  const startRunners = async (names: readonly string[], instance: { url: string }) => {
    for (const name of names) {
      const runner = await startScriptedRunner(
        { conveyor: { url: instance.url }, database: w.database },
        name,
      );
      cleanups.push(() => runner.stop());
    }
  };
  // B's runners first, so the work is on B when it dies (A's would otherwise take it all: the
  // runners have two slots each); then A's runners join, and both instances hold runners.
  await startRunners(["on-b-1", "on-b-2"], b);
  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, TASKS, "sleep 1000"));
  await waitFor(() => heldBy(w, ["on-b-1", "on-b-2"]), { timeoutMs: 20_000 });
  await startRunners(["on-a-1", "on-a-2"], a);

  // The fault: instance B dies while its runners hold tasks. Their leases expire and A's runners
  // take the tasks over; B's runners keep trying to reach B.
  b.server.child.kill("SIGKILL");
  await b.server.exited;
  await waitFor(
    async () => {
      const [row] = resultRows<{ n: number }>(
        await w.database.db.execute(sql`
          select count(*)::int as n from task_events e join runners r
            on r.runner_id::text = e.data->>'runner_id'
          where e.to_state = 'assigned' and r.name like 'on-a-%' and e.generation > 1`),
      );
      return (row?.n ?? 0) > 0;
    },
    { timeoutMs: 30_000, message: `a task of B's runners taken over on A\n${logs()}` },
  );
  // B comes back on its port: its runners reconnect with results for generations that are gone.
  await start(Number(new URL(b.url).port));

  await expectNothingLostOrDuplicated(w, issues, {
    context,
    faults: 1,
    timeoutMs: 60_000,
    details: logs,
  });
}, 120_000);
