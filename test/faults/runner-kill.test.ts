import { sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import { createHarness, FAST_TIMINGS, type Harness } from "../helpers/conveyor-harness.ts";
import {
  expectNothingLostOrDuplicated,
  openScriptedIssues,
  seededTasks,
  seedFiles,
} from "../helpers/fault-ledger.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import { waitFor } from "../helpers/wait-for.ts";

const TASKS = 4;
let h: Harness | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await h?.close();
});

/** Tasks a runner (by name) holds in `running` right now. */
async function runningOn(harness: Harness, name: string): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await harness.database.db.execute(sql`
      select count(*)::int as n from tasks t join runners r using (runner_id)
      where r.name = ${name} and t.state = 'running'`),
  );
  return row?.n ?? 0;
}

it("kill -9 of runners mid-task: every task ends in one pull request (one runner gone for good, one restarted from its journal)", async (context) => {
  // A lease long enough for a killed runner process to start again on a loaded machine (node and
  // tsx take seconds there); the vanished runner's leases still expire within the test. The
  // accept window too: a runner that misses it loses its assignments to the others, whose slots
  // then hold every task, and the runner this test kills has nothing to lose.
  h = await createHarness({
    files: seedFiles(TASKS),
    start: { dispatchTimings: { ...FAST_TIMINGS, leaseMs: 10_000, acceptMs: 5_000 } },
  });
  const harness = h;
  const doomed = await startScriptedRunner(harness, "doomed");
  cleanups.push(() => doomed.stop());
  const phoenix = await startScriptedRunner(harness, "phoenix");
  cleanups.push(() => phoenix.stop());
  const steady = await startScriptedRunner(harness, "steady");
  cleanups.push(() => steady.stop());

  // Long enough that every runner is caught with work in hand.
  const issues = await openScriptedIssues(
    harness.sim,
    harness.repo,
    seededTasks(1, TASKS, "sleep 1000"),
  );

  // Fault 1: a runner dies with tasks running and never comes back; its leases must expire.
  await waitFor(async () => (await runningOn(harness, "doomed")) > 0, { timeoutMs: 20_000 });
  doomed.runner.child.kill("SIGKILL");
  await doomed.runner.exited;

  // Fault 2: another dies mid-task and restarts from its journal: the server lets it continue
  // and sends the assignments again, and it runs them from a fresh clone at the same generation.
  await waitFor(async () => (await runningOn(harness, "phoenix")) > 0, { timeoutMs: 20_000 });
  const held = resultRows<{ task_id: string; generation: number }>(
    await harness.database.db.execute(sql`
      select t.task_id, t.generation from tasks t join runners r using (runner_id)
      where r.name = 'phoenix' and t.state = 'running'`),
  );
  phoenix.runner.child.kill("SIGKILL");
  await phoenix.runner.exited;
  const reborn = await startScriptedRunner(harness, "phoenix", phoenix);
  cleanups.push(() => reborn.stop());

  await expectNothingLostOrDuplicated(harness, issues, {
    context,
    faults: 2,
    timeoutMs: 60_000,
    // The fault is over once results are in: up to one pull request each (merging is the other
    // suites' business, and no CI runs here).
    state: "review",
    until: "pull request",
  });
  // The faults really hit work in progress: the vanished runner's attempts were taken back, and
  // the restarted one finished an attempt it held when it was killed (same generation).
  const [taken] = resultRows<{ expired: number }>(
    await harness.database.db.execute(sql`
      select count(*) filter (where reason like 'lease expired%')::int as expired
      from task_events where to_state = 'retry_wait'`),
  );
  expect(taken?.expired).toBeGreaterThan(0);
  const pushed = resultRows<{ task_id: string; generation: number }>(
    await harness.database.db.execute(sql`
      select task_id, generation from task_events where to_state = 'pushed'`),
  );
  const resumed = held.filter((h) =>
    pushed.some((p) => p.task_id === h.task_id && p.generation === h.generation),
  );
  expect(resumed.length, JSON.stringify({ held, pushed })).toBeGreaterThan(0);
}, 90_000);
