import type { BudgetSnapshot } from "../core/github-budget.ts";
import type { Lane } from "../core/task-states.ts";
import { LANES } from "../core/task-states.ts";
import type { TrustRow } from "../store/metrics.ts";
import type { MinuteDeltas, MinuteLatency } from "./chart-queries.ts";
import type {
  ActiveTaskRow,
  AlertRow,
  DeadTaskRow,
  LaneCount,
  QueuedTaskRow,
  RegisteredRunnerRow,
  ResultRow,
} from "./dashboard-queries.ts";
import type { RunnerPresence, TaskLive } from "./live-board.ts";

/*
 * The dashboard's state as the browser receives it: plain JSON, times as epoch milliseconds (the
 * page shows them relative to its own clock, corrected by `generated_at`). Assembling it from rows
 * is pure, so it is tested without a server.
 */

export interface RunnerTaskView {
  task_id: string;
  repo: string;
  issue_number: number;
  title: string;
  state: string;
  stage: string | null;
  /** Its k when it is a best-of-N candidate, else null. */
  candidate: number | null;
}

export interface RunnerView {
  runner_id: string;
  name: string;
  tier: string;
  /** `busy`, `idle`, `draining` (finishing its tasks, taking no more), `online` (connected to an
   * instance that does not share live state), or `offline`. */
  state: "busy" | "idle" | "draining" | "online" | "offline";
  /** What it was registered with. */
  capabilities: string[];
  /** What its connection offers (a subset), when connected. */
  offered_capabilities: string[] | null;
  slots: number | null;
  busy: number;
  version: string | null;
  connected_at: number | null;
  last_seen_at: number | null;
  tasks: RunnerTaskView[];
  /** Its most recent heartbeat: the stage it named, for which task, and when. */
  last_heartbeat: { task_id: string; stage: string; message: string | null; at: number } | null;
}

export interface InFlightView extends ActiveTaskRow {
  stage: string | null;
  stage_message: string | null;
  stage_at: number | null;
  log_tail: string | null;
}

export interface QueueView {
  lanes: LaneCount[];
  waiting: number;
  items: QueuedTaskRow[];
}

export interface ChartSeries {
  /** Minutes covered, one point per minute; the last point is now. */
  window_minutes: number;
  /** X values, epoch seconds (uPlot's unit). */
  t: number[];
  queue_depth: number[];
  busy_slots: number[];
  /** Offered slots, from the metrics sampler's samples; null where there were none. */
  slots: (number | null)[];
  wait_p50: (number | null)[];
  wait_p90: (number | null)[];
  wait_p99: (number | null)[];
  end_to_end_p50: (number | null)[];
  succeeded: number[];
  failed: number[];
  dead: number[];
}

export interface DashboardSnapshot {
  generated_at: number;
  runners: RunnerView[];
  queue: QueueView;
  in_flight: InFlightView[];
  recent: ResultRow[];
  dead: { total: number; items: DeadTaskRow[] };
  alerts: AlertRow[];
  charts: ChartSeries;
  /** merge.mode approve | report: per repository, would-merge verdicts and hand merges after one. */
  trust: TrustRow[];
  /** Each GitHub client's request budget as this instance last saw it. */
  github: BudgetSnapshot[];
}

/** The top-level keys sent as separate parts, so a change in one does not resend the others. */
export const SNAPSHOT_SECTIONS = [
  "runners",
  "queue",
  "in_flight",
  "recent",
  "dead",
  "alerts",
  "charts",
  "trust",
  "github",
] as const satisfies readonly (keyof DashboardSnapshot)[];
export type SnapshotSection = (typeof SNAPSHOT_SECTIONS)[number];

/**
 * The snapshot as it travels to browsers: the agents' output goes separately (`logs`, by task), so
 * a new line of output resends one task's output and not the whole in-flight list, and the time of
 * each heartbeat (shown in the runners panel) does not count as a change of the task.
 */
