import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { WorkflowDispatch } from "./github-sim/actions-routes.ts";
import { startCiBot } from "./helpers/ci-bot.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import {
  queueScriptedIssue,
  type RunnerProcess,
  SCRIPTED_AGENT,
  spawnRunnerProcess,
  startScriptedRunner,
} from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * GitHub Actions on demand against the simulator: `runners.actions` in the repository's config,
 * a fake Actions that starts a real `conveyor-runner start --ephemeral` for each workflow dispatch
 * with the one-time credential it was given, and no runner started by hand.
 */

const MAX_PARALLEL = 3;
const CONFIG = `version: 1
runners:
  actions:
    workflow: conveyor-runner.yml
    max_parallel: ${MAX_PARALLEL}
    after_seconds: 0
`;
// The repository's own caller of the reusable workflow, as workflows/conveyor-runner.yml shows it.
const WORKFLOW = `name: conveyor-runner
on:
  workflow_dispatch:
    inputs:
      runner_token:
        description: One-time runner credential (Conveyor sets it)
        required: true
        type: string
jobs:
  runner:
    uses: acme/conveyor/workflows/conveyor-runner.yml@main
    with:
      server-url: https://conveyor.example.com
      conveyor-repository: acme/conveyor
      agent-command: '["claude", "-p"]'
      ephemeral: true
    secrets:
      CONVEYOR_RUNNER_TOKEN: \${{ inputs.runner_token }}
`;

let h: Harness;
let ci: { stop(): Promise<void> };
const runs: { dispatch: WorkflowDispatch; runner: RunnerProcess; workDir: string }[] = [];
let live = 0;
let mostAtOnce = 0;

beforeAll(async () => {
  h = await createHarness({
    files: {
      ".github/conveyor.yml": CONFIG,
      ".github/workflows/conveyor-runner.yml": WORKFLOW,
      // Tier 1 only modifies files: each task changes one that exists.
      ...Object.fromEntries(
        ["1", "2", "3", "4", "5", "fixed"].map((n) => [`src/on-demand-${n}.txt`, "before\n"]),
      ),
    },
    start: { actionsIntervalMs: 200, actionsCredentialTtlSeconds: 120 },
  });
  ci = startCiBot(h.sim, h.repo);
  // The fake Actions: each dispatched run is a real ephemeral runner with the run's input.
  h.sim.setActions((dispatch) => {
    const workDir = mkdtempSync(join(tmpdir(), "conveyor-gha-"));
    const runner = spawnRunnerProcess(
      [
        "start",
        "--ephemeral",
        ...["--server", h.conveyor.url, "--name", `gha-${dispatch.runId}`],
        ...["--work-dir", join(workDir, "work"), "--journal", join(workDir, "journal.json")],
        ...["--agent", "--", ...SCRIPTED_AGENT],
      ],
      { CONVEYOR_RUNNER_TOKEN: dispatch.inputs.runner_token ?? "" },
    );
    // Alive as max_parallel counts a dispatched runner (docs/configuration.md): from its dispatch
    // until it is gone, i.e. its connection closed ("runner stopped"), or the process ended. The
    // process may take a moment more to exit on a loaded machine.
    live++;
    mostAtOnce = Math.max(mostAtOnce, live);
    let gone = false;
    const leave = () => {
      if (gone) return;
      gone = true;
      live--;
    };
    const onOutput = () => {
      if (!gone && runner.output().includes('"msg":"runner stopped"')) leave();
    };
    runner.child.stdout?.on("data", onOutput);
    runner.child.stderr?.on("data", onOutput);
    void runner.exited.then(leave);
    runs.push({ dispatch, runner, workDir });
  });
});
afterAll(async () => {
  h?.sim.setActions(undefined);
  for (const run of runs) {
    run.runner.child.kill("SIGKILL");
    rmSync(run.workDir, { recursive: true, force: true });
  }
  await ci?.stop();
  await h?.close();
});

async function state(taskId: string): Promise<string | undefined> {
  const [row] = resultRows<{ state: string }>(
    await h.database.db.execute(sql`select state from tasks where task_id = ${taskId}`),
  );
  return row?.state;
}

