import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import type { FailingCheck, RerequestedCheck } from "../core/merge-watch.ts";

/** The states of a post-merge watch; the last five end it (`finished_at` is set with them). */
export const WATCH_STATES = [
  "watching",
  "rerequested",
  "reverting",
  "green",
  "expired",
  "red",
  "reverted",
  "revert_closed",
] as const;
export type WatchState = (typeof WATCH_STATES)[number];

export interface MergeWatch {
  watch_id: number;
  task_id: string;
  repository_id: number;
  installation_id: number;
  full_name: string;
  issue_number: number;
  pr_number: number;
  pr_title: string;
  base_ref: string;
  merge_sha: string;
  parent_sha: string | null;
  checks: string[];
  tier: number;
  revert_mode: "auto" | "pr" | "off";
  state: WatchState;
  rerequested: RerequestedCheck[];
  failing: FailingCheck[];
  revert_pr_number: number | null;
  revert_branch: string | null;
  requeued_task_id: string | null;
  note: string;
  deadline_at: string;
  created_at: string;
  finished_at: string | null;
}

/**
 * Starts watching a merge Conveyor made. One watch per merge commit: a repeated call (the merge
 * recorded again after an unknown outcome) changes nothing.
 */
export async function startWatch(
  db: Db,
  w: {
    taskId: string;
    repositoryId: number;
    installationId: number;
    issueNumber: number;
    prNumber: number;
    prTitle: string;
    baseRef: string;
    mergeSha: string;
    checks: string[];
    tier: number;
    revertMode: string;
    deadlineAt: Date;
  },
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      insert into merge_watches (task_id, repository_id, installation_id, issue_number, pr_number,
                                 pr_title, base_ref, merge_sha, checks, tier, revert_mode, note,
                                 deadline_at)
      values (${w.taskId}, ${w.repositoryId}, ${w.installationId}, ${w.issueNumber}, ${w.prNumber},
              ${w.prTitle}, ${w.baseRef}, ${w.mergeSha},
              ${sql`array[${sql.join(
                w.checks.map((c) => sql`${c}`),
                sql`, `,
              )}]::text[]`},
              ${w.tier}, ${w.revertMode}, 'watching the checks on the merge commit',
              ${w.deadlineAt.toISOString()})
      on conflict (repository_id, merge_sha) do nothing
      returning watch_id`),
  );
  return rows.length > 0;
}

const SELECT = sql`
  select w.watch_id, w.task_id, w.repository_id, w.installation_id, r.full_name, w.issue_number,
         w.pr_number, w.pr_title, w.base_ref, w.merge_sha, w.parent_sha, w.checks, w.tier,
         w.revert_mode, w.state, w.rerequested, w.failing, w.revert_pr_number, w.revert_branch,
         w.requeued_task_id, w.note, w.deadline_at::text, w.created_at::text, w.finished_at::text
  from merge_watches w join repositories r on r.repository_id = w.repository_id`;

/** Watches not finished yet (watching, re-requested, or a revert pull request open), oldest first. */
export async function openWatches(db: Db): Promise<MergeWatch[]> {
  return resultRows<MergeWatch>(
    await db.execute(sql`${SELECT} where w.finished_at is null order by w.watch_id`),
  );
}

/** The task's latest watch, for its status comment. */
export async function latestWatch(db: Db, taskId: string): Promise<MergeWatch | undefined> {
  const [row] = resultRows<MergeWatch>(
    await db.execute(sql`${SELECT} where w.task_id = ${taskId} order by w.watch_id desc limit 1`),
  );
  return row;
}

const FINAL: readonly WatchState[] = ["green", "expired", "red", "reverted", "revert_closed"];

/**
 * Moves a watch on, guarded by the state it was read in (two instances never both act on one
 * step). False when it had moved already.
 */
export async function advanceWatch(
  db: Db,
  w: { watchId: number; from: WatchState },
  to: WatchState,
  set: {
    note: string;
    parentSha?: string | null;
    rerequested?: RerequestedCheck[];
    failing?: FailingCheck[];
    revertPrNumber?: number;
    revertBranch?: string;
    requeuedTaskId?: string;
  },
): Promise<boolean> {
  const assignments = [sql`state = ${to}`, sql`note = ${set.note}`, sql`updated_at = now()`];
  if (set.parentSha !== undefined) assignments.push(sql`parent_sha = ${set.parentSha}`);
  if (set.rerequested) {
    assignments.push(sql`rerequested = ${JSON.stringify(set.rerequested)}::jsonb`);
    assignments.push(sql`rerequested_at = now()`);
  }
  if (set.failing) assignments.push(sql`failing = ${JSON.stringify(set.failing)}::jsonb`);
  if (set.revertPrNumber !== undefined) {
    assignments.push(sql`revert_pr_number = ${set.revertPrNumber}`);
  }
  if (set.revertBranch !== undefined) assignments.push(sql`revert_branch = ${set.revertBranch}`);
  if (set.requeuedTaskId !== undefined) {
    assignments.push(sql`requeued_task_id = ${set.requeuedTaskId}`);
  }
  if (FINAL.includes(to)) assignments.push(sql`finished_at = now()`);
  const rows = resultRows(
    await db.execute(sql`
      update merge_watches set ${sql.join(assignments, sql`, `)}
      where watch_id = ${w.watchId} and state = ${w.from} and finished_at is null
      returning watch_id`),
  );
  return rows.length > 0;
}

/** Records the merge commit's parent once it is known (a watch that waits reads it once). */
export async function setWatchParent(db: Db, watchId: number, parentSha: string): Promise<void> {
  await db.execute(sql`
    update merge_watches set parent_sha = ${parentSha}, updated_at = now()
    where watch_id = ${watchId} and parent_sha is null`);
}

/**
 * Freezes the repository with `reason` unless it is frozen already (a person's freeze, or an
 * earlier breakage, keeps its own reason). True when this call froze it.
 */
export async function freezeUnlessFrozen(
  db: Db,
  repositoryId: number,
  reason: string,
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      update repositories set frozen = true, frozen_reason = ${reason}, updated_at = now()
      where repository_id = ${repositoryId} and not frozen
      returning repository_id`),
  );
  return rows.length > 0;
}

