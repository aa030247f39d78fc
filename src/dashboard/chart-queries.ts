import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { SAMPLE_METRICS } from "../loops/metrics-sampler.ts";
import { isRunnerJob } from "../store/task-kinds.ts";
import { BUSY_STATES, WAITING_STATES } from "./dashboard-queries.ts";

/*
 * The charts' history, from the database alone, so every instance draws the same lines and a
 * restart loses nothing. Queue depth and busy slots are rebuilt exactly from `task_events` (every
 * move of every task is an event): the count now, minus what the window's events added, gives the
 * count before them, and the events replayed from there give each minute's peak.
 * Offered slots come from the metrics sampler's `runner_slots` samples when it writes them.
 */

/** The sampler's series of slots each runner offers, per instance holding it. */
const SAMPLED_SLOTS_METRIC = SAMPLE_METRICS.runnerSlots;

const PAGE = 1_000;

const inList = (states: readonly string[]) =>
  sql.join(
    states.map((s) => sql`${s}`),
    sql`, `,
  );

/**
 * The id of the first event at or after `sinceMs`. Walks the primary key (no index on `at`):
 * forward from `hint` (an earlier answer: windows only move forward), or backwards from the newest
 * event, a page at a time, so the cost is the window's events, not the table's history. Events are
 * numbered in the order they were inserted, which is their time order up to transactions that
 * overlapped; a chart does not mind that.
 */
export async function firstEventIdSince(
  db: Db,
  sinceMs: number,
  hint?: number,
  pageSize: number = PAGE,
): Promise<number> {
  const since = sinceMs / 1000;
  if (hint !== undefined) {
    let from = hint;
    for (;;) {
      const rows = resultRows<{ event_id: string | number; at: number }>(
        await db.execute(sql`
          select event_id, extract(epoch from at)::float8 as at from task_events
          where event_id >= ${from} order by event_id limit ${pageSize}`),
      );
      const hit = rows.find((r) => Number(r.at) >= since);
      if (hit) return Number(hit.event_id);
      if (rows.length < pageSize) return rows.length ? Number(rows.at(-1)!.event_id) + 1 : from;
      from = Number(rows.at(-1)!.event_id) + 1;
    }
  }
  let before: number | undefined;
  let first: number | undefined;
  for (;;) {
    const rows = resultRows<{ event_id: string | number; at: number }>(
      await db.execute(sql`
        select event_id, extract(epoch from at)::float8 as at from task_events
        ${before === undefined ? sql`` : sql`where event_id < ${before}`}
        order by event_id desc limit ${pageSize}`),
    );
    for (const row of rows) {
      if (Number(row.at) < since) return first ?? Number(row.event_id) + 1;
      first = Number(row.event_id);
    }
    if (rows.length < pageSize) return first ?? 1;
    before = Number(rows.at(-1)!.event_id);
  }
}

export interface MinuteDeltas {
  /** Minute index: floor(epoch seconds / 60). */
  minute: number;
  /** How the minute's events changed the waiting and busy counts. */
  waiting: number;
  busy: number;
  /**
   * The highest the counts reached within the minute, as a change since the first event read
   * (so a task that waited two seconds still shows on a per-minute chart).
   */
  waiting_peak: number;
  busy_peak: number;
  succeeded: number;
  failed: number;
  dead: number;
}

/**
 * Per minute from `fromEventId` on: how the waiting and busy counts changed (and their peak), how
 * many attempts ended well (a result) or badly (a failure, a lost lease, a timeout), and how many
 * tasks died. The definitions match `/api/metrics`.
 */
export async function eventDeltasByMinute(db: Db, fromEventId: number): Promise<MinuteDeltas[]> {
  const waiting = inList(WAITING_STATES);
  const busy = inList(BUSY_STATES);
  const rows = resultRows<Record<string, number | string>>(
    await db.execute(sql`
      with changes as (
        select event_id, at, from_state, to_state,
               (to_state in (${waiting}))::int - coalesce((from_state in (${waiting}))::int, 0) as dw,
               (to_state in (${busy}))::int - coalesce((from_state in (${busy}))::int, 0) as db
        from task_events where event_id >= ${fromEventId}
      ), running as (
        select *, sum(dw) over w as cw, sum(db) over w as cb
        from changes
        window w as (order by at, event_id rows unbounded preceding)
      )
      select floor(extract(epoch from at) / 60)::int as minute,
             sum(dw)::int as waiting, sum(db)::int as busy,
             max(cw)::int as waiting_peak, max(cb)::int as busy_peak,
             count(*) filter (where from_state in ('assigned', 'running')
                              and to_state = 'pushed')::int as succeeded,
             count(*) filter (where from_state in ('assigned', 'running')
                              and to_state in ('retry_wait', 'dead', 'failed'))::int as failed,
             count(*) filter (where to_state = 'dead')::int as dead
      from running
      group by 1 order by 1`),
  );
  return rows.map((r) => ({
    minute: Number(r.minute),
    waiting: Number(r.waiting),
    busy: Number(r.busy),
    waiting_peak: Number(r.waiting_peak),
    busy_peak: Number(r.busy_peak),
    succeeded: Number(r.succeeded),
    failed: Number(r.failed),
    dead: Number(r.dead),
  }));
}

