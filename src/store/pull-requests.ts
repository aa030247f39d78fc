import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import type { FileMode } from "../core/content-rules.ts";
import type { TaskState } from "../core/task-states.ts";
import type { ChangeSet } from "../protocol/messages.ts";
import { type Task, transitionTask } from "./tasks.ts";

export interface UnpublishedTask {
  task_id: string;
  generation: number;
  installation_id: number;
  repository_id: number;
  full_name: string;
  default_branch: string;
  issue_number: number;
  title: string;
  lane: string;
  attempts: number;
  max_attempts: number;
  base_sha: string | null;
  result: { summary?: string; stats?: Record<string, number>; verification?: unknown } | null;
  change_set: Pick<ChangeSet, "base_sha" | "message" | "files">;
  runner_name: string | null;
  /** Whether any task of this issue ever had a pull request recorded (its branch may exist). */
  issue_had_pull_request: boolean;
}

/**
 * Tasks whose result is in (`pushed`) but whose current generation is not on a pull request yet,
 * with everything needed to write it.
 */
export async function findUnpublished(db: Db, limit: number): Promise<UnpublishedTask[]> {
  return resultRows<UnpublishedTask>(
    await db.execute(sql`
      select t.task_id, t.generation, t.installation_id, t.repository_id, r.full_name,
             r.default_branch, t.issue_number, t.title, t.lane, t.attempts, t.max_attempts,
             t.base_sha, t.result,
             jsonb_build_object('base_sha', c.base_sha, 'message', c.message, 'files', c.files)
               as change_set,
             (select name from runners where runner_id = c.runner_id) as runner_name,
             exists (
               select 1 from pull_requests p join tasks o on o.task_id = p.task_id
               where o.repository_id = t.repository_id and o.issue_number = t.issue_number
             ) as issue_had_pull_request
      from tasks t
      join repositories r on r.repository_id = t.repository_id
      join change_sets c on c.task_id = t.task_id and c.generation = t.generation
      where t.state = 'pushed' and t.published_generation < t.generation
        -- A best-of-N candidate's change goes to its own branch (src/loops/best-of.ts).
        and t.parent_task_id is null
      order by t.updated_at
      limit ${limit}`),
  );
}

/**
 * The pull request for this generation is written: link it to the task (one row per PR, the head
 * Conveyor wrote), consume the feedback, and move the task on to review. Guarded by generation, so
 * a publish that lost a race changes nothing.
 */
export async function recordPublished(
  db: Db,
  input: {
    taskId: string;
    generation: number;
    repositoryId: number;
    prNumber: number;
    branch: string;
    headSha: string;
    /** The base the pull request was opened against: Conveyor merges into no other. */
    baseRef: string;
    url: string;
  },
): Promise<Task | undefined> {
  return db.transaction(async (tx) => {
    const updated = resultRows(
      await tx.execute(sql`
        update tasks set published_generation = generation, pr_number = ${input.prNumber},
                         feedback = null, fresh_base = false
        where task_id = ${input.taskId} and generation = ${input.generation} and state = 'pushed'
        returning task_id`),
    );
    if (updated.length === 0) return undefined;
    // A follow-up keeps the base the pull request was first opened against: a retargeted pull
    // request stays retargeted, and blocked.
    await tx.execute(sql`
      insert into pull_requests (repository_id, pr_number, task_id, branch, head_sha, url, state,
                                 base_ref)
      values (${input.repositoryId}, ${input.prNumber}, ${input.taskId}, ${input.branch},
              ${input.headSha}, ${input.url}, 'open', ${input.baseRef})
      on conflict (repository_id, pr_number) do update
        set task_id = excluded.task_id, head_sha = excluded.head_sha, url = excluded.url,
            state = 'open', head_written_at = now(), merge_conflicts = 0, updated_at = now(),
            base_ref = coalesce(pull_requests.base_ref, excluded.base_ref),
            update_requested_from = null, update_base_sha = null, update_requested_at = null`);
    return transitionTask(tx, {
      taskId: input.taskId,
      generation: input.generation,
      from: ["pushed"],
      to: "review",
      actor: "publisher",
      reason: `pull request #${input.prNumber} written (${input.headSha.slice(0, 7)})`,
      data: { pr_number: input.prNumber, head_sha: input.headSha },
    });
  });
}

