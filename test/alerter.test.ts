import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { createDatabase, resultRows } from "../db/client.ts";
import type { AlertDecision } from "../src/core/alert-rules.ts";
import type { AlertRule } from "../src/core/alert-settings.ts";
import type { AlertIssues, AlertIssueTarget } from "../src/core/ports.ts";
import { createLogger } from "../src/logger.ts";
import { createAlerter } from "../src/loops/alerter.ts";
import { createMetricsSampler } from "../src/loops/metrics-sampler.ts";
import { alertHistory, listAlerts } from "../src/store/alerts.ts";
import { insertErrorEvents } from "../src/store/error-events.ts";
import { markRunnersSeen } from "../src/store/metrics.ts";
import { createRunner } from "../src/store/runners.ts";
import { updateSettings } from "../src/store/settings.ts";
import { createTask, type NewTask, transitionTask, upsertRepository } from "../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

const SEC = 1_000;
const MIN = 60_000;
const REPO_ID = 5001;

/** A fake of the GitHub issue port that remembers what it was asked to do. */
function fakeIssues() {
  const calls: { op: "open" | "comment" | "close"; issue?: number; text: string }[] = [];
  let next = 100;
  const issues: AlertIssues = {
    async open(_target: AlertIssueTarget, _alertId, issue) {
      calls.push({ op: "open", text: issue.title });
      return next++;
    },
    async comment(_target, issueNumber, body) {
      calls.push({ op: "comment", issue: issueNumber, text: body });
    },
    async close(_target, issueNumber, body) {
      calls.push({ op: "close", issue: issueNumber, text: body });
    },
  };
  return { issues, calls };
}

let database: TestDatabase;
let clock: number;
let pingFails: string | undefined;
let issueNumber = 1;
let github: ReturnType<typeof fakeIssues>;

const logger = createLogger({ level: "silent" });
const newTask = (): NewTask => ({
  repositoryId: REPO_ID,
  installationId: 7,
  issueNumber: issueNumber++,
  title: "Something",
  body: "",
  lane: "normal",
  capabilities: [],
  maxAttempts: 3,
  limits: {},
  queuedBy: "octocat",
});

function build() {
  const alerter = createAlerter({
    db: database.db,
    logger,
    instanceId: "instance-a",
    ping: async () => {
      if (pingFails) throw new Error(pingFails);
      await database.ping();
    },
    issues: github.issues,
    timings: { leaseMs: 60 * SEC, acceptMs: 30 * SEC },
    onlineWindowMs: 30 * SEC,
    sampleIntervalMs: 30 * SEC,
    checkIntervalMs: 30 * SEC,
    now: () => clock,
  });
  const sampler = createMetricsSampler({
    db: database.db,
    logger,
    instanceId: "instance-a",
    connections: () => [],
    observe: () => {},
    sampleIntervalMs: 30 * SEC,
    tickIntervalMs: 5 * SEC,
    now: () => new Date(clock),
  });
  return { alerter, sampler };
}

let alerter: ReturnType<typeof build>["alerter"];
let sampler: ReturnType<typeof build>["sampler"];

beforeEach(async () => {
  // Named like the alerter's instance: a lease is only held while its holder is connected.
  database = await createTestDatabase({ applicationName: "instance-a" });
  await upsertRepository(database.db, {
    repositoryId: REPO_ID,
    installationId: 7,
    fullName: "acme/ops",
  });
  clock = Date.now();
  issueNumber = 1;
  pingFails = undefined;
  github = fakeIssues();
  ({ alerter, sampler } = build());
  // Every rule off but the one a test is about, so rules do not disturb each other's history.
  await updateSettings(database.db, {
    alerts: {
      github_issues: { enabled: true, repository: "acme/ops" },
      ...Object.fromEntries(
        (
          [
            "queue_growing",
            "failure_rate",
            "stuck_task",
            "no_runners_online",
            "error_rate",
            "webhook_failures",
          ] as const
        ).map((r) => [r, { enabled: false }]),
      ),
    },
  });
});
afterEach(async () => {
  await database.drop();
});

