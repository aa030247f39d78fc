import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import {
  appendAttemptLog,
  finishAttempt,
  lastLogLines,
  listAttempts,
  logLinesAfter,
  recordProgress,
} from "../../src/store/attempts.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { seedQueuedTask } from "../helpers/seed-task.ts";

const RUNNER = "9b1d6f2e-0000-4000-8000-000000000001";

describe.each(BACKENDS)("attempts and their logs on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(async () => {
    await database?.dispose();
  });

  async function runningTask(issueNumber: number) {
    const task = await seedQueuedTask(database.db, {
      repositoryId: 12,
      installationId: 77,
      issueNumber,
      title: "Fix the sizes",
    });
    await database.db.execute(
      sql`update tasks set state = 'running', generation = 1 where task_id = ${task.taskId}`,
    );
    return { taskId: task.taskId, generation: 1, runnerId: RUNNER };
  }
  const statusVersion = async (taskId: string) =>
    resultRows<{ v: number }>(
      await database.db.execute(
        sql`select status_version as v from tasks where task_id = ${taskId}`,
      ),
    )[0]!.v;

  it("keeps the totals so far, and owes the status comment one edit per window", async () => {
    const fence = await runningTask(1);
    const before = await statusVersion(fence.taskId);
    expect(
      await recordProgress(
        database.db,
        fence,
        { adapter: "claude", model: "claude-sonnet-4-5", stage: "agent", turns: 1, tool: "Read a" },
        60_000,
      ),
    ).toBe(true);
    // Within the window: stored, but no second edit owed.
    expect(
      await recordProgress(database.db, fence, { turns: 2, tokens: 900, tool: "Edit a" }, 60_000),
    ).toBe(false);
    expect(await recordProgress(database.db, fence, { cost_usd: 0.02 }, 60_000)).toBe(false);
    expect(await statusVersion(fence.taskId)).toBe(before + 1);
    // A zero window shows every report.
    expect(await recordProgress(database.db, fence, { turns: 3 }, 0)).toBe(true);
    expect(await statusVersion(fence.taskId)).toBe(before + 2);

    await finishAttempt(database.db, fence, {
      outcome: "failed",
      failReason: "agent_failed",
      stats: { turns: 4, cost_usd: 0.031, tokens: 1200, duration_ms: 61_000 },
    });
    const [attempt] = await listAttempts(database.db, fence.taskId);
    expect(attempt).toMatchObject({
      generation: 1,
      runner_id: RUNNER,
      adapter: "claude",
      model: "claude-sonnet-4-5",
      stage: "agent",
      tool: "Edit a",
      turns: 4,
      tokens: 1200,
      cost_usd: 0.031,
      outcome: "failed",
      fail_reason: "agent_failed",
      duration_ms: 61_000,
    });
    expect(attempt?.finished_at).not.toBeNull();
  });

  it("keeps the newest lines of each attempt, in order, whatever they contain", async () => {
    const fence = await runningTask(2);
    const hostile = ['a "quoted" line', "back\\slash {braces,commas}", "", "NULL", "é ✓"];
    await appendAttemptLog(database.db, fence, hostile, 10);
    expect((await lastLogLines(database.db, fence.taskId)).map((l) => l.line)).toEqual(hostile);
    await appendAttemptLog(
      database.db,
      fence,
      Array.from({ length: 12 }, (_, i) => `line ${i}`),
      10,
    );
    const kept = await lastLogLines(database.db, fence.taskId);
    expect(kept.map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 2}`));
    const after = await logLinesAfter(database.db, fence.taskId, kept[7]!.line_id);
    expect(after.map((l) => l.line)).toEqual(["line 10", "line 11"]);
    // Another attempt's lines are its own ring.
    await appendAttemptLog(database.db, { ...fence, generation: 2 }, ["second attempt"], 10);
    expect((await lastLogLines(database.db, fence.taskId)).length).toBe(11);
  });
});
