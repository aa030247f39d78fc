import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Db, resultRows } from "../db/client.ts";
import type { RunnerClass } from "../src/core/task-states.ts";
import {
  type Assignment,
  createDispatcher,
  DEFAULT_TIMINGS,
  type Dispatcher,
  type DispatchTimings,
  type PrepareAssignment,
  type RunnerConnection,
} from "../src/dispatch/dispatcher.ts";
import { createHelloDeadlines, RunnerSession } from "../src/dispatch/runner-session.ts";
import { createRunnerWrites, type RunnerWrites } from "../src/dispatch/runner-writes.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { createTask, getTask, upsertRepository } from "../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * Batched dispatch: one pass claims work for every free slot in one statement after preparing the
 * assignments at once; heartbeats are renewed per instance in one statement per tick. Statements
 * are counted with a proxy over the database client: each top-level call outside a transaction is
 * one autocommit transaction, so one commit.
 */

let database: TestDatabase;
let runners = 0;
let issues = 0;
const repositoryId = 4004;
const BASE = "c".repeat(40);
const logger = pino({ level: "silent" });

/** The database client with every top-level statement counted. */
function counting(db: Db): { db: Db; count: () => number; reset: () => void } {
  let statements = 0;
  const counted = new Proxy(db, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (
        typeof value !== "function" ||
        !["execute", "select", "insert", "update", "delete", "transaction"].includes(
          String(property),
        )
      ) {
        return value;
      }
      return (...args: unknown[]) => {
        statements++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Db;
  return {
    db: counted,
    count: () => statements,
    reset: () => {
      statements = 0;
    },
  };
}

const assignment = (): Assignment => ({
  cloneUrl: "https://example.test/acme/gadgets.git",
  baseSha: BASE,
  issueUrl: "https://example.test/acme/gadgets/issues/1",
  readToken: { value: "ghs_test", expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
});

function dispatcherOn(
  db: Db,
  prepareAssignment: PrepareAssignment = async () => assignment(),
  timings: Partial<DispatchTimings> = {},
): Dispatcher {
  return createDispatcher({
    database: { ...database, db },
    logger,
    agingMs: 30 * 60_000,
    timings: { ...DEFAULT_TIMINGS, ...timings },
    onChange: () => {},
    prepareAssignment,
  });
}

async function connect(
  dispatcher: Dispatcher,
  options: { slots?: number; lastAssignedAt?: number; runnerClass?: RunnerClass } = {},
) {
  const { runner } = await createRunner(database.db, {
    name: `batch-${++runners}`,
    capabilities: [],
    class: options.runnerClass ?? "normal",
  });
  const sent: ServerMessage[] = [];
  const connection: RunnerConnection = {
    runnerId: runner.runnerId,
    name: runner.name,
    capabilities: [],
    runnerClass: runner.tier,
    slots: options.slots ?? 1,
    tasks: new Map(),
    connectedAt: new Date().toISOString(),
    lastAssignedAt: options.lastAssignedAt ?? 0,
    draining: false,
    logTail: () => undefined,
    recentlyRateLimited: () => false,
    send: (message) => sent.push(message),
    close: () => {},
  };
  dispatcher.register(connection);
  return { connection, sent };
}

/** A registered runner behind a `RunnerSession` that has said hello. */
async function openSession(
  dispatcher: Dispatcher,
  options: {
    db?: Db;
    capabilities?: string[];
    slots?: number;
    runnerClass?: RunnerClass;
    /** The instance's group-committed writes, shared by its sessions; a new set if absent. */
    writes?: RunnerWrites;
  } = {},
) {
  const capabilities = options.capabilities ?? [];
  const { runner } = await createRunner(database.db, {
    name: `session-${++runners}`,
    capabilities,
    class: options.runnerClass ?? "normal",
  });
  const sent: ServerMessage[] = [];
  const session = new RunnerSession(
    {
      db: options.db ?? database.db,
      dispatcher,
      logger,
      timings: DEFAULT_TIMINGS,
      onChange: () => {},
      helloDeadlines: createHelloDeadlines(),
      writes:
        options.writes ?? createRunnerWrites(options.db ?? database.db, DEFAULT_TIMINGS.leaseMs),
    },
    { runnerId: runner.runnerId, name: runner.name, capabilities, runnerClass: runner.tier },
    {
      admit: () => ({ ok: true }),
      invalid: () => ({ close: false }),
      recentlyLimited: () => false,
      fit: () => {},
    },
    {
      readyState: 1,
      send: (data) => sent.push(JSON.parse(data) as ServerMessage),
      close: () => {},
    },
  );
  session.receive(
    JSON.stringify({
      type: "hello",
      protocol: 1,
      name: runner.name,
      version: "1.0.0",
      capabilities,
      slots: options.slots ?? 1,
      running: [],
    }),
  );
  await waitFor(() => sent.some((m) => m.type === "welcome"));
  return { runner, session, sent };
}

async function queue(count: number, capabilities: string[] = []): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { task } = await createTask(
      database.db,
      {
        repositoryId,
        installationId: 1,
        issueNumber: ++issues,
        title: `Task ${issues}`,
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

const open: Dispatcher[] = [];
async function stopped(dispatcher: Dispatcher): Promise<Dispatcher> {
  // Only the passes the tests run: no background loop.
  await dispatcher.stop();
  open.push(dispatcher);
  return dispatcher;
}

beforeAll(async () => {
  database = await createTestDatabase();
  await upsertRepository(database.db, {
    repositoryId,
    installationId: 1,
    fullName: "acme/gadgets",
  });
});
beforeEach(async () => {
  // Each test starts with an empty queue.
  await database.db.execute(sql`update tasks set state = 'cancelled', runner_id = null
                                 where state not in ('merged', 'cancelled')`);
});
afterAll(async () => {
  await database?.drop();
});

describe("batched dispatch", () => {
  it("gives N free slots N tasks in one pass: one read, one claim, assignments prepared at once", async () => {
    const counter = counting(database.db);
    let inFlight = 0;
    let mostInFlight = 0;
    let release = () => {};
    const all = {
      promise: new Promise<void>((resolve) => (release = resolve)),
      resolve: () => release(),
    };
    const dispatcher = await stopped(
      dispatcherOn(counter.db, async () => {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        // Resolves once all six are in flight: a dispatcher preparing one at a time would never
        // get there, and the deadline below fails the test.
        if (inFlight === 6) all.resolve();
        await Promise.race([
          all.promise,
          new Promise((_, reject) => setTimeout(() => reject(new Error("not concurrent")), 3_000)),
        ]);
        inFlight--;
        return assignment();
      }),
    );
    // Least recently assigned first: b, c, a.
    const a = await connect(dispatcher, { slots: 2, lastAssignedAt: 3 });
    const b = await connect(dispatcher, { slots: 2, lastAssignedAt: 1 });
    const c = await connect(dispatcher, { slots: 2, lastAssignedAt: 2 });
    const tasks = await queue(8);
    counter.reset();
    expect(await dispatcher.dispatchOnce()).toBe(6);
    expect(counter.count()).toBe(2);
    expect(mostInFlight).toBe(6);
    // Service order, round robin over the runners in least-recently-assigned order.
    const holder = (taskId: string) =>
      [a, b, c].find((r) => r.connection.tasks.has(taskId))?.connection.runnerId;
    expect(tasks.map(holder)).toEqual([
      b.connection.runnerId,
      c.connection.runnerId,
      a.connection.runnerId,
      b.connection.runnerId,
      c.connection.runnerId,
      a.connection.runnerId,
      undefined,
      undefined,
    ]);
    for (const r of [a, b, c]) {
      expect(r.sent.map((m) => m.type)).toEqual(["assign", "assign"]);
    }
    const rows = resultRows<{ state: string; n: number; bases: number }>(
      await database.db.execute(sql`
        select state::text, count(*)::int as n,
               count(*) filter (where base_sha = ${BASE})::int as bases
        from tasks where task_id = any(${`{${tasks.join(",")}}`}::uuid[])
        group by state order by state`),
    );
    expect(rows).toEqual([
      { state: "assigned", n: 6, bases: 6 },
      { state: "queued", n: 2, bases: 0 },
    ]);
  });

  it("offers a task to the lightest class first; heavy runners get what no lighter one can take", async () => {
    const dispatcher = await stopped(dispatcherOn(database.db));
    // Connected first and never assigned: without the class order the heavy runner would win.
    const heavy = await openSession(dispatcher, {
      runnerClass: "heavy",
      capabilities: ["gpu"],
      slots: 3,
    });
    const light = await openSession(dispatcher, { runnerClass: "light", slots: 2 });
    light.session.lastAssignedAt = 1;
    expect(heavy.session.runnerClass).toBe("heavy");
    const holder = (taskId: string) =>
      [heavy, light].find((r) => r.session.tasks.has(taskId))?.runner.name;

    const [first] = await queue(1);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    expect(holder(first!)).toBe(light.runner.name);
    // Only the heavy runner has the capability: it gets the task while the light one has room.
    const [gpu] = await queue(1, ["gpu"]);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    expect(holder(gpu!)).toBe(heavy.runner.name);
    const [second] = await queue(1);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    expect(holder(second!)).toBe(light.runner.name);
    // The light runner is full: the next one goes to the heavy runner.
    const [third] = await queue(1);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    expect(holder(third!)).toBe(heavy.runner.name);
  });

  it("fills one class round robin before the next within a batch", async () => {
    const dispatcher = await stopped(dispatcherOn(database.db));
    const heavy = await connect(dispatcher, { runnerClass: "heavy", slots: 2, lastAssignedAt: 0 });
    const normal = await connect(dispatcher, { slots: 1, lastAssignedAt: 0 });
    const a = await connect(dispatcher, { runnerClass: "light", slots: 2, lastAssignedAt: 2 });
    const b = await connect(dispatcher, { runnerClass: "light", slots: 2, lastAssignedAt: 1 });
    const tasks = await queue(7);
    expect(await dispatcher.dispatchOnce()).toBe(7);
    const holder = (taskId: string) =>
      [heavy, normal, a, b].find((r) => r.connection.tasks.has(taskId))?.connection.runnerId;
    expect(tasks.map(holder)).toEqual([
      b.connection.runnerId,
      a.connection.runnerId,
      b.connection.runnerId,
      a.connection.runnerId,
      normal.connection.runnerId,
      heavy.connection.runnerId,
      heavy.connection.runnerId,
    ]);
  });

  it("reads what the tasks of one batch share once per batch (the repository head)", async () => {
    let headReads = 0;
    const dispatcher = await stopped(
      dispatcherOn(database.db, async (_task, shared) => {
        const head = await shared("head:acme/gadgets", async () => {
          headReads++;
          return BASE;
        });
        return { ...assignment(), baseSha: head };
      }),
    );
    await connect(dispatcher, { slots: 3 });
    await connect(dispatcher, { slots: 2 });
    await queue(5);
    expect(await dispatcher.dispatchOnce()).toBe(5);
    expect(headReads).toBe(1);
    await queue(1);
    await connect(dispatcher);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    // A new batch reads again.
    expect(headReads).toBe(2);
  });

  it("never assigns a task twice across two dispatcher instances claiming at once", async () => {
    // Both read the same queue; preparing yields so their claims interleave.
    const slow: PrepareAssignment = async () => {
      for (let i = Math.floor(Math.random() * 5); i >= 0; i--) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      return assignment();
    };
    const first = await stopped(dispatcherOn(database.db, slow));
    const second = await stopped(dispatcherOn(database.db, slow));
    const held = [];
    for (let i = 0; i < 4; i++) {
      held.push(await connect(first, { slots: 2 }), await connect(second, { slots: 2 }));
    }
    const tasks = await queue(12);
    const [one, two] = await Promise.all([first.dispatchOnce(), second.dispatchOnce()]);
    expect(one + two).toBe(12);
    const holders = held.flatMap((r) =>
      [...r.connection.tasks].map(([taskId, generation]) => ({
        taskId,
        generation,
        runnerId: r.connection.runnerId,
      })),
    );
    expect(holders).toHaveLength(12);
    expect(new Set(holders.map((h) => h.taskId))).toEqual(new Set(tasks));
    for (const h of holders) {
      const task = await getTask(database.db, h.taskId);
      expect(task).toMatchObject({
        state: "assigned",
        runnerId: h.runnerId,
        generation: h.generation,
      });
    }
    const events = resultRows<{ n: number }>(
      await database.db.execute(sql`
        select count(*)::int as n from task_events
        where to_state = 'assigned' and task_id = any(${`{${tasks.join(",")}}`}::uuid[])`),
    );
    expect(events[0]!.n).toBe(12);
  });

  it("takes at most 4 commits per task from claim to complete, the runners' writes group-committed", async () => {
    const counter = counting(database.db);
    const dispatcher = await stopped(dispatcherOn(counter.db));
    // One instance: its sessions share its group-committed writes.
    const writes = createRunnerWrites(counter.db, DEFAULT_TIMINGS.leaseMs);
    const sessions: Awaited<ReturnType<typeof openSession>>[] = [];
    for (let i = 0; i < 4; i++) {
      sessions.push(await openSession(dispatcher, { db: counter.db, slots: 2, writes }));
    }
    await queue(8);
    counter.reset();
    expect(await dispatcher.dispatchOnce()).toBe(8);
    const frames = (type: string, runner: { sent: ServerMessage[] }) =>
      runner.sent.filter((m) => m.type === type);
    const acks = () => sessions.reduce((n, r) => n + frames("ack", r).length, 0);
    const assigned = sessions.flatMap((r) =>
      frames("assign", r).map((m) => ({ r, m: m as Extract<ServerMessage, { type: "assign" }> })),
    );
    expect(assigned).toHaveLength(8);
    for (const { r, m } of assigned) {
      r.session.receive(
        JSON.stringify({
          type: "accept",
          id: `a-${m.task_id}`,
          task_id: m.task_id,
          generation: m.generation,
        }),
      );
    }
    await waitFor(() => acks() === 8);
    for (const { r, m } of assigned) {
      r.session.receive(
        JSON.stringify({
          type: "heartbeat",
          id: `h-${m.task_id}`,
          task_id: m.task_id,
          generation: m.generation,
          stage: "agent",
        }),
      );
    }
    await waitFor(() => acks() === 16);
    // The uploads (PUT …/changes) store the change sets; each complete names its digest.
    const uploads = await Promise.all(
      assigned.map(({ r, m }) =>
        writes.storeChangeSet({
          taskId: m.task_id,
          generation: m.generation,
          runnerId: r.runner.runnerId,
          digest: `sha256:${"d".repeat(64)}`,
          baseSha: BASE,
          message: "change",
          files: [],
          sizeBytes: 2,
        }),
      ),
    );
    expect(uploads).toEqual(assigned.map(() => "stored"));
    for (const { r, m } of assigned) {
      r.session.receive(
        JSON.stringify({
          type: "complete",
          id: `c-${m.task_id}`,
          task_id: m.task_id,
          generation: m.generation,
          changes_digest: `sha256:${"d".repeat(64)}`,
          summary: "done",
          stats: { turns: 3 },
        }),
      );
    }
    await waitFor(() => acks() === 24);
    for (const { m } of assigned) {
      expect((await getTask(database.db, m.task_id))?.state).toBe("pushed");
    }
    // 2 for the batch (read + claim). The frames of one connection are handled in order, so each
    // runner's second accept waits for its first: the 8 accepts that arrived together take two
    // statements of four. No renewal (each lease was set in full by its accept a moment ago: the
    // heartbeats are answered without a statement). The 8 uploads take one statement, the 8
    // completes two, like the accepts: 7 for 8 tasks (one apiece would be 26).
    expect(counter.count()).toBe(7);
    expect(counter.count() / 8).toBeLessThanOrEqual(4);
  });

  it("does not expire a lease renewed after the sweep read it as expired", async () => {
    // Renewals give a minute; the accept below only 50 ms.
    const dispatcher = await stopped(dispatcherOn(database.db, undefined, { leaseMs: 60_000 }));
    const runner = await connect(dispatcher);
    const [taskId] = await queue(1);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    const fence = {
      taskId: taskId!,
      generation: runner.connection.tasks.get(taskId!)!,
      runnerId: runner.connection.runnerId,
    };
    const { acceptTasks, failAttempt, findExpiredTasks } = await import("../src/store/dispatch.ts");
    expect(await acceptTasks(database.db, [fence], 50)).toEqual([true]);
    const expired = await waitFor(async () =>
      (await findExpiredTasks(database.db)).find((t) => t.task_id === taskId),
    );
    // The runner reconnects and renews between the sweep's read and its statement.
    expect(await dispatcher.renewLease(fence)).toBe(true);
    const failed = await failAttempt(database.db, fence, expired.why, {
      retryable: true,
      actor: "dispatcher",
      expired: true,
    });
    expect(failed).toBeUndefined();
    expect(await getTask(database.db, taskId!)).toMatchObject({ state: "running", attempts: 0 });
  });

  it("keeps heartbeating tasks' leases alive in batches, and an unrenewed one still requeues", async () => {
    const counter = counting(database.db);
    const leaseMs = 400;
    const dispatcher = await stopped(dispatcherOn(counter.db, undefined, { leaseMs }));
    const kept = await connect(dispatcher);
    const silent = await connect(dispatcher);
    const [keptTask, silentTask] = await queue(2);
    expect(await dispatcher.dispatchOnce()).toBe(2);
    const fence = (r: { connection: RunnerConnection }, taskId: string) => ({
      taskId,
      generation: r.connection.tasks.get(taskId)!,
      runnerId: r.connection.runnerId,
    });
    const ours = [fence(kept, keptTask!), fence(silent, silentTask!)];
    const { acceptTasks } = await import("../src/store/dispatch.ts");
    for (const f of ours) expect(await acceptTasks(database.db, [f], leaseMs)).toEqual([true]);
    // Both heartbeats of this tick: one statement.
    counter.reset();
    expect(await Promise.all(ours.map((f) => dispatcher.renewLease(f)))).toEqual([true, true]);
    expect(counter.count()).toBe(1);
    // Only one runner goes on heartbeating, until the other's lease has run out.
    await waitFor(
      async () => {
        expect(await dispatcher.renewLease(ours[0]!)).toBe(true);
        const rows = resultRows<{ expired: boolean }>(
          await database.db.execute(sql`
            select lease_expires_at < now() as expired from tasks where task_id = ${silentTask}`),
        );
        return rows[0]!.expired;
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    await dispatcher.sweepOnce();
    expect(await getTask(database.db, keptTask!)).toMatchObject({ state: "running" });
    expect(await getTask(database.db, silentTask!)).toMatchObject({
      state: "queued",
      attempts: 1,
      lastError: "lease expired",
    });
    // A heartbeat for the lost task is refused.
    expect(await dispatcher.renewLease(ours[1]!)).toBe(false);
  });
});

afterAll(async () => {
  for (const dispatcher of open) await dispatcher.stop();
});