const enable = (rule: AlertRule, extra: Record<string, unknown> = {}) =>
  updateSettings(database.db, { alerts: { [rule]: { enabled: true, ...extra } } });

/** Moves the clock, checks, and returns the decision for `rule`. */
async function check(rule: AlertRule, advanceMs = 30 * SEC): Promise<AlertDecision> {
  clock += advanceMs;
  const report = await alerter.checkOnce();
  const decision = report.decisions.find((d) => d.rule === rule);
  if (!decision) throw new Error(`no decision for ${rule}`);
  return decision;
}

async function firingRow(rule: AlertRule) {
  const { firing } = await listAlerts(database.db, 0);
  return firing.find((a) => a.rule === rule);
}

describe("queue growing (hysteresis)", () => {
  const queued: string[] = [];
  /** Sets the queue to `depth` tasks, samples, checks. */
  async function step(depth: number): Promise<AlertDecision> {
    while (queued.length < depth)
      queued.push((await createTask(database.db, newTask(), "t")).task.taskId);
    while (queued.length > depth) {
      await transitionTask(database.db, {
        taskId: queued.pop()!,
        to: "cancelled",
        actor: "test",
        reason: "t",
      });
    }
    clock += 30 * SEC;
    await sampler.sample();
    return check("queue_growing", 0);
  }

  it("fires after 3 growing checks, holds through a pause, clears after 3 stable, then waits its cooldown", async () => {
    queued.length = 0;
    await enable("queue_growing");
    expect((await step(0)).kind).toBe("none");
    expect((await step(1)).kind).toBe("none");
    expect((await step(2)).kind).toBe("none");
    expect(await step(3)).toMatchObject({
      kind: "fire",
      message: "The queue grew at each of the last 3 checks: 0 → 3 tasks waiting",
    });
    expect(github.calls).toEqual([{ op: "open", text: expect.stringContaining("queue growing") }]);
    // Still growing within the 15 min cooldown: figures updated, nobody told again.
    expect((await step(4)).kind).toBe("update");
    // Two stable checks hold it; the third clears it.
    expect((await step(4)).kind).toBe("none");
    expect((await step(3)).kind).toBe("none");
    expect(await firingRow("queue_growing")).toBeDefined();
    expect(await step(3)).toMatchObject({ kind: "clear" });
    expect(await firingRow("queue_growing")).toBeUndefined();
    expect(github.calls.at(-1)).toMatchObject({ op: "close", issue: 100 });
    // Growing again at once: a warning waits out the cooldown after its last alert …
    await step(4);
    await step(5);
    expect(await step(6)).toMatchObject({
      kind: "none",
      reason: expect.stringContaining("within its 15 min cooldown"),
    });
    // … and fires once it is over (after three new growing checks: older samples are stale).
    clock += 15 * MIN;
    for (const depth of [7, 8, 9]) expect((await step(depth)).kind).toBe("none");
    expect((await step(10)).kind).toBe("fire");
  });
});

describe("failure rate", () => {
  async function attempt(outcome: "retry_wait" | "pushed") {
    const { task } = await createTask(database.db, newTask(), "t");
    for (const [from, to] of [
      ["queued", "assigned"],
      ["assigned", "running"],
      ["running", outcome],
    ] as const) {
      await transitionTask(database.db, {
        taskId: task.taskId,
        from: [from],
        to,
        actor: "t",
        reason: "t",
      });
    }
  }

  it("fires over 50 %, reminds after its cooldown, and follows a threshold change at the next check", async () => {
    await enable("failure_rate");
    for (const outcome of ["retry_wait", "retry_wait", "retry_wait"] as const)
      await attempt(outcome);
    // Three attempts are fewer than the four a rate needs.
    expect((await check("failure_rate")).kind).toBe("none");
    await attempt("pushed");
    expect(await check("failure_rate")).toMatchObject({
      kind: "fire",
      message: "75 % of attempts failed in the last 60 min (3 of 4; threshold 50 %)",
    });
    expect((await check("failure_rate", MIN)).kind).toBe("none");
    expect((await check("failure_rate", 15 * MIN)).kind).toBe("refire");
    expect(github.calls.map((c) => c.op)).toEqual(["open", "comment"]);
    expect(github.calls[1]?.text).toContain("Still firing");
    expect((await firingRow("failure_rate"))?.fireCount).toBe(2);

    await enable("failure_rate", { threshold_percent: 80 });
    expect(await check("failure_rate", 0)).toMatchObject({
      kind: "clear",
      reason: "75 % failed, within 80 %",
    });
    expect(github.calls.at(-1)?.op).toBe("close");
  });
});

