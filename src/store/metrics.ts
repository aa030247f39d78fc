import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import type { Sample } from "../core/metrics-math.ts";
import { isRunnerJob, isTopLevelTask } from "./task-kinds.ts";

/*
 * The metrics' SQL. Gauges are grouped counts over small tables; durations come from
 * `task_events` (every transition with its time): wait = queued → assigned, run = assigned → the
 * end of an accepted attempt, end to end = created → merged. Windowed queries start from the first
 * event of the window found by a binary search over the primary key (see `firstEventIdSince`).
 */

const ts = (d: Date) => sql`${d.toISOString()}::timestamptz`;

export async function countTasksByStateAndLane(
  db: Db,
): Promise<{ state: string; lane: string; n: number }[]> {
  return resultRows<{ state: string; lane: string; n: number }>(
    await db.execute(sql`
      select state::text as state, lane::text as lane, count(*)::int as n
      from tasks where ${isTopLevelTask()} group by state, lane`),
  ).map((r) => ({ ...r, n: Number(r.n) }));
}

/** Tasks waiting for a runner (queued, or in backoff before the next attempt) by lane. */
export async function queueDepthByLane(db: Db): Promise<Record<string, number>> {
  const rows = resultRows<{ lane: string; n: number }>(
    await db.execute(sql`
      select lane::text as lane, count(*)::int as n from tasks
      where state in ('queued', 'retry_wait') and ${isRunnerJob()} group by lane`),
  );
  return Object.fromEntries(rows.map((r) => [r.lane, Number(r.n)]));
}

/** Seconds the oldest queued task of each lane has waited. */
export async function oldestQueuedByLane(db: Db): Promise<Record<string, number>> {
  const rows = resultRows<{ lane: string; seconds: number }>(
    await db.execute(sql`
      select lane::text as lane,
             extract(epoch from now() - min(enqueued_at))::float8 as seconds
      from tasks where state = 'queued' and ${isRunnerJob()} group by lane`),
  );
  return Object.fromEntries(rows.map((r) => [r.lane, Math.max(0, Number(r.seconds))]));
}

export interface RunnerCounts {
  /** Not revoked. */
  registered: number;
  /** Not revoked and seen by some instance since `onlineSince`. */
  online: number;
  revoked: number;
}

export async function countRunners(db: Db, onlineSince: Date): Promise<RunnerCounts> {
  const [row] = resultRows<{ registered: number; online: number; revoked: number }>(
    await db.execute(sql`
      select count(*) filter (where revoked_at is null)::int as registered,
             count(*) filter (where revoked_at is null
                              and last_seen_at >= ${ts(onlineSince)})::int as online,
             count(*) filter (where revoked_at is not null)::int as revoked
      from runners`),
  );
  return {
    registered: Number(row?.registered ?? 0),
    online: Number(row?.online ?? 0),
    revoked: Number(row?.revoked ?? 0),
  };
}

/**
 * Every instance stamps the runners whose sockets it holds, so "online" is known cluster-wide
 * (a socket lives on one instance; the alerter and the API may run on another).
 */
export async function markRunnersSeen(db: Db, runnerIds: readonly string[], at: Date) {
  if (runnerIds.length === 0) return;
  await db.execute(sql`
    update runners set last_seen_at = ${ts(at)}
    where runner_id in (${sql.join(
      runnerIds.map((id) => sql`${id}::uuid`),
      sql`, `,
    )})
      and (last_seen_at is null or last_seen_at < ${ts(at)})`);
}

export interface RunnerInfo {
  runnerId: string;
  name: string;
  revoked: boolean;
  lastSeenAt: number | null;
  busy: number;
}

/** Every runner with its tasks in flight (assigned or running). */
export async function runnersWithBusySlots(db: Db): Promise<RunnerInfo[]> {
  const rows = resultRows<{
    runner_id: string;
    name: string;
    revoked: boolean;
    last_seen_ms: number | null;
    busy: number;
  }>(
    await db.execute(sql`
      select r.runner_id::text as runner_id, r.name, r.revoked_at is not null as revoked,
             extract(epoch from r.last_seen_at)::float8 * 1000 as last_seen_ms,
             (select count(*)::int from tasks t
               where t.runner_id = r.runner_id and t.state in ('assigned', 'running')) as busy
      from runners r order by r.created_at, r.name`),
  );
  return rows.map((r) => ({
    runnerId: r.runner_id,
    name: r.name,
    revoked: Boolean(r.revoked),
    lastSeenAt: r.last_seen_ms === null ? null : Number(r.last_seen_ms),
    busy: Number(r.busy),
  }));
}

