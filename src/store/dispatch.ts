import { type SQL, sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { afterFailedAttempt } from "../core/task-machine.ts";
import {
  ATTEMPT_END_COLUMNS,
  type AttemptEnd,
  attemptEndRow,
  finishAttemptsSql,
} from "./attempts.ts";
import { pausedRepositoriesSql } from "./budgets.ts";
import { isRunnerJob } from "./task-kinds.ts";
import type { Task } from "./tasks.ts";
import { getTask, transitionTask } from "./tasks.ts";

/*
 * The dispatcher's SQL. Every statement is guarded by state, generation and runner, so a message
 * that arrives late, twice, or from the wrong runner changes nothing (the caller answers `stale`).
 */

/** Postgres array literal for text-like values (ids, capabilities, SHAs), every element quoted. */
export function arrayLiteral(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(",")}}`;
}

/** Postgres array literal for whole numbers. */
const integers = (values: readonly number[]) => `{${values.map((v) => Math.trunc(v)).join(",")}}`;

/** Service order: lane after aging (one lane up per `agingSeconds` waited), then FIFO. */
const serviceOrder = (agingSeconds: number, alias: "t" | "cand" = "t") => {
  const a = sql.raw(alias);
  return sql`
  greatest(0, array_position(enum_range(null::lane), ${a}.lane) - 1
           - floor(extract(epoch from (now() - ${a}.enqueued_at)) / ${agingSeconds})::int),
  ${a}.enqueued_at`;
};

export interface ClaimableRequest {
  /** The capability sets of the free runners; a task qualifies if one of them covers its needs. */
  capabilitySets: readonly (readonly string[])[];
  /**
   * The repository scope (`owner/name`, `owner/*`, lower case) of the runners offering
   * `capabilitySets[i]`, index for index; empty or absent: every repository.
   */
  scopes?: readonly (readonly string[])[];
  /** How many tasks at most: the free slots. */
  limit: number;
  agingMs: number;
  /** Tasks one installation may hold assigned or running at once; 0 or absent: no limit. */
  maxRunningPerInstallation?: number | undefined;
  /** An installation whose attempts cost this much today (UTC) gets no new work. */
  installationDailyBudgetUsd?: number | undefined;
}

/**
 * The concurrency caps a batch respects, as a condition on a candidate row aliased `cand` that
 * carries `repo_rank` and `installation_rank` (its place among the batch's candidates of its
 * repository and of its installation, in service order): the tasks of its repository already
 * assigned or running plus those ahead of it in the batch stay under the `max_running` it carries
 * (its repository's `tasks.max_running` when it was queued), and likewise for its installation and
 * `CONVEYOR_MAX_RUNNING_PER_INSTALLATION`.
 *
 * Counted without locks, so two instances claiming at the same instant may each see room for the
 * last slot and go one over; the next pass sees both and waits.
 */
export function withinRunningLimits(maxPerInstallation: number | undefined) {
  const perInstallation =
    maxPerInstallation && maxPerInstallation > 0
      ? sql`and (select count(*) from tasks busy
                 where busy.installation_id = cand.installation_id
                   and busy.state in ('assigned', 'running') and busy.runner_id is not null) + cand.installation_rank
                <= ${maxPerInstallation}`
      : sql``;
  return sql`(cand.limits->>'max_running' is null
       or (select count(*) from tasks busy
           where busy.repository_id = cand.repository_id
             and busy.state in ('assigned', 'running') and busy.runner_id is not null) + cand.repo_rank
          <= (cand.limits->>'max_running')::int)
     ${perInstallation}`;
}

/**
 * Whether the task's repository (`r`, joined to `tasks t`) lies in a runner's scope: an empty scope
 * admits every repository; otherwise its full name must equal a pattern, or its owner match an
 * `owner/*` pattern (both lower case).
 */
export function inScope(repos: readonly string[]): SQL {
  if (repos.length === 0) return sql`true`;
  const patterns = arrayLiteral(repos.map((r) => r.toLowerCase()));
  return sql`(lower(r.full_name) = any(${patterns}::text[])
    or split_part(lower(r.full_name), '/', 1) || '/*' = any(${patterns}::text[]))`;
}

