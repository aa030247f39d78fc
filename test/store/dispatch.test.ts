import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import {
  acceptTasks,
  claimTasks,
  completeTasks,
  findClaimable,
  renewLeases,
  storeChangeSets,
} from "../../src/store/dispatch.ts";
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
  /** One pass for one runner: the first claimable task (within the caps), claimed for it. */
  const claim = async (runnerId: string, maxRunningPerInstallation?: number) => {
    const [found] = await findClaimable(database.db, {
      capabilitySets: [[]],
      limit: 1,
      agingMs: 30 * 60_000,
      maxRunningPerInstallation,
    });
    if (!found) return undefined;
    const [claimed] = await claimTasks(
      database.db,
      [{ taskId: found.task_id, generation: found.generation, runnerId, baseSha: BASE }],
      { acceptMs: 30_000 },
    );
    return claimed;
  };
  const queueIn = (repository: number, installationId: number, limits: Record<string, unknown>) =>
    createTask(
      database.db,
      {
        repositoryId: repository,
        installationId,
        issueNumber: 100 + ++issues,
        title: `Campaign issue ${issues}`,
        body: "",
        lane: "normal",
        capabilities: [],
        maxAttempts: 3,
        limits,
        queuedBy: "octocat",
      },
      "label added",
    );
  /** Finishes every task of these repositories so the next test starts from an empty queue. */
  const finishAll = async (ids: number[]) => {
    for (const id of ids) {
      await database.db.execute(
        sql`update tasks set state = 'cancelled', finished_at = now() where repository_id = ${id}`,
      );
    }
  };
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

  it("holds a repository to its tasks.max_running, counting assigned and running tasks", async () => {
    const capped = 2003;
    const other = 2004;
    for (const id of [capped, other]) {
      await upsertRepository(database.db, {
        repositoryId: id,
        installationId: 5,
        fullName: `acme/r${id}`,
      });
    }
    for (let i = 0; i < 3; i++) await queueIn(capped, 5, { max_running: 2 });
    await queueIn(other, 5, {});
    const claimedBy = async () => {
      const claimed = await claim((await newRunner()).runnerId);
      return claimed && Number(claimed.repository_id);
    };
    expect(await claimedBy()).toBe(capped);
    expect(await claimedBy()).toBe(capped);
    // The third of the capped repository waits; the other repository's task is not held up.
    expect(await claimedBy()).toBe(other);
    expect(await claimedBy()).toBeUndefined();
    // One of the two moves on to running: still counted.
    await database.db.execute(
      sql`update tasks set state = 'running' where task_id = (
            select task_id from tasks where repository_id = ${capped} and state = 'assigned' limit 1)`,
    );
    expect(await claimedBy()).toBeUndefined();
    // One finishes: the third may go.
    await database.db.execute(
      sql`update tasks set state = 'pushed' where repository_id = ${capped} and state = 'running'`,
    );
    expect(await claimedBy()).toBe(capped);
    await finishAll([capped, other]);
  });

  it("holds an installation to CONVEYOR_MAX_RUNNING_PER_INSTALLATION over its repositories", async () => {
    const [a, b, elsewhere] = [2005, 2006, 2007];
    await upsertRepository(database.db, { repositoryId: a, installationId: 6, fullName: "six/a" });
    await upsertRepository(database.db, { repositoryId: b, installationId: 6, fullName: "six/b" });
    await upsertRepository(database.db, {
      repositoryId: elsewhere,
      installationId: 7,
      fullName: "seven/c",
    });
    await queueIn(a, 6, {});
    await queueIn(b, 6, {});
    await queueIn(a, 6, {});
    await queueIn(elsewhere, 7, {});
    const claimed: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const task = await claim((await newRunner()).runnerId, 2);
      claimed.push(task && Number(task.installation_id));
    }
    expect(claimed).toEqual([6, 6, 7, undefined]);
    // Without the limit the installation's third task is claimed.
    expect(Number((await claim((await newRunner()).runnerId))?.installation_id)).toBe(6);
    await finishAll([a, b, elsewhere]);
  });

  it("counts a batch's own tasks against max_running", async () => {
    const capped = 2008;
    await upsertRepository(database.db, {
      repositoryId: capped,
      installationId: 8,
      fullName: "acme/r2008",
    });
    for (let i = 0; i < 4; i++) await queueIn(capped, 8, { max_running: 2 });
    const found = await findClaimable(database.db, {
      capabilitySets: [[]],
      limit: 10,
      agingMs: 30 * 60_000,
    });
    expect(found.filter((t) => Number(t.repository_id) === capped)).toHaveLength(2);
    await finishAll([capped]);
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
    // One free slot: the lane's head is the task no free runner can take; the one behind it is
    // still found.
    expect((await find(1, [["linux"]])).map((t) => t.task_id)).toEqual([plain.taskId]);
    expect((await find(10, [["linux"], ["gpu", "linux"]])).map((t) => t.task_id)).toEqual([
      gpu.taskId,
      plain.taskId,
    ]);
  });

  it("reads each lane's head in service order, as a pass over the whole queue would", async () => {
    await clearQueue();
    // Lanes and ages (minutes; aging is 30 min a lane) that interleave: an old `low` task has
    // aged past fresh `normal` ones, an old `normal` one past fresh `high` ones.
    const rows: [string, number][] = [
      ["normal", 5],
      ["low", 100],
      ["high", 1],
      ["normal", 70],
      ["urgent", 0],
      ["low", 2],
      ["high", 40],
      ["normal", 1],
      ["low", 61],
      ["urgent", 3],
      ["gpu", 500],
    ];
    const ids: string[] = [];
    for (const [lane, minutes] of rows) {
      const task = await queue(lane === "gpu" ? ["gpu"] : []);
      await database.db.execute(sql`
        update tasks set lane = ${lane === "gpu" ? "low" : lane}::lane,
          enqueued_at = now() - ${`${minutes} minutes`}::interval
        where task_id = ${task.taskId}`);
      ids.push(task.taskId);
    }
    // A per-installation cap no batch reaches takes the path that ranks the whole queue.
    const wholeQueue = (limit: number) =>
      findClaimable(database.db, {
        capabilitySets: [[]],
        limit,
        agingMs: 30 * 60_000,
        maxRunningPerInstallation: 1_000,
      });
    const all = (await wholeQueue(20)).map((t) => ids.indexOf(t.task_id));
    // Effective lane (lane index − 1 − ⌊age / 30 min⌋, at least 0), then the oldest first.
    expect(all).toEqual([1, 3, 6, 9, 4, 8, 2, 0, 7, 5]);
    for (const limit of [1, 2, 3, 5, 9, 10, 20]) {
      expect((await find(limit)).map((t) => ids.indexOf(t.task_id))).toEqual(all.slice(0, limit));
    }
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
    expect(await acceptTasks(database.db, [fence(running.taskId)], 1_000)).toEqual([true]);
    expect(await acceptTasks(database.db, [fence(running.taskId)], 1_000)).toEqual([false]);
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

  it("accepts, stores and completes batches in one statement each, answering each its own", async () => {
    await clearQueue();
    const runner = await newRunner();
    const [one, two, three] = [await queue(), await queue(), await queue()];
    await claimTasks(
      database.db,
      [one, two, three].map((t) => ({
        taskId: t.taskId,
        generation: t.generation,
        runnerId: runner.runnerId,
        baseSha: BASE,
      })),
      { acceptMs: 30_000 },
    );
    const fence = (taskId: string, generation = 1) => ({
      taskId,
      generation,
      runnerId: runner.runnerId,
    });
    expect(
      await acceptTasks(
        database.db,
        [fence(one.taskId), fence(two.taskId), fence(three.taskId, 7)],
        60_000,
      ),
    ).toEqual([true, true, false]);
    const digest = (c: string) => `sha256:${c.repeat(64)}`;
    const upload = (taskId: string, options: { generation?: number; base?: string } = {}) => ({
      ...fence(taskId, options.generation),
      digest: digest("a"),
      baseSha: options.base ?? BASE,
      message: "change",
      files: [{ path: "a.txt", content: "a" }],
      sizeBytes: 10,
    });
    expect(
      await storeChangeSets(database.db, [
        upload(one.taskId),
        upload(two.taskId, { base: "c".repeat(40) }),
        upload(three.taskId),
      ]),
    ).toEqual(["stored", "wrong_base", "stale"]);
    expect(await storeChangeSets(database.db, [upload(two.taskId)])).toEqual(["stored"]);
    const result = (c: string) => ({ digest: digest(c), summary: "done", stats: {} });
    expect(
      await completeTasks(database.db, [
        {
          fence: fence(one.taskId),
          result: result("a"),
          attempt: { outcome: "completed", stats: { turns: 2.6, cost_usd: 0.25 } },
        },
        { fence: fence(two.taskId), result: result("b") },
        { fence: fence(three.taskId), result: result("a") },
      ]),
    ).toEqual([
      { moved: true },
      { moved: false, problem: "digest_mismatch" },
      { moved: false, problem: "no_change_set" },
    ]);
    expect((await getTask(database.db, one.taskId))?.state).toBe("pushed");
    expect((await getTask(database.db, two.taskId))?.state).toBe("running");
    const attempts = resultRows<{
      task_id: string;
      outcome: string;
      turns: number;
      cost_usd: number;
    }>(
      await database.db.execute(sql`
        select task_id, outcome, turns, cost_usd from attempts
        where task_id in (${one.taskId}, ${two.taskId})`),
    );
    expect(attempts).toEqual([
      { task_id: one.taskId, outcome: "completed", turns: 3, cost_usd: 0.25 },
    ]);
    const events = resultRows<{ to_state: string }>(
      await database.db.execute(sql`
        select to_state::text from task_events where task_id = ${one.taskId} order by event_id`),
    ).map((e) => e.to_state);
    expect(events.slice(-2)).toEqual(["running", "pushed"]);
  });
});