/**
 * Pull requests by state, and by the verdict and tier of their latest `Conveyor / safety` check,
 * which the merger writes in front of the check's digest (`<verdict>:<tier>:<sha256>`).
 */
export async function countPullRequests(
  db: Db,
): Promise<{ state: string; verdict: string; tier: string; n: number }[]> {
  return resultRows<{ state: string; verdict: string; tier: string; n: number }>(
    await db.execute(sql`
      select state,
             case when verdict_digest ~ '^[a-z_]+:[0-9]:' then split_part(verdict_digest, ':', 1)
                  else 'none' end as verdict,
             case when verdict_digest ~ '^[a-z_]+:[0-9]:' then split_part(verdict_digest, ':', 2)
                  else 'none' end as tier,
             count(*)::int as n
      from pull_requests group by 1, 2, 3`),
  ).map((r) => ({ ...r, n: Number(r.n) }));
}

export async function countFiringAlerts(
  db: Db,
): Promise<{ rule: string; severity: string; n: number }[]> {
  return resultRows<{ rule: string; severity: string; n: number }>(
    await db.execute(sql`
      select rule, severity, count(*)::int as n from alerts
      where status = 'firing' group by rule, severity`),
  ).map((r) => ({ ...r, n: Number(r.n) }));
}

// ---------------------------------------------------------------------------------------------
// Samples: gauges with history (queue depth, runner slots), one series however many instances.

export interface SampleRow {
  metric: string;
  /** A stable label string, e.g. `lane=normal`; '' for none. */
  labels: string;
  at: Date;
  value: number;
}

export async function insertSamples(db: Db, rows: readonly SampleRow[]): Promise<void> {
  const usable = rows.filter((r) => Number.isFinite(r.value));
  if (usable.length === 0) return;
  await db.execute(sql`
    insert into metric_samples (metric, labels, sampled_at, value)
    values ${sql.join(
      usable.map((r) => sql`(${r.metric}, ${r.labels}, ${ts(r.at)}, ${r.value})`),
      sql`, `,
    )}
    on conflict do nothing`);
}

/** One series since `since`, oldest first. */
export async function readSamples(
  db: Db,
  metric: string,
  labels: string,
  since: Date,
): Promise<Sample[]> {
  const rows = resultRows<{ at_ms: number; value: number }>(
    await db.execute(sql`
      select extract(epoch from sampled_at)::float8 * 1000 as at_ms, value from metric_samples
      where metric = ${metric} and labels = ${labels} and sampled_at >= ${ts(since)}
      order by sampled_at`),
  );
  return rows.map((r) => ({ at: Number(r.at_ms), value: Number(r.value) }));
}

/** The latest `limit` samples of one series, oldest first. */
export async function latestSamples(
  db: Db,
  metric: string,
  labels: string,
  limit: number,
): Promise<Sample[]> {
  const rows = resultRows<{ at_ms: number; value: number }>(
    await db.execute(sql`
      select extract(epoch from sampled_at)::float8 * 1000 as at_ms, value from metric_samples
      where metric = ${metric} and labels = ${labels}
      order by sampled_at desc limit ${limit}`),
  );
  return rows.map((r) => ({ at: Number(r.at_ms), value: Number(r.value) })).reverse();
}

/** Every series of `metric` since `since`: label string → samples, oldest first. */
export async function readSampleSeries(
  db: Db,
  metric: string,
  since: Date,
): Promise<Map<string, Sample[]>> {
  const rows = resultRows<{ labels: string; at_ms: number; value: number }>(
    await db.execute(sql`
      select labels, extract(epoch from sampled_at)::float8 * 1000 as at_ms, value
      from metric_samples
      where metric = ${metric} and sampled_at >= ${ts(since)}
      order by sampled_at`),
  );
  const series = new Map<string, Sample[]>();
  for (const r of rows) {
    const list = series.get(r.labels) ?? [];
    list.push({ at: Number(r.at_ms), value: Number(r.value) });
    series.set(r.labels, list);
  }
  return series;
}