describe("stuck task", () => {
  it("fires for a task silent over 5 min, and clears when it is taken back", async () => {
    await enable("stuck_task");
    const { task } = await createTask(database.db, newTask(), "t");
    await transitionTask(database.db, {
      taskId: task.taskId,
      from: ["queued"],
      to: "assigned",
      actor: "t",
      reason: "t",
    });
    await transitionTask(database.db, {
      taskId: task.taskId,
      from: ["assigned"],
      to: "running",
      actor: "t",
      reason: "t",
      // The lease a heartbeat at `clock` leaves: 60 s on.
      set: { leaseExpiresAt: new Date(clock + 60 * SEC) },
    });
    expect((await check("stuck_task", 4 * MIN)).kind).toBe("none");
    expect(await check("stuck_task", 2 * MIN)).toMatchObject({
      kind: "fire",
      message: expect.stringContaining("acme/ops#1 (running, silent 6 min)"),
    });
    // The 10 min cooldown: a changed silence is an update, then a reminder.
    expect((await check("stuck_task", 2 * MIN)).kind).toBe("update");
    expect((await check("stuck_task", 9 * MIN)).kind).toBe("refire");
    // A longer threshold, effective at the next check.
    await enable("stuck_task", { minutes: 30 });
    expect((await check("stuck_task", 0)).kind).toBe("clear");
    await enable("stuck_task", { minutes: 5 });
    // The sweep takes it back: nothing is stuck any more (and the cooldown is irrelevant).
    await transitionTask(database.db, {
      taskId: task.taskId,
      from: ["running"],
      to: "retry_wait",
      actor: "t",
      reason: "t",
    });
    expect((await check("stuck_task", 20 * MIN)).kind).toBe("none");
  });
});

describe("no runners online (critical)", () => {
  it("fires while registered runners are all offline, clears when one is seen, fires again at once", async () => {
    await enable("no_runners_online");
    expect((await check("no_runners_online")).kind).toBe("none");
    const { runner } = await createRunner(database.db, {
      name: "r1",
      capabilities: [],
      tier: "normal",
    });
    expect(await check("no_runners_online")).toMatchObject({
      kind: "fire",
      severity: "critical",
      message: "No runner is online, though 1 runner is registered: queued work waits",
    });
    await markRunnersSeen(database.db, [runner.runnerId], new Date(clock));
    expect((await check("no_runners_online", 10 * SEC)).kind).toBe("clear");
    // Gone again a minute later: critical, so no cooldown holds it back.
    expect(await check("no_runners_online", MIN)).toMatchObject({
      kind: "fire",
      reason: "critical: fires despite the cooldown",
    });
    // While it stays firing, reminders still follow the 10 min cooldown.
    expect((await check("no_runners_online", MIN)).kind).toBe("none");
    expect((await check("no_runners_online", 10 * MIN)).kind).toBe("refire");
  });
});

describe("errors per hour", () => {
  it("fires over 10 an hour, follows a threshold change, and waits its cooldown to fire again", async () => {
    await enable("error_rate");
    const errors = (n: number, source = "merger") =>
      insertErrorEvents(
        database.db,
        Array.from({ length: n }, () => ({ source, message: "boom", at: new Date(clock) })),
      );
    await errors(10);
    expect((await check("error_rate", 0)).kind).toBe("none");
    await errors(1, "webhook");
    expect(await check("error_rate", 0)).toMatchObject({
      kind: "fire",
      message: "11 errors in the last hour (more than 10): merger 10, webhook 1",
    });
    await enable("error_rate", { max_per_hour: 20 });
    expect((await check("error_rate", 0)).kind).toBe("clear");
    await enable("error_rate", { max_per_hour: 10 });
    expect((await check("error_rate", 10 * MIN)).kind).toBe("none");
    expect((await check("error_rate", 21 * MIN)).kind).toBe("fire");
    // An hour after the errors, they no longer count.
    expect((await check("error_rate", 30 * MIN)).kind).toBe("clear");
  });
});

