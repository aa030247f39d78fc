import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../db/client.ts";
import {
  createDispatcher,
  DEFAULT_TIMINGS,
  type Dispatcher,
  type RunnerConnection,
} from "../src/dispatch/dispatcher.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { createTask, upsertRepository } from "../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

let database: TestDatabase;
let dispatcher: Dispatcher;
/** Statements the dispatcher ran: each claim is one. */
let statements = 0;
let runners = 0;
let issues = 0;
const repositoryId = 3003;

beforeAll(async () => {
  database = await createTestDatabase();
  await upsertRepository(database.db, {
    repositoryId,
    installationId: 1,
    fullName: "acme/widgets",
  });
  const counted = new Proxy(database.db, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== "execute") return value;
      return (...args: unknown[]) => {
        statements++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Db;
  dispatcher = createDispatcher({
    database: { ...database, db: counted },
    logger: pino({ level: "silent" }),
    agingMs: 30 * 60_000,
    timings: DEFAULT_TIMINGS,
    onChange: () => {},
    prepareAssignment: async () => ({
      cloneUrl: "https://example.test/acme/widgets.git",
      baseSha: "a".repeat(40),
      issueUrl: "https://example.test/acme/widgets/issues/1",
      readToken: { value: "ghs_test", expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
    }),
  });
  // Only the passes the tests run: no background loop.
  await dispatcher.stop();
});
afterAll(async () => {
  await database?.drop();
});

/** A connected, idle runner as the dispatcher sees it (no socket: frames are collected). */
async function idleRunner(capabilities: string[] = []) {
  const { runner } = await createRunner(database.db, {
    name: `idle-${++runners}`,
    capabilities,
    tier: "normal",
  });
  const sent: ServerMessage[] = [];
  const connection: RunnerConnection = {
    runnerId: runner.runnerId,
    name: runner.name,
    capabilities,
    slots: 1,
    tasks: new Map(),
    connectedAt: new Date().toISOString(),
    lastAssignedAt: 0,
    draining: false,
    logTail: () => undefined,
    recentlyRateLimited: () => false,
    send: (message) => sent.push(message),
    close: () => {},
  };
  dispatcher.register(connection);
  return { connection, sent };
}

function queue(capabilities: string[] = []) {
  return createTask(
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
}

describe("a dispatch pass", () => {
  it("asks the queue once per pass, not once per idle runner or kind of runner", async () => {
    for (let i = 0; i < 30; i++) await idleRunner();
    for (let i = 0; i < 10; i++) await idleRunner(["gpu"]);
    statements = 0;
    expect(await dispatcher.dispatchOnce()).toBe(0);
    // One read covers every capability set the idle runners offer.
    expect(statements).toBe(1);
  });

  it("still gives work that needs a capability to a runner that has it", async () => {
    const { task } = await queue(["gpu"]);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    const assigned = dispatcher
      .connections()
      .filter((c) => c.tasks.has(task.taskId))
      .map((c) => c.capabilities);
    expect(assigned).toEqual([["gpu"]]);
  });

  it("hands every queued task to an idle runner in one run", async () => {
    for (let i = 0; i < 5; i++) await queue();
    expect(await dispatcher.dispatchOnce()).toBe(5);
    expect(await dispatcher.dispatchOnce()).toBe(0);
  });
});