export function wireForm(snapshot: DashboardSnapshot): {
  sections: Record<SnapshotSection, unknown>;
  logs: Record<string, string>;
} {
  const logs: Record<string, string> = {};
  const inFlight = snapshot.in_flight.map(({ log_tail, stage_at: _, ...task }) => {
    if (log_tail) logs[task.task_id] = log_tail;
    return task;
  });
  return {
    sections: {
      runners: snapshot.runners,
      queue: snapshot.queue,
      in_flight: inFlight,
      recent: snapshot.recent,
      dead: snapshot.dead,
      alerts: snapshot.alerts,
      charts: snapshot.charts,
      trust: snapshot.trust,
      github: snapshot.github,
    },
    logs,
  };
}

/** Every lane in order, with zeros where nothing waits. */
export function queueView(lanes: LaneCount[], items: QueuedTaskRow[]): QueueView {
  const byLane = new Map(lanes.map((l) => [l.lane, l]));
  const all = LANES.map(
    (lane: Lane) => byLane.get(lane) ?? { lane, queued: 0, retry_wait: 0, held: 0 },
  );
  return {
    lanes: all,
    waiting: all.reduce((sum, l) => sum + l.queued + l.retry_wait, 0),
    items,
  };
}

/** In-flight tasks with what their runner last said (stage, output). */
export function inFlightView(
  rows: ActiveTaskRow[],
  live: (taskId: string) => TaskLive | undefined,
): InFlightView[] {
  return rows.map((row) => {
    const l = live(row.task_id);
    const current = l && l.generation === row.generation ? l : undefined;
    return {
      ...row,
      stage: current?.stage ?? null,
      stage_message: current?.message ?? null,
      stage_at: current?.at ? Date.parse(current.at) : null,
      log_tail: current?.tail ?? null,
    };
  });
}

/**
 * Runners: registered ones with their sockets (any instance sharing live state), the tasks they
 * hold (from the database) and their latest heartbeat. A runner seen recently by an instance that
 * shares nothing (`last_seen_at`) is `online`.
 */
export function runnerViews(input: {
  registered: RegisteredRunnerRow[];
  presence: RunnerPresence[];
  inFlight: InFlightView[];
  now: number;
  onlineWindowMs: number;
}): RunnerView[] {
  const presence = new Map(input.presence.map((p) => [p.runner_id, p]));
  const views = input.registered.map((r): RunnerView => {
    const socket = presence.get(r.runner_id);
    const tasks = input.inFlight.filter(
      (t) => t.runner_id === r.runner_id && (t.state === "assigned" || t.state === "running"),
    );
    const beats = input.inFlight
      .filter((t) => t.runner_id === r.runner_id && t.stage && t.stage_at !== null)
      .sort((a, b) => (b.stage_at ?? 0) - (a.stage_at ?? 0));
    const beat = beats[0];
    let state: RunnerView["state"];
    if (socket) {
      state = socket.draining ? "draining" : tasks.length > 0 || socket.busy > 0 ? "busy" : "idle";
    } else if (r.last_seen_at !== null && input.now - r.last_seen_at <= input.onlineWindowMs) {
      state = "online";
    } else {
      state = "offline";
    }
    return {
      runner_id: r.runner_id,
      name: r.name,
      tier: r.tier,
      state,
      capabilities: r.capabilities,
      offered_capabilities: socket?.capabilities ?? null,
      slots: socket?.slots ?? null,
      busy: Math.max(tasks.length, socket?.busy ?? 0),
      version: socket?.version ?? null,
      connected_at: socket ? Date.parse(socket.connected_at) : null,
      last_seen_at: socket ? input.now : r.last_seen_at,
      tasks: tasks.map((t) => ({
        task_id: t.task_id,
        repo: t.repo,
        issue_number: t.issue_number,
        title: t.title,
        state: t.state,
        stage: t.stage,
        candidate: t.candidate,
      })),
      last_heartbeat:
        beat?.stage && beat.stage_at !== null
          ? {
              task_id: beat.task_id,
              stage: beat.stage,
              message: beat.stage_message,
              at: beat.stage_at,
            }
          : null,
    };
  });
  const order = { busy: 0, draining: 1, idle: 2, online: 3, offline: 4 };
  return views.sort((a, b) => order[a.state] - order[b.state] || a.name.localeCompare(b.name));
}

