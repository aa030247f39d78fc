import { createHash } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { resultRows } from "../../db/client.ts";
import { repositories, tasks } from "../../db/schema.ts";
import { statesLeadingTo } from "../core/task-machine.ts";
import type { Lane, TaskState } from "../core/task-states.ts";
import { firstEventIdSince } from "./metrics.ts";
import { isRunnerJob } from "./task-kinds.ts";

export type Task = typeof tasks.$inferSelect;
export type Repository = typeof repositories.$inferSelect;

/** SHA-256 of the snapshot runners receive; shown so people can tell which text was approved. */
export function snapshotHash(title: string, body: string): string {
  return createHash("sha256").update(title).update("\0").update(body).digest("hex");
}

export interface RepositoryInput {
  repositoryId: number;
  installationId: number;
  fullName: string;
  defaultBranch?: string | undefined;
  private?: boolean | undefined;
  /**
   * The config's `tasks.daily_budget_usd` as last read (null: no limit), written in the same
   * statement; absent leaves the one stored (an invalid file must not lift a spending limit).
   */
  dailyBudgetUsd?: number | null | undefined;
}

/** Inserts or refreshes a repository (renames, transfers between installations, reinstalls). */
export async function upsertRepository(db: Db, input: RepositoryInput): Promise<void> {
  const values = {
    repositoryId: input.repositoryId,
    installationId: input.installationId,
    fullName: input.fullName,
    defaultBranch: input.defaultBranch ?? "main",
    private: input.private ?? true,
    ...(input.dailyBudgetUsd !== undefined ? { dailyBudgetUsd: input.dailyBudgetUsd } : {}),
  };
  await db
    .insert(repositories)
    .values(values)
    .onConflictDoUpdate({
      target: repositories.repositoryId,
      set: {
        installationId: values.installationId,
        fullName: values.fullName,
        ...(input.defaultBranch ? { defaultBranch: input.defaultBranch } : {}),
        ...(input.private !== undefined ? { private: input.private } : {}),
        ...(input.dailyBudgetUsd !== undefined ? { dailyBudgetUsd: input.dailyBudgetUsd } : {}),
        removedAt: null,
        updatedAt: sql`now()`,
      },
    });
}

/** Marks repositories as no longer installed; returns their ids. */
export async function removeRepositories(
  db: Db,
  where: { installationId: number; repositoryIds?: number[] },
): Promise<number[]> {
  const rows = await db
    .update(repositories)
    .set({ removedAt: sql`now()`, updatedAt: sql`now()` })
    .where(
      and(
        eq(repositories.installationId, where.installationId),
        where.repositoryIds
          ? sql`${repositories.repositoryId} in ${where.repositoryIds}`
          : undefined,
      ),
    )
    .returning({ repositoryId: repositories.repositoryId });
  return rows.map((r) => r.repositoryId);
}

export async function listInstalledRepositories(db: Db): Promise<Repository[]> {
  return db.select().from(repositories).where(sql`${repositories.removedAt} is null`);
}

export async function findActiveTask(
  db: Db,
  repositoryId: number,
  issueNumber: number,
): Promise<Task | undefined> {
  const [task] = await db
    .select()
    .from(tasks)
    .where(
      and(
        eq(tasks.repositoryId, repositoryId),
        eq(tasks.issueNumber, issueNumber),
        sql`${tasks.state} not in ('merged', 'cancelled')`,
        // A best-of-N candidate shares its issue with the task it is a candidate of.
        sql`${tasks.parentTaskId} is null`,
      ),
    );
  return task;
}

export async function getTask(db: Db, taskId: string): Promise<Task | undefined> {
  const [task] = await db.select().from(tasks).where(eq(tasks.taskId, taskId));
  return task;
}

export interface NewTask {
  repositoryId: number;
  installationId: number;
  issueNumber: number;
  title: string;
  body: string;
  lane: Lane;
  capabilities: string[];
  maxAttempts: number;
  limits: Record<string, unknown>;
  queuedBy: string;
  /** Feedback for the first attempt (an issue queued again after its change was reverted). */
  feedback?: string;
  /** Best of N: candidates to run at once (default 1) and the adapters they ask for. */
  bestOf?: number;
  bestOfAdapters?: string[];
}

/**
 * Creates the issue's task unless it already has an active one (the unique partial index decides,
 * so two instances racing on the same issue still make one task). Appends the first event.
 */