/** A queued task a free runner could take, as read before it is claimed. */
export interface ClaimableTask {
  task_id: string;
  /** The generation now; the claim increments it. */
  generation: number;
  capabilities: string[];
  repository_id: number;
  installation_id: number;
  issue_number: number;
  full_name: string;
  default_branch: string;
  /** The default branch's head as last recorded (`repositories.head_sha`), for the head cache. */
  head_sha: string | null;
  /** Head of the task's open pull request: a follow-up attempt continues from it. */
  pr_head_sha: string | null;
}

/**
 * The first `limit` queued, due tasks in service order (lane after aging, then FIFO) that one of
 * the capability sets covers. A plain read, no lock: the dispatcher prepares these (GitHub reads)
 * before it claims them, so no transaction is held open across GitHub calls; `claimTasks` then
 * takes the ones still queued at the same generation.
 *
 * Within one lane the service order is plain FIFO (an older task has aged at least as far), so the
 * first `limit` of all lanes together are among the first `limit` of each lane: those are read
 * through the lane-and-age index (`tasks_claimable_idx`), a few rows per lane however long the
 * queue. That answer is exact when every one of them fits a free runner (capabilities and scope)
 * and none is under a running limit (`tasks.max_running`, `CONVEYOR_MAX_RUNNING_PER_INSTALLATION`)
 * or in a repository paused by its budget; otherwise the task to take may lie further down, and
 * the whole queue is read and ranked instead (`findClaimableCapped`).
 */
export async function findClaimable(db: Db, request: ClaimableRequest): Promise<ClaimableTask[]> {
  if (request.limit <= 0 || request.capabilitySets.length === 0) return [];
  const capped =
    request.maxRunningPerInstallation !== undefined && request.maxRunningPerInstallation > 0;
  if (!capped) {
    const head = await findClaimableHead(db, request);
    if (!head.some((task) => task.max_running !== null || task.paused || !task.fit)) {
      return head.map(({ max_running: _, paused: __, fit: ___, ...task }) => task);
    }
  }
  return findClaimableCapped(db, request);
}

/** Whether a queued task `t` joined to its repository `r` may go to one of the free runners. */
function covered(request: ClaimableRequest) {
  return sql`${due("t")} and ${fits(request)}`;
}

/**
 * Queued and due, and a runner's job: a best-of-N task without a pull request runs as candidates
 * (src/loops/best-of.ts starts them); its own row is never handed to a runner until it has a pull
 * request.
 */
function due(alias: string) {
  const t = sql.raw(alias);
  return sql`${t}.state = 'queued' and ${t}.available_at <= now() and ${isRunnerJob(alias)}`;
}

/** One of the free runners' capability sets covers the task `t`, and its scope its repository `r`. */
function fits(request: ClaimableRequest) {
  return sql.join(
    request.capabilitySets.map(
      (set, i) =>
        sql`(t.capabilities <@ ${arrayLiteral(set)}::text[] and ${inScope(request.scopes?.[i] ?? [])})`,
    ),
    sql` or `,
  );
}

/** The open pull request's head for a follow-up (`cand` aliased); after /update, none. */
const prHeadSha = sql`case when cand.fresh_base then null else
                 (select p.head_sha from pull_requests p
                   where p.task_id = cand.task_id and p.state = 'open'
                   order by p.created_at desc limit 1) end`;

/**
 * The first `limit` due tasks of each lane (index order, an index walk that stops after `limit`
 * rows however long the queue), merged into service order, each with what would send the caller
 * to `findClaimableCapped`: its running limit, whether its repository is paused for its daily
 * budget (a paused repository's tasks are left out before they take a place, which only the whole
 * queue can do), and whether every lane's head fits the free runners (`fit`: false when one does
 * not, so that a task further down, which the walk did not read, may be the one to take).
 */