/**
 * One point per minute over the window, the last one being now. Queue depth and busy slots are
 * each minute's peak: the counts before the window's events (the counts now minus everything the
 * events changed) replayed forward minute by minute. `capacityNow` (slots offered by the runners
 * connected now) fills the last slot point when the sampler has not written one.
 */
export function chartSeries(input: {
  now: number;
  windowMinutes: number;
  deltas: MinuteDeltas[];
  current: { waiting: number; busy: number };
  latency: MinuteLatency[];
  slots: { minute: number; slots: number }[];
  capacityNow: number | null;
}): ChartSeries {
  const nowMinute = Math.floor(input.now / 60_000);
  const first = nowMinute - input.windowMinutes + 1;
  const latency = new Map(input.latency.map((l) => [l.minute, l]));
  const slots = new Map(input.slots.map((s) => [s.minute, s.slots]));
  const series: ChartSeries = {
    window_minutes: input.windowMinutes,
    t: [],
    queue_depth: [],
    busy_slots: [],
    slots: [],
    wait_p50: [],
    wait_p90: [],
    wait_p99: [],
    end_to_end_p50: [],
    succeeded: [],
    failed: [],
    dead: [],
  };
  const round = (v: number | null | undefined) =>
    v === null || v === undefined ? null : Math.round(v * 10) / 10;
  // Counts before the first event read; peaks are offsets from there.
  const baseWaiting = input.current.waiting - input.deltas.reduce((sum, d) => sum + d.waiting, 0);
  const baseBusy = input.current.busy - input.deltas.reduce((sum, d) => sum + d.busy, 0);
  let waiting = baseWaiting;
  let busy = baseBusy;
  const byMinute = new Map<number, MinuteDeltas>();
  for (const d of input.deltas) {
    // Events stamped after now (clocks a little apart) belong to the current minute.
    const minute = Math.min(d.minute, nowMinute);
    if (minute < first) {
      waiting += d.waiting;
      busy += d.busy;
      continue;
    }
    const known = byMinute.get(minute);
    byMinute.set(
      minute,
      known
        ? {
            ...known,
            waiting: known.waiting + d.waiting,
            busy: known.busy + d.busy,
            waiting_peak: Math.max(known.waiting_peak, d.waiting_peak),
            busy_peak: Math.max(known.busy_peak, d.busy_peak),
            succeeded: known.succeeded + d.succeeded,
            failed: known.failed + d.failed,
            dead: known.dead + d.dead,
          }
        : d,
    );
  }
  for (let minute = first; minute <= nowMinute; minute++) {
    const d = byMinute.get(minute);
    const l = latency.get(minute);
    const i = minute - first;
    series.t[i] = minute === nowMinute ? Math.floor(input.now / 1000) : (minute + 1) * 60;
    series.queue_depth[i] = Math.max(0, waiting, d ? baseWaiting + d.waiting_peak : 0);
    series.busy_slots[i] = Math.max(0, busy, d ? baseBusy + d.busy_peak : 0);
    waiting += d?.waiting ?? 0;
    busy += d?.busy ?? 0;
    const sampled = slots.get(minute);
    series.slots[i] =
      sampled !== undefined
        ? round(sampled)
        : minute === nowMinute
          ? (input.capacityNow ?? null)
          : null;
    series.wait_p50[i] = round(l?.wait_p50);
    series.wait_p90[i] = round(l?.wait_p90);
    series.wait_p99[i] = round(l?.wait_p99);
    series.end_to_end_p50[i] = round(l?.end_to_end_p50);
    series.succeeded[i] = d?.succeeded ?? 0;
    series.failed[i] = d?.failed ?? 0;
    series.dead[i] = d?.dead ?? 0;
  }
  return series;
}