export async function createTask(
  db: Db,
  input: NewTask,
  reason: string,
): Promise<{ created: boolean; task: Task }> {
  const [created] = await db
    .insert(tasks)
    .values({ ...input, snapshotHash: snapshotHash(input.title, input.body) })
    .onConflictDoNothing()
    .returning();
  if (created) {
    await appendEvent(db, {
      taskId: created.taskId,
      actor: input.queuedBy,
      fromState: null,
      toState: "queued",
      generation: created.generation,
      reason,
      data: {
        lane: input.lane,
        capabilities: input.capabilities,
        snapshotHash: created.snapshotHash,
      },
    });
    return { created: true, task: created };
  }
  const existing = await findActiveTask(db, input.repositoryId, input.issueNumber);
  if (!existing) throw new Error("task insert conflicted but no active task exists");
  return { created: false, task: existing };
}

/**
 * A step in a task's life that does not change its state (the post-merge watch of a merged task):
 * appended to its timeline, and its status comment is redrawn.
 */
export async function noteTaskEvent(
  db: Db,
  event: { taskId: string; actor: string; reason: string; data?: Record<string, unknown> },
): Promise<void> {
  await db.execute(sql`
    with bumped as (
      update tasks set status_version = status_version + 1, updated_at = now()
      where task_id = ${event.taskId}
      returning task_id, state, generation
    )
    insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
    select task_id, ${event.actor}, state, state, generation, ${event.reason},
           ${JSON.stringify(event.data ?? {})}::jsonb
    from bumped`);
}

async function appendEvent(
  db: Db,
  event: {
    taskId: string;
    actor: string;
    fromState: TaskState | null;
    toState: TaskState;
    generation: number;
    reason: string;
    data: Record<string, unknown>;
  },
): Promise<void> {
  await db.execute(sql`
    insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
    values (${event.taskId}, ${event.actor}, ${event.fromState}, ${event.toState},
            ${event.generation}, ${event.reason}, ${JSON.stringify(event.data)}::jsonb)`);
}

export interface Transition {
  taskId: string;
  to: TaskState;
  /** Guard: the states the task may be in now. Defaults to every state that may lead to `to`. */
  from?: readonly TaskState[];
  /** Guard: the generation the caller acted on (fencing). */
  generation?: number;
  /** Guard: the runner that must hold the task. */
  runnerId?: string;
  /**
   * Guard: the lease (or accept window) or the deadline has run out as the statement runs, so an
   * expiry read a moment earlier does not take a task whose lease was renewed since.
   */
  expired?: boolean;
  actor: string;
  reason: string;
  data?: Record<string, unknown>;
  /** Extra columns to set in the same statement. */
  set?: {
    attempts?: number;
    availableAt?: Date;
    enqueuedAt?: Date | "now";
    lastError?: string | null;
    runnerId?: string | null;
    leaseExpiresAt?: Date | null;
    lane?: Lane;
    title?: string;
    body?: string;
    finished?: boolean;
    deadlineAt?: Date | null;
    result?: Record<string, unknown>;
    feedback?: string | null;
    ciFixes?: number;
    reviewFixes?: number;
    conflictRetries?: number;
    freshBase?: boolean;
  };
}

/**
 * Moves a task in ONE statement: the update is guarded by the expected states (and generation, if
 * given), and the same statement appends the event. If the guard fails nothing changes and the
 * result is undefined: the caller lost a race or acted on stale facts.
 */
