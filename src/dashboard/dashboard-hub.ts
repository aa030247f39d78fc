import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import type { BudgetSnapshot } from "../core/github-budget.ts";
import { type TrustRow, trustByRepository } from "../store/metrics.ts";
import {
  currentCounts,
  eventDeltasByMinute,
  firstEventIdSince,
  latencyByMinute,
  sampledSlotsByMinute,
} from "./chart-queries.ts";
import {
  type ActiveTaskRow,
  type AlertRow,
  countDeadTasks,
  countWaitingByLane,
  type DeadTaskRow,
  dashboardWatermark,
  type LaneCount,
  listActiveTasks,
  listDashboardAlerts,
  listDeadTasks,
  listRecentResults,
  listRegisteredRunners,
  listWaitingTasks,
  type QueuedTaskRow,
  type RegisteredRunnerRow,
  type ResultRow,
} from "./dashboard-queries.ts";
import {
  type ChartSeries,
  chartSeries,
  type DashboardSnapshot,
  inFlightView,
  queueView,
  runnerViews,
  SNAPSHOT_SECTIONS,
  type SnapshotSection,
  wireForm,
} from "./dashboard-snapshot.ts";
import type { LiveBoard } from "./live-board.ts";

/** One browser (or `curl`) following `/dashboard/events`. */
export interface DashboardClient {
  /** Sends one server-sent event; false when the connection is gone. */
  send(event: string, data: unknown): Promise<boolean>;
  /** Ends the stream (the hub removes the client itself). */
  close(): void;
  /** Whether the session or token the client came with still holds. */
  stillAllowed(): Promise<boolean>;
}

export interface DashboardHubTimings {
  /** How often the state is looked at while somebody watches (default 1 s). */
  tickMs: number;
  /** Database sections are re-read at least this often even when nothing moved (default 10 s). */
  fullEveryMs: number;
  /** Charts are recomputed this often (default 15 s). */
  chartsEveryMs: number;
  /** Each client's session is checked again this often (default 15 s). */
  recheckEveryMs: number;
  /** A comment line keeps idle proxies from closing the stream (default 15 s). */
  keepAliveMs: number;
}

export const DEFAULT_HUB_TIMINGS: DashboardHubTimings = {
  tickMs: 1_000,
  fullEveryMs: 10_000,
  chartsEveryMs: 15_000,
  recheckEveryMs: 15_000,
  keepAliveMs: 15_000,
};

export interface DashboardHubDeps {
  db: Db;
  board: LiveBoard;
  logger: Logger;
  agingMs: number;
  timings?: Partial<DashboardHubTimings>;
  now?: () => number;
  /** Each GitHub client's request budget, as this instance's requests last reported it. */
  githubBudget?: (() => BudgetSnapshot[]) | undefined;
}

export interface DashboardHub {
  /** Adds a client: it gets the whole state at once, then the parts that change. */
  subscribe(client: DashboardClient): () => void;
  /** The current state (built now if nobody is watching). */
  snapshot(): Promise<DashboardSnapshot>;
  /** Wakes the hub at once (an operator just changed something). */
  poke(): void;
  /** How many clients are following. */
  clientCount(): number;
  /** Ends every stream (shutdown: an open stream would keep the HTTP server from closing). */
  close(): Promise<void>;
}

const LIMITS = { queue: 50, inFlight: 100, recent: 20, dead: 50, clearedAlerts: 10 };
const WINDOW_MINUTES = 60;
// A runner seen by any instance this recently counts as online (the sampler stamps every few s).
const ONLINE_WINDOW_MS = 90_000;

interface DbSections {
  runners: RegisteredRunnerRow[];
  lanes: LaneCount[];
  waiting: QueuedTaskRow[];
  active: ActiveTaskRow[];
  recent: ResultRow[];
  dead: { total: number; items: DeadTaskRow[] };
  alerts: AlertRow[];
  trust: TrustRow[];
}

/**
 * Builds the dashboard's state once per tick for every viewer of this instance, and only while
 * somebody watches. A tick costs one cheap watermark query; the sections are re-read from the
 * database when the watermark moved (a task moved, an alert changed) or every few seconds, and the
 * charts every 15 s. Only the sections that changed are sent.
 */