export interface PullRequestRow {
  repository_id: number;
  pr_number: number;
  task_id: string;
  branch: string;
  head_sha: string;
  url: string;
  state: string;
}

export async function findPullRequest(
  db: Db,
  repositoryId: number,
  prNumber: number,
): Promise<PullRequestRow | undefined> {
  const [row] = resultRows<PullRequestRow>(
    await db.execute(sql`
      select * from pull_requests where repository_id = ${repositoryId} and pr_number = ${prNumber}`),
  );
  return row;
}

/** Open pull requests whose head is exactly this commit (what check events are about). */
export async function findOpenPullRequestsByHead(
  db: Db,
  repositoryId: number,
  headSha: string,
): Promise<PullRequestRow[]> {
  return resultRows<PullRequestRow>(
    await db.execute(sql`
      select * from pull_requests
      where repository_id = ${repositoryId} and head_sha = ${headSha} and state = 'open'`),
  );
}

export async function setPullRequestState(
  db: Db,
  repositoryId: number,
  prNumber: number,
  state: "open" | "closed" | "merged",
  options: { mergedByHand?: boolean } = {},
): Promise<void> {
  const byHand = options.mergedByHand ? sql`, merged_by_hand = true` : sql``;
  await db.execute(sql`
    update pull_requests set state = ${state}, updated_at = now() ${byHand}
    where repository_id = ${repositoryId} and pr_number = ${prNumber}`);
}

/** The task's open pull request URL, for its status comment. */
export async function pullRequestUrl(db: Db, taskId: string): Promise<string | undefined> {
  const [row] = resultRows<{ url: string }>(
    await db.execute(sql`
      select url from pull_requests where task_id = ${taskId}
      order by created_at desc limit 1`),
  );
  return row?.url;
}

/** A task whose current result is an open pull request the merger should review. */
export interface MergeCandidate {
  task_id: string;
  state: TaskState;
  generation: number;
  installation_id: number;
  repository_id: number;
  full_name: string;
  frozen: boolean;
  frozen_reason: string | null;
  pr_number: number;
  branch: string;
  head_sha: string;
  head_written_at: string;
  safety_check_id: number | null;
  safety_check_sha: string | null;
  verdict_digest: string | null;
  merge_conflicts: number;
  /** The branch the pull request was opened against. */
  base_ref: string | null;
  /** The commit the task's attempt started from (its base checks are expected on the head). */
  task_base_sha: string | null;
  update_requested_from: string | null;
  update_base_sha: string | null;
  update_requested_at: string | null;
  would_merge_at: string | null;
  /** The head Conveyor enqueued in GitHub's merge queue; null when not in the queue. */
  queued_head_sha: string | null;
  /** The head the merge queue removed, and why: never enqueued again. */
  dequeued_head_sha: string | null;
  dequeue_reason: string | null;
  /** The task's lane: the pull request's `priority:<lane>` label. */
  lane: string;
  result: {
    verification?: { passed: boolean; commands?: { passed: boolean; argv: string[] }[] };
  } | null;
}

/**
 * Open Conveyor pull requests whose task is in review, waiting for a person, merging or held, and
 * whose current generation is on the PR (a follow-up in flight is left alone). With `only`, just
 * that pull request, read afresh: a pass over many PRs takes a while, and a `/freeze`, `/hold` or
 * new head that landed meanwhile must count.
 */
export async function findMergeCandidates(
  db: Db,
  only?: { repositoryId: number; prNumber: number },
): Promise<MergeCandidate[]> {
  const one = only
    ? sql`and p.repository_id = ${only.repositoryId} and p.pr_number = ${only.prNumber}`
    : sql``;
  return resultRows<MergeCandidate>(
    await db.execute(sql`
        select t.task_id, t.state, t.generation, t.installation_id, t.repository_id, r.full_name,
               r.frozen, r.frozen_reason, p.pr_number, p.branch, p.head_sha,
               p.head_written_at::text, p.safety_check_id, p.safety_check_sha, p.verdict_digest,
               p.merge_conflicts, p.base_ref, t.base_sha as task_base_sha,
               p.update_requested_from, p.update_base_sha, p.update_requested_at::text,
               p.would_merge_at::text, p.queued_head_sha, p.dequeued_head_sha, p.dequeue_reason,
               t.result, t.lane
        from pull_requests p
        join tasks t on t.task_id = p.task_id
        join repositories r on r.repository_id = p.repository_id
        where p.state = 'open' and t.state in ('review', 'waiting_human', 'merging', 'held')
          and t.published_generation = t.generation ${one}
        -- Queue order: of two pull requests ready in one pass that touch the same file, the one
        -- whose task was queued first merges first (the other is then retried on the new base).
        order by t.created_at, t.task_id`),
  );
}