export async function transitionTask(db: Db, t: Transition): Promise<Task | undefined> {
  const from = t.from ?? statesLeadingTo(t.to);
  if (from.length === 0) throw new Error(`no state leads to ${t.to}`);
  const set = t.set ?? {};
  const assignments = [
    sql`state = ${t.to}`,
    sql`updated_at = now()`,
    // Every change is worth showing on the issue; the notifier coalesces bursts.
    sql`status_version = status_version + 1`,
  ];
  if (set.attempts !== undefined) assignments.push(sql`attempts = ${set.attempts}`);
  if (set.availableAt) assignments.push(sql`available_at = ${set.availableAt.toISOString()}`);
  if (set.enqueuedAt === "now") assignments.push(sql`enqueued_at = now()`);
  else if (set.enqueuedAt) assignments.push(sql`enqueued_at = ${set.enqueuedAt.toISOString()}`);
  if (set.lastError !== undefined) assignments.push(sql`last_error = ${set.lastError}`);
  if (set.runnerId !== undefined) assignments.push(sql`runner_id = ${set.runnerId}`);
  if (set.leaseExpiresAt !== undefined) {
    assignments.push(sql`lease_expires_at = ${set.leaseExpiresAt?.toISOString() ?? null}`);
  }
  if (set.lane) assignments.push(sql`lane = ${set.lane}`);
  if (set.title !== undefined && set.body !== undefined) {
    assignments.push(sql`title = ${set.title}, body = ${set.body}`);
    assignments.push(sql`snapshot_hash = ${snapshotHash(set.title, set.body)}`);
  }
  if (set.finished) assignments.push(sql`finished_at = now()`);
  if (set.deadlineAt !== undefined) {
    assignments.push(sql`deadline_at = ${set.deadlineAt?.toISOString() ?? null}`);
  }
  if (set.result) assignments.push(sql`result = ${JSON.stringify(set.result)}::jsonb`);
  if (set.feedback !== undefined) assignments.push(sql`feedback = ${set.feedback}`);
  if (set.ciFixes !== undefined) assignments.push(sql`ci_fixes = ${set.ciFixes}`);
  if (set.reviewFixes !== undefined) assignments.push(sql`review_fixes = ${set.reviewFixes}`);
  if (set.freshBase !== undefined) assignments.push(sql`fresh_base = ${set.freshBase}`);
  if (set.conflictRetries !== undefined) {
    assignments.push(sql`conflict_retries = ${set.conflictRetries}`);
  }
  const fromList = sql.join(
    from.map((s) => sql`${s}`),
    sql`, `,
  );
  const generationGuard =
    t.generation === undefined ? sql`` : sql`and generation = ${t.generation}`;
  const runnerGuard = t.runnerId === undefined ? sql`` : sql`and runner_id = ${t.runnerId}`;
  const expiryGuard = t.expired
    ? sql`and (lease_expires_at < now() or deadline_at < now())`
    : sql``;
  const rows = resultRows<{ task_id: string }>(
    await db.execute(sql`
      with moved as (
        update tasks t set ${sql.join(assignments, sql`, `)}
        from (select task_id, state as old_state from tasks
              where task_id = ${t.taskId} and state in (${fromList}) ${generationGuard} ${runnerGuard}
                ${expiryGuard}
              for update) old
        where t.task_id = old.task_id
        returning t.task_id, old.old_state, t.state, t.generation
      ), logged as (
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        select task_id, ${t.actor}, old_state, state, generation, ${t.reason},
               ${JSON.stringify(t.data ?? {})}::jsonb
        from moved
        returning task_id
      )
      select task_id from logged`),
  );
  if (rows.length === 0) return undefined;
  return getTask(db, t.taskId);
}

/** Bumps the status version so the notifier rewrites the comment (e.g. queue position changed). */
export async function touchStatus(db: Db, taskId: string): Promise<void> {
  await db
    .update(tasks)
    .set({ statusVersion: sql`${tasks.statusVersion} + 1` })
    .where(eq(tasks.taskId, taskId));
}

/**
 * 1-based position among waiting tasks in service order (effective lane with aging, then FIFO), or
 * undefined when the task is not waiting. Mirrors `queueOrder` in the core.
 */
export async function queuePosition(
  db: Db,
  taskId: string,
  agingMs: number,
): Promise<number | undefined> {
  const agingSeconds = Math.max(1, Math.round(agingMs / 1000));
  const rank = (alias: string) =>
    sql.raw(
      `greatest(0, array_position(enum_range(null::lane), ${alias}.lane) - 1 - floor(extract(epoch from (now() - ${alias}.enqueued_at)) / ${agingSeconds})::int)`,
    );
  const rows = resultRows<{ position: number }>(
    await db.execute(sql`
      select 1 + count(other.task_id)::int as position
      from tasks me
      left join tasks other
        on other.state = 'queued' and other.task_id <> me.task_id and ${isRunnerJob("other")}
       and (${rank("other")} < ${rank("me")}
            or (${rank("other")} = ${rank("me")} and other.enqueued_at < me.enqueued_at))
      where me.task_id = ${taskId} and me.state = 'queued'
      group by me.task_id`),
  );
  return rows[0]?.position;
}

export interface TaskEventRow {
  actor: string;
  from_state: TaskState | null;
  to_state: TaskState;
  generation: number;
  reason: string;
}