export async function pruneSamples(db: Db, metrics: readonly string[], before: Date) {
  // One statement per metric: the primary key (metric, labels, sampled_at) serves each.
  for (const metric of metrics) {
    await db.execute(sql`
      delete from metric_samples where metric = ${metric} and sampled_at < ${ts(before)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Durations from task_events.

/**
 * The first `task_events` id at or after `since`. The table has no index on `at`, but ids are
 * handed out in time order, so a binary search over the primary key finds the window's start in
 * about log2(rows) index probes instead of a scan of the whole history. Transactions that commit
 * out of order make `at` only nearly monotonic in the id; a window edge a few milliseconds off is
 * harmless.
 */
export async function firstEventIdSince(db: Db, since: Date): Promise<number> {
  // Search [lo, hi) in id space; `best` is the smallest id seen whose event is in the window.
  // Ids have gaps (rolled-back inserts), so a probe takes the first event at or after the middle,
  // and a probe past `hi` means the upper half holds no events at all.
  const [row] = resultRows<{ first: string | number | null }>(
    await db.execute(sql`
      with recursive search(lo, hi, best) as (
        select coalesce((select min(event_id) from task_events), 1)::bigint,
               coalesce((select max(event_id) from task_events), 0)::bigint + 1,
               coalesce((select max(event_id) from task_events), 0)::bigint + 1
        union all
        select
          case when p.event_id < s.hi and p.at < ${ts(since)} then p.event_id + 1 else s.lo end,
          case when p.event_id < s.hi and p.at < ${ts(since)} then s.hi else (s.lo + s.hi) / 2 end,
          case when p.event_id < s.hi and p.at >= ${ts(since)} then least(s.best, p.event_id)
               else s.best end
        from search s
        left join lateral (
          select event_id, at from task_events
          where event_id >= (s.lo + s.hi) / 2
          order by event_id limit 1) p on true
        where s.lo < s.hi
      )
      select min(best) as first from search`),
  );
  return Number(row?.first ?? 0);
}

export type DurationKind = "wait" | "run" | "end_to_end";

/** The durations (seconds) of one kind that ended at or after the event `fromEventId`. */
function durationQuery(kind: DurationKind, fromEventId: number) {
  switch (kind) {
    case "wait":
      // The event before an assignment is always the task's entry into `queued`.
      return sql`
        select extract(epoch from e.at - p.at)::float8 as seconds
        from task_events e
        cross join lateral (
          select at from task_events p
          where p.task_id = e.task_id and p.event_id < e.event_id
          order by p.event_id desc limit 1) p
        where e.to_state = 'assigned' and e.event_id >= ${fromEventId}`;
    case "run":
      // Accepted attempts only: a runner that rejected at once never ran anything.
      return sql`
        select extract(epoch from e.at - a.at)::float8 as seconds
        from task_events e
        cross join lateral (
          select at from task_events a
          where a.task_id = e.task_id and a.generation = e.generation
            and a.to_state = 'assigned' and a.event_id < e.event_id
          order by a.event_id desc limit 1) a
        where e.from_state = 'running' and e.to_state <> 'running'
          and e.event_id >= ${fromEventId}`;
    case "end_to_end":
      return sql`
        select extract(epoch from e.at - t.created_at)::float8 as seconds
        from task_events e join tasks t on t.task_id = e.task_id
        where e.to_state = 'merged' and e.event_id >= ${fromEventId}`;
  }
}

/** Every duration of one kind from the event `fromEventId` on (a window: a bounded list). */
export async function durationsFrom(
  db: Db,
  kind: DurationKind,
  fromEventId: number,
): Promise<number[]> {
  const rows = resultRows<{ seconds: number }>(await db.execute(durationQuery(kind, fromEventId)));
  return rows.map((r) => Number(r.seconds));
}

export interface DurationAggregate {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  mean: number | null;
  max: number | null;
}

/**
 * The same figures over all history, computed by the database (`percentile_cont`, the definition
 * `percentile` in the core uses too) so no history travels to the app.
 */
export async function aggregateDurations(db: Db, kind: DurationKind): Promise<DurationAggregate> {
  const [row] = resultRows<{
    n: number;
    p50: number | null;
    p90: number | null;
    p99: number | null;
    mean: number | null;
    max: number | null;
  }>(
    await db.execute(sql`
      select count(*)::int as n,
             percentile_cont(0.5) within group (order by seconds) as p50,
             percentile_cont(0.9) within group (order by seconds) as p90,
             percentile_cont(0.99) within group (order by seconds) as p99,
             avg(seconds)::float8 as mean, max(seconds) as max
      from (${durationQuery(kind, 0)}) d
      where seconds >= 0`),
  );
  const num = (v: number | null | undefined) => (v === null || v === undefined ? null : Number(v));
  return {
    count: Number(row?.n ?? 0),
    p50: num(row?.p50),
    p90: num(row?.p90),
    p99: num(row?.p99),
    mean: num(row?.mean),
    max: num(row?.max),
  };
}

export interface OutcomeCounts {
  /** Attempts that ended (a result, or a failure of any kind). */
  attempts: number;
  /** Attempts that failed (runner `fail`, lease or accept expiry, deadline). */
  failedAttempts: number;
  merged: number;
  dead: number;
  cancelled: number;
}

/** Attempt and task outcomes from the event `fromEventId` on (0: all history). */
export async function countOutcomes(db: Db, fromEventId: number): Promise<OutcomeCounts> {
  const [row] = resultRows<Record<keyof OutcomeCounts, number>>(
    await db.execute(sql`
      select
        count(*) filter (where from_state in ('assigned', 'running')
                         and to_state in ('pushed', 'retry_wait', 'dead', 'failed'))::int
          as "attempts",
        count(*) filter (where from_state in ('assigned', 'running')
                         and to_state in ('retry_wait', 'dead', 'failed'))::int
          as "failedAttempts",
        count(*) filter (where to_state = 'merged')::int as "merged",
        count(*) filter (where to_state = 'dead')::int as "dead",
        count(*) filter (where to_state = 'cancelled')::int as "cancelled"
      from task_events where event_id >= ${fromEventId}`),
  );
  return {
    attempts: Number(row?.attempts ?? 0),
    failedAttempts: Number(row?.failedAttempts ?? 0),
    merged: Number(row?.merged ?? 0),
    dead: Number(row?.dead ?? 0),
    cancelled: Number(row?.cancelled ?? 0),
  };
}

export interface ActiveTaskRow {
  taskId: string;
  repo: string;
  issueNumber: number;
  state: "assigned" | "running";
  /** When the lease or accept window ends (ms), or null if none is set. */
  leaseExpiresAt: number | null;
  updatedAt: number;
}

/** Tasks holding a runner slot, with their lease: how the alerter tells the stuck ones. */
export async function activeTasks(db: Db): Promise<ActiveTaskRow[]> {
  const rows = resultRows<{
    task_id: string;
    full_name: string;
    issue_number: number;
    state: "assigned" | "running";
    lease_ms: number | null;
    updated_ms: number;
  }>(
    await db.execute(sql`
      select t.task_id::text as task_id, r.full_name, t.issue_number, t.state::text as state,
             extract(epoch from t.lease_expires_at)::float8 * 1000 as lease_ms,
             extract(epoch from t.updated_at)::float8 * 1000 as updated_ms
      from tasks t join repositories r on r.repository_id = t.repository_id
      where t.state in ('assigned', 'running') and ${isRunnerJob("t")}`),
  );
  return rows.map((r) => ({
    taskId: r.task_id,
    repo: r.full_name,
    issueNumber: Number(r.issue_number),
    state: r.state,
    leaseExpiresAt: r.lease_ms === null ? null : Number(r.lease_ms),
    updatedAt: Number(r.updated_ms),
  }));
}

// ---------------------------------------------------------------------------------------------
// The event tail: every transition observed once into histograms and counters.

export interface TailEvent {
  eventId: number;
  fromState: string | null;
  toState: string;
  actor: string;
  lane: string;
  waitSeconds: number | null;
  runSeconds: number | null;
  endToEndSeconds: number | null;
}

/**
 * Events after `afterId` that are at least `settleMs` old, oldest first, with the durations they
 * end. The delay lets transactions that took an id earlier but commit later land first, so the
 * cursor does not step over them.
 */
export async function tailEvents(
  db: Db,
  afterId: number,
  settleMs: number,
  limit: number,
): Promise<TailEvent[]> {
  const rows = resultRows<{
    event_id: string | number;
    from_state: string | null;
    to_state: string;
    actor: string;
    lane: string;
    wait_s: number | null;
    run_s: number | null;
    e2e_s: number | null;
  }>(
    await db.execute(sql`
      select e.event_id, e.from_state::text as from_state, e.to_state::text as to_state, e.actor,
             t.lane::text as lane,
             case when e.to_state = 'assigned' then extract(epoch from e.at - (
               select p.at from task_events p
               where p.task_id = e.task_id and p.event_id < e.event_id
               order by p.event_id desc limit 1))::float8 end as wait_s,
             case when e.from_state = 'running' and e.to_state <> 'running'
               then extract(epoch from e.at - (
               select a.at from task_events a
               where a.task_id = e.task_id and a.generation = e.generation
                 and a.to_state = 'assigned' and a.event_id < e.event_id
               order by a.event_id desc limit 1))::float8 end as run_s,
             case when e.to_state = 'merged'
               then extract(epoch from e.at - t.created_at)::float8 end as e2e_s
      from task_events e join tasks t on t.task_id = e.task_id
      where e.event_id > ${afterId}
        and e.at < now() - ${`${settleMs} milliseconds`}::interval
      order by e.event_id
      limit ${limit}`),
  );
  const num = (v: number | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({
    eventId: Number(r.event_id),
    fromState: r.from_state,
    toState: r.to_state,
    actor: r.actor,
    lane: r.lane,
    waitSeconds: num(r.wait_s),
    runSeconds: num(r.run_s),
    endToEndSeconds: num(r.e2e_s),
  }));
}

const CURSOR_METRIC = "task_events_cursor";
// The cursor is one row in metric_samples (the schema has no better place): a fixed timestamp
// makes it a single row that is updated in place.
const CURSOR_AT = "1970-01-01T00:00:00Z";

/** Where the event tail stopped, shared by whichever instance holds the tail's lease. */
export async function readEventCursor(db: Db): Promise<number | undefined> {
  const [row] = resultRows<{ value: number }>(
    await db.execute(sql`
      select value from metric_samples
      where metric = ${CURSOR_METRIC} and labels = '' and sampled_at = ${CURSOR_AT}::timestamptz`),
  );
  return row ? Number(row.value) : undefined;
}

export async function writeEventCursor(db: Db, eventId: number): Promise<void> {
  await db.execute(sql`
    insert into metric_samples (metric, labels, sampled_at, value)
    values (${CURSOR_METRIC}, '', ${CURSOR_AT}::timestamptz, ${eventId})
    on conflict (metric, labels, sampled_at) do update set value = excluded.value`);
}

/** The newest event id (where a first tail starts: history before it is not replayed). */
export async function latestEventId(db: Db): Promise<number> {
  const [row] = resultRows<{ id: string | number | null }>(
    await db.execute(sql`select max(event_id) as id from task_events`),
  );
  return Number(row?.id ?? 0);
}

/** Per repository: pull requests a verdict said "would merge" about, and how many a person merged. */
export interface TrustRow {
  repository: string;
  /** Pull requests whose verdict said "would merge" (merge.mode approve or report). */
  would_merge: number;
  /** Of those, merged by a person (not Conveyor, not another bot). */
  merged_by_hand: number;
}

/**
 * The evidence for turning `merge.mode: auto` on, per repository, over all history: how many pull
 * requests Conveyor would have merged, and how many of them people then merged by hand.
 */
export async function trustByRepository(db: Db): Promise<TrustRow[]> {
  const rows = resultRows<TrustRow>(
    await db.execute(sql`
      select r.full_name as repository, count(*)::int as would_merge,
             count(*) filter (where p.state = 'merged' and p.merged_by_hand)::int as merged_by_hand
      from pull_requests p join repositories r on r.repository_id = p.repository_id
      where p.would_merge_at is not null
      group by r.full_name order by r.full_name`),
  );
  return rows.map((r) => ({
    repository: r.repository,
    would_merge: Number(r.would_merge),
    merged_by_hand: Number(r.merged_by_hand),
  }));
}
