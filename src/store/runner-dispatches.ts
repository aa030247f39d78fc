import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { arrayLiteral } from "./dispatch.ts";

/*
 * Runners dispatched through GitHub Actions (`runners.actions`). A dispatch row is written before
 * GitHub is asked, for one waiting task, with the one-time runner its workflow run will connect
 * as; it is settled here: `connected` once the runner used its credential, `expired` when the
 * credential ran out unused (the runner is revoked), `failed` when GitHub refused the dispatch.
 */

/** Failed or expired dispatches one task may have before no more are made for it. */
export const MAX_DISPATCHES_PER_TASK = 2;

export interface SettledDispatch {
  dispatch_id: string;
  task_id: string;
  repository_id: number;
  workflow: string;
}

/**
 * Settles open dispatches: `connected` when the runner opened its connection, `expired` (and the
 * runner revoked) when its credential expired unused. Returns what changed, for logs and metrics.
 */
export async function settleDispatches(
  db: Db,
): Promise<{ connected: SettledDispatch[]; expired: SettledDispatch[] }> {
  const connected = resultRows<SettledDispatch>(
    await db.execute(sql`
      update runner_dispatches d set state = 'connected', settled_at = now()
      from runners r
      where r.runner_id = d.runner_id and d.state = 'dispatched' and r.used_at is not null
      returning d.dispatch_id, d.task_id, d.repository_id, d.workflow`),
  );
  const expired = resultRows<SettledDispatch>(
    await db.execute(sql`
      with gone as (
        update runner_dispatches d set state = 'expired', settled_at = now(),
          error = 'the dispatched runner never connected before its credential expired'
        from runners r
        where r.runner_id = d.runner_id and d.state = 'dispatched' and r.used_at is null
          and (r.expires_at <= now() or r.revoked_at is not null)
        returning d.dispatch_id, d.task_id, d.repository_id, d.workflow, d.runner_id
      ), revoked as (
        update runners set revoked_at = coalesce(revoked_at, now())
        where runner_id in (select runner_id from gone)
      )
      select dispatch_id, task_id, repository_id, workflow from gone`),
  );
  return { connected, expired };
}

/** A task waiting long enough for a dispatched runner, with its repository. */
export interface ActionsCandidate {
  task_id: string;
  repository_id: number;
  installation_id: number;
  full_name: string;
  default_branch: string;
  capabilities: string[];
  waited_seconds: number;
}

/** A repository with queued tasks due now. */
export interface QueuedRepository {
  repository_id: number;
  installation_id: number;
  full_name: string;
  default_branch: string;
}

/** The installed repositories that have queued tasks due now (one probe per repository). */
export async function queuedRepositories(db: Db): Promise<QueuedRepository[]> {
  return resultRows<QueuedRepository>(
    await db.execute(sql`
      select r.repository_id, r.installation_id, r.full_name, r.default_branch
      from repositories r
      where r.removed_at is null
        and exists (select 1 from tasks t
                    where t.repository_id = r.repository_id and t.state = 'queued'
                      and t.available_at <= now())
      order by r.repository_id`),
  ).map((row) => ({
    ...row,
    // bigint columns come back as strings from raw SQL.
    repository_id: Number(row.repository_id),
    installation_id: Number(row.installation_id),
  }));
}

/**
 * One repository's queued tasks due now that waited at least `waitedSeconds` and that a runner
 * with `capabilities` can take, oldest first, at most `limit`, that have no open dispatch and
 * fewer than {@link MAX_DISPATCHES_PER_TASK} failed or expired ones since they last entered the
 * queue: a runner that never comes is not asked for again and again.
 */
