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

/**
 * A lease of 30 s (the other suites use 2 s): the server is down for a few seconds (more on a
 * loaded machine, where starting node and tsx alone takes seconds), and the runner's reconnect
 * back-off (1 s, 2 s, 4 s …) must bring it back within the lease, as it does within the
 * production 60 s.
 */
const START_OPTIONS = {
  ...TEST_START_OPTIONS,
  dispatchTimings: { ...TEST_START_OPTIONS.dispatchTimings, acceptMs: 30_000, leaseMs: 30_000 },
};
const worlds: World[] = [];
const servers: ConveyorProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const server of servers) server.child.kill("SIGKILL");
  for (const world of worlds) await world.close();
});

/** Starts a server process for the world (on `port`, 0 for any) and points GitHub's hook at it. */
async function startServer(w: World, port = 0, options: Record<string, unknown> = START_OPTIONS) {
  const server = spawnConveyorServer({ ...w.env, PORT: String(port) }, options);
  servers.push(server);
  const url = await server.listening;
  w.sim.setWebhook({ url: `${url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
  return { server, url };
}

it("kill -9 of the server while the runner uploads, restarted within the lease: merged at attempt 1", async (context) => {
  const w = await createWorld({ files: seedFiles(1), env: { LOG_LEVEL: "info" } });
  worlds.push(w);
  const first = await startServer(w);
  const ci = startCiBot(w.sim, w.repo);
  cleanups.push(() => ci.stop());
  const runner = await startScriptedRunner({ conveyor: first, database: w.database }, "uploader");
  cleanups.push(() => runner.stop());
  const logs = () =>
    [...servers.map((s) => s.output().slice(-3_000)), runner.runner.output().slice(-3_000)].join(
      "\n---\n",
    );

  // The agent works for 2 s: the server dies meanwhile, so its result meets a closed port.
  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, 1, "sleep 2000"));
  await waitFor(
    async () => {
      const [row] = resultRows<{ n: number }>(
        await w.database.db.execute(
          sql`select count(*)::int as n from tasks where state = 'running'`,
        ),
      );
      return row?.n === 1;
    },
    { timeoutMs: 20_000, message: `the task running\n${logs()}` },
  );
  first.server.child.kill("SIGKILL");
  await first.server.exited;
  // The upload was refused and is being tried again (not reported as a failed attempt).
  await waitFor(() => runner.runner.output().includes("server unavailable; trying again"), {
    timeoutMs: 20_000,
    message: `the runner retrying its upload\n${logs()}`,
  });
  await startServer(w, Number(new URL(first.url).port));

  await expectNothingLostOrDuplicated(w, issues, {
    context,
    faults: 1,
    timeoutMs: 60_000,
    details: logs,
  });
  const tasks = resultRows<{ generation: number; attempts: number }>(
    await w.database.db.execute(sql`select generation, attempts from tasks`),
  );
  expect(tasks).toEqual([{ generation: 1, attempts: 0 }]);
  expect(runner.runner.output()).not.toContain("reporting a failed attempt");
}, 120_000);

it("SIGTERM under a backlog of paced GitHub writes: exits 0 within 10 s, the next instance writes the rest", async () => {
  const w = await createWorld({ env: { LOG_LEVEL: "info" } });
  worlds.push(w);
  // Three writes a minute: each issue owes a 👀 reaction and a status comment, so most wait.
  const paced = { ...START_OPTIONS, githubWritesPerMinute: 3 };
  const first = await startServer(w, 0, paced);
  const issues = await openScriptedIssues(w.sim, w.repo, seededTasks(1, 4));
  const owed = async () => {
    const [row] = resultRows<{ n: number }>(
      await w.database.db.execute(
        sql`select count(*)::int as n from tasks where status_version > status_synced_version`,
      ),
    );
    return row?.n ?? 0;
  };
  const writes = () => w.sim.requests.filter((r) => r.method !== "GET").length;
  // The pacer's window is full and writes are waiting in it.
  await waitFor(async () => writes() >= 3 && (await owed()) > 0, {
    timeoutMs: 20_000,
    message: `the first paced writes\n${first.server.output().slice(-3_000)}`,
  });

  const stoppingAt = Date.now();
  first.server.child.kill("SIGTERM");
  const code = await first.server.exited;
  const tookMs = Date.now() - stoppingAt;
  expect({ code, within10s: tookMs < 10_000 }, first.server.output().slice(-3_000)).toEqual({
    code: 0,
    within10s: true,
  });
  expect(await owed()).toBeGreaterThan(0);

  // Nothing lost: the next instance writes what was owed, one status comment per issue.
  const next = await startServer(w);
  await waitFor(async () => (await owed()) === 0, {
    timeoutMs: 30_000,
    message: `every status comment written\n${next.server.output().slice(-3_000)}`,
  });
  for (const { issueNumber } of issues) {
    const comments = w.sim
      .listComments(w.repo, issueNumber)
      .filter((c) => c.body?.includes("conveyor:status"));
    expect(comments, `#${issueNumber}`).toHaveLength(1);
    const reactions = w.sim.listReactions(w.repo, { issue: issueNumber });
    expect(reactions.map((r) => r.content)).toEqual(["eyes"]);
  }
  expect(w.sim.violations).toEqual([]);
}, 90_000);
