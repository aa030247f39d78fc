import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { RepoRef } from "../src/core/github-objects.ts";
import { parseRepoConfig } from "../src/core/repo-config.ts";
import type { ConnectionSupplyFacts } from "../src/core/runner-demand.ts";
import { createLogger } from "../src/logger.ts";
import { createActionsLauncher, type DispatchOutcome } from "../src/loops/actions-launcher.ts";
import { authenticateRunner } from "../src/store/runners.ts";
import { createTask, upsertRepository } from "../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

/*
 * GitHub Actions on demand, decided against a real database with a recording GitHub: how many
 * dispatches, for which tasks, and what happens to runners that never come.
 */

let database: TestDatabase;
beforeEach(async () => {
  database = await createTestDatabase();
  await upsertRepository(database.db, {
    repositoryId: 1,
    installationId: 7,
    fullName: "acme/widgets",
  });
});
afterEach(async () => {
  await database.drop();
});

interface Dispatched {
  ref: RepoRef;
  workflow: string;
  gitRef: string;
  inputs: Record<string, string>;
}

function world(
  options: {
    actions?: Record<string, unknown> | undefined;
    connections?: ConnectionSupplyFacts[];
    refuse?: { status: number; message: string };
  } = {},
) {
  const dispatched: Dispatched[] = [];
  const outcomes: DispatchOutcome[] = [];
  const errors: string[] = [];
  const config = parseRepoConfig({
    version: 1,
    runners: options.actions === undefined ? {} : { actions: options.actions },
  });
  if (!config.ok) throw new Error(JSON.stringify(config.problems));
  const launcher = createActionsLauncher({
    db: database.db,
    logger: createLogger({ level: "silent" }),
    instanceId: "test-instance",
    intervalMs: 1_000,
    recordError: (_source, error) => errors.push((error as Error).message),
    connections: () => options.connections ?? [],
    onOutcome: (outcome) => outcomes.push(outcome),
    gateway: {
      loadConfig: async () => config,
      async dispatchWorkflow(ref, dispatch) {
        dispatched.push({ ref, ...dispatch });
        return options.refuse ? { ok: false, ...options.refuse } : { ok: true };
      },
    },
  });
  return { launcher, dispatched, outcomes, errors };
}

async function queue(count: number, capabilities: string[] = [], firstIssue = 1) {
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const { task } = await createTask(
      database.db,
      {
        repositoryId: 1,
        installationId: 7,
        issueNumber: firstIssue + n,
        title: `Task ${firstIssue + n}`,
        body: "",
        lane: "normal",
        capabilities,
        maxAttempts: 3,
        limits: {},
        queuedBy: "octocat",
      },
      "label added",
    );
    ids.push(task.taskId);
  }
  return ids;
}

async function dispatchRows() {
  return resultRows<{ task_id: string; state: string; error: string | null; runner_id: string }>(
    await database.db.execute(
      sql`select task_id, state, error, runner_id from runner_dispatches order by created_at`,
    ),
  );
}

const ACTIONS = { max_parallel: 3, after_seconds: 0 };

describe("GitHub Actions on demand", () => {
  it("dispatches one runner per waiting task, never more than max_parallel, each with a one-time credential", async () => {
    const tasks = await queue(5);
    const { launcher, dispatched, outcomes } = world({ actions: ACTIONS });
    await launcher.runOnce();
    expect(dispatched).toHaveLength(3);
    expect(outcomes).toEqual(["dispatched", "dispatched", "dispatched"]);
    for (const d of dispatched) {
      expect(d).toMatchObject({
        ref: { installationId: 7, owner: "acme", repo: "widgets" },
        workflow: "conveyor-runner.yml",
        gitRef: "main",
      });
      expect(Object.keys(d.inputs)).toEqual(["runner_token"]);
      // A working one-time credential, scoped to this repository.
      const found = await authenticateRunner(database.db, d.inputs.runner_token!, {
        connect: false,
      });
      expect(found).toMatchObject({ runner: { oneTime: true, repos: ["acme/widgets"] } });
    }
    // The oldest three, one dispatch each.
    expect((await dispatchRows()).map((r) => r.task_id).sort()).toEqual(tasks.slice(0, 3).sort());
    // Nothing more while those are on their way.
    await launcher.runOnce();
    expect(dispatched).toHaveLength(3);
  });

  it("does not dispatch when a connected runner has a free slot for the work", async () => {
    await queue(2);
    const idle = { capabilities: [], repos: [], slots: 1, tasks: { size: 0 }, draining: false };
    const { launcher, dispatched } = world({ actions: ACTIONS, connections: [idle] });
    await launcher.runOnce();
    // One free slot takes one of the two tasks; only the other wants a runner.
    expect(dispatched).toHaveLength(1);
    const two = world({ actions: ACTIONS, connections: [{ ...idle, slots: 2 }] });
    await two.launcher.runOnce();
    expect(two.dispatched).toHaveLength(0);
  });

  it("waits after_seconds, and only for tasks its runners could take", async () => {
    await queue(1);
    await queue(1, ["gpu"], 10);
    const patient = world({ actions: { ...ACTIONS, after_seconds: 3600 } });
    await patient.launcher.runOnce();
    expect(patient.dispatched).toEqual([]);
    const plain = world({ actions: ACTIONS });
    await plain.launcher.runOnce();
    // The gpu task needs what these runners do not offer.
    expect(plain.dispatched).toHaveLength(1);
    const off = world({ actions: undefined });
    await off.launcher.runOnce();
    expect(off.dispatched).toEqual([]);
  });

  it("counts a runner that never connects, alerts through the error log, and asks twice at most", async () => {
    const [task] = await queue(1);
    const { launcher, dispatched, outcomes, errors } = world({ actions: ACTIONS });
    for (let round = 1; round <= 3; round++) {
      await launcher.runOnce();
      // Its credential runs out unused.
      await database.db.execute(sql`update runners set expires_at = now() - interval '1 second'
                                    where one_time and used_at is null`);
    }
    await launcher.runOnce();
    expect(dispatched).toHaveLength(2);
    expect(outcomes).toEqual(["dispatched", "expired", "dispatched", "expired"]);
    expect(errors).toEqual([
      "a runner dispatched through GitHub Actions never connected",
      "a runner dispatched through GitHub Actions never connected",
    ]);
    const rows = await dispatchRows();
    expect(rows.map((r) => [r.task_id, r.state])).toEqual([
      [task, "expired"],
      [task, "expired"],
    ]);
    // The spent credentials are revoked.
    for (const d of dispatched) {
      expect(
        await authenticateRunner(database.db, d.inputs.runner_token!, { connect: true }),
      ).toEqual({ refused: "unknown or revoked runner token (Authorization: Bearer cvr_…)" });
    }
  });

  it("records GitHub's refusal, revokes the credential and says which permission is missing", async () => {
    await queue(1);
    const { launcher, outcomes, errors } = world({
      actions: ACTIONS,
      refuse: { status: 403, message: "Resource not accessible by integration" },
    });
    await launcher.runOnce();
    expect(outcomes).toEqual(["failed"]);
    expect(errors[0]).toContain("actions: write");
    const [row] = await dispatchRows();
    expect(row?.state).toBe("failed");
    expect(row?.error).toContain("Resource not accessible by integration");
  });
});