/** Tasks waiting for a runner and tasks holding a slot, now. */
export async function currentCounts(db: Db): Promise<{ waiting: number; busy: number }> {
  const [row] = resultRows<{ waiting: number; busy: number }>(
    await db.execute(sql`
      select count(*) filter (where state in (${inList(WAITING_STATES)}))::int as waiting,
             count(*) filter (where state in (${inList(BUSY_STATES)}))::int as busy
      from tasks where state in (${inList([...WAITING_STATES, ...BUSY_STATES])})
        and ${isRunnerJob()}`),
  );
  return { waiting: Number(row?.waiting ?? 0), busy: Number(row?.busy ?? 0) };
}

export interface MinuteLatency {
  minute: number;
  wait_p50: number | null;
  wait_p90: number | null;
  wait_p99: number | null;
  end_to_end_p50: number | null;
}

/**
 * Percentiles per minute, in seconds: the wait of each assignment (since the task entered the
 * queue: the event before an assignment is always that entry) and the end-to-end time of each
 * merge (since the task was created).
 */
export async function latencyByMinute(db: Db, fromEventId: number): Promise<MinuteLatency[]> {
  const rows = resultRows<{ minute: number; kind: string; p: (number | string)[] | null }>(
    await db.execute(sql`
      with durations as (
        select floor(extract(epoch from e.at) / 60)::int as minute, 'wait' as kind,
               extract(epoch from e.at - p.at)::float8 as seconds
        from task_events e
        cross join lateral (
          select at from task_events p
          where p.task_id = e.task_id and p.event_id < e.event_id
          order by p.event_id desc limit 1) p
        where e.to_state = 'assigned' and e.event_id >= ${fromEventId}
        union all
        select floor(extract(epoch from e.at) / 60)::int, 'end_to_end',
               extract(epoch from e.at - t.created_at)::float8
        from task_events e join tasks t on t.task_id = e.task_id
        where e.to_state = 'merged' and e.event_id >= ${fromEventId}
      )
      select minute, kind,
             percentile_cont(array[0.5, 0.9, 0.99]::float8[])
               within group (order by seconds) as p
      from durations where seconds >= 0
      group by minute, kind`),
  );
  const byMinute = new Map<number, MinuteLatency>();
  for (const row of rows) {
    const minute = Number(row.minute);
    const entry = byMinute.get(minute) ?? {
      minute,
      wait_p50: null,
      wait_p90: null,
      wait_p99: null,
      end_to_end_p50: null,
    };
    const p = (row.p ?? []).map(Number);
    if (row.kind === "wait") {
      entry.wait_p50 = p[0] ?? null;
      entry.wait_p90 = p[1] ?? null;
      entry.wait_p99 = p[2] ?? null;
    } else {
      entry.end_to_end_p50 = p[0] ?? null;
    }
    byMinute.set(minute, entry);
  }
  return [...byMinute.values()];
}

/**
 * Slots runners offered per minute, from the metrics sampler (each runner's samples averaged over
 * the minute, then summed over runners, whichever instance held them); empty when it wrote none.
 */
export async function sampledSlotsByMinute(
  db: Db,
  sinceMs: number,
): Promise<{ minute: number; slots: number }[]> {
  const rows = resultRows<{ minute: number; slots: number }>(
    await db.execute(sql`
      select minute, sum(slots)::float8 as slots
      from (
        select floor(extract(epoch from sampled_at) / 60)::int as minute, labels,
               avg(value) as slots
        from metric_samples
        where metric = ${SAMPLED_SLOTS_METRIC}
          and sampled_at >= to_timestamp(${sinceMs / 1000})
        group by 1, labels) s
      group by minute order by minute`),
  );
  return rows.map((r) => ({ minute: Number(r.minute), slots: Number(r.slots) }));
}
