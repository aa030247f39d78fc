import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { startWatch } from "./merge-watches.ts";
import { addNotice } from "./notices.ts";
import { setPullRequestState } from "./pull-requests.ts";
import { recordMergedHead } from "./repository-marks.ts";
import { appendTaskEvent, getTask, transitionTask } from "./tasks.ts";

/**
 * The post-merge watch of a merge through GitHub's merge queue, planned from the verdict that
 * enqueued it: the queue merges later, in the background, so the plan waits on the pull request
 * row until the merge is heard of (a webhook, or the merger's next read).
 */
export interface MergeQueuePlan {
  checks: string[];
  tier: number;
  revertMode: string;
  watchMs: number;
  prTitle: string;
  baseRef: string;
}

/** The reason recorded when the merger finds a pull request out of the queue with no event. */
export const GENERIC_DEQUEUE_REASON =
  "it is no longer in the queue and GitHub said nothing about why";

type PrKey = { repository_id: number; pr_number: number };

/** The queue fields of a Conveyor pull request. */
export interface QueuedPullRequest {
  repository_id: number;
  installation_id: number;
  pr_number: number;
  task_id: string;
  head_sha: string;
  state: string;
  queued_head_sha: string | null;
  queue_plan: MergeQueuePlan | null;
  dequeued_head_sha: string | null;
  dequeue_reason: string | null;
}

/**
 * The queue fields of a pull request. With `lock` (inside a transaction) the row is locked: the
 * merger's read and a webhook about the same pull request may record its outcome at the same
 * time, and the second must see what the first wrote.
 */
export async function findQueuedPullRequest(
  db: Db,
  repositoryId: number,
  prNumber: number,
  options: { lock?: boolean } = {},
): Promise<QueuedPullRequest | undefined> {
  const lock = options.lock ? sql`for update of p` : sql``;
  const [row] = resultRows<QueuedPullRequest>(
    await db.execute(sql`
      select p.repository_id, t.installation_id, p.pr_number, p.task_id, p.head_sha, p.state,
             p.queued_head_sha, p.queue_plan, p.dequeued_head_sha, p.dequeue_reason
      from pull_requests p join tasks t on t.task_id = p.task_id
      where p.repository_id = ${repositoryId} and p.pr_number = ${prNumber}
      ${lock}`),
  );
  return row;
}

/**
 * Conveyor is enqueuing `headSha` (written before the GraphQL call, so an instance that dies
 * between the two still follows the queue on its next pass). Guarded by the head: a row whose head
 * moved on is left alone. False when nothing was written.
 */
export async function recordEnqueued(
  db: Db,
  pr: PrKey,
  entry: { headSha: string; plan: MergeQueuePlan },
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      update pull_requests set queued_head_sha = ${entry.headSha}, queued_at = now(),
                               queue_plan = ${JSON.stringify(entry.plan)}::jsonb,
                               updated_at = now()
      where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}
        and head_sha = ${entry.headSha} and state = 'open'
      returning pr_number`),
  );
  return rows.length > 0;
}

/** The pull request is not in the queue (the enqueue was refused, or it left without a verdict). */
export async function clearEnqueued(db: Db, pr: PrKey): Promise<void> {
  await db.execute(sql`
    update pull_requests set queued_head_sha = null, queued_at = null, queue_plan = null,
                             updated_at = now()
    where repository_id = ${pr.repository_id} and pr_number = ${pr.pr_number}`);
}

/**
 * The queue merged the pull request at `mergeSha` (the merge group's head, now the base's tip):
 * the row is merged, the post-merge watch starts on that commit with the plan made when it was
 * enqueued, and the task is merged, in the caller's transaction. Idempotent: the merge_group event,
 * `pull_request.closed` and the merger's read may all report it. Undefined when the pull request
 * is not one Conveyor enqueued.
 */
export async function finishQueuedMerge(
  tx: Db,
  pr: { repositoryId: number; prNumber: number },
  merge: { mergeSha: string; actor: string; byQueue?: boolean },
): Promise<"merged" | "already recorded" | undefined> {
  const row = await findQueuedPullRequest(tx, pr.repositoryId, pr.prNumber, { lock: true });
  // A pull request recorded as removed may still turn out merged by the queue (it was read out of
  // the queue in the moment before GitHub marked it merged): the plan is kept for that. Only a
  // report that names the queue (`byQueue`) counts then, not a merge by hand.
  const enqueued = row?.queued_head_sha ?? (merge.byQueue ? row?.dequeued_head_sha : null);
  if (!row || !enqueued || !row.queue_plan) return undefined;
  await setPullRequestState(tx, pr.repositoryId, pr.prNumber, "merged");
  const task = await getTask(tx, row.task_id);
  if (!task) return undefined;
  const plan = row.queue_plan;
  await startWatch(tx, {
    taskId: row.task_id,
    repositoryId: pr.repositoryId,
    installationId: row.installation_id,
    issueNumber: task.issueNumber,
    prNumber: pr.prNumber,
    prTitle: plan.prTitle,
    baseRef: plan.baseRef,
    mergeSha: merge.mergeSha,
    checks: plan.checks,
    tier: plan.tier,
    revertMode: plan.revertMode,
    deadlineAt: new Date(Date.now() + plan.watchMs),
  });
  const moved = await transitionTask(tx, {
    taskId: row.task_id,
    from: ["merging", "review", "waiting_human"],
    to: "merged",
    actor: merge.actor,
    reason: `pull request #${pr.prNumber} merged by the merge queue at ${merge.mergeSha.slice(0, 7)}`,
    data: { merge_sha: merge.mergeSha, head_sha: enqueued },
    set: { finished: true },
  });
  // The queue's merge moved the base: the next assignment starts from it (as after a direct merge).
  if (moved) {
    await recordMergedHead(tx, {
      repositoryId: pr.repositoryId,
      branch: plan.baseRef,
      headSha: merge.mergeSha,
    });
  }
  return moved ? "merged" : "already recorded";
}

