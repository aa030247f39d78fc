import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import { acceptTask, claimTasks, findClaimable, renewLeases } from "../../src/store/dispatch.ts";
import { createRunner, findRunnerById } from "../../src/store/runners.ts";
import { createTask, getTask, upsertRepository } from "../../src/store/tasks.ts";
import { BACKENDS } from "../helpers/backends.ts";

const BASE = "b".repeat(40);

describe.each(BACKENDS)("claiming tasks on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  const repositoryId = 2002;
  let runners = 0;
  let issues = 0;
  const find = (limit: number, capabilitySets: string[][] = [[]]) =>
    findClaimable(database.db, { capabilitySets, limit, agingMs: 30 * 60_000 });
  const newRunner = async () =>
    (
      await createRunner(database.db, {
        name: `claimer-${++runners}`,
        capabilities: [],
        tier: "normal",
      })
    ).runner;
  const queue = async (capabilities: string[] = []) =>
    (
      await createTask(
        database.db,
        {
          repositoryId,
          installationId: 1,
          issueNumber: ++issues,
          title: `Task ${issues}`,
          body: "Say hello",
          lane: "normal",
          capabilities,
          maxAttempts: 3,
          limits: { deadline_minutes: 5 },
          queuedBy: "octocat",
        },
        "label added",
      )
    ).task;
  const clearQueue = () =>
    database.db.execute(sql`update tasks set state = 'cancelled' where state = 'queued'`);

  beforeAll(async () => {
    database = await backend.open();
    await upsertRepository(database.db, {
      repositoryId,
      installationId: 1,
      fullName: "acme/widgets",
    });
  });
  afterAll(async () => {
    await database?.dispose();
  });

  it("leaves an idle runner's last assignment alone when there is nothing to claim", async () => {
    const runner = await newRunner();
    expect(await find(5)).toEqual([]);
    expect(await claimTasks(database.db, [], { acceptMs: 30_000 })).toEqual([]);
    expect((await findRunnerById(database.db, runner.runnerId))?.lastAssignedAt).toBeNull();
  });

  it("records when the runner was last assigned a task", async () => {
    const runner = await newRunner();
    const task = await queue();
    const [found] = await find(1);
    expect(found).toMatchObject({ task_id: task.taskId, generation: 0 });
    const claimed = await claimTasks(
      database.db,
      [{ taskId: task.taskId, generation: 0, runnerId: runner.runnerId, baseSha: BASE }],
      { acceptMs: 30_000 },
    );
    expect(claimed).toMatchObject([{ issue_number: task.issueNumber, generation: 1 }]);
    expect((await findRunnerById(database.db, runner.runnerId))?.lastAssignedAt).toBeInstanceOf(
      Date,
    );
  });

  it("claims a batch in one statement: each task to its runner, with its base, one event each", async () => {
    await clearQueue();
    const [a, b] = [await newRunner(), await newRunner()];
    const tasks = [await queue(), await queue(), await queue()];
    const found = await find(10);
    expect(found.map((t) => t.task_id)).toEqual(tasks.map((t) => t.taskId));
    const claimed = await claimTasks(
      database.db,
      found.slice(0, 2).map((t, i) => ({
        taskId: t.task_id,
        generation: t.generation,
        runnerId: (i === 0 ? a : b).runnerId,
        baseSha: `${i}`.repeat(40),
      })),
      { acceptMs: 30_000 },
    );
    expect(claimed.map((c) => [c.task_id, c.runner_id, c.generation])).toEqual([
      [tasks[0]!.taskId, a.runnerId, 1],
      [tasks[1]!.taskId, b.runnerId, 1],
    ]);
    const first = await getTask(database.db, tasks[0]!.taskId);
    expect(first).toMatchObject({ state: "assigned", baseSha: "0".repeat(40) });
    expect((await getTask(database.db, tasks[2]!.taskId))?.state).toBe("queued");
    const events = resultRows<{ n: number }>(
      await database.db.execute(sql`
        select count(*)::int as n from task_events
        where task_id = ${tasks[0]!.taskId} and to_state = 'assigned'`),
    );
    expect(events[0]!.n).toBe(1);
  });

  it("does not claim a task whose generation moved on since it was read", async () => {
    await clearQueue();
    const runner = await newRunner();
    const task = await queue();
    const claimed = await claimTasks(
      database.db,
      [
        {
          taskId: task.taskId,
          generation: task.generation + 1,
          runnerId: runner.runnerId,
          baseSha: BASE,
        },
      ],
      { acceptMs: 30_000 },
    );
    expect(claimed).toEqual([]);
    expect((await getTask(database.db, task.taskId))?.state).toBe("queued");
  });

  it("finds only tasks one of the capability sets covers", async () => {
    await clearQueue();
    const gpu = await queue(["gpu"]);
    const plain = await queue();
    expect((await find(10, [["linux"]])).map((t) => t.task_id)).toEqual([plain.taskId]);
    expect((await find(10, [["linux"], ["gpu", "linux"]])).map((t) => t.task_id)).toEqual([
      gpu.taskId,
      plain.taskId,
    ]);
  });

  it("defers a task whose assignment could not be prepared, without claiming it", async () => {
    await clearQueue();
    const task = await queue();
    await claimTasks(database.db, [], { acceptMs: 30_000, defer: [task.taskId] });
    const after = await getTask(database.db, task.taskId);
    expect(after?.state).toBe("queued");
    expect(after!.availableAt.getTime()).toBeGreaterThan(Date.now() + 20_000);
    expect(await find(10)).toEqual([]);
  });

  it("renews the leases of running tasks in one statement and says which are still held", async () => {
    await clearQueue();
    const runner = await newRunner();
    const [running, assigned, other] = [await queue(), await queue(), await queue()];
    await claimTasks(
      database.db,
      [running, assigned, other].map((t) => ({
        taskId: t.taskId,
        generation: t.generation,
        runnerId: runner.runnerId,
        baseSha: BASE,
      })),
      { acceptMs: 30_000 },
    );
    const fence = (taskId: string) => ({ taskId, generation: 1, runnerId: runner.runnerId });
    expect(await acceptTask(database.db, fence(running.taskId), 1_000)).toBe(true);
    expect(await acceptTask(database.db, fence(running.taskId), 1_000)).toBe(false);
    const before = (await getTask(database.db, running.taskId))!.leaseExpiresAt!.getTime();
    const held = await renewLeases(
      database.db,
      [
        fence(running.taskId),
        fence(assigned.taskId),
        // a generation the runner no longer holds
        { ...fence(other.taskId), generation: 7 },
      ],
      600_000,
    );
    expect(held.map((h) => h.taskId).sort()).toEqual([running.taskId, assigned.taskId].sort());
    const after = (await getTask(database.db, running.taskId))!.leaseExpiresAt!.getTime();
    expect(after).toBeGreaterThan(before + 500_000);
    // The accept window of the unaccepted one stands.
    const unaccepted = (await getTask(database.db, assigned.taskId))!.leaseExpiresAt!.getTime();
    expect(unaccepted).toBeLessThan(Date.now() + 31_000);
  });
});