async function findClaimableHead(
  db: Db,
  request: ClaimableRequest,
): Promise<(ClaimableTask & { max_running: string | null; paused: boolean; fit: boolean })[]> {
  const agingSeconds = Math.max(1, Math.round(request.agingMs / 1000));
  return resultRows<ClaimableTask & { max_running: string | null; paused: boolean; fit: boolean }>(
    await db.execute(sql`
      select cand.task_id, cand.generation, cand.capabilities, cand.repository_id,
             cand.installation_id, cand.issue_number, cand.full_name, cand.default_branch,
             cand.head_sha, ${prHeadSha} as pr_head_sha, cand.limits->>'max_running' as max_running,
             cand.repository_id in (
               select repository_id
               from (${pausedRepositoriesSql(request.installationDailyBudgetUsd)}) paused) as paused,
             bool_and(cand.fit) over () as fit
      from unnest(enum_range(null::lane)) as l(lane)
      cross join lateral (
        select t.task_id, t.generation, t.capabilities, t.repository_id, t.installation_id,
               t.issue_number, t.limits, t.lane, t.enqueued_at, t.fresh_base, r.full_name,
               r.default_branch, r.head_sha, (${fits(request)}) as fit
        from (
          -- Kept apart (a LIMIT is never merged into the query around it), so that every plan
          -- walks the lane-and-age index and stops: with the capability test beside it, the
          -- planner misjudges how many rows match and reads and sorts the whole queue.
          select h.task_id, h.generation, h.capabilities, h.repository_id, h.installation_id,
                 h.issue_number, h.limits, h.lane, h.enqueued_at, h.fresh_base
          from tasks h
          where h.lane = l.lane and ${due("h")}
          order by h.enqueued_at
          limit ${request.limit}
        ) t
        join repositories r on r.repository_id = t.repository_id
      ) cand
      order by ${serviceOrder(agingSeconds, "cand")}
      limit ${request.limit}`),
  );
}

/** The whole queue ranked per repository and installation, for the running limits. */
async function findClaimableCapped(db: Db, request: ClaimableRequest): Promise<ClaimableTask[]> {
  const agingSeconds = Math.max(1, Math.round(request.agingMs / 1000));
  return resultRows<ClaimableTask>(
    await db.execute(sql`
      select cand.task_id, cand.generation, cand.capabilities, cand.repository_id,
             cand.installation_id, cand.issue_number, cand.full_name, cand.default_branch,
             cand.head_sha, ${prHeadSha} as pr_head_sha
      from (
        select t.task_id, t.generation, t.capabilities, t.repository_id, t.installation_id,
               t.issue_number, t.limits, t.lane, t.enqueued_at, t.fresh_base, r.full_name,
               r.default_branch, r.head_sha,
               row_number() over (partition by t.repository_id
                                  order by ${serviceOrder(agingSeconds)}) as repo_rank,
               row_number() over (partition by t.installation_id
                                  order by ${serviceOrder(agingSeconds)}) as installation_rank
        from tasks t join repositories r on r.repository_id = t.repository_id
        where ${covered(request)}
          -- A repository (or installation) that spent its daily budget waits for tomorrow; left
          -- out before the ranks, so its tasks take no place under the running limits either.
          and t.repository_id not in (
            select repository_id
            from (${pausedRepositoriesSql(request.installationDailyBudgetUsd)}) paused)
      ) cand
      where ${withinRunningLimits(request.maxRunningPerInstallation)}
      order by ${serviceOrder(agingSeconds, "cand")}
      limit ${request.limit}`),
  );
}

/** One task for one runner, with the commit its assignment starts from. */
export interface Claim {
  taskId: string;
  /** The generation `findClaimable` read: a task that moved on since is not claimed. */
  generation: number;
  runnerId: string;
  baseSha: string;
}

export interface ClaimedTask {
  task_id: string;
  generation: number;
  runner_id: string;
  repository_id: number;
  installation_id: number;
  issue_number: number;
  title: string;
  body: string;
  limits: Record<string, unknown>;
  last_error: string | null;
  feedback: string | null;
  /** Head of the task's open pull request: a follow-up attempt continues from it. */
  pr_head_sha: string | null;
  full_name: string;
  default_branch: string;
  lane: string;
  /** How long the task had been queued when it was claimed (database clock), in seconds. */
  queued_seconds: number | null;
}

