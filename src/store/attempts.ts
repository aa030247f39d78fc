import { type SQL, sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/*
 * Per-attempt records: what the runner's heartbeats said about its agent (adapter, model, tool,
 * usage so far), what its `complete` or `fail` said at the end, and the attempt's log lines. The
 * runner is fenced by the caller (the session answers `stale` before any of these run).
 */

/** Usage figures as the protocol names them (`TaskStats`, `Progress`). */
export interface UsageFigures {
  turns?: number | undefined;
  tokens?: number | undefined;
  input_tokens?: number | undefined;
  output_tokens?: number | undefined;
  cache_read_tokens?: number | undefined;
  cache_write_tokens?: number | undefined;
  cost_usd?: number | undefined;
}

/** The final figures of `complete.stats` / `fail.stats`: the usage plus the attempt's wall time. */
export interface FinalStats extends UsageFigures {
  duration_ms?: number | undefined;
}

/** How an attempt ended, as its `complete` or `fail` frame said. */
export interface AttemptEnd {
  outcome: "completed" | "failed";
  /** The fail's reason (`budget exceeded`, `agent_failed`, …); only for `failed`. */
  failReason?: string | undefined;
  /** `complete.agent` / `fail.agent`: the adapter and model that made the attempt. */
  agent?: { adapter: string; model?: string | undefined } | undefined;
  stats?: FinalStats | undefined;
}

/** An attempt that ended: its fence and how it ended (what metrics and daily budgets hear of). */
export interface FinishedAttempt extends AttemptEnd {
  taskId: string;
  generation: number;
  runnerId: string;
}

export interface AttemptProgress extends UsageFigures {
  stage?: string | undefined;
  adapter?: string | undefined;
  model?: string | undefined;
  tool?: string | undefined;
}

export interface AttemptRow {
  task_id: string;
  generation: number;
  runner_id: string | null;
  adapter: string | null;
  model: string | null;
  stage: string | null;
  tool: string | null;
  turns: number | null;
  tokens: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_read_tokens: number | null;
  cache_write_tokens: number | null;
  cost_usd: number | null;
  outcome: string | null;
  fail_reason: string | null;
  duration_ms: number | null;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface LogLine {
  line_id: number;
  generation: number;
  at: string;
  line: string;
}

/** Lines kept per attempt: the oldest go when more arrive. */
export const ATTEMPT_LOG_LINES = 2_000;
/** A longer line is cut here (its start is what a reader needs). */
export const LOG_LINE_CHARS = 2_000;

const num = (v: number | undefined) => v ?? null;

/** An upsert's usage columns: a value reported now replaces the stored one; one not reported keeps it. */
const keepReported = sql.raw(
  [
    "adapter",
    "model",
    "turns",
    "tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
  ]
    .map((column) => `${column} = coalesce(excluded.${column}, a.${column})`)
    .join(", "),
);

/**
 * Records a heartbeat's progress on the attempt (created on the first one). Figures are totals so
 * far: a reported figure replaces the stored one, an unreported one keeps it. Returns whether the
 * status comment should show it now: true at most once per `throttleMs` per attempt (the first
 * report included), so a chatty agent costs one comment edit per window, never one per heartbeat.
 */
export async function recordProgress(
  db: Db,
  fence: { taskId: string; generation: number; runnerId: string },
  p: AttemptProgress,
  throttleMs: number,
): Promise<boolean> {
  const rows = resultRows<{ show: boolean }>(
    await db.execute(sql`
      insert into attempts as a (task_id, generation, runner_id, adapter, model, stage, tool, turns,
                                 tokens, input_tokens, output_tokens, cache_read_tokens,
                                 cache_write_tokens, cost_usd, progress_shown_at)
      values (${fence.taskId}, ${fence.generation}, ${fence.runnerId}, ${p.adapter ?? null},
              ${p.model ?? null}, ${p.stage ?? null}, ${p.tool ?? null}, ${num(p.turns)},
              ${num(p.tokens)}, ${num(p.input_tokens)}, ${num(p.output_tokens)},
              ${num(p.cache_read_tokens)}, ${num(p.cache_write_tokens)}, ${num(p.cost_usd)}, now())
      on conflict (task_id, generation) do update set
        stage = coalesce(excluded.stage, a.stage),
        tool = coalesce(excluded.tool, a.tool),
        ${keepReported},
        -- The throttle: moved only when the window since the last shown report has passed.
        progress_shown_at = case
          when a.progress_shown_at is null
            or a.progress_shown_at <= now() - ${`${throttleMs} milliseconds`}::interval
          then now() else a.progress_shown_at end,
        updated_at = now()
      -- xmax = 0 on a fresh insert; otherwise compare the stored time with the one just written.
      returning (xmax = 0 or a.progress_shown_at = now()) as show`),
  );
  const show = rows[0]?.show ?? false;
  if (show) {
    // The status comment owes an edit; the notifier writes it through the write pacer.
    await db.execute(sql`
      update tasks set status_version = status_version + 1
      where task_id = ${fence.taskId} and generation = ${fence.generation}
        and state in ('assigned', 'running')`);
  }
  return show;
}

/**
 * The end of an attempt: its outcome, the fail's reason, the agent the result frame named and the
 * final figures its `complete` or `fail` carried (created here when no heartbeat reported before:
 * a fast run can finish first). Reported values replace the heartbeats' totals, unreported ones
 * keep them. The one place final usage is written: the session runs it in the same transaction as
 * the task's state move, so a result and its attempt's figures commit together. Keyed by task and
 * generation: a frame the runner sends again (after a reconnect) overwrites the same row.
 */
export async function finishAttempt(
  db: Db,
  fence: { taskId: string; generation: number; runnerId: string },
  end: AttemptEnd,
): Promise<void> {
  await db.execute(
    finishAttemptsSql(
      sql`jsonb_to_recordset(${JSON.stringify([attemptEndRow(fence, end)])}::jsonb)
            as e(${ATTEMPT_END_COLUMNS})`,
    ),
  );
}

/**
 * The columns of an attempt's end as a record (`attemptEndRow`), for `jsonb_to_recordset(…) as
 * e(…)`. The figures are numeric there and cast where they are written: a runner may report a
 * fraction where the column holds a whole number.
 */
export const ATTEMPT_END_COLUMNS = sql.raw(
  `task_id uuid, generation int, runner_id uuid, adapter text, model text, turns numeric,
   tokens numeric, input_tokens numeric, output_tokens numeric, cache_read_tokens numeric,
   cache_write_tokens numeric, cost_usd float8, duration_ms numeric, outcome text,
   fail_reason text`,
);

/** One attempt's end as a record of `ATTEMPT_END_COLUMNS`. */
export function attemptEndRow(
  fence: { taskId: string; generation: number; runnerId: string },
  end: AttemptEnd,
): Record<string, unknown> {
  const stats = end.stats ?? {};
  return {
    task_id: fence.taskId,
    generation: fence.generation,
    runner_id: fence.runnerId,
    adapter: end.agent?.adapter ?? null,
    model: end.agent?.model ?? null,
    turns: num(stats.turns),
    tokens: num(stats.tokens),
    input_tokens: num(stats.input_tokens),
    output_tokens: num(stats.output_tokens),
    cache_read_tokens: num(stats.cache_read_tokens),
    cache_write_tokens: num(stats.cache_write_tokens),
    cost_usd: num(stats.cost_usd),
    duration_ms: num(stats.duration_ms),
    outcome: end.outcome,
    fail_reason: end.outcome === "failed" ? (end.failReason ?? null) : null,
  };
}

/**
 * `finishAttempt` as a statement over `source`, a FROM item aliased `e` with the columns of
 * `ATTEMPT_END_COLUMNS` (one row per attempt): `completeTasks` names the attempts of the tasks
 * it moved, so the moves and the attempts commit in one statement.
 */
export function finishAttemptsSql(source: SQL): SQL {
  return sql`
    insert into attempts as a (task_id, generation, runner_id, adapter, model, turns, tokens,
                               input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                               cost_usd, duration_ms, outcome, fail_reason, finished_at)
    select e.task_id, e.generation, e.runner_id, e.adapter, e.model, e.turns::int,
           e.tokens::bigint, e.input_tokens::bigint, e.output_tokens::bigint,
           e.cache_read_tokens::bigint, e.cache_write_tokens::bigint, e.cost_usd,
           e.duration_ms::bigint, e.outcome, e.fail_reason, now()
    from ${source}
    on conflict (task_id, generation) do update set
      ${keepReported},
      duration_ms = coalesce(excluded.duration_ms, a.duration_ms),
      outcome = excluded.outcome,
      fail_reason = excluded.fail_reason,
      finished_at = now(),
      updated_at = now()`;
}

/**
 * Appends lines to the attempt's log and drops the oldest beyond `cap`: a ring per attempt, so a
 * flood of output costs bounded space. Lines must already be redacted.
 */
export async function appendAttemptLog(
  db: Db,
  fence: { taskId: string; generation: number },
  lines: readonly string[],
  cap = ATTEMPT_LOG_LINES,
): Promise<void> {
  const kept = lines.slice(-cap).map((l) => l.slice(0, LOG_LINE_CHARS));
  if (!kept.length) return;
  await db.execute(sql`
    insert into attempt_logs (task_id, generation, line)
    select ${fence.taskId}, ${fence.generation}, line
    from unnest(${`{${kept.map(pgArrayItem).join(",")}}`}::text[]) with ordinality as l(line, n)
    order by n`);
  // Everything older than the newest `cap` lines of this attempt goes.
  await db.execute(sql`
    delete from attempt_logs
    where task_id = ${fence.taskId} and generation = ${fence.generation}
      and line_id < (select line_id from attempt_logs
                     where task_id = ${fence.taskId} and generation = ${fence.generation}
                     order by line_id desc offset ${cap - 1} limit 1)`);
}

/** Every attempt of a task, oldest first. */
export async function listAttempts(db: Db, taskId: string): Promise<AttemptRow[]> {
  return resultRows<AttemptRow>(
    await db.execute(sql`
      select task_id, generation, runner_id, adapter, model, stage, tool, turns,
             tokens::float8 as tokens, input_tokens::float8 as input_tokens,
             output_tokens::float8 as output_tokens, cache_read_tokens::float8 as cache_read_tokens,
             cache_write_tokens::float8 as cache_write_tokens, cost_usd, outcome, fail_reason,
             duration_ms::float8 as duration_ms, started_at::text, updated_at::text, finished_at::text
      from attempts where task_id = ${taskId} order by generation`),
  );
}

/** The task's latest attempt (highest generation) that reported anything, or undefined. */
export async function latestAttempt(db: Db, taskId: string): Promise<AttemptRow | undefined> {
  const rows = await listAttempts(db, taskId);
  return rows.at(-1);
}

/** The task's log lines after `afterId`, oldest first, at most `limit`. */
export async function logLinesAfter(
  db: Db,
  taskId: string,
  afterId: number,
  limit = 500,
): Promise<LogLine[]> {
  return resultRows<LogLine>(
    await db.execute(sql`
      select line_id::float8 as line_id, generation, at::text, line from attempt_logs
      where task_id = ${taskId} and line_id > ${afterId}
      order by line_id limit ${limit}`),
  );
}

/** The newest `limit` log lines of a task, oldest first (where a page starts). */
export async function lastLogLines(db: Db, taskId: string, limit = 500): Promise<LogLine[]> {
  const rows = resultRows<LogLine>(
    await db.execute(sql`
      select line_id::float8 as line_id, generation, at::text, line from attempt_logs
      where task_id = ${taskId} order by line_id desc limit ${limit}`),
  );
  return rows.reverse();
}

/** One element of a Postgres text array literal, quoted and escaped. */
function pgArrayItem(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
