import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import {
  createTask,
  findActiveTask,
  listTaskEvents,
  type NewTask,
  queuePosition,
  transitionTask,
  upsertRepository,
} from "../../src/store/tasks.ts";
import { BACKENDS } from "../helpers/backends.ts";

const MIN = 60_000;
let nextIssue = 1;

describe.each(BACKENDS)("task store on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  const repositoryId = 1001;
  const newTask = (over: Partial<NewTask> = {}): NewTask => ({
    repositoryId,
    installationId: 1,
    issueNumber: nextIssue++,
    title: "Add a greeting",
    body: "Say hello",
    lane: "normal",
    capabilities: [],
    maxAttempts: 3,
    limits: {},
    queuedBy: "octocat",
    ...over,
  });

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

  it("writes a repository's daily budget with its row, and keeps it when the config could not be read", async () => {
    const budget = async () =>
      (
        await database.rows<{ daily_budget_usd: number | null }>(
          sql`select daily_budget_usd from repositories where repository_id = 4242`,
        )
      )[0]?.daily_budget_usd;
    const repo = { repositoryId: 4242, installationId: 1, fullName: "o/budgeted" };
    await upsertRepository(database.db, { ...repo, dailyBudgetUsd: 12.5 });
    expect(await budget()).toBe(12.5);
    await upsertRepository(database.db, { ...repo, dailyBudgetUsd: undefined });
    expect(await budget()).toBe(12.5);
    await upsertRepository(database.db, { ...repo, dailyBudgetUsd: 3 });
    expect(await budget()).toBe(3);
    await upsertRepository(database.db, { ...repo, dailyBudgetUsd: null });
    expect(await budget()).toBeNull();
  });

  it("creates one active task per issue, even when asked many times at once", async () => {
    const input = newTask();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => createTask(database.db, input, "label added")),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.task.taskId)).size).toBe(1);
    const task = results[0]!.task;
    expect(task.snapshotHash).toMatch(/^[0-9a-f]{64}$/);
    expect(await listTaskEvents(database.db, task.taskId)).toEqual([
      expect.objectContaining({ from_state: null, to_state: "queued", actor: "octocat" }),
    ]);
  });

  it("guards every transition by state and generation, and logs it in the same statement", async () => {
    const { task } = await createTask(database.db, newTask(), "test");
    const assigned = await transitionTask(database.db, {
      taskId: task.taskId,
      to: "assigned",
      generation: 0,
      actor: "dispatcher",
      reason: "runner r1",
    });
    expect(assigned?.state).toBe("assigned");
    // The same move again: the task is no longer queued, so nothing happens.
    expect(
      await transitionTask(database.db, {
        taskId: task.taskId,
        to: "assigned",
        actor: "dispatcher",
        reason: "again",
      }),
    ).toBeUndefined();
    // A message about another generation is stale.
    expect(
      await transitionTask(database.db, {
        taskId: task.taskId,
        to: "running",
        generation: 7,
        actor: "runner",
        reason: "stale accept",
      }),
    ).toBeUndefined();
    const events = await listTaskEvents(database.db, task.taskId);
    expect(events.map((e) => `${e.from_state}→${e.to_state}`)).toEqual([
      "null→queued",
      "queued→assigned",
    ]);
  });

  it("frees the issue for a new task once its task is cancelled", async () => {
    const input = newTask();
    const { task } = await createTask(database.db, input, "test");
    await transitionTask(database.db, {
      taskId: task.taskId,
      to: "cancelled",
      actor: "octocat",
      reason: "label removed",
      set: { finished: true },
    });
    expect(await findActiveTask(database.db, repositoryId, input.issueNumber)).toBeUndefined();
    const again = await createTask(database.db, input, "label added again");
    expect(again.created).toBe(true);
    expect(again.task.taskId).not.toBe(task.taskId);
  });

  it("orders the queue by lane, FIFO inside a lane, with aging", async () => {
    await database.db.execute(sql`update tasks set state = 'cancelled' where state = 'queued'`);
    const low = await createTask(database.db, newTask({ lane: "low" }), "t");
    const urgent = await createTask(database.db, newTask({ lane: "urgent" }), "t");
    const normal = await createTask(database.db, newTask({ lane: "normal" }), "t");
    const position = (id: string) => queuePosition(database.db, id, 30 * MIN);
    expect(await position(urgent.task.taskId)).toBe(1);
    expect(await position(normal.task.taskId)).toBe(2);
    expect(await position(low.task.taskId)).toBe(3);
    // The low task has waited 65 minutes: two lanes up, ahead of the normal one (FIFO as "high").
    await database.db.execute(
      sql`update tasks set enqueued_at = now() - interval '65 minutes' where task_id = ${low.task.taskId}`,
    );
    expect(await position(low.task.taskId)).toBe(2);
    expect(await position(normal.task.taskId)).toBe(3);
  });
});