export async function listTaskEvents(db: Db, taskId: string): Promise<TaskEventRow[]> {
  return resultRows<TaskEventRow>(
    await db.execute(sql`
      select actor, from_state, to_state, generation, reason from task_events
      where task_id = ${taskId} order by event_id`),
  );
}

/** Why the task is in `state`: the reason of its latest move into that state, if any. */
export async function reasonForState(
  db: Db,
  taskId: string,
  state: TaskState,
): Promise<string | undefined> {
  const [row] = resultRows<{ reason: string }>(
    await db.execute(sql`
      select reason from task_events
      where task_id = ${taskId} and to_state = ${state}
      order by event_id desc limit 1`),
  );
  return row?.reason;
}

export interface DirtyStatus {
  task_id: string;
  status_version: number;
  status_comment_id: number | null;
  /** A request to create the status comment went out before (its answer may have been lost). */
  status_comment_attempted: boolean;
  reacted_at: string | null;
  installation_id: number;
  full_name: string;
  issue_number: number;
  /** The digest of what the comment says now (see `statusDigestText`); null before the first. */
  status_digest: string | null;
}

/** How the notifier spaces edits of one comment (`src/loops/notifier.ts` has the defaults). */
export interface StatusPacing {
  /** A change waits until the task has been still this long, so a burst costs one edit. */
  debounceMs: number;
  /** …but no longer than this after the last edit, for a task that never keeps still. */
  maxDelayMs: number;
}

const ms = (value: number) => sql`${`${Math.max(0, Math.round(value))} milliseconds`}::interval`;

const CLAIMED_STATUS_COLUMNS = sql.raw(`t.task_id, t.status_version, t.status_comment_id,
  t.status_comment_attempted_at is not null as status_comment_attempted, t.reacted_at::text, t.installation_id, r.full_name, t.issue_number, t.status_digest`);

/**
 * Leases up to `limit` tasks whose status comment is behind, for 30 s, so one notifier of several
 * instances edits each comment. Short statement: no transaction is held during GitHub calls. A
 * task is due once it kept still for `debounceMs` (its last move, `updated_at`), or `maxDelayMs`
 * after its comment was last written; the first comment is due at once.
 */
export async function claimDirtyStatuses(
  db: Db,
  limit: number,
  pacing: StatusPacing = { debounceMs: 0, maxDelayMs: 0 },
): Promise<DirtyStatus[]> {
  return resultRows<DirtyStatus>(
    await db.execute(sql`
      with picked as (
        select task_id from tasks
        where status_version > status_synced_version
          -- A best-of-N candidate has no comment of its own: its task's comment tells.
          and parent_task_id is null
          and (status_lease_until is null or status_lease_until < now())
          and (status_comment_id is null
               or updated_at <= now() - ${ms(pacing.debounceMs)}
               or coalesce(status_synced_at, '-infinity') <= now() - ${ms(pacing.maxDelayMs)})
        order by updated_at
        limit ${limit}
        for update skip locked
      )
      update tasks t set status_lease_until = now() + interval '30 seconds'
      from picked, repositories r
      where t.task_id = picked.task_id and r.repository_id = t.repository_id
      returning ${CLAIMED_STATUS_COLUMNS}`),
  );
}

/**
 * Every waiting task's position, in service order (effective lane with aging, then FIFO): the
 * same order and ties as `queuePosition`, for the whole queue in one statement.
 */
function queuePositions(agingMs: number) {
  const agingSeconds = Math.max(1, Math.round(agingMs / 1000));
  return sql`
    select task_id, rank() over (order by lane_rank, enqueued_at)::int as position
    from (select task_id, enqueued_at,
                 greatest(0, array_position(enum_range(null::lane), lane) - 1
                   - floor(extract(epoch from (now() - enqueued_at)) / ${agingSeconds})::int) as lane_rank
          from tasks where state = 'queued' and ${isRunnerJob()}) waiting`;
}

/**
 * Leases up to `limit` waiting tasks whose status comment shows a stale queue position: moved by
 * at least one place and last written `minIntervalMs` ago or more, or last written `refreshMs` ago
 * or more (the wait estimate drifts). Nearest the head of the queue first; only comments that owe
 * nothing else (those go through `claimDirtyStatuses`, first).
 */
