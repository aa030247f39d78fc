import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import type { Lane, TaskState } from "../core/task-states.ts";
import { isTopLevelTask } from "../store/task-kinds.ts";

/*
 * What the dashboard reads, in one place. Every query is bounded (a limit, an indexed state, the
 * primary key of task_events read backwards) because it runs every second or two while somebody
 * watches. Times come back as epoch milliseconds: the two drivers disagree on how raw timestamp
 * columns are returned, and numbers are what the browser wants anyway.
 */

/** States in which a task waits for a runner. */
export const WAITING_STATES = ["queued", "retry_wait"] as const satisfies readonly TaskState[];
/** States between a runner taking a task and the task's end (or a person's turn). */
export const IN_FLIGHT_STATES = [
  "assigned",
  "running",
  "pushed",
  "review",
  "merging",
  "waiting_human",
] as const satisfies readonly TaskState[];
/** The states that hold a runner slot. */
export const BUSY_STATES = ["assigned", "running"] as const satisfies readonly TaskState[];

const ms = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const list = (states: readonly string[]) =>
  sql.join(
    states.map((s) => sql`${s}`),
    sql`, `,
  );

/**
 * Changes when anything the dashboard shows from the database changes: a task moved (every move
 * appends an event) or an alert fired, refired, cleared or was acknowledged. Two index look-ups and
 * the firing alerts (few), so the dashboard can ask every second.
 */
export async function dashboardWatermark(db: Db): Promise<string> {
  const [row] = resultRows<{ watermark: string }>(
    await db.execute(sql`
      select (select coalesce(max(event_id), 0) from task_events)::text || '/' ||
             (select coalesce(max(alert_id), 0) from alerts)::text || '/' ||
             (select coalesce(md5(string_agg(alert_id::text || ',' || fire_count::text || ',' ||
                       coalesce(acknowledged_at::text, '') || ',' || message, '|'
                       order by alert_id)), '')
              from alerts where status = 'firing') as watermark`),
  );
  return row?.watermark ?? "";
}

export interface LaneCount {
  lane: Lane;
  queued: number;
  retry_wait: number;
  held: number;
}

/** Waiting tasks by lane (queued, in backoff, held). */
export async function countWaitingByLane(db: Db): Promise<LaneCount[]> {
  const rows = resultRows<{ lane: Lane; state: string; n: number }>(
    await db.execute(sql`
      select lane::text as lane, state::text as state, count(*)::int as n from tasks
      where state in ('queued', 'retry_wait', 'held') and ${isTopLevelTask()}
      group by lane, state`),
  );
  const byLane = new Map<Lane, LaneCount>();
  for (const r of rows) {
    const entry = byLane.get(r.lane) ?? { lane: r.lane, queued: 0, retry_wait: 0, held: 0 };
    entry[r.state as "queued" | "retry_wait" | "held"] = Number(r.n);
    byLane.set(r.lane, entry);
  }
  return [...byLane.values()];
}

export interface QueuedTaskRow {
  task_id: string;
  repo: string;
  issue_number: number;
  title: string;
  state: "queued" | "retry_wait";
  lane: Lane;
  /** The lane it is served in after aging: one lane up per aging period waited. */
  effective_lane: Lane;
  capabilities: string[];
  attempts: number;
  max_attempts: number;
  enqueued_at: number;
  available_at: number;
  last_error: string | null;
}

/**
 * Waiting tasks in the order runners will get them: queued ones in service order (lane after
 * aging, then FIFO, as `findClaimable` orders them), then those waiting out a backoff, soonest
 * first.
 */