export async function actionsCandidates(
  db: Db,
  request: {
    repositoryId: number;
    waitedSeconds: number;
    capabilities: readonly string[];
    limit: number;
  },
): Promise<ActionsCandidate[]> {
  if (request.limit <= 0) return [];
  return resultRows<ActionsCandidate>(
    await db.execute(sql`
      select t.task_id, t.repository_id, t.installation_id, r.full_name, r.default_branch,
             t.capabilities,
             extract(epoch from now() - t.enqueued_at)::float8 as waited_seconds
      from tasks t join repositories r on r.repository_id = t.repository_id
      where t.repository_id = ${request.repositoryId}
        and t.state = 'queued' and t.available_at <= now() and r.removed_at is null
        and t.capabilities <@ ${arrayLiteral(request.capabilities)}::text[]
        and t.enqueued_at <= now() - ${`${Math.max(0, request.waitedSeconds)} seconds`}::interval
        and not exists (select 1 from runner_dispatches d
                        where d.task_id = t.task_id and d.state = 'dispatched')
        and (select count(*) from runner_dispatches d
             where d.task_id = t.task_id and d.state in ('failed', 'expired')
               and d.created_at >= t.enqueued_at) < ${MAX_DISPATCHES_PER_TASK}
      order by t.enqueued_at, t.task_id
      limit ${request.limit}`),
  ).map((row) => ({
    ...row,
    // bigint columns come back as strings from raw SQL.
    repository_id: Number(row.repository_id),
    installation_id: Number(row.installation_id),
    waited_seconds: Number(row.waited_seconds),
  }));
}

/**
 * Per repository, dispatched runners that still count against `max_parallel` (`active`): waiting
 * to connect, or connected and not yet gone (a spent one-time runner is revoked when it leaves).
 * `pending`: those that have not taken a task yet, which will serve a waiting one.
 */
export async function activeDispatches(
  db: Db,
): Promise<Map<number, { pending: number; active: number }>> {
  const rows = resultRows<{ repository_id: number; pending: number; active: number }>(
    await db.execute(sql`
      select d.repository_id,
             count(*) filter (where d.state = 'dispatched'
                                or (d.state = 'connected' and r.last_assigned_at is null))::int
               as pending,
             count(*)::int as active
      from runner_dispatches d join runners r on r.runner_id = d.runner_id
      where d.state = 'dispatched' or (d.state = 'connected' and r.revoked_at is null)
      group by d.repository_id`),
  );
  return new Map(
    rows.map((row) => [
      Number(row.repository_id),
      { pending: Number(row.pending), active: Number(row.active) },
    ]),
  );
}

export async function recordDispatch(
  db: Db,
  dispatch: { repositoryId: number; taskId: string; runnerId: string; workflow: string },
): Promise<string> {
  const [row] = resultRows<{ dispatch_id: string }>(
    await db.execute(sql`
      insert into runner_dispatches (repository_id, task_id, runner_id, workflow)
      values (${dispatch.repositoryId}, ${dispatch.taskId}, ${dispatch.runnerId}, ${dispatch.workflow})
      returning dispatch_id`),
  );
  if (!row) throw new Error("recording the dispatch failed");
  return row.dispatch_id;
}

/** GitHub refused the dispatch: the row says why, and its runner is revoked unused. */
export async function failDispatch(db: Db, dispatchId: string, error: string): Promise<void> {
  await db.execute(sql`
    with failed as (
      update runner_dispatches set state = 'failed', error = ${error}, settled_at = now()
      where dispatch_id = ${dispatchId} and state = 'dispatched'
      returning runner_id
    )
    update runners set revoked_at = coalesce(revoked_at, now())
    where runner_id in (select runner_id from failed)`);
}

/** Dispatches by state over the last `hours`, for `conveyor doctor`, alerts and the API. */
export async function countDispatches(
  db: Db,
  hours = 24,
): Promise<Record<"dispatched" | "connected" | "failed" | "expired", number>> {
  const rows = resultRows<{ state: string; n: number }>(
    await db.execute(sql`
      select state, count(*)::int as n from runner_dispatches
      where created_at >= now() - ${`${hours} hours`}::interval group by state`),
  );
  const counts = { dispatched: 0, connected: 0, failed: 0, expired: 0 };
  for (const row of rows) counts[row.state as keyof typeof counts] = Number(row.n);
  return counts;
}