describe("webhook failures", () => {
  it("fires on a failed delivery in the last 15 min and clears when it ages out", async () => {
    await enable("webhook_failures");
    await insertErrorEvents(database.db, [
      { source: "webhook", message: "Server Error", at: new Date(clock) },
    ]);
    expect(await check("webhook_failures", 0)).toMatchObject({
      kind: "fire",
      message: "1 webhook delivery failed in the last 15 min; last: Server Error",
    });
    expect((await check("webhook_failures", 14 * MIN)).kind).toBe("none");
    expect((await check("webhook_failures", 2 * MIN)).kind).toBe("clear");
  });
});

describe("database unavailable", () => {
  it("fires on this instance after 2 failed checks, reminds after 5 min, and is stored as history once the database answers", async () => {
    // The issue target is learned while the database answers.
    await check("database_unavailable");
    pingFails = "connect ECONNREFUSED 127.0.0.1:5432";
    expect((await check("database_unavailable")).kind).toBe("none");
    expect(await check("database_unavailable")).toMatchObject({
      kind: "fire",
      severity: "critical",
      message:
        "The database has not answered 2 checks in a row: connect ECONNREFUSED 127.0.0.1:5432",
    });
    expect(alerter.localAlerts()).toEqual([
      expect.objectContaining({
        rule: "database_unavailable",
        fireCount: 1,
        githubIssueNumber: 100,
      }),
    ]);
    expect((await check("database_unavailable", MIN)).kind).toBe("update");
    expect((await check("database_unavailable", 5 * MIN)).kind).toBe("refire");
    expect(github.calls.map((c) => c.op)).toEqual(["open", "comment"]);

    pingFails = undefined;
    expect((await check("database_unavailable")).kind).toBe("clear");
    expect(alerter.localAlerts()).toEqual([]);
    expect(github.calls.at(-1)).toMatchObject({ op: "close", issue: 100 });
    const { recent } = await listAlerts(database.db, 10);
    expect(recent).toEqual([
      expect.objectContaining({
        rule: "database_unavailable",
        status: "cleared",
        fireCount: 2,
        githubIssueNumber: 100,
      }),
    ]);
  });
});

describe("several instances", () => {
  it("evaluates on the lease holder only, while every instance checks the database", async () => {
    await enable("error_rate");
    await insertErrorEvents(
      database.db,
      Array.from({ length: 11 }, () => ({ source: "merger", message: "x", at: new Date(clock) })),
    );
    // Another instance: its own connections, named after it.
    const otherDatabase = await createDatabase({
      url: database.url,
      max: 2,
      applicationName: "instance-b",
    });
    onTestFinished(() => otherDatabase.close());
    const other = createAlerter({
      db: otherDatabase.db,
      logger,
      instanceId: "instance-b",
      ping: () => database.ping(),
      timings: { leaseMs: 60 * SEC, acceptMs: 30 * SEC },
      onlineWindowMs: 30 * SEC,
      sampleIntervalMs: 30 * SEC,
      checkIntervalMs: 30 * SEC,
      now: () => clock,
    });
    const [a, b] = await Promise.all([alerter.checkOnce(), other.checkOnce()]);
    expect([a.evaluated, b.evaluated].sort()).toEqual([false, true]);
    for (const report of [a, b]) {
      expect(report.decisions.map((d) => d.rule)).toContain("database_unavailable");
    }
    const history = await alertHistory(database.db);
    expect(history.error_rate?.firing).toBeDefined();
    const rows = resultRows<{ n: number }>(
      await database.db.execute(
        sql`select count(*)::int as n from alerts where rule = 'error_rate'`,
      ),
    );
    expect(Number(rows[0]?.n)).toBe(1);
  });
});