export async function listWaitingTasks(
  db: Db,
  options: { agingMs: number; limit: number },
): Promise<QueuedTaskRow[]> {
  const agingSeconds = Math.max(1, Math.round(options.agingMs / 1000));
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      select task_id::text as task_id, full_name, issue_number, title, state::text as state,
             lane::text as lane, (enum_range(null::lane))[rank + 1]::text as effective_lane,
             capabilities, attempts, max_attempts, last_error,
             extract(epoch from enqueued_at)::float8 * 1000 as enqueued_at,
             extract(epoch from available_at)::float8 * 1000 as available_at
      from (
        select t.*, r.full_name,
               greatest(0, array_position(enum_range(null::lane), t.lane) - 1
                 - floor(extract(epoch from (now() - t.enqueued_at)) / ${agingSeconds})::int) as rank
        from tasks t join repositories r on r.repository_id = t.repository_id
        where t.state in ('queued', 'retry_wait') and ${isTopLevelTask("t")}
      ) w
      order by state = 'retry_wait', case when state = 'queued' then rank end, 
               case when state = 'queued' then enqueued_at else available_at end
      limit ${options.limit}`),
  );
  return rows.map((r) => ({
    task_id: String(r.task_id),
    repo: String(r.full_name),
    issue_number: Number(r.issue_number),
    title: String(r.title),
    state: r.state as QueuedTaskRow["state"],
    lane: r.lane as Lane,
    effective_lane: r.effective_lane as Lane,
    capabilities: (r.capabilities as string[] | null) ?? [],
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    enqueued_at: ms(r.enqueued_at)!,
    available_at: ms(r.available_at)!,
    last_error: (r.last_error as string | null) ?? null,
  }));
}

export interface ActiveTaskRow {
  task_id: string;
  repo: string;
  issue_number: number;
  title: string;
  state: TaskState;
  lane: Lane;
  generation: number;
  attempts: number;
  max_attempts: number;
  runner_id: string | null;
  runner_name: string | null;
  created_at: number;
  /** When it entered its current state. */
  since: number;
  lease_expires_at: number | null;
  pr_number: number | null;
  pr_url: string | null;
  last_error: string | null;
  /** For a best-of-N candidate: its task and its k (the Runners panel shows it, In flight not). */
  parent_task_id: string | null;
  candidate: number | null;
}

/**
 * Tasks between a runner taking them and their end, most recently moved first, candidates
 * included: a runner holding one is busy with it.
 */
export async function listActiveTasks(db: Db, limit: number): Promise<ActiveTaskRow[]> {
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      select t.task_id::text as task_id, r.full_name, t.issue_number, t.title,
             t.state::text as state, t.lane::text as lane, t.generation, t.attempts,
             t.max_attempts, t.runner_id::text as runner_id, ru.name as runner_name,
             t.pr_number, p.url as pr_url, t.last_error,
             t.parent_task_id::text as parent_task_id, t.candidate,
             extract(epoch from t.created_at)::float8 * 1000 as created_at,
             extract(epoch from coalesce(e.at, t.updated_at))::float8 * 1000 as since,
             extract(epoch from t.lease_expires_at)::float8 * 1000 as lease_expires_at
      from tasks t
      join repositories r on r.repository_id = t.repository_id
      left join runners ru on ru.runner_id = t.runner_id
      left join lateral (
        select url from pull_requests p where p.task_id = t.task_id
        order by p.created_at desc limit 1) p on true
      left join lateral (
        select at from task_events e where e.task_id = t.task_id
        order by e.event_id desc limit 1) e on true
      where t.state in (${list(IN_FLIGHT_STATES)})
      order by t.updated_at desc
      limit ${limit}`),
  );
  return rows.map((r) => ({
    task_id: String(r.task_id),
    repo: String(r.full_name),
    issue_number: Number(r.issue_number),
    title: String(r.title),
    state: r.state as TaskState,
    lane: r.lane as Lane,
    generation: Number(r.generation),
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    runner_id: (r.runner_id as string | null) ?? null,
    runner_name: (r.runner_name as string | null) ?? null,
    created_at: ms(r.created_at)!,
    since: ms(r.since)!,
    lease_expires_at: ms(r.lease_expires_at),
    pr_number: r.pr_number === null ? null : Number(r.pr_number),
    pr_url: (r.pr_url as string | null) ?? null,
    last_error: (r.last_error as string | null) ?? null,
    parent_task_id: (r.parent_task_id as string | null) ?? null,
    candidate: r.candidate === null || r.candidate === undefined ? null : Number(r.candidate),
  }));
}

export interface ResultRow {
  task_id: string;
  repo: string;
  issue_number: number;
  title: string;
  state: TaskState;
  pr_number: number | null;
  pr_url: string | null;
  attempts: number;
  created_at: number;
  finished_at: number;
  /** When a runner first took it (null: never ran). */
  first_assigned_at: number | null;
  /** Its post-merge watch, if Conveyor merged it: the state and the last step in words. */
  after_merge: { state: string; note: string; revert_pr_number: number | null } | null;
}

/**
 * The latest tasks that reached an end (merged or cancelled), newest first. Found from the newest
 * events backwards along the primary key, so the cost does not grow with history.
 */
