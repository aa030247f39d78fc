import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../db/client.ts";
import type { GitHubGateway } from "../../src/core/ports.ts";
import { createSignals } from "../../src/core/signals.ts";
import { createLoops, type Loops } from "../../src/loops/create-loops.ts";
import { addNotice } from "../../src/store/notices.ts";
import { upsertRepository } from "../../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const HOUR = 3_600_000;
const dialect = new PgDialect();
const unused = (what: string) => () => {
  throw new Error(`${what} was not expected in this test`);
};

describe("the loops subsystem, built alone", () => {
  let database: TestDatabase;
  let loops: Loops;
  const signals = createSignals();
  /** Leases the loops took, in order: each loop but the notifier takes one per run. */
  const leases: string[] = [];
  const calls: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    await upsertRepository(database.db, {
      repositoryId: 91,
      installationId: 4,
      fullName: "acme/widgets",
    });
    const watched = new Proxy(database.db, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property !== "execute") return value;
        return (query: SQL) => {
          const { sql, params } = dialect.sqlToQuery(query);
          if (/insert into leases/.test(sql)) leases.push(String(params[0]));
          return (value as (q: SQL) => unknown).call(target, query);
        };
      },
    }) as Db;
    // A fake GitHub that knows no installations and takes comments.
    const gateway = new Proxy({} as GitHubGateway, {
      get: (_target, method: string) => {
        if (method === "listInstallations") {
          return async () => {
            calls.push("listInstallations");
            return [];
          };
        }
        if (method === "createComment") {
          return async (ref: { owner: string; repo: string }, issue: number, body: string) => {
            calls.push(`comment ${ref.owner}/${ref.repo}#${issue}: ${body}`);
            return 1000 + calls.length;
          };
        }
        return unused(`gateway.${method}`);
      },
    });
    loops = createLoops({
      database: { db: watched },
      logger: pino({ level: "silent" }),
      instanceId: "loops-test",
      // Only start-up and signals make a loop run within a test.
      config: { agingMs: 30 * 60_000, reconcileIntervalMs: HOUR },
      options: { notifierIntervalMs: HOUR, mergerIntervalMs: HOUR },
      appId: 1,
      gateway,
      pullRequests: {
        write: unused("pullRequests.write"),
        writeBranch: unused("pullRequests.writeBranch"),
        deleteBranch: unused("pullRequests.deleteBranch"),
      },
      prFacts: { read: unused("prFacts.read") },
      installationOctokit: unused("installationOctokit"),
      recordError: (source, error) => calls.push(`error ${source}: ${String(error)}`),
      signals,
    });
  });
  afterAll(async () => {
    await loops?.stop();
    await database?.drop();
  });

  const notice = (n: number) =>
    addNotice(database.db, {
      dedupeKey: `loops-test:${n}`,
      repositoryId: 91,
      installationId: 4,
      issueNumber: n,
      body: `notice ${n}`,
    });

  it("does nothing before it starts, and runs every loop once at start", async () => {
    signals.emit("tasks-changed");
    await notice(1);
    expect(leases).toEqual([]);
    loops.start();
    await waitFor(() => calls.includes("comment acme/widgets#1: notice 1"), {
      message: "the notifier's first run",
    });
    await waitFor(() => ["publisher", "merger", "reconcile"].every((l) => leases.includes(l)), {
      message: "the publisher's, merger's and reconciler's first runs",
    });
    await waitFor(() => calls.includes("listInstallations"), { message: "reconciliation" });
  });

  it("wakes the merger on pull request activity", async () => {
    leases.length = 0;
    signals.emit("pull-request-activity");
    await waitFor(() => leases.includes("merger"), { message: "a merger run" });
    expect(leases).not.toContain("publisher");
  });

  it("wakes the publisher and the merger when tasks change", async () => {
    leases.length = 0;
    signals.emit("tasks-changed");
    await waitFor(() => leases.includes("publisher") && leases.includes("merger"), {
      message: "publisher and merger runs",
    });
  });

  it("wakes the publisher and the merger when a runner reports", async () => {
    leases.length = 0;
    signals.emit("runner-reported");
    await waitFor(() => leases.includes("publisher") && leases.includes("merger"), {
      message: "publisher and merger runs",
    });
  });

  it("wakes the notifier when a status is owed", async () => {
    await notice(2);
    signals.emit("status-owed");
    await waitFor(() => calls.includes("comment acme/widgets#2: notice 2"), {
      message: "the notice posted",
    });
    expect(calls.filter((c) => c.startsWith("error"))).toEqual([]);
  });

  it("reconciles on demand", async () => {
    const before = calls.filter((c) => c === "listInstallations").length;
    const report = await loops.reconcile();
    expect(report).toBeDefined();
    expect(calls.filter((c) => c === "listInstallations")).toHaveLength(before + 1);
  });
});