/**
 * Claims a batch in ONE statement (one commit): each task still queued, due and at the generation
 * that was read goes to its runner with its assignment base, the generation incremented (which
 * fences off anything an earlier holder might still say about the task), the accept window
 * started, an event appended, and the runners stamped as just assigned. SKIP LOCKED: a task
 * another instance is claiming at this moment is left to it, never waited for. Tasks in `defer`
 * (their assignment could not be prepared) stay queued but are not offered for 30 s.
 * Returns what was claimed; a claim missing from the result lost a race and changed nothing.
 */
export async function claimTasks(
  db: Db,
  claims: readonly Claim[],
  options: { acceptMs: number; defer?: readonly string[] },
): Promise<ClaimedTask[]> {
  const defer = options.defer ?? [];
  if (claims.length === 0 && defer.length === 0) return [];
  const ids = arrayLiteral(claims.map((c) => c.taskId));
  const generations = integers(claims.map((c) => c.generation));
  const runners = arrayLiteral(claims.map((c) => c.runnerId));
  const bases = arrayLiteral(claims.map((c) => c.baseSha));
  return resultRows<ClaimedTask>(
    await db.execute(sql`
      with wanted as (
        select * from unnest(${ids}::uuid[], ${generations}::int[], ${runners}::uuid[],
                             ${bases}::text[]) as w(task_id, generation, runner_id, base_sha)
      ), free as (
        select t.task_id from tasks t join wanted w using (task_id)
        where t.state = 'queued' and t.available_at <= now() and t.generation = w.generation
        for update of t skip locked
      ), claimed as (
        update tasks t set
          state = 'assigned',
          generation = t.generation + 1,
          runner_id = w.runner_id,
          base_sha = w.base_sha,
          lease_expires_at = now() + ${`${options.acceptMs} milliseconds`}::interval,
          status_version = t.status_version + 1,
          updated_at = now()
        from wanted w join free f using (task_id)
        where t.task_id = w.task_id
        returning t.*
      ), logged as (
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        select task_id, 'dispatcher', 'queued', 'assigned', generation, 'offered to a runner',
               jsonb_build_object('runner_id', runner_id)
        from claimed
      ), stamped as (
        update runners set last_assigned_at = now()
        where runner_id in (select runner_id from claimed)
      ), deferred as (
        -- Not the runner's fault and not an attempt: offered again shortly.
        update tasks set available_at = now() + interval '30 seconds'
        where task_id = any(${arrayLiteral(defer)}::uuid[]) and state = 'queued'
      )
      select c.task_id, c.generation, c.runner_id, c.repository_id, c.installation_id,
             c.issue_number, c.title, c.body, c.limits, c.last_error, c.feedback,
             r.full_name, r.default_branch, c.lane::text as lane,
             case when c.fresh_base then null else
               (select p.head_sha from pull_requests p
                 where p.task_id = c.task_id and p.state = 'open'
                 order by p.created_at desc limit 1) end as pr_head_sha,
             -- The claim's own event is not visible here yet: this is the entry into the queue.
             (select extract(epoch from now() - max(e.at))::float8 from task_events e
               where e.task_id = c.task_id and e.to_state = 'queued') as queued_seconds
      from claimed c join repositories r on r.repository_id = c.repository_id`),
  );
}

type Fence = { taskId: string; generation: number; runnerId: string };

/**
 * What an `assign` is made of, for a task this runner holds at this generation (assigned or
 * running), with the commit the assignment started from: to send the assignment again when the
 * runner continues the task after a reconnect. Undefined when it no longer holds it.
 */
export async function heldAssignment(
  db: Db,
  fence: Fence,
): Promise<(ClaimedTask & { base_sha: string | null }) | undefined> {
  const rows = resultRows<ClaimedTask & { base_sha: string | null }>(
    await db.execute(sql`
      select t.task_id, t.generation, t.runner_id, t.repository_id, t.installation_id,
             t.issue_number, t.title, t.body, t.limits, t.last_error, t.feedback, r.full_name,
             r.default_branch, t.base_sha, null as pr_head_sha, t.lane::text as lane, null as queued_seconds
      from tasks t join repositories r on r.repository_id = t.repository_id
      where t.task_id = ${fence.taskId} and t.generation = ${fence.generation}
        and t.runner_id = ${fence.runnerId} and t.state in ('assigned', 'running')`),
  );
  return rows[0];
}