export async function listRecentResults(db: Db, limit: number): Promise<ResultRow[]> {
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      with ended as (
        select task_id, max(at) as at from (
          select task_id, at from task_events
          where to_state in ('merged', 'cancelled')
          order by event_id desc limit ${limit * 2}) e
        group by task_id
      )
      select t.task_id::text as task_id, r.full_name, t.issue_number, t.title,
             t.state::text as state, t.pr_number, p.url as pr_url, t.attempts,
             extract(epoch from t.created_at)::float8 * 1000 as created_at,
             extract(epoch from coalesce(t.finished_at, ended.at))::float8 * 1000 as finished_at,
             (select extract(epoch from min(a.at))::float8 * 1000 from task_events a
               where a.task_id = t.task_id and a.to_state = 'assigned') as first_assigned_at,
             w.state as watch_state, w.note as watch_note, w.revert_pr_number
      from ended
      join tasks t on t.task_id = ended.task_id
      join repositories r on r.repository_id = t.repository_id
      left join lateral (
        select url from pull_requests p where p.task_id = t.task_id
        order by p.created_at desc limit 1) p on true
      left join lateral (
        select state, note, revert_pr_number from merge_watches w where w.task_id = t.task_id
        order by w.watch_id desc limit 1) w on true
      where t.state in ('merged', 'cancelled') and ${isTopLevelTask("t")}
      order by coalesce(t.finished_at, ended.at) desc
      limit ${limit}`),
  );
  return rows.map((r) => ({
    task_id: String(r.task_id),
    repo: String(r.full_name),
    issue_number: Number(r.issue_number),
    title: String(r.title),
    state: r.state as TaskState,
    pr_number: r.pr_number === null ? null : Number(r.pr_number),
    pr_url: (r.pr_url as string | null) ?? null,
    attempts: Number(r.attempts),
    created_at: ms(r.created_at)!,
    finished_at: ms(r.finished_at)!,
    first_assigned_at: ms(r.first_assigned_at),
    after_merge:
      r.watch_state === null || r.watch_state === undefined
        ? null
        : {
            state: String(r.watch_state),
            note: String(r.watch_note ?? ""),
            revert_pr_number: r.revert_pr_number === null ? null : Number(r.revert_pr_number),
          },
  }));
}

export interface DeadTaskRow {
  task_id: string;
  repo: string;
  issue_number: number;
  title: string;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  pr_url: string | null;
  died_at: number;
}

/** Dead tasks (all attempts used), most recent first. */
export async function listDeadTasks(db: Db, limit: number): Promise<DeadTaskRow[]> {
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      select t.task_id::text as task_id, r.full_name, t.issue_number, t.title, t.attempts,
             t.max_attempts, t.last_error, p.url as pr_url,
             extract(epoch from t.updated_at)::float8 * 1000 as died_at
      from tasks t
      join repositories r on r.repository_id = t.repository_id
      left join lateral (
        select url from pull_requests p where p.task_id = t.task_id
        order by p.created_at desc limit 1) p on true
      where t.state = 'dead' and ${isTopLevelTask("t")}
      order by t.updated_at desc
      limit ${limit}`),
  );
  return rows.map((r) => ({
    task_id: String(r.task_id),
    repo: String(r.full_name),
    issue_number: Number(r.issue_number),
    title: String(r.title),
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    last_error: (r.last_error as string | null) ?? null,
    pr_url: (r.pr_url as string | null) ?? null,
    died_at: ms(r.died_at)!,
  }));
}

/** How many dead tasks there are (the list is capped). */
export async function countDeadTasks(db: Db): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await db.execute(
      sql`select count(*)::int as n from tasks where state = 'dead' and ${isTopLevelTask()}`,
    ),
  );
  return Number(row?.n ?? 0);
}

export interface RegisteredRunnerRow {
  runner_id: string;
  name: string;
  tier: string;
  capabilities: string[];
  last_seen_at: number | null;
  last_assigned_at: number | null;
}

/** Runners that are not revoked. */
export async function listRegisteredRunners(db: Db): Promise<RegisteredRunnerRow[]> {
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      select runner_id::text as runner_id, name, tier::text as tier, capabilities,
             extract(epoch from last_seen_at)::float8 * 1000 as last_seen_at,
             extract(epoch from last_assigned_at)::float8 * 1000 as last_assigned_at
      from runners where revoked_at is null order by name`),
  );
  return rows.map((r) => ({
    runner_id: String(r.runner_id),
    name: String(r.name),
    tier: String(r.tier),
    capabilities: (r.capabilities as string[] | null) ?? [],
    last_seen_at: ms(r.last_seen_at),
    last_assigned_at: ms(r.last_assigned_at),
  }));
}

export interface AlertRow {
  alert_id: number;
  rule: string;
  severity: string;
  status: string;
  message: string;
  first_fired_at: number;
  last_fired_at: number;
  fire_count: number;
  cleared_at: number | null;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
}

/** Every firing alert, then the latest cleared ones. */
export async function listDashboardAlerts(db: Db, recentCleared: number): Promise<AlertRow[]> {
  const columns = sql`alert_id, rule, severity, status, message, fire_count, acknowledged_by,
    extract(epoch from first_fired_at)::float8 * 1000 as first_fired_at,
    extract(epoch from last_fired_at)::float8 * 1000 as last_fired_at,
    extract(epoch from cleared_at)::float8 * 1000 as cleared_at,
    extract(epoch from acknowledged_at)::float8 * 1000 as acknowledged_at`;
  const rows = resultRows<Record<string, unknown>>(
    await db.execute(sql`
      (select ${columns} from alerts where status = 'firing'
       order by last_fired_at desc limit 100)
      union all
      (select ${columns} from alerts where status = 'cleared'
       order by last_fired_at desc limit ${recentCleared})`),
  );
  return rows.map((r) => ({
    alert_id: Number(r.alert_id),
    rule: String(r.rule),
    severity: String(r.severity),
    status: String(r.status),
    message: String(r.message),
    first_fired_at: ms(r.first_fired_at)!,
    last_fired_at: ms(r.last_fired_at)!,
    fire_count: Number(r.fire_count),
    cleared_at: ms(r.cleared_at),
    acknowledged_at: ms(r.acknowledged_at),
    acknowledged_by: (r.acknowledged_by as string | null) ?? null,
  }));
}