export async function claimStalePositions(
  db: Db,
  limit: number,
  options: { agingMs: number; minIntervalMs: number; refreshMs: number },
): Promise<DirtyStatus[]> {
  return resultRows<DirtyStatus>(
    await db.execute(sql`
      with positions as (${queuePositions(options.agingMs)}),
      picked as (
        select t.task_id from tasks t join positions p on p.task_id = t.task_id
        where t.status_comment_id is not null
          and t.status_version = t.status_synced_version
          and (t.status_lease_until is null or t.status_lease_until < now())
          and ((t.status_position is distinct from p.position
                and coalesce(t.status_synced_at, '-infinity') <= now() - ${ms(options.minIntervalMs)})
               or coalesce(t.status_synced_at, '-infinity') <= now() - ${ms(options.refreshMs)})
        order by p.position
        limit ${limit}
        for update of t skip locked
      )
      update tasks t set status_lease_until = now() + interval '30 seconds'
      from picked, repositories r
      where t.task_id = picked.task_id and r.repository_id = t.repository_id
      returning ${CLAIMED_STATUS_COLUMNS}`),
  );
}

/** How many tasks left the queue for a runner since `since` (the throughput wait estimates use). */
export async function countStartedSince(db: Db, since: Date): Promise<number> {
  // task_events has no index on `at`; the window starts at an id found by binary search.
  const from = await firstEventIdSince(db, since);
  const [row] = resultRows<{ n: number }>(
    await db.execute(sql`
      select count(*)::int as n from task_events
      where event_id >= ${from} and from_state = 'queued' and to_state = 'assigned'`),
  );
  return row?.n ?? 0;
}

/**
 * Records that the request creating a task's status comment is about to go out, before it does:
 * if its answer is lost, the next attempt looks for the comment instead of making a second one.
 */
export async function markStatusCommentAttempted(db: Db, taskId: string): Promise<void> {
  await db.execute(sql`
    update tasks set status_comment_attempted_at = coalesce(status_comment_attempted_at, now())
    where task_id = ${taskId}`);
}

/** Records what the notifier wrote; a newer version written meanwhile stays dirty. */
export async function markStatusSynced(
  db: Db,
  taskId: string,
  synced: {
    version: number;
    commentId: number;
    reacted: boolean;
    digest?: string | undefined;
    position?: number | undefined;
  },
): Promise<void> {
  await db.execute(sql`
    update tasks set
      status_synced_version = greatest(status_synced_version, ${synced.version}),
      status_comment_id = ${synced.commentId},
      reacted_at = case when ${synced.reacted} then coalesce(reacted_at, now()) else reacted_at end,
      status_lease_until = null,
      status_synced_at = now(),
      status_digest = ${synced.digest ?? null},
      status_position = ${synced.position ?? null}
    where task_id = ${taskId}`);
}

/** Gives up on a status comment that cannot be written (issue deleted) or retries later. */
export async function markStatusFailed(
  db: Db,
  taskId: string,
  version: number,
  retryInMs: number | "never",
): Promise<void> {
  if (retryInMs === "never") {
    await db.execute(sql`
      update tasks set status_synced_version = greatest(status_synced_version, ${version}),
                       status_lease_until = null
      where task_id = ${taskId}`);
    return;
  }
  await db.execute(sql`
    update tasks set status_lease_until = now() + ${`${retryInMs} milliseconds`}::interval
    where task_id = ${taskId}`);
}

/**
 * Appends an event without moving the task (a command that changed something beside the state,
 * such as an approval), and bumps the status version so the status comment shows it.
 */
export async function appendTaskEvent(
  db: Db,
  e: { taskId: string; actor: string; reason: string; data?: Record<string, unknown> },
): Promise<void> {
  await db.execute(sql`
    with task as (
      update tasks set status_version = status_version + 1 where task_id = ${e.taskId}
      returning task_id, state, generation
    )
    insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
    select task_id, ${e.actor}, state, state, generation, ${e.reason},
           ${JSON.stringify(e.data ?? {})}::jsonb
    from task`);
}

/** The state a task was in before its latest hold (where `/unhold` returns it). */
export async function stateBeforeHold(db: Db, taskId: string): Promise<TaskState | undefined> {
  const [row] = resultRows<{ from_state: TaskState | null }>(
    await db.execute(sql`
      select from_state from task_events
      where task_id = ${taskId} and to_state = 'held' and from_state <> 'held'
      order by event_id desc limit 1`),
  );
  return row?.from_state ?? undefined;
}