/** Records the commit an assignment starts from; the change set must name the same one. */
export async function setAssignmentBase(
  db: Db,
  fence: { taskId: string; generation: number },
  baseSha: string,
): Promise<void> {
  await db.execute(sql`
    update tasks set base_sha = ${baseSha}
    where task_id = ${fence.taskId} and generation = ${fence.generation}`);
}

/**
 * `accept` for a batch of accepts, in ONE statement: assigned → running, with a lease and the
 * attempt's deadline (`limits.deadline_minutes`, default 120) from the database clock, and its
 * event. Answers in the fences' order: false when the runner does not hold the task at that
 * generation in `assigned`.
 */
export async function acceptTasks(
  db: Db,
  fences: readonly Fence[],
  leaseMs: number,
): Promise<boolean[]> {
  if (fences.length === 0) return [];
  const rows = resultRows<{ task_id: string; generation: number; runner_id: string }>(
    await db.execute(sql`
      with f as (
        select * from unnest(${arrayLiteral(fences.map((f) => f.taskId))}::uuid[],
                             ${integers(fences.map((f) => f.generation))}::int[],
                             ${arrayLiteral(fences.map((f) => f.runnerId))}::uuid[])
          as f(task_id, generation, runner_id)
      ), moved as (
        update tasks t set
          state = 'running',
          lease_expires_at = now() + ${`${leaseMs} milliseconds`}::interval,
          deadline_at = now() + coalesce((t.limits->>'deadline_minutes')::float8, 120)
                                * interval '1 minute',
          status_version = t.status_version + 1,
          updated_at = now()
        from f
        where t.task_id = f.task_id and t.generation = f.generation
          and t.runner_id = f.runner_id and t.state = 'assigned'
        returning t.task_id, t.generation, t.runner_id
      ), logged as (
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        select task_id, 'runner', 'assigned', 'running', generation, 'runner accepted', '{}'::jsonb
        from moved
      )
      select task_id, generation, runner_id from moved`),
  );
  const accepted = new Set(rows.map((r) => fenceKey(r.task_id, r.generation, r.runner_id)));
  return fences.map((f) => accepted.has(fenceKey(f.taskId, f.generation, f.runnerId)));
}

const fenceKey = (taskId: string, generation: number, runnerId: string) =>
  `${taskId}:${generation}:${runnerId}`;

/** The task's state if this runner holds it at this generation, else undefined. */
export async function heldState(db: Db, fence: Fence): Promise<string | undefined> {
  const [row] = resultRows<{ state: string }>(
    await db.execute(sql`
      select state from tasks
      where task_id = ${fence.taskId} and generation = ${fence.generation}
        and runner_id = ${fence.runnerId} and state in ('assigned', 'running')`),
  );
  return row?.state;
}

/**
 * Heartbeats, batched: renews the lease of every task in `fences` its runner holds `running` at
 * that generation, in ONE statement for all of them. Returns the ids of the tasks their runner
 * still holds: renewed, or `assigned` (before `accept` there is no lease to renew; the accept
 * window stands, but the task is still the runner's).
 */
export async function renewLeases(
  db: Db,
  fences: readonly Fence[],
  leaseMs: number,
): Promise<Fence[]> {
  if (fences.length === 0) return [];
  const ids = arrayLiteral(fences.map((f) => f.taskId));
  const generations = integers(fences.map((f) => f.generation));
  const runners = arrayLiteral(fences.map((f) => f.runnerId));
  const rows = resultRows<{ task_id: string; generation: number; runner_id: string }>(
    await db.execute(sql`
      with fences as (
        select * from unnest(${ids}::uuid[], ${generations}::int[], ${runners}::uuid[])
          as f(task_id, generation, runner_id)
      ), renewed as (
        update tasks t set lease_expires_at = now() + ${`${leaseMs} milliseconds`}::interval
        from fences f
        where t.task_id = f.task_id and t.generation = f.generation
          and t.runner_id = f.runner_id and t.state = 'running'
        returning t.task_id, t.generation, t.runner_id
      )
      select task_id, generation, runner_id from renewed
      union
      -- The statement's snapshot: rows the update above changed are seen as they were.
      select t.task_id, t.generation, t.runner_id from tasks t join fences f using (task_id)
      where t.generation = f.generation and t.runner_id = f.runner_id and t.state = 'assigned'`),
  );
  return rows.map((r) => ({ taskId: r.task_id, generation: r.generation, runnerId: r.runner_id }));
}

