import { describe, expect, it } from "vitest";
import type { ActiveTaskRow, RegisteredRunnerRow } from "./dashboard-queries.ts";
import {
  chartSeries,
  type DashboardSnapshot,
  inFlightView,
  queueView,
  runnerViews,
  wireForm,
} from "./dashboard-snapshot.ts";
import type { RunnerPresence } from "./live-board.ts";

const MINUTE = 60_000;
// 30 s into minute 1000.
const NOW = 1000 * MINUTE + 30_000;
const zero = { succeeded: 0, failed: 0, dead: 0 };

describe("chartSeries", () => {
  it.each([
    {
      name: "nothing happened: flat lines at the current counts",
      deltas: [],
      current: { waiting: 3, busy: 1 },
      depth: [3, 3, 3, 3, 3],
      busy: [1, 1, 1, 1, 1],
    },
    {
      name: "replays the minutes forward from the counts before the window's events",
      deltas: [
        { minute: 998, waiting: 2, busy: 0, waiting_peak: 2, busy_peak: 0, ...zero },
        { minute: 999, waiting: -1, busy: 1, waiting_peak: 1, busy_peak: 1, ...zero },
        { minute: 1000, waiting: 1, busy: 0, waiting_peak: 2, busy_peak: 1, ...zero },
      ],
      current: { waiting: 2, busy: 1 },
      depth: [0, 0, 2, 2, 2],
      busy: [0, 0, 0, 1, 1],
    },
    {
      name: "shows a wait shorter than a minute (its peak)",
      deltas: [{ minute: 999, waiting: 0, busy: 0, waiting_peak: 1, busy_peak: 0, ...zero }],
      current: { waiting: 0, busy: 0 },
      depth: [0, 0, 0, 1, 0],
      busy: [0, 0, 0, 0, 0],
    },
    {
      name: "counts events read from before the window into its start",
      deltas: [{ minute: 990, waiting: 3, busy: 0, waiting_peak: 3, busy_peak: 0, ...zero }],
      current: { waiting: 3, busy: 0 },
      depth: [3, 3, 3, 3, 3],
      busy: [0, 0, 0, 0, 0],
    },
    {
      name: "never draws below zero when history is incomplete",
      deltas: [{ minute: 999, waiting: 5, busy: 0, waiting_peak: 5, busy_peak: 0, ...zero }],
      current: { waiting: 1, busy: 0 },
      depth: [0, 0, 0, 1, 1],
      busy: [0, 0, 0, 0, 0],
    },
  ])("$name", ({ deltas, current, depth, busy }) => {
    const series = chartSeries({
      now: NOW,
      windowMinutes: 5,
      deltas,
      current,
      latency: [],
      slots: [],
      capacityNow: null,
    });
    expect(series.queue_depth).toEqual(depth);
    expect(series.busy_slots).toEqual(busy);
  });

  it("puts one point per minute at the minute's end, the last one now, in uPlot's seconds", () => {
    const series = chartSeries({
      now: NOW,
      windowMinutes: 3,
      deltas: [],
      current: { waiting: 0, busy: 0 },
      latency: [],
      slots: [],
      capacityNow: null,
    });
    expect(series.t).toEqual([999 * 60, 1000 * 60, NOW / 1000]);
  });

  it("takes latency, outcomes and sampled slots per minute, and fills the last slot point from now", () => {
    const series = chartSeries({
      now: NOW,
      windowMinutes: 3,
      deltas: [
        {
          minute: 999,
          waiting: 0,
          busy: 0,
          waiting_peak: 0,
          busy_peak: 0,
          succeeded: 4,
          failed: 1,
          dead: 1,
        },
      ],
      current: { waiting: 0, busy: 0 },
      latency: [
        { minute: 999, wait_p50: 1.234, wait_p90: 5, wait_p99: 9.99, end_to_end_p50: null },
      ],
      slots: [{ minute: 998, slots: 2.333 }],
      capacityNow: 4,
    });
    expect(series.wait_p50).toEqual([null, 1.2, null]);
    expect(series.wait_p99).toEqual([null, 10, null]);
    expect(series.end_to_end_p50).toEqual([null, null, null]);
    expect(series.succeeded).toEqual([0, 4, 0]);
    expect(series.failed).toEqual([0, 1, 0]);
    expect(series.dead).toEqual([0, 1, 0]);
    expect(series.slots).toEqual([2.3, null, 4]);
  });
});

describe("queueView", () => {
  it("lists every lane in order with zeros, and counts queued and backoff as waiting", () => {
    const view = queueView([{ lane: "low", queued: 2, retry_wait: 1, held: 3 }], []);
    expect(view.lanes.map((l) => l.lane)).toEqual(["urgent", "high", "normal", "low"]);
    expect(view.lanes[0]).toEqual({ lane: "urgent", queued: 0, retry_wait: 0, held: 0 });
    expect(view.waiting).toBe(3);
  });
});

const active = (over: Partial<ActiveTaskRow>): ActiveTaskRow => ({
  task_id: "t1",
  repo: "acme/widgets",
  issue_number: 1,
  title: "Fix",
  state: "running",
  lane: "normal",
  generation: 2,
  attempts: 1,
  max_attempts: 3,
  runner_id: "r1",
  runner_name: "box",
  created_at: NOW - 60_000,
  since: NOW - 10_000,
  lease_expires_at: null,
  pr_number: null,
  pr_url: null,
  last_error: null,
  parent_task_id: null,
  candidate: null,
  ...over,
});

