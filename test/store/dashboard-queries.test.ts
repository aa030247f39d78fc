import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, resultRows } from "../../db/client.ts";
import type { TaskState } from "../../src/core/task-states.ts";
import {
  currentCounts,
  eventDeltasByMinute,
  firstEventIdSince,
  latencyByMinute,
  sampledSlotsByMinute,
} from "../../src/dashboard/chart-queries.ts";
import {
  countWaitingByLane,
  dashboardWatermark,
  listActiveTasks,
  listDashboardAlerts,
  listDeadTasks,
  listRecentResults,
  listWaitingTasks,
} from "../../src/dashboard/dashboard-queries.ts";
import { chartSeries } from "../../src/dashboard/dashboard-snapshot.ts";
import {
  createTask,
  type NewTask,
  transitionTask,
  upsertRepository,
} from "../../src/store/tasks.ts";
import { BACKENDS } from "../helpers/backends.ts";

const MIN = 60_000;
const AGING_MS = 30 * MIN;

describe.each(BACKENDS)("dashboard queries on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  let nextIssue = 1;
  const repositoryId = 7;
  const newTask = (over: Partial<NewTask> = {}): NewTask => ({
    repositoryId,
    installationId: 1,
    issueNumber: nextIssue++,
    title: `Task ${nextIssue}`,
    body: "",
    lane: "normal",
    capabilities: [],
    maxAttempts: 3,
    limits: {},
    queuedBy: "octocat",
    ...over,
  });
  const db = () => database.db;

  async function move(taskId: string, to: TaskState, set: Record<string, unknown> = {}) {
    const moved = await transitionTask(db(), { taskId, to, actor: "test", reason: "test", set });
    if (!moved) throw new Error(`could not move ${taskId} to ${to}`);
    return moved;
  }

  beforeAll(async () => {
    database = await backend.open();
    await upsertRepository(db(), { repositoryId, installationId: 1, fullName: "acme/widgets" });
  });
  afterAll(async () => {
    await database?.dispose();
  });

  it("lists waiting tasks in the order runners get them, with aging and backoff", async () => {
    const low = (await createTask(db(), newTask({ lane: "low" }), "t")).task;
    const normal = (await createTask(db(), newTask({ lane: "normal" }), "t")).task;
    const urgent = (await createTask(db(), newTask({ lane: "urgent" }), "t")).task;
    const backoff = (await createTask(db(), newTask({ lane: "urgent" }), "t")).task;
    // The low task waited 65 minutes: two lanes up (low → high), ahead of normal.
    await db().execute(
      sql`update tasks set enqueued_at = now() - interval '65 minutes' where task_id = ${low.taskId}`,
    );
    await move(backoff.taskId, "assigned");
    await move(backoff.taskId, "running");
    await move(backoff.taskId, "retry_wait", { availableAt: new Date(Date.now() + MIN) });

    const waiting = await listWaitingTasks(db(), { agingMs: AGING_MS, limit: 10 });
    expect(waiting.map((t) => t.task_id)).toEqual([
      urgent.taskId,
      low.taskId,
      normal.taskId,
      backoff.taskId,
    ]);
    expect(waiting[1]).toMatchObject({ lane: "low", effective_lane: "high", repo: "acme/widgets" });
    expect(waiting[3]).toMatchObject({ state: "retry_wait" });
    expect(waiting[3]!.available_at).toBeGreaterThan(Date.now());
    expect(await listWaitingTasks(db(), { agingMs: AGING_MS, limit: 2 })).toHaveLength(2);

    const lanes = await countWaitingByLane(db());
    expect(lanes).toEqual(
      expect.arrayContaining([
        { lane: "urgent", queued: 1, retry_wait: 1, held: 0 },
        { lane: "low", queued: 1, retry_wait: 0, held: 0 },
      ]),
    );
    // Out of the way of the next tests.
    for (const t of [low, normal, urgent, backoff]) await move(t.taskId, "cancelled");
  });

  it("lists tasks in flight with their pull request, the latest results, and dead tasks", async () => {
    const flying = (await createTask(db(), newTask({ title: "Flying" }), "t")).task;
    await move(flying.taskId, "assigned");
    await move(flying.taskId, "running");
    const merged = (await createTask(db(), newTask({ title: "Merged" }), "t")).task;
    await move(merged.taskId, "assigned");
    await move(merged.taskId, "running");
    await move(merged.taskId, "pushed");
    await db().execute(sql`
      insert into pull_requests (repository_id, pr_number, task_id, branch, head_sha, url)
      values (${repositoryId}, 41, ${merged.taskId}, 'conveyor/issue-1', 'abc',
              'https://github.example/acme/widgets/pull/41')`);
    await move(merged.taskId, "review");
    await move(merged.taskId, "merging");
    await move(merged.taskId, "merged", { finished: true });
    const dead = (await createTask(db(), newTask({ title: "Dead" }), "t")).task;
    await move(dead.taskId, "assigned");
    await move(dead.taskId, "running");
    await move(dead.taskId, "dead", { lastError: "no_changes: the agent left no changes" });

    const active = await listActiveTasks(db(), 10);
    expect(active.map((t) => t.task_id)).toEqual([flying.taskId]);
    expect(active[0]).toMatchObject({ state: "running", pr_url: null });
    expect(active[0]!.since).toBeGreaterThanOrEqual(active[0]!.created_at);

    const recent = await listRecentResults(db(), 5);
    expect(recent[0]).toMatchObject({
      task_id: merged.taskId,
      state: "merged",
      pr_number: null,
      pr_url: "https://github.example/acme/widgets/pull/41",
    });
    expect(recent[0]!.finished_at).toBeGreaterThanOrEqual(recent[0]!.created_at);
    expect(recent[0]!.first_assigned_at).not.toBeNull();
    // Cancelled tasks count as results too; the list is newest first.
    expect(recent.map((r) => r.state)).toContain("cancelled");

    const deadList = await listDeadTasks(db(), 5);
    expect(deadList).toEqual([
      expect.objectContaining({
        task_id: dead.taskId,
        last_error: expect.stringContaining("no_changes"),
      }),
    ]);
    await move(flying.taskId, "cancelled");
    await move(dead.taskId, "cancelled");
  });

  it("finds the first event of a window along the primary key, backwards and forwards", async () => {
    await db().execute(sql`delete from task_events where true`);
    const { task } = await createTask(db(), newTask(), "t");
    for (let i = 0; i < 24; i++) await move(task.taskId, i % 2 ? "queued" : "held");
    // Spread the 25 events one minute apart, oldest first, ending now.
    await db().execute(sql`
      update task_events e set at = now() - (s.n * interval '1 minute')
      from (select event_id, row_number() over (order by event_id desc) - 1 as n
            from task_events) s
      where s.event_id = e.event_id`);
    const ids = resultRows<{ event_id: number; at_ms: number }>(
      await db().execute(sql`
        select event_id, extract(epoch from at)::float8 * 1000 as at_ms
        from task_events order by event_id`),
    ).map((r) => ({ id: Number(r.event_id), at: Number(r.at_ms) }));
    const truth = (since: number) => ids.find((e) => e.at >= since)?.id ?? ids.at(-1)!.id + 1;

    for (const minutesAgo of [0.5, 3.5, 10.5, 24.5, 40]) {
      const since = Date.now() - minutesAgo * MIN;
      expect(await firstEventIdSince(db(), since, undefined, 4)).toBe(truth(since));
      expect(await firstEventIdSince(db(), since, ids[0]!.id, 4)).toBe(truth(since));
    }
    // Nothing in the window: the answer is past the newest event, and a later hint stays valid.
    expect(await firstEventIdSince(db(), Date.now() + MIN, undefined, 4)).toBe(ids.at(-1)!.id + 1);
    await move(task.taskId, "cancelled");
  });

  it("rebuilds each minute's peak queue depth and busy slots exactly from the events", async () => {
    await db().execute(sql`delete from task_events where true`);
    await db().execute(sql`update tasks set state = 'cancelled' where state <> 'cancelled'`);
    // Four tasks moving over the last 8 minutes.
    const t = await Promise.all(
      [1, 2, 3, 4].map(async () => (await createTask(db(), newTask(), "t")).task),
    );
    await move(t[0]!.taskId, "assigned");
    await move(t[0]!.taskId, "running");
    await move(t[1]!.taskId, "assigned");
    await move(t[0]!.taskId, "pushed");
    await move(t[1]!.taskId, "running");
    await move(t[1]!.taskId, "retry_wait", { availableAt: new Date() });
    await move(t[2]!.taskId, "assigned");
    await move(t[1]!.taskId, "queued");
    // Events k of n get the time (n - k) * 37 s ago: several per minute, some minutes empty.
    await db().execute(sql`
      update task_events e set at = now() - (s.n * interval '37 seconds')
      from (select event_id, row_number() over (order by event_id desc) - 1 as n
            from task_events) s
      where s.event_id = e.event_id`);

    const now = Date.now();
    const windowMinutes = 10;
    const since = (Math.floor(now / MIN) - windowMinutes + 1) * MIN;
    const first = await firstEventIdSince(db(), since);
    const series = chartSeries({
      now,
      windowMinutes,
      deltas: await eventDeltasByMinute(db(), first),
      current: await currentCounts(db()),
      latency: await latencyByMinute(db(), first),
      slots: await sampledSlotsByMinute(db(), since),
      capacityNow: null,
    });

    // The truth, by replaying every event in time order: each minute's highest counts.
    const events = resultRows<{ task_id: string; to_state: string; at_ms: number }>(
      await db().execute(sql`
        select task_id::text as task_id, to_state::text as to_state,
               extract(epoch from at)::float8 * 1000 as at_ms
        from task_events order by at, event_id`),
    );
    const states = new Map<string, string>();
    const count = (set: string[]) => [...states.values()].filter((s) => set.includes(s)).length;
    const firstMinute = Math.floor(now / MIN) - windowMinutes + 1;
    const peaks = new Map<number, { waiting: number; busy: number }>();
    const note = (minute: number) => {
      const peak = peaks.get(minute) ?? { waiting: 0, busy: 0 };
      peak.waiting = Math.max(peak.waiting, count(["queued", "retry_wait"]));
      peak.busy = Math.max(peak.busy, count(["assigned", "running"]));
      peaks.set(minute, peak);
    };
    let next = 0;
    for (let minute = firstMinute; minute <= Math.floor(now / MIN); minute++) {
      while (next < events.length && Math.floor(Number(events[next]!.at_ms) / MIN) < minute) {
        states.set(events[next]!.task_id, events[next]!.to_state);
        next++;
      }
      note(minute);
      while (next < events.length && Math.floor(Number(events[next]!.at_ms) / MIN) === minute) {
        states.set(events[next]!.task_id, events[next]!.to_state);
        next++;
        note(minute);
      }
    }
    const truth = [...peaks.values()];
    expect(series.queue_depth).toEqual(truth.map((p) => p.waiting));
    expect(series.busy_slots).toEqual(truth.map((p) => p.busy));
    expect(Math.max(...series.queue_depth)).toBeGreaterThan(0);
    expect(Math.max(...series.busy_slots)).toBeGreaterThan(0);
    // One attempt succeeded (pushed), one failed (retry_wait); four assignments waited.
    expect(series.succeeded.reduce((a, b) => a + b, 0)).toBe(1);
    expect(series.failed.reduce((a, b) => a + b, 0)).toBe(1);
    expect(series.wait_p50.some((v) => v !== null && v > 0)).toBe(true);
  });

  it("sums sampled slots over runners, averaged within the minute", async () => {
    const minute = Math.floor(Date.now() / MIN) * MIN;
    await db().execute(sql`
      insert into metric_samples (metric, labels, sampled_at, value) values
        ('runner_slots', 'runner=a', to_timestamp(${minute / 1000}), 2),
        ('runner_slots', 'runner=a', to_timestamp(${(minute + 30_000) / 1000}), 4),
        ('runner_slots', 'runner=b', to_timestamp(${(minute + 10_000) / 1000}), 1),
        ('runner_busy', 'runner=b', to_timestamp(${(minute + 10_000) / 1000}), 1)`);
    expect(await sampledSlotsByMinute(db(), minute - MIN)).toEqual([
      { minute: minute / MIN, slots: 4 },
    ]);
  });

  it("lists firing alerts then cleared ones, and the watermark moves when one is acknowledged", async () => {
    await db().execute(sql`
      insert into alerts (rule, severity, status, message, cleared_at)
      values ('queue_growing', 'warning', 'cleared', 'The queue grew', now())`);
    const [firing] = resultRows<{ alert_id: number }>(
      await db().execute(sql`
        insert into alerts (rule, severity, message)
        values ('no_runners', 'critical', 'No runner is online') returning alert_id`),
    );
    const alerts = await listDashboardAlerts(db(), 5);
    expect(alerts.map((a) => `${a.rule}:${a.status}`)).toEqual([
      "no_runners:firing",
      "queue_growing:cleared",
    ]);
    const before = await dashboardWatermark(db());
    expect(await dashboardWatermark(db())).toBe(before);
    await db().execute(sql`
      update alerts set acknowledged_at = now(), acknowledged_by = 'token:ops'
      where alert_id = ${firing!.alert_id}`);
    expect(await dashboardWatermark(db())).not.toBe(before);
    const { task } = await createTask(db(), newTask(), "t");
    const afterAck = await dashboardWatermark(db());
    await move(task.taskId, "cancelled");
    expect(await dashboardWatermark(db())).not.toBe(afterAck);
  });
});