/** `reject`: back to the queue at once; a runner saying no is not a failed attempt. */
export async function rejectTask(db: Db, fence: Fence, reason: string): Promise<Task | undefined> {
  return transitionTask(db, {
    ...fence,
    from: ["assigned"],
    to: "queued",
    actor: "runner",
    reason: `runner rejected: ${reason}`,
    set: { runnerId: null, leaseExpiresAt: null },
  });
}

/**
 * A failed attempt (runner `fail`, lease expiry, accept timeout, deadline): retry with backoff, or
 * dead after the last attempt, or dead at once when the failure cannot be retried.
 */
export async function failAttempt(
  db: Db,
  fence: { taskId: string; generation: number; runnerId?: string },
  cause: string,
  options: {
    retryable: boolean;
    actor: string;
    now?: Date;
    backoffBaseMs?: number;
    /** Only if the lease, accept window or deadline has run out when the statement runs. */
    expired?: boolean;
  },
): Promise<Task | undefined> {
  const task = await getTask(db, fence.taskId);
  if (!task) return undefined;
  const now = options.now ?? new Date();
  const outcome = options.retryable
    ? afterFailedAttempt(task, cause, now, options.backoffBaseMs)
    : {
        state: "dead" as const,
        attempts: task.attempts + 1,
        reason: `${cause}; the failure cannot be retried`,
      };
  return transitionTask(db, {
    taskId: fence.taskId,
    generation: fence.generation,
    ...(fence.runnerId ? { runnerId: fence.runnerId } : {}),
    from: ["assigned", "running"],
    ...(options.expired ? { expired: true } : {}),
    to: outcome.state,
    actor: options.actor,
    reason: outcome.reason,
    set: {
      attempts: outcome.attempts,
      lastError: cause,
      runnerId: null,
      leaseExpiresAt: null,
      deadlineAt: null,
      ...(outcome.state === "retry_wait" ? { availableAt: outcome.availableAt } : {}),
    },
  });
}

/** What a `complete` says: the change set's digest and what goes into the task's result. */
export interface CompleteResult {
  digest: string;
  summary: string;
  stats: Record<string, unknown>;
  verification?: Record<string, unknown> | undefined;
}

export interface Completion {
  moved: boolean;
  problem?: "no_change_set" | "digest_mismatch";
}

/**
 * `complete` for a batch of results, in ONE statement: the change set for each task's generation
 * must be stored with the digest its runner names. running → pushed with the stored digest checked,
 * the task moved, the event appended and the attempt's end written (`attempt`); the pull request is
 * written from the stored change set. Answers in the items' order: `moved` is false when the runner
 * no longer holds the task at this generation. A task may be named once per batch.
 */