/**
 * The queue removed the pull request without merging it: the head it held is recorded with the
 * reason (Conveyor will not enqueue that head again) and the task waits for a person, in the
 * caller's transaction. A second report about the same head (the merger noticed first, then
 * `pull_request.dequeued` says why) replaces the reason and notes it on the timeline. Undefined
 * when the pull request is not one Conveyor enqueued.
 */
export async function recordDequeued(
  tx: Db,
  pr: { repositoryId: number; prNumber: number },
  dequeue: { reason: string; actor: string; headSha?: string | undefined },
): Promise<"dequeued" | "reason updated" | "already recorded" | undefined> {
  const row = await findQueuedPullRequest(tx, pr.repositoryId, pr.prNumber, { lock: true });
  if (row?.state !== "open") return undefined;
  if (!row.queued_head_sha) {
    if (!row.dequeued_head_sha || row.dequeued_head_sha !== dequeue.headSha) return undefined;
    // Only the merger's "no reason" is replaced; a reason an event gave stays.
    if (row.dequeue_reason !== GENERIC_DEQUEUE_REASON) return "already recorded";
    await tx.execute(sql`
      update pull_requests set dequeue_reason = ${dequeue.reason}, updated_at = now()
      where repository_id = ${pr.repositoryId} and pr_number = ${pr.prNumber}`);
    await appendTaskEvent(tx, {
      taskId: row.task_id,
      actor: dequeue.actor,
      reason: `removed from the merge queue: ${dequeue.reason}`,
      data: { head_sha: row.dequeued_head_sha },
    });
    return "reason updated";
  }
  if (dequeue.headSha !== undefined && dequeue.headSha !== row.queued_head_sha) return undefined;
  await tx.execute(sql`
    update pull_requests set dequeued_head_sha = queued_head_sha, dequeue_reason = ${dequeue.reason},
                             queued_head_sha = null, queued_at = null, updated_at = now()
    where repository_id = ${pr.repositoryId} and pr_number = ${pr.prNumber}`);
  const moved = await transitionTask(tx, {
    taskId: row.task_id,
    from: ["merging", "review"],
    to: "waiting_human",
    actor: dequeue.actor,
    reason: `removed from the merge queue: ${dequeue.reason}`,
    data: { head_sha: row.queued_head_sha },
  });
  if (!moved) return "already recorded";
  await addNotice(tx, {
    dedupeKey: `dequeued:${row.task_id}:${row.queued_head_sha}`,
    repositoryId: pr.repositoryId,
    installationId: row.installation_id,
    issueNumber: pr.prNumber,
    body: `GitHub's merge queue removed this pull request: ${dequeue.reason}. Conveyor does not enqueue this commit again; a new commit (\`/fix\`) or a maintainer has to move it on.`,
  });
  return "dequeued";
}

/** While the task is merging through the queue: what its status comment says about it. */
export async function mergeQueueNote(db: Db, taskId: string): Promise<string | undefined> {
  const [row] = resultRows<{ queued_head_sha: string; queued_at: string }>(
    await db.execute(sql`
      select queued_head_sha, queued_at::text from pull_requests
      where task_id = ${taskId} and state = 'open' and queued_head_sha is not null
      order by created_at desc limit 1`),
  );
  return row
    ? `enqueued at \`${row.queued_head_sha.slice(0, 7)}\`; GitHub merges it once the required checks pass on its merge group`
    : undefined;
}

/** A pull request still recorded in the merge queue whose task ended without it merging. */
export interface AbandonedQueueEntry {
  repository_id: number;
  installation_id: number;
  full_name: string;
  pr_number: number;
  task_id: string;
  task_state: string;
}

/**
 * Pull requests Conveyor enqueued whose task was cancelled (or otherwise ended) while they waited
 * in the queue: the merger takes them out, so a cancelled change is not merged by the queue.
 */
export async function findAbandonedQueueEntries(db: Db): Promise<AbandonedQueueEntry[]> {
  return resultRows<AbandonedQueueEntry>(
    await db.execute(sql`
      select p.repository_id, t.installation_id, r.full_name, p.pr_number, p.task_id,
             t.state as task_state
      from pull_requests p
      join tasks t on t.task_id = p.task_id
      join repositories r on r.repository_id = p.repository_id
      where p.state = 'open' and p.queued_head_sha is not null
        and t.state in ('cancelled', 'dead', 'failed')`),
  );
}