/** The `Conveyor / safety` check run now on `sha`, and a digest of what it says. */
export async function recordSafetyCheck(
  db: Db,
  pr: { repository_id: number; pr_number: number },
  check: { checkId: number; sha: string; digest: string },
): Promise<void> {
  await db.execute(sql`
    update pull_requests set safety_check_id = ${check.checkId}, safety_check_sha = ${check.sha},
                             verdict_digest = ${check.digest}
    where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}`);
}

/** "Base branch was modified" answers in a row for this PR's head. */
export async function recordMergeConflicts(
  db: Db,
  pr: { repository_id: number; pr_number: number },
  conflicts: number,
): Promise<void> {
  await db.execute(sql`
    update pull_requests set merge_conflicts = ${conflicts}
    where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}`);
}

/**
 * `merge.update_branch`: Conveyor asked GitHub to merge the base (then at `baseSha`) into its head
 * `from`. The merge commit GitHub makes on top of `from` is adopted as the new head.
 */
export async function recordUpdateRequested(
  db: Db,
  pr: { repository_id: number; pr_number: number },
  update: { from: string; baseSha: string },
): Promise<void> {
  await db.execute(sql`
    update pull_requests set update_requested_from = ${update.from},
                             update_base_sha = ${update.baseSha}, update_requested_at = now()
    where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}
      and head_sha = ${update.from}`);
}

/**
 * The commit GitHub made for Conveyor's update request becomes the head Conveyor may merge; the
 * checks and their timeout start again from now. Guarded by the head and the request, so only the
 * update that was asked for, once, is adopted. False when the row had moved on.
 */
export async function adoptUpdatedHead(
  db: Db,
  pr: { repository_id: number; pr_number: number },
  update: { from: string; to: string },
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      update pull_requests set head_sha = ${update.to}, head_written_at = now(),
                               merge_conflicts = 0, update_requested_from = null,
                               update_base_sha = null, update_requested_at = null,
                               updated_at = now()
      where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}
        and head_sha = ${update.from} and update_requested_from = ${update.from}
      returning pr_number`),
  );
  return rows.length > 0;
}

/** A verdict said "would merge" (merge.mode approve or report): kept from the first time. */
export async function recordWouldMerge(
  db: Db,
  pr: { repository_id: number; pr_number: number },
): Promise<void> {
  await db.execute(sql`
    update pull_requests set would_merge_at = coalesce(would_merge_at, now())
    where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}`);
}

/**
 * The modes Conveyor wrote the files of a task's change set with, by path (deletions left out).
 * GitHub's list of a pull request's files has no modes, and Conveyor made the commit itself from
 * this change set, so this is where the merge policy learns about symlinks and executables.
 */
export async function changeSetModes(
  db: Db,
  change: { taskId: string; generation: number },
): Promise<Map<string, FileMode>> {
  const rows = resultRows<{ path: string; mode: string }>(
    await db.execute(sql`
      select f->>'path' as path, coalesce(f->>'mode', '100644') as mode
      from change_sets c, jsonb_array_elements(c.files) f
      where c.task_id = ${change.taskId} and c.generation = ${change.generation}
        and f->>'action' <> 'delete'`),
  );
  const modes = new Map<string, FileMode>();
  for (const row of rows) {
    // An unknown mode fails closed as the riskier kind.
    const mode: FileMode =
      row.mode === "100644" || row.mode === "100755" || row.mode === "120000" ? row.mode : "120000";
    modes.set(row.path, mode);
  }
  return modes;
}