export async function completeTasks(
  db: Db,
  items: readonly { fence: Fence; result: CompleteResult; attempt?: AttemptEnd | undefined }[],
): Promise<Completion[]> {
  if (items.length === 0) return [];
  const records = items.map(({ fence, result, attempt }, n) => ({
    ...(attempt ? attemptEndRow(fence, attempt) : {}),
    task_id: fence.taskId,
    generation: fence.generation,
    runner_id: fence.runnerId,
    n,
    digest: result.digest,
    result: {
      summary: result.summary,
      stats: result.stats,
      digest: result.digest,
      ...(result.verification ? { verification: result.verification } : {}),
    },
    finish: attempt !== undefined,
  }));
  const rows = resultRows<{ n: number; stored_digest: string | null; moved: boolean }>(
    await db.execute(sql`
      with i as (
        select * from jsonb_to_recordset(${JSON.stringify(records)}::jsonb)
          as i(n int, digest text, result jsonb, finish boolean, ${ATTEMPT_END_COLUMNS})
      ), stored as (
        -- A look-up per result (not a join the planner may turn into a scan of every change set).
        select i.n, (select c.digest from change_sets c
                     where c.task_id = i.task_id and c.generation = i.generation
                       and c.runner_id = i.runner_id) as digest
        from i
      ), moved as (
        update tasks t set
          state = 'pushed', runner_id = null, lease_expires_at = null, deadline_at = null,
          last_error = null, result = i.result,
          status_version = t.status_version + 1, updated_at = now()
        from i join stored s on s.n = i.n and s.digest = i.digest
        where t.task_id = i.task_id and t.generation = i.generation
          and t.runner_id = i.runner_id and t.state = 'running'
        returning i.n
      ), logged as (
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        select i.task_id, 'runner', 'running', 'pushed', i.generation, 'change set received',
               jsonb_build_object('digest', i.digest)
        from i join moved m on m.n = i.n
      ), finished as (
        ${finishAttemptsSql(sql`(select i.* from i join moved m on m.n = i.n where i.finish) e`)}
      )
      select i.n, s.digest as stored_digest, exists (select 1 from moved m where m.n = i.n) as moved
      from i left join stored s on s.n = i.n`),
  );
  const byIndex = new Map(rows.map((r) => [r.n, r]));
  return items.map(({ result }, n) => {
    const row = byIndex.get(n);
    if (!row?.stored_digest) return { moved: false, problem: "no_change_set" };
    if (row.stored_digest !== result.digest) return { moved: false, problem: "digest_mismatch" };
    return { moved: row.moved };
  });
}

export interface ExpiredTask {
  task_id: string;
  generation: number;
  runner_id: string | null;
  state: "assigned" | "running";
  why: "accept timeout" | "lease expired" | "deadline passed";
}

/** Tasks whose holder missed the accept window, stopped heartbeating, or ran past the deadline. */
export async function findExpiredTasks(db: Db): Promise<ExpiredTask[]> {
  return resultRows<ExpiredTask>(
    await db.execute(sql`
      select task_id, generation, runner_id, state,
             case when state = 'assigned' and lease_expires_at < now() then 'accept timeout'
                  when deadline_at < now() then 'deadline passed'
                  else 'lease expired' end as why
      from tasks
      where state in ('assigned', 'running')
        and (lease_expires_at < now() or deadline_at < now())`),
  );
}

/** retry_wait → queued for every task whose backoff is over. Returns how many came back. */
export async function promoteDueRetries(db: Db): Promise<number> {
  const rows = resultRows(
    await db.execute(sql`
      with due as (
        update tasks set state = 'queued', enqueued_at = now(), status_version = status_version + 1,
                         updated_at = now()
        where state = 'retry_wait' and available_at <= now()
        returning task_id, generation
      )
      insert into task_events (task_id, actor, from_state, to_state, generation, reason)
      select task_id, 'dispatcher', 'retry_wait', 'queued', generation, 'backoff over'
      from due
      returning task_id`),
  );
  return rows.length;
}

/**
 * Of the tasks live connections believe they hold, the ones the database no longer gives them
 * (cancelled, reclaimed, finished elsewhere), with the state they are in now.
 */
export async function lostTasks(
  db: Db,
  held: { taskId: string; generation: number; runnerId: string }[],
): Promise<{ task_id: string; generation: number; runner_id: string; state: string | null }[]> {
  if (held.length === 0) return [];
  const values = sql.join(
    held.map((h) => sql`(${h.taskId}::uuid, ${h.generation}::int, ${h.runnerId}::uuid)`),
    sql`, `,
  );
  return resultRows(
    await db.execute(sql`
      select h.task_id, h.generation, h.runner_id, t.state
      from (values ${values}) as h(task_id, generation, runner_id)
      left join tasks t on t.task_id = h.task_id
      where t.task_id is null or t.generation <> h.generation or t.runner_id is distinct from h.runner_id
         or t.state not in ('assigned', 'running')`),
  );
}

