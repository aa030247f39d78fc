import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import { percentile } from "../../src/core/metrics-math.ts";
import {
  acknowledgeAlert,
  alertHistory,
  clearAlert,
  insertAlert,
  listAlerts,
} from "../../src/store/alerts.ts";
import {
  countErrors,
  countWebhookFailures,
  insertErrorEvents,
} from "../../src/store/error-events.ts";
import {
  aggregateDurations,
  countOutcomes,
  countPullRequests,
  durationsFrom,
  firstEventIdSince,
  insertSamples,
  latestSamples,
  readEventCursor,
  tailEvents,
  writeEventCursor,
} from "../../src/store/metrics.ts";
import { readSettings, updateSettings } from "../../src/store/settings.ts";
import { createTask, upsertRepository } from "../../src/store/tasks.ts";
import { BACKENDS } from "../helpers/backends.ts";

const REPO = 9001;
const T0 = Date.parse("2026-01-01T00:00:00Z");
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

describe.each(BACKENDS)("metrics store on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  let issue = 1;

  /** A task whose history is written event by event at chosen times (seconds after T0). */
  async function taskWithHistory(
    steps: [from: string | null, to: string, second: number, generation?: number][],
  ): Promise<string> {
    const { task } = await createTask(
      database.db,
      {
        repositoryId: REPO,
        installationId: 1,
        issueNumber: issue++,
        title: "t",
        body: "",
        lane: "high",
        capabilities: [],
        maxAttempts: 3,
        limits: {},
        queuedBy: "octocat",
      },
      "t",
    );
    // createTask wrote the first event at "now"; rewrite the whole history at fixed times.
    await database.db.execute(sql`delete from task_events where task_id = ${task.taskId}`);
    await database.db.execute(
      sql`update tasks set created_at = ${at(steps[0]![2])}::timestamptz where task_id = ${task.taskId}`,
    );
    for (const [from, to, second, generation] of steps) {
      await database.db.execute(sql`
        insert into task_events (task_id, at, actor, from_state, to_state, generation, reason)
        values (${task.taskId}, ${at(second)}::timestamptz, 'test', ${from}::task_state,
                ${to}::task_state, ${generation ?? 1}, 'test')`);
    }
    return task.taskId;
  }

  beforeAll(async () => {
    database = await backend.open();
    await upsertRepository(database.db, {
      repositoryId: REPO,
      installationId: 1,
      fullName: "acme/widgets",
    });
    // Task A: waits 10 s, runs 100 s, merged at 200 s.
    await taskWithHistory([
      [null, "queued", 0],
      ["queued", "assigned", 10],
      ["assigned", "running", 11],
      ["running", "pushed", 110],
      ["pushed", "review", 120],
      ["review", "merging", 190],
      ["merging", "merged", 200],
    ]);
    // Task B: a failed attempt (30 s wait, 50 s run), a retry (20 s wait), a result, then dead.
    await taskWithHistory([
      [null, "queued", 1000],
      ["queued", "assigned", 1030, 1],
      ["assigned", "running", 1031, 1],
      ["running", "retry_wait", 1080, 1],
      ["retry_wait", "queued", 1100, 1],
      ["queued", "assigned", 1120, 2],
      ["assigned", "running", 1121, 2],
      ["running", "dead", 1200, 2],
    ]);
    // Task C: rejected at once (no run), then cancelled while queued.
    await taskWithHistory([
      [null, "queued", 2000],
      ["queued", "assigned", 2005, 1],
      ["assigned", "queued", 2006, 1],
      ["queued", "cancelled", 2100, 1],
    ]);
  });
  afterAll(async () => {
    await database?.dispose();
  });

  it("finds the first event of a window by binary search, gaps in the ids included", async () => {
    // Holes in the id sequence, as rolled-back inserts leave them.
    await database.db.execute(
      sql`select setval('task_events_event_id_seq', nextval('task_events_event_id_seq') + 50)`,
    );
    const late = await taskWithHistory([[null, "queued", 5000]]);
    const ids = (
      await database.rows<{ event_id: number; at: string }>(sql`
      select event_id, extract(epoch from at)::float8 - ${T0 / 1000} as at
      from task_events order by event_id`)
    ).map((r) => ({ id: Number(r.event_id), at: Number(r.at) }));
    for (const second of [-10, 0, 5, 10, 11, 999, 1000, 1100, 2006, 2101, 4999, 5000]) {
      const expected = ids.find((e) => e.at >= second)?.id ?? Math.max(...ids.map((e) => e.id)) + 1;
      expect(
        await firstEventIdSince(database.db, new Date(at(second))),
        `window from ${second} s`,
      ).toBe(expected);
    }
    // After the newest event: an empty window.
    const last = Math.max(...ids.map((e) => e.id));
    expect(await firstEventIdSince(database.db, new Date(at(6000)))).toBe(last + 1);
    await database.db.execute(sql`delete from task_events where task_id = ${late}`);
    await database.db.execute(sql`delete from tasks where task_id = ${late}`);
  });

  it("measures wait, run and end to end from the events", async () => {
    expect((await durationsFrom(database.db, "wait", 0)).sort((a, b) => a - b)).toEqual([
      5, 10, 20, 30,
    ]);
    expect((await durationsFrom(database.db, "run", 0)).sort((a, b) => a - b)).toEqual([
      50, 80, 100,
    ]);
    expect(await durationsFrom(database.db, "end_to_end", 0)).toEqual([200]);
    // A window starting at task B's retry only sees what ended after it.
    const from = await firstEventIdSince(database.db, new Date(at(1100)));
    expect((await durationsFrom(database.db, "wait", from)).sort((a, b) => a - b)).toEqual([5, 20]);
  });

  it("computes all-history percentiles in the database the way the core does", async () => {
    const waits = [5, 10, 20, 30];
    const cumulative = await aggregateDurations(database.db, "wait");
    expect(cumulative.count).toBe(4);
    expect(cumulative.p50).toBeCloseTo(percentile(waits, 50)!, 9);
    expect(cumulative.p90).toBeCloseTo(percentile(waits, 90)!, 9);
    expect(cumulative.p99).toBeCloseTo(percentile(waits, 99)!, 9);
    expect(cumulative.mean).toBeCloseTo(16.25, 9);
    expect(cumulative.max).toBe(30);
  });

  it("counts attempt and task outcomes", async () => {
    expect(await countOutcomes(database.db, 0)).toEqual({
      attempts: 3,
      failedAttempts: 2,
      merged: 1,
      dead: 1,
      cancelled: 1,
    });
  });

  it("tails events after a cursor, with the durations each one ends", async () => {
    const events = await tailEvents(database.db, 0, 0, 100);
    expect(events.map((e) => `${e.fromState}>${e.toState}`)).toContain("merging>merged");
    const merged = events.find((e) => e.toState === "merged");
    expect(merged).toMatchObject({ endToEndSeconds: 200, lane: "high" });
    expect(events.find((e) => e.toState === "dead")).toMatchObject({ runSeconds: 80 });
    const second = await tailEvents(database.db, events[2]!.eventId, 0, 2);
    expect(second.map((e) => e.eventId)).toEqual([events[3]!.eventId, events[4]!.eventId]);
    expect(await readEventCursor(database.db)).toBeUndefined();
    await writeEventCursor(database.db, 41);
    await writeEventCursor(database.db, 42);
    expect(await readEventCursor(database.db)).toBe(42);
  });

  it("keeps samples per series, latest last, and ignores a duplicate or non-finite one", async () => {
    const rows = [1, 2, 3].map((value, i) => ({
      metric: "queue_depth",
      labels: "",
      at: new Date(T0 + i * 30_000),
      value,
    }));
    await insertSamples(database.db, [
      ...rows,
      { ...rows[0]!, value: 99 },
      { metric: "queue_depth", labels: "", at: new Date(T0 + 99_000), value: Number.NaN },
    ]);
    expect((await latestSamples(database.db, "queue_depth", "", 2)).map((s) => s.value)).toEqual([
      2, 3,
    ]);
  });

  it("reads pull requests by the verdict and tier in front of their check digest", async () => {
    const taskId = await taskWithHistory([[null, "queued", 0]]);
    for (const [n, digest] of [
      [1, "needs_approval:2:abc"],
      [2, "merge:1:def"],
      [3, null],
      [4, "0123abcd"],
    ] as const) {
      await database.db.execute(sql`
        insert into pull_requests (repository_id, pr_number, task_id, branch, head_sha, url, verdict_digest)
        values (${REPO}, ${n}, ${taskId}, 'b', 'sha', 'u', ${digest})`);
    }
    const counts = await countPullRequests(database.db);
    expect(counts.sort((a, b) => a.verdict.localeCompare(b.verdict))).toEqual([
      { state: "open", verdict: "merge", tier: "1", n: 1 },
      { state: "open", verdict: "needs_approval", tier: "2", n: 1 },
      { state: "open", verdict: "none", tier: "none", n: 2 },
    ]);
  });

  it("counts errors per source and failed webhooks in a window", async () => {
    await insertErrorEvents(database.db, [
      { source: "webhook", message: "first", at: new Date(T0) },
      { source: "webhook", message: "second", at: new Date(T0 + 60_000) },
      { source: "merger", message: "m", at: new Date(T0 + 60_000) },
      { source: "merger", message: "old", at: new Date(T0 - 2 * 3600_000) },
    ]);
    expect(await countErrors(database.db, new Date(T0 - 1000))).toEqual({
      total: 3,
      bySource: { webhook: 2, merger: 1 },
    });
    expect(await countWebhookFailures(database.db, new Date(T0 - 1000))).toEqual({
      count: 2,
      lastMessage: "second",
    });
  });

  it("stores settings by section and refuses a patch as a whole", async () => {
    const ok = await updateSettings(database.db, { alerts: { stuck_task: { minutes: 9 } } });
    expect(ok.ok).toBe(true);
    const bad = await updateSettings(database.db, {
      alerts: { stuck_task: { minutes: 12 }, error_rate: { max_per_hour: -1 } },
    });
    expect(bad.ok).toBe(false);
    const { settings } = await readSettings(database.db);
    expect(settings.alerts.stuck_task.minutes).toBe(9);
    // Concurrent patches to different keys of one section both land.
    await Promise.all([
      updateSettings(database.db, { alerts: { error_rate: { max_per_hour: 3 } } }),
      updateSettings(database.db, { alerts: { error_rate: { cooldown_minutes: 7 } } }),
    ]);
    const after = (await readSettings(database.db)).settings.alerts.error_rate;
    expect([after.max_per_hour, after.cooldown_minutes]).toEqual([3, 7]);
  });

  it("keeps one firing alert per rule, and acknowledges once", async () => {
    const fire = () =>
      insertAlert(database.db, {
        rule: "stuck_task",
        severity: "warning",
        message: "m",
        details: {},
        at: new Date(T0),
      });
    const [a, b] = await Promise.all([fire(), fire()]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    const row = (a ?? b)!;
    const first = await acknowledgeAlert(database.db, row.alertId, "maria", new Date(T0 + 1000));
    const again = await acknowledgeAlert(database.db, row.alertId, "bob", new Date(T0 + 2000));
    expect(first.kind === "acknowledged" && first.alert.acknowledgedBy).toBe("maria");
    expect(again.kind === "acknowledged" && again.alert.acknowledgedBy).toBe("maria");
    expect((await alertHistory(database.db)).stuck_task?.firing?.acknowledged).toBe(true);
    await clearAlert(database.db, row.alertId, new Date(T0 + 3000), "fine");
    expect((await acknowledgeAlert(database.db, row.alertId, "x", new Date())).kind).toBe(
      "cleared",
    );
    expect((await acknowledgeAlert(database.db, 987654, "x", new Date())).kind).toBe("not_found");
    const listed = await listAlerts(database.db, 5);
    expect(listed.firing).toEqual([]);
    expect(listed.recent[0]?.details).toEqual({ cleared_reason: "fine" });
    // A new alert for the rule may fire once the old one cleared.
    expect(await fire()).toBeDefined();
  });
});