describe("inFlightView", () => {
  it("shows the runner's stage and output only for the task's current generation", () => {
    const live = {
      task_id: "t1",
      runner_id: "r1",
      stage: "agent",
      message: "editing",
      at: new Date(NOW - 1_000).toISOString(),
      tail: "output",
    };
    const [current] = inFlightView([active({})], () => ({ ...live, generation: 2 }));
    expect(current).toMatchObject({
      stage: "agent",
      stage_message: "editing",
      stage_at: NOW - 1_000,
      log_tail: "output",
    });
    const [stale] = inFlightView([active({})], () => ({ ...live, generation: 1 }));
    expect(stale).toMatchObject({ stage: null, log_tail: null, stage_at: null });
  });
});

describe("runnerViews", () => {
  const registered = (name: string, over: Partial<RegisteredRunnerRow> = {}) => ({
    runner_id: name,
    name,
    tier: "normal",
    capabilities: ["gpu"],
    last_seen_at: null,
    last_assigned_at: null,
    ...over,
  });
  const socket = (name: string, over: Partial<RunnerPresence> = {}): RunnerPresence => ({
    runner_id: name,
    name,
    version: "1.0.0",
    capabilities: [],
    slots: 2,
    busy: 0,
    draining: false,
    connected_at: new Date(NOW - 5_000).toISOString(),
    ...over,
  });

  it.each([
    {
      name: "busy: holds a task",
      socket: socket("a"),
      tasks: [active({ runner_id: "a" })],
      state: "busy",
    },
    { name: "idle: connected, nothing to do", socket: socket("a"), tasks: [], state: "idle" },
    {
      name: "draining: says it is finishing",
      socket: socket("a", { draining: true }),
      tasks: [],
      state: "draining",
    },
    {
      name: "online: seen lately by an instance that shares nothing",
      runner: { last_seen_at: NOW - 30_000 },
      tasks: [],
      state: "online",
    },
    {
      name: "offline: seen long ago",
      runner: { last_seen_at: NOW - 600_000 },
      tasks: [],
      state: "offline",
    },
    { name: "offline: never seen", tasks: [], state: "offline" },
  ])("$name", ({ socket: presence, runner, tasks, state }) => {
    const [view] = runnerViews({
      registered: [registered("a", runner)],
      presence: presence ? [presence] : [],
      inFlight: inFlightView(tasks, () => undefined),
      now: NOW,
      onlineWindowMs: 90_000,
    });
    expect(view?.state).toBe(state);
  });

  it("is busy with a best-of candidate, and names it as one", () => {
    const [view] = runnerViews({
      registered: [registered("a")],
      presence: [socket("a")],
      inFlight: inFlightView(
        [active({ task_id: "c2", runner_id: "a", parent_task_id: "t1", candidate: 2 })],
        () => undefined,
      ),
      now: NOW,
      onlineWindowMs: 90_000,
    });
    expect(view?.state).toBe("busy");
    expect(view?.tasks).toEqual([expect.objectContaining({ task_id: "c2", candidate: 2 })]);
  });

  it("names the latest heartbeat among its tasks, and lists only the tasks holding a slot", () => {
    const tasks = inFlightView(
      [
        active({ task_id: "old", runner_id: "a" }),
        active({ task_id: "new", runner_id: "a" }),
        active({ task_id: "published", runner_id: "a", state: "review" }),
      ],
      (id) =>
        id === "published"
          ? undefined
          : {
              task_id: id,
              generation: 2,
              runner_id: "a",
              stage: id === "new" ? "verifying" : "agent",
              message: null,
              at: new Date(id === "new" ? NOW - 1_000 : NOW - 9_000).toISOString(),
              tail: null,
            },
    );
    const [view] = runnerViews({
      registered: [registered("a")],
      presence: [socket("a", { busy: 2, capabilities: ["gpu"] })],
      inFlight: tasks,
      now: NOW,
      onlineWindowMs: 90_000,
    });
    expect(view?.last_heartbeat).toEqual({
      task_id: "new",
      stage: "verifying",
      message: null,
      at: NOW - 1_000,
    });
    expect(view?.tasks.map((t) => t.task_id)).toEqual(["old", "new"]);
    expect(view?.offered_capabilities).toEqual(["gpu"]);
    expect(view?.slots).toBe(2);
  });

  it("orders busy runners first, offline ones last, then by name", () => {
    const views = runnerViews({
      registered: [registered("c"), registered("b"), registered("a")],
      presence: [socket("c"), socket("b")],
      inFlight: inFlightView([active({ runner_id: "c" })], () => undefined),
      now: NOW,
      onlineWindowMs: 90_000,
    });
    expect(views.map((v) => `${v.name}:${v.state}`)).toEqual(["c:busy", "b:idle", "a:offline"]);
  });
});

describe("wireForm", () => {
  it("sends output by task, apart from the tasks, and leaves heartbeat times out of them", () => {
    const [withLog, withoutLog] = inFlightView(
      [active({ task_id: "a" }), active({ task_id: "b" })],
      (id) =>
        id === "a"
          ? {
              task_id: "a",
              generation: 2,
              runner_id: "r1",
              stage: "agent",
              message: null,
              at: new Date(NOW).toISOString(),
              tail: "line\n",
            }
          : undefined,
    );
    const wire = wireForm({ in_flight: [withLog!, withoutLog!] } as DashboardSnapshot);
    expect(wire.logs).toEqual({ a: "line\n" });
    const tasks = wire.sections.in_flight as Record<string, unknown>[];
    expect(tasks.map((t) => [t.task_id, t.stage, "log_tail" in t, "stage_at" in t])).toEqual([
      ["a", "agent", false, false],
      ["b", null, false, false],
    ]);
  });
});