/** For `hello.running`: which of the tasks a reconnecting runner names it still holds. */
export async function heldTasks(
  db: Db,
  runnerId: string,
  running: { task_id: string; generation: number }[],
): Promise<Set<string>> {
  if (running.length === 0) return new Set();
  const rows = resultRows<{ task_id: string; generation: number }>(
    await db.execute(sql`
      select task_id, generation from tasks
      where runner_id = ${runnerId} and state in ('assigned', 'running')
        and task_id in (${sql.join(
          running.map((r) => sql`${r.task_id}`),
          sql`, `,
        )})`),
  );
  const current = new Map(rows.map((r) => [r.task_id, r.generation]));
  return new Set(
    running.filter((r) => current.get(r.task_id) === r.generation).map((r) => r.task_id),
  );
}

/**
 * Assignments this runner holds but never accepted, other than those its `hello` names: the
 * `assign` was lost with a connection or with a runner process killed before it could accept.
 * Each gets a fresh accept window and is sent again, so it does not wait out the accept timeout
 * and cost an attempt.
 */
export async function reopenUnaccepted(
  db: Db,
  runnerId: string,
  named: string[],
  acceptMs: number,
): Promise<{ task_id: string; generation: number }[]> {
  const others = named.length
    ? sql`and task_id not in (${sql.join(
        named.map((id) => sql`${id}`),
        sql`, `,
      )})`
    : sql``;
  return resultRows(
    await db.execute(sql`
      update tasks set lease_expires_at = now() + ${`${acceptMs} milliseconds`}::interval
      where runner_id = ${runnerId} and state = 'assigned' ${others}
      returning task_id, generation`),
  );
}

/** An uploaded change set, for the generation its runner holds. */
export interface ChangeSetUpload {
  taskId: string;
  generation: number;
  runnerId: string;
  digest: string;
  baseSha: string;
  message: string;
  files: unknown;
  sizeBytes: number;
}

export type UploadOutcome = "stored" | "stale" | "wrong_base";

/**
 * Stores uploaded change sets for the generation each runner holds (replacing a re-upload), in ONE
 * statement; answers in the uploads' order: `stored`, `wrong_base` (the runner holds the task but
 * started from another commit than its assignment's), or `stale` (it does not hold the task at that
 * generation, running). A task may be named once per batch.
 */
export async function storeChangeSets(
  db: Db,
  inputs: readonly ChangeSetUpload[],
): Promise<UploadOutcome[]> {
  if (inputs.length === 0) return [];
  const records = inputs.map((input, n) => ({
    n,
    task_id: input.taskId,
    generation: input.generation,
    runner_id: input.runnerId,
    digest: input.digest,
    base_sha: input.baseSha,
    message: input.message,
    files: input.files,
    size_bytes: input.sizeBytes,
  }));
  const rows = resultRows<{ n: number; stored: boolean; held: boolean }>(
    await db.execute(sql`
      with i as (
        select i.*, t.base_sha as assigned_base, t.task_id is not null as held
        from jsonb_to_recordset(${JSON.stringify(records)}::jsonb)
          as i(n int, task_id uuid, generation int, runner_id uuid, digest text, base_sha text,
               message text, files jsonb, size_bytes int)
        left join tasks t on t.task_id = i.task_id and t.generation = i.generation
          and t.runner_id = i.runner_id and t.state = 'running'
      ), stored as (
        insert into change_sets (task_id, generation, runner_id, digest, base_sha, message, files,
                                 size_bytes)
        select task_id, generation, runner_id, digest, base_sha, message, files, size_bytes
        from i where held and (assigned_base is null or assigned_base = base_sha)
        on conflict (task_id, generation) do update
          set digest = excluded.digest, base_sha = excluded.base_sha, message = excluded.message,
              files = excluded.files, size_bytes = excluded.size_bytes, created_at = now()
        returning task_id, generation
      )
      select i.n, exists (select 1 from stored s
                          where s.task_id = i.task_id and s.generation = i.generation) as stored,
             i.held
      from i`),
  );
  const byIndex = new Map(rows.map((r) => [r.n, r]));
  return inputs.map((_, n) => {
    const row = byIndex.get(n);
    return row?.stored ? "stored" : row?.held ? "wrong_base" : "stale";
  });
}
