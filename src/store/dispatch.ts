import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { afterFailedAttempt } from "../core/task-machine.ts";
import { pausedRepositoriesSql } from "./budgets.ts";
import type { Task } from "./tasks.ts";
import { getTask, transitionTask } from "./tasks.ts";

/*
 * The dispatcher's SQL. Every statement is guarded by state, generation and runner, so a message
 * that arrives late, twice, or from the wrong runner changes nothing (the caller answers `stale`).
 */

export interface ClaimRequest {
  runnerId: string;
  capabilities: readonly string[];
  agingMs: number;
  /** Time the runner has to `accept` before the claim lapses. */
  acceptMs: number;
  /** An installation whose attempts cost this much today (UTC) gets no new work. */
  installationDailyBudgetUsd?: number | undefined;
}

export interface ClaimedTask {
  task_id: string;
  generation: number;
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
 * Claims the next task this runner may take: queued and due, every capability the task needs
 * among the runner's, in service order (lane after aging, then FIFO). SKIP LOCKED lets every
 * instance claim at once without waiting on each other; the generation increments here, which
 * fences off anything an earlier holder might still say about the task.
 */
export async function claimNextTask(
  db: Db,
  request: ClaimRequest,
): Promise<ClaimedTask | undefined> {
  const agingSeconds = Math.max(1, Math.round(request.agingMs / 1000));
  const capabilities = `{${request.capabilities.map((c) => `"${c}"`).join(",")}}`;
  const rows = resultRows<ClaimedTask>(
    await db.execute(sql`
      with candidate as (
        select task_id from tasks
        where state = 'queued' and available_at <= now()
          and capabilities <@ ${capabilities}::text[]
          -- A repository (or installation) that spent its daily budget waits for tomorrow.
          and repository_id not in (
            select repository_id from (${pausedRepositoriesSql(request.installationDailyBudgetUsd)}) paused)
        order by greatest(0, array_position(enum_range(null::lane), lane) - 1
                 - floor(extract(epoch from (now() - enqueued_at)) / ${agingSeconds})::int),
                 enqueued_at
        limit 1
        for update skip locked
      ), claimed as (
        update tasks t set
          state = 'assigned',
          generation = t.generation + 1,
          runner_id = ${request.runnerId},
          lease_expires_at = now() + ${`${request.acceptMs} milliseconds`}::interval,
          status_version = t.status_version + 1,
          updated_at = now()
        from candidate
        where t.task_id = candidate.task_id
        returning t.*
      ), logged as (
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        select task_id, 'dispatcher', 'queued', 'assigned', generation, 'offered to a runner',
               jsonb_build_object('runner_id', runner_id)
        from claimed
      ), runner as (
        -- A data-modifying CTE runs whether or not anything was claimed: without the guard every
        -- empty claim would stamp (and write) the runner as just assigned.
        update runners set last_assigned_at = now()
        where runner_id = ${request.runnerId} and exists (select 1 from claimed)
      )
      select c.task_id, c.generation, c.repository_id, c.installation_id, c.issue_number, c.title,
             c.body, c.limits, c.last_error, c.feedback, r.full_name, r.default_branch,
             -- A follow-up continues on its PR's head; after /update it starts afresh.
             case when c.fresh_base then null else
               (select p.head_sha from pull_requests p
                 where p.task_id = c.task_id and p.state = 'open'
                 order by p.created_at desc limit 1) end as pr_head_sha,
             c.lane::text as lane,
             -- The claim's own event is not visible here yet: this is the entry into the queue.
             (select extract(epoch from now() - max(e.at))::float8 from task_events e
               where e.task_id = c.task_id and e.to_state = 'queued') as queued_seconds
      from claimed c join repositories r on r.repository_id = c.repository_id`),
  );
  return rows[0];
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
      select t.task_id, t.generation, t.repository_id, t.installation_id, t.issue_number, t.title,
             t.body, t.limits, t.last_error, t.feedback, r.full_name, r.default_branch,
             t.base_sha, null as pr_head_sha, t.lane::text as lane, null as queued_seconds
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

/** `accept`: assigned → running, with a lease and the attempt's deadline. */
export async function acceptTask(db: Db, fence: Fence, leaseMs: number): Promise<Task | undefined> {
  const task = await getTask(db, fence.taskId);
  const deadlineMinutes = Number(
    (task?.limits as { deadline_minutes?: number })?.deadline_minutes ?? 120,
  );
  return transitionTask(db, {
    ...fence,
    from: ["assigned"],
    to: "running",
    actor: "runner",
    reason: "runner accepted",
    set: {
      leaseExpiresAt: new Date(Date.now() + leaseMs),
      deadlineAt: new Date(Date.now() + deadlineMinutes * 60_000),
    },
  });
}

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

/** `heartbeat`: renews the lease; false when the runner no longer holds this generation. */
export async function renewLease(db: Db, fence: Fence, leaseMs: number): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      update tasks set lease_expires_at = now() + ${`${leaseMs} milliseconds`}::interval
      where task_id = ${fence.taskId} and generation = ${fence.generation}
        and runner_id = ${fence.runnerId} and state = 'running'
      returning task_id`),
  );
  return rows.length > 0;
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
  options: { retryable: boolean; actor: string; now?: Date; backoffBaseMs?: number },
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

/**
 * `complete`: the change set for this generation must be stored with the digest the runner names.
 * running → pushed; the pull request is written from the stored change set.
 */
export async function completeTask(
  db: Db,
  fence: Fence,
  result: {
    digest: string;
    summary: string;
    stats: Record<string, unknown>;
    verification?: Record<string, unknown> | undefined;
  },
): Promise<{ task?: Task; problem?: "no_change_set" | "digest_mismatch" }> {
  const [stored] = resultRows<{ digest: string }>(
    await db.execute(sql`
      select digest from change_sets
      where task_id = ${fence.taskId} and generation = ${fence.generation}
        and runner_id = ${fence.runnerId}`),
  );
  if (!stored) return { problem: "no_change_set" };
  if (stored.digest !== result.digest) return { problem: "digest_mismatch" };
  const task = await transitionTask(db, {
    ...fence,
    from: ["running"],
    to: "pushed",
    actor: "runner",
    reason: "change set received",
    data: { digest: result.digest },
    set: {
      runnerId: null,
      leaseExpiresAt: null,
      deadlineAt: null,
      lastError: null,
      result: {
        summary: result.summary,
        stats: result.stats,
        digest: result.digest,
        ...(result.verification ? { verification: result.verification } : {}),
      },
    },
  });
  return task ? { task } : {};
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

/** Stores an uploaded change set for the generation its runner holds (replacing a re-upload). */
export async function storeChangeSet(
  db: Db,
  input: {
    taskId: string;
    generation: number;
    runnerId: string;
    digest: string;
    baseSha: string;
    message: string;
    files: unknown;
    sizeBytes: number;
  },
): Promise<"stored" | "stale" | "wrong_base"> {
  const rows = resultRows(
    await db.execute(sql`
      insert into change_sets (task_id, generation, runner_id, digest, base_sha, message, files, size_bytes)
      select ${input.taskId}, ${input.generation}, ${input.runnerId}, ${input.digest}, ${input.baseSha},
             ${input.message}, ${JSON.stringify(input.files)}::jsonb, ${input.sizeBytes}
      where exists (select 1 from tasks where task_id = ${input.taskId} and generation = ${input.generation}
                    and runner_id = ${input.runnerId} and state = 'running'
                    and (base_sha is null or base_sha = ${input.baseSha}))
      on conflict (task_id, generation) do update
        set digest = excluded.digest, base_sha = excluded.base_sha, message = excluded.message,
            files = excluded.files, size_bytes = excluded.size_bytes, created_at = now()
      returning task_id`),
  );
  if (rows.length) return "stored";
  const [task] = resultRows<{ base_sha: string | null }>(
    await db.execute(sql`
      select base_sha from tasks where task_id = ${input.taskId} and generation = ${input.generation}
        and runner_id = ${input.runnerId} and state = 'running'`),
  );
  return task ? "wrong_base" : "stale";
}