export function createDashboardHub(deps: DashboardHubDeps): DashboardHub {
  const timings = { ...DEFAULT_HUB_TIMINGS, ...deps.timings };
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: "dashboard" });
  const clients = new Map<DashboardClient, { checkedAt: number; pingAt: number; ready: boolean }>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;
  let watermark: string | undefined;
  let fullAt = 0;
  let chartsAt = 0;
  let firstEventHint: number | undefined;
  let dbSections: DbSections | undefined;
  let charts: ChartSeries | undefined;
  let current: DashboardSnapshot | undefined;
  // The JSON of each section as last sent, so unchanged sections are not sent again.
  const sentJson = new Map<SnapshotSection, string>();
  let sentLogs = new Map<string, string>();

  // One query at a time: the dashboard must not take half the connection pool from real work.
  async function readDb(): Promise<DbSections> {
    const db = deps.db;
    const runners = await listRegisteredRunners(db);
    const lanes = await countWaitingByLane(db);
    const waiting = await listWaitingTasks(db, { agingMs: deps.agingMs, limit: LIMITS.queue });
    const active = await listActiveTasks(db, LIMITS.inFlight);
    const recent = await listRecentResults(db, LIMITS.recent);
    const deadItems = await listDeadTasks(db, LIMITS.dead);
    const deadTotal = deadItems.length < LIMITS.dead ? deadItems.length : await countDeadTasks(db);
    const alerts = await listDashboardAlerts(db, LIMITS.clearedAlerts);
    const trust = await trustByRepository(db);
    return {
      runners,
      lanes,
      waiting,
      active,
      recent,
      dead: { total: deadTotal, items: deadItems },
      alerts,
      trust,
    };
  }

  async function readCharts(t: number): Promise<ChartSeries> {
    const since = (Math.floor(t / 60_000) - WINDOW_MINUTES + 1) * 60_000;
    firstEventHint = await firstEventIdSince(deps.db, since, firstEventHint);
    const deltas = await eventDeltasByMinute(deps.db, firstEventHint);
    const counts = await currentCounts(deps.db);
    const latency = await latencyByMinute(deps.db, firstEventHint);
    const slots = await sampledSlotsByMinute(deps.db, since);
    const presence = deps.board.runners();
    return chartSeries({
      now: t,
      windowMinutes: WINDOW_MINUTES,
      deltas,
      current: counts,
      latency,
      slots,
      capacityNow: presence.length ? presence.reduce((sum, r) => sum + r.slots, 0) : null,
    });
  }

  /** Brings the state up to date; reads the database only when something moved or it is due. */
  async function update(force: boolean): Promise<DashboardSnapshot> {
    const t = now();
    deps.board.refresh();
    const mark = await dashboardWatermark(deps.db);
    if (force || !dbSections || mark !== watermark || t - fullAt >= timings.fullEveryMs) {
      dbSections = await readDb();
      watermark = mark;
      fullAt = t;
    }
    if (force || !charts || t - chartsAt >= timings.chartsEveryMs) {
      charts = await readCharts(t);
      chartsAt = t;
    }
    const s = dbSections;
    const inFlight = inFlightView(s.active, (id) => deps.board.task(id));
    deps.board.retain(new Set(s.active.map((a) => a.task_id)));
    current = {
      generated_at: t,
      runners: runnerViews({
        registered: s.runners,
        presence: deps.board.runners(),
        inFlight,
        now: t,
        onlineWindowMs: ONLINE_WINDOW_MS,
      }),
      queue: queueView(s.lanes, s.waiting),
      // Tasks as people see them: a best-of-N candidate is on its task's page and its runner.
      in_flight: inFlight.filter((t) => t.parent_task_id === null),
      recent: s.recent,
      dead: s.dead,
      alerts: s.alerts,
      charts,
      trust: s.trust,
      github: deps.githubBudget?.() ?? [],
    };
    return current;
  }

  async function broadcast(snapshot: DashboardSnapshot): Promise<void> {
    const wire = wireForm(snapshot);
    const patch: Record<string, unknown> = {};
    for (const section of SNAPSHOT_SECTIONS) {
      const json = JSON.stringify(wire.sections[section]);
      if (sentJson.get(section) === json) continue;
      sentJson.set(section, json);
      patch[section] = wire.sections[section];
    }
    // Output by task: what changed, and null for tasks that left.
    const logs: Record<string, string | null> = {};
    for (const [taskId, tail] of Object.entries(wire.logs)) {
      if (sentLogs.get(taskId) !== tail) logs[taskId] = tail;
    }
    for (const taskId of sentLogs.keys()) if (!(taskId in wire.logs)) logs[taskId] = null;
    sentLogs = new Map(Object.entries(wire.logs));
    if (Object.keys(logs).length > 0) patch.logs = logs;
    const t = now();
    const changed = Object.keys(patch).length > 0;
    const whole = { generated_at: snapshot.generated_at, ...wire.sections, logs: wire.logs };
    await Promise.all(
      [...clients].map(async ([client, state]) => {
        if (!state.ready) {
          // A newcomer gets everything once, then changes like everybody else.
          state.ready = true;
          state.pingAt = t;
          return send(client, "snapshot", whole);
        }
        if (changed) {
          state.pingAt = t;
          return send(client, "patch", { generated_at: snapshot.generated_at, ...patch });
        }
        if (t - state.pingAt >= timings.keepAliveMs) {
          state.pingAt = t;
          return send(client, "ping", { generated_at: snapshot.generated_at });
        }
      }),
    );
  }

  async function send(client: DashboardClient, event: string, data: unknown): Promise<void> {
    if (!(await client.send(event, data))) drop(client);
  }

  function drop(client: DashboardClient): void {
    if (!clients.delete(client)) return;
    client.close();
    deps.board.setViewers(clients.size);
  }

  async function recheck(): Promise<void> {
    const t = now();
    await Promise.all(
      [...clients].map(async ([client, state]) => {
        if (t - state.checkedAt < timings.recheckEveryMs) return;
        state.checkedAt = t;
        let allowed = true;
        try {
          allowed = await client.stillAllowed();
        } catch (error) {
          // The database is away: keep the stream; the next check decides.
          logger.warn({ err: error }, "dashboard: could not check a viewer's session");
        }
        if (!allowed) {
          await client.send("signed-out", {
            reason: "your session ended (signed out, expired, or its token was revoked)",
          });
          drop(client);
        }
      }),
    );
  }

  let failing = false;
  async function tick(): Promise<void> {
    try {
      await recheck();
      if (clients.size === 0) return;
      await broadcast(await update(false));
      if (failing) logger.info("dashboard: live state is back");
      failing = false;
    } catch (error) {
      if (!failing) logger.warn({ err: error }, "dashboard: refreshing the live state failed");
      failing = true;
      const message = "the server cannot read its database right now; retrying";
      await Promise.all([...clients.keys()].map((c) => c.send("problem", { error: message })));
    }
  }

  /** Runs a tick now or after `delay`, never two at once; stops when nobody watches. */
  function schedule(delay = timings.tickMs): void {
    if (closed || clients.size === 0) return;
    if (running) {
      again ||= delay === 0;
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      running = tick().finally(() => {
        running = undefined;
        const soon = again;
        again = false;
        schedule(soon ? 0 : timings.tickMs);
      });
    }, delay);
    timer.unref();
  }

  let building: Promise<DashboardSnapshot> | undefined;
  /** One build at a time, shared by everybody asking meanwhile. */
  function build(force: boolean): Promise<DashboardSnapshot> {
    building ??= update(force).finally(() => {
      building = undefined;
    });
    return building;
  }

  return {
    subscribe(client) {
      const t = now();
      clients.set(client, { checkedAt: t, pingAt: t, ready: false });
      deps.board.setViewers(clients.size);
      schedule(0);
      return () => drop(client);
    },
    snapshot() {
      // Fresh enough when viewers keep it current, or when another caller just built it.
      if (current && now() - current.generated_at < timings.tickMs) return Promise.resolve(current);
      return clients.size > 0 && current ? Promise.resolve(current) : build(true);
    },
    poke() {
      schedule(0);
    },
    clientCount: () => clients.size,
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const client of [...clients.keys()]) drop(client);
      await running;
    },
  };
}