/** Lifts the freeze only if it is still the one with `reason` (a person's later freeze stays). */
export async function unfreezeIf(db: Db, repositoryId: number, reason: string): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      update repositories set frozen = false, frozen_reason = null, updated_at = now()
      where repository_id = ${repositoryId} and frozen and frozen_reason = ${reason}
      returning repository_id`),
  );
  return rows.length > 0;
}

/**
 * "Merged in queue order": an open Conveyor pull request of the same repository whose task was
 * queued before this one and is being retried on the new base (after a conflict) or is merging,
 * whose change set touches one of `paths`. That one merges first; this one waits. (Two that are
 * ready in the same pass are already reviewed in queue order, see `findMergeCandidates`.)
 */
export async function earlierOverlappingPullRequest(
  db: Db,
  c: { repositoryId: number; taskId: string; paths: readonly string[] },
): Promise<{ pr_number: number; path: string } | undefined> {
  if (c.paths.length === 0) return undefined;
  const [row] = resultRows<{ pr_number: number; path: string }>(
    await db.execute(sql`
      select p.pr_number, f->>'path' as path
      from tasks me
      join tasks t on t.repository_id = me.repository_id and t.task_id <> me.task_id
      join pull_requests p on p.task_id = t.task_id and p.state = 'open'
      join change_sets cs on cs.task_id = t.task_id and cs.generation = t.published_generation
      cross join lateral jsonb_array_elements(cs.files) f
      where me.task_id = ${c.taskId}
        and (t.created_at, t.task_id) < (me.created_at, me.task_id)
        and (t.state = 'merging'
             or (t.fresh_base and t.state in ('queued', 'assigned', 'running', 'retry_wait',
                                              'pushed')))
        and f->>'path' in (${sql.join(
          c.paths.map((path) => sql`${path}`),
          sql`, `,
        )})
      order by t.created_at
      limit 1`),
  );
  return row;
}