describe("GitHub Actions on demand (simulator)", () => {
  it("turns five queued issues into five merged PRs through five dispatched runners, at most max_parallel at once", async () => {
    const tasks: string[] = [];
    for (let n = 1; n <= 5; n++) {
      const { taskId } = await queueScriptedIssue(
        h,
        `On demand ${n}`,
        `write src/on-demand-${n}.txt\n<<<\nrunner ${n}\n>>>`,
      );
      tasks.push(taskId);
    }
    await waitFor(
      async () => {
        const states = await Promise.all(tasks.map(state));
        return states.every((s) => s === "merged");
      },
      { timeoutMs: 120_000, message: "five merged PRs" },
    ).catch(async (error: Error) => {
      const states = JSON.stringify(
        resultRows(
          await h.database.db.execute(
            sql`select to_state, reason from task_events where task_id = ${tasks[0]} order by event_id`,
          ),
        ),
      );
      const outputs = runs.map((r) => r.runner.output().slice(-1500)).join("\n---\n");
      throw new Error(`${error.message}; tasks: ${states}\n${outputs}`);
    });
    // Exactly one runner per task, never more than max_parallel alive at once: every dispatched
    // runner took one task.
    const taken = resultRows<{ state: string; assignments: number }>(
      await h.database.db.execute(sql`
        select d.state, (select count(*)::int from task_events e
                         where e.to_state = 'assigned' and e.data->>'runner_id' = d.runner_id::text)
                        as assignments
        from runner_dispatches d order by d.created_at`),
    );
    const detours = resultRows(
      await h.database.db.execute(sql`
        select to_state, reason from task_events
        where to_state not in ('queued', 'assigned', 'running', 'pushed', 'review', 'merging', 'merged')
           or reason not in ('label conveyor added', 'offered to a runner', 'runner accepted',
                             'change set received')
        order by event_id`),
    );
    const trail = resultRows(
      await h.database.db.execute(sql`
        select 'dispatch' as what, d.created_at as at, d.task_id, d.state as detail
        from runner_dispatches d
        union all
        select 'assigned', e.at, e.task_id, e.data->>'runner_id' from task_events e
        where e.to_state = 'assigned'
        union all
        select 'used', r.used_at, null, r.runner_id::text from runners r where r.used_at is not null
        order by 2`),
    );
    expect(
      taken.map((t) => Number(t.assignments)),
      JSON.stringify({ detours, trail }, null, 1),
    ).toEqual(taken.map(() => 1));
    // One per task, plus one per attempt lost on the way (an accept timeout on a loaded machine
    // puts a task back in the queue, and its runner has spent its one task).
    const lost = resultRows(
      await h.database.db.execute(sql`select 1 from task_events where to_state = 'retry_wait'`),
    ).length;
    expect(h.sim.workflowDispatches).toHaveLength(5 + lost);
    expect(taken).toHaveLength(5 + lost);
    expect(mostAtOnce).toBeLessThanOrEqual(MAX_PARALLEL);
    for (const { dispatch } of runs) {
      expect(dispatch).toMatchObject({
        repo: h.repo,
        workflow: ".github/workflows/conveyor-runner.yml",
        ref: "main",
        actor: h.sim.botLogin,
      });
      expect(dispatch.inputs.runner_token).toMatch(/^cvr_/);
    }
    // Each runner took its one task and exited 0.
    const codes = await Promise.all(runs.map((r) => r.runner.exited));
    expect(codes.every((code) => code === 0)).toBe(true);
    const rows = resultRows<{ state: string; n: number }>(
      await h.database.db.execute(
        sql`select state, count(*)::int as n from runner_dispatches group by state`,
      ),
    );
    expect(rows.map((r) => [r.state, Number(r.n)])).toEqual([["connected", 5 + lost]]);
    // Every dispatched runner's credential is spent.
    const [spent] = resultRows<{ n: number }>(
      await h.database.db.execute(
        sql`select count(*)::int as n from runners where one_time and revoked_at is not null and used_at is not null`,
      ),
    );
    expect(Number(spent?.n)).toBe(5 + lost);
    expect(h.sim.violations).toEqual([]);
  }, 150_000);

  it("dispatches nothing while an idle runner can take the work", async () => {
    const before = h.sim.workflowDispatches.length;
    const fixed = await startScriptedRunner(h, "fixed-fleet");
    try {
      await waitFor(
        async () => {
          const [row] = resultRows<{ n: number }>(
            await h.database.db.execute(
              sql`select count(*)::int as n from runners where name = 'fixed-fleet' and last_seen_at is not null`,
            ),
          );
          return Number(row?.n) === 1 || fixed.runner.output().includes("connected");
        },
        { timeoutMs: 30_000, message: "the fixed runner connected" },
      );
      const { taskId } = await queueScriptedIssue(
        h,
        "Fixed fleet",
        "write src/on-demand-fixed.txt\n<<<\nx\n>>>",
      );
      await waitFor(async () => (await state(taskId)) === "merged", {
        timeoutMs: 60_000,
        message: `merged by the fixed runner\n${fixed.runner.output().slice(-600)}`,
      });
      expect(h.sim.workflowDispatches.length).toBe(before);
    } finally {
      fixed.stop();
    }
  }, 90_000);
});
