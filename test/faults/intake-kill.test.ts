import { sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import {
  createWorld,
  TEST_START_OPTIONS,
  WEBHOOK_SECRET,
  type World,
} from "../helpers/conveyor-harness.ts";
import { type ConveyorProcess, spawnConveyorServer } from "../helpers/spawn-conveyor.ts";
import { waitFor } from "../helpers/wait-for.ts";

let world: World | undefined;
const servers: ConveyorProcess[] = [];
afterAll(async () => {
  for (const server of servers) server.child.kill("SIGKILL");
  await world?.close();
});

interface DeliveryRow {
  outcome: string;
  owed: boolean;
  attempts: number;
  lease_holder: string | null;
}

it("kill -9 between storing a label's delivery and acting on it: another instance takes the delivery over at once and queues the issue once", async () => {
  world = await createWorld({ env: { LOG_LEVEL: "info" } });
  const w = world;
  const start = async (options: Record<string, unknown>) => {
    const server = spawnConveyorServer(w.env, { ...TEST_START_OPTIONS, ...options });
    servers.push(server);
    const url = await server.listening;
    w.sim.setWebhook({ url: `${url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    return server;
  };
  const logs = () => servers.map((s) => s.output().slice(-3_000)).join("\n---\n");
  const delivery = async (id: string) =>
    resultRows<DeliveryRow>(
      await w.database.db.execute(sql`
        select outcome, intent is not null as owed, attempts, lease_holder
        from webhook_deliveries where delivery_id = ${id}`),
    )[0];
  const tasks = async (issueNumber: number) =>
    resultRows<{ state: string; title: string; body: string }>(
      await w.database.db.execute(
        sql`select state, title, body from tasks where issue_number = ${issueNumber}`,
      ),
    );

  // The first instance stores the label's delivery and answers it, but cannot act on it: its
  // config read fails, and its next try would be a minute away.
  // (No reconciliation pass at start-up: it would read the config too, and take the fault.)
  const first = await start({ intakeRetryMs: 60_000, reconcileOnStart: false });
  const { issue } = await w.sim.openIssue(w.repo, {
    title: "Survive the crash",
    body: "as labelled",
    user: "octocat",
  });
  await w.sim.idle();
  w.sim.injectFault("GET /repos/{owner}/{repo}/contents/{path}", 500);
  const labelled = await w.sim.addLabel(w.repo, issue.number, "conveyor", { sender: "octocat" });
  expect(labelled.status).toBe(200);
  const deliveryId = labelled.delivery!.id;
  const held = await waitFor(
    async () => {
      const row = await delivery(deliveryId);
      return row?.outcome.startsWith("failed (attempt 1)") ? row : undefined;
    },
    { timeoutMs: 15_000, message: `the label's first attempt failed\n${logs()}` },
  );
  expect(held).toMatchObject({ owed: true, attempts: 1 });
  expect(held.lease_holder).not.toBeNull();
  expect(await tasks(issue.number)).toEqual([]);

  first.child.kill("SIGKILL");
  await first.exited;
  // Edited while no instance runs: the task still gets the text as it was labelled.
  w.sim.setWebhook(undefined);
  await w.sim.editIssue(w.repo, issue.number, { body: "edited later" }, { sender: "reader" });

  // A new instance (another id) finds the claim's holder gone and acts without waiting for it.
  // (Reconciliation is left to its interval: the intake loop alone must bring the label back.)
  const second = await start({ reconcileOnStart: false });
  const startedAt = Date.now();
  const done = await waitFor(
    async () => {
      const row = await delivery(deliveryId);
      return row && !row.owed ? row : undefined;
    },
    { timeoutMs: 20_000, message: `the delivery acted on after the restart\n${logs()}` },
  );
  // Well under the minute the dead instance's retry was set for.
  expect(Date.now() - startedAt).toBeLessThan(30_000);
  expect(done).toMatchObject({ outcome: "create", attempts: 2, lease_holder: null });
  expect(await tasks(issue.number)).toEqual([
    { state: "queued", title: "Survive the crash", body: "as labelled" },
  ]);

  // GitHub redelivering the same delivery changes nothing.
  w.sim.setWebhook({
    url: `${await second.listening}/api/github/webhooks`,
    secret: WEBHOOK_SECRET,
  });
  expect((await w.sim.redeliver(labelled.delivery!.id)).status).toBe(200);
  await w.sim.idle();
  expect(await tasks(issue.number)).toHaveLength(1);
  expect(await delivery(deliveryId)).toMatchObject({ outcome: "create", owed: false });
}, 90_000);
