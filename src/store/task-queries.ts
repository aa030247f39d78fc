import { and, asc, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import {
  candidates,
  pullRequests,
  repositories,
  runners,
  taskEvents,
  tasks,
} from "../../db/schema.ts";
import { decideCancel, decideRetry, type TaskActionDecision } from "../core/task-actions.ts";
import type { Lane, TaskState } from "../core/task-states.ts";
import { isTopLevelTask } from "./task-kinds.ts";
import { type Task, transitionTask } from "./tasks.ts";

/** A task with the names people know it by. */
export type TaskRow = Task & { fullName: string; runnerName: string | null };
export type TaskEvent = typeof taskEvents.$inferSelect;
export type PullRequestRow = typeof pullRequests.$inferSelect;

export interface TaskFilter {
  states?: readonly TaskState[] | undefined;
  lanes?: readonly Lane[] | undefined;
  /** `owner/name`, any case. */
  repo?: string | undefined;
  issueNumber?: number | undefined;
  limit: number;
  /** From the previous page's `nextCursor`. */
  after?: TaskCursor | undefined;
}

/** Where a page ended: newest first, so the next page holds older tasks. */
export interface TaskCursor {
  /** `created_at` as Postgres prints it (microseconds kept, so no task is skipped or repeated). */
  createdAt: string;
  taskId: string;
}

const taskColumns = {
  task: tasks,
  fullName: repositories.fullName,
  runnerName: runners.name,
  cursorAt: sql<string>`${tasks.createdAt}::text`,
};

/** Tasks newest first, filtered; one more than asked tells whether there is a next page. */
export async function listTasks(
  db: Db,
  filter: TaskFilter,
): Promise<{ tasks: TaskRow[]; nextCursor: TaskCursor | null }> {
  // A best-of-N candidate is listed under its task (`listCandidates`), not as a task of its own.
  const conditions: SQL[] = [isTopLevelTask()];
  if (filter.states?.length) conditions.push(inArray(tasks.state, [...filter.states]));
  if (filter.lanes?.length) conditions.push(inArray(tasks.lane, [...filter.lanes]));
  if (filter.repo) conditions.push(sql`lower(${repositories.fullName}) = lower(${filter.repo})`);
  if (filter.issueNumber !== undefined) conditions.push(eq(tasks.issueNumber, filter.issueNumber));
  if (filter.after) {
    conditions.push(
      sql`(${tasks.createdAt}, ${tasks.taskId}) < (${filter.after.createdAt}::timestamptz, ${filter.after.taskId}::uuid)`,
    );
  }
  const rows = await db
    .select(taskColumns)
    .from(tasks)
    .innerJoin(repositories, eq(repositories.repositoryId, tasks.repositoryId))
    .leftJoin(runners, eq(runners.runnerId, tasks.runnerId))
    .where(and(...conditions))
    .orderBy(desc(tasks.createdAt), desc(tasks.taskId))
    .limit(filter.limit + 1);
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  return {
    tasks: page.map((r) => ({ ...r.task, fullName: r.fullName, runnerName: r.runnerName })),
    nextCursor:
      rows.length > filter.limit && last
        ? { createdAt: last.cursorAt, taskId: last.task.taskId }
        : null,
  };
}

/** A best-of-N candidate as its task lists it: its row in `candidates` and its own task's state. */
export interface CandidateRow {
  taskId: string;
  candidateTaskId: string;
  round: number;
  k: number;
  state: TaskState;
  runnerId: string | null;
  runnerName: string | null;
  adapter: string | null;
  branch: string;
  headSha: string | null;
  costUsd: number | null;
  rank: number | null;
  failure: string | null;
  picked: boolean;
  decidedAt: Date | null;
}

/** The candidates of the given best-of-N tasks, every round, by task, round and k. */
export async function listCandidates(db: Db, taskIds: readonly string[]): Promise<CandidateRow[]> {
  if (taskIds.length === 0) return [];
  return db
    .select({
      taskId: candidates.taskId,
      candidateTaskId: candidates.candidateTaskId,
      round: candidates.round,
      k: candidates.k,
      state: tasks.state,
      runnerId: tasks.runnerId,
      runnerName: runners.name,
      adapter: candidates.adapter,
      branch: candidates.branch,
      headSha: candidates.headSha,
      costUsd: candidates.costUsd,
      rank: candidates.rank,
      failure: candidates.failure,
      picked: candidates.picked,
      decidedAt: candidates.decidedAt,
    })
    .from(candidates)
    .innerJoin(tasks, eq(tasks.taskId, candidates.candidateTaskId))
    .leftJoin(runners, eq(runners.runnerId, tasks.runnerId))
    .where(inArray(candidates.taskId, [...taskIds]))
    .orderBy(asc(candidates.taskId), asc(candidates.round), asc(candidates.k));
}

/** One task with the names people know it by, or undefined. */
export async function getTaskRow(db: Db, taskId: string): Promise<TaskRow | undefined> {
  const [row] = await db
    .select(taskColumns)
    .from(tasks)
    .innerJoin(repositories, eq(repositories.repositoryId, tasks.repositoryId))
    .leftJoin(runners, eq(runners.runnerId, tasks.runnerId))
    .where(eq(tasks.taskId, taskId));
  return row && { ...row.task, fullName: row.fullName, runnerName: row.runnerName };
}

/** One task with its whole history (oldest event first) and its pull request, if it has one. */
export async function getTaskDetails(
  db: Db,
  taskId: string,
): Promise<
  | {
      task: TaskRow;
      events: TaskEvent[];
      pullRequest: PullRequestRow | null;
      candidates: CandidateRow[];
    }
  | undefined
> {
  const task = await getTaskRow(db, taskId);
  if (!task) return undefined;
  const [events, [pullRequest], taskCandidates] = await Promise.all([
    db
      .select()
      .from(taskEvents)
      .where(eq(taskEvents.taskId, taskId))
      .orderBy(asc(taskEvents.eventId)),
    db
      .select()
      .from(pullRequests)
      .where(eq(pullRequests.taskId, taskId))
      .orderBy(desc(pullRequests.createdAt))
      .limit(1),
    task.bestOf > 1 && task.parentTaskId === null ? listCandidates(db, [taskId]) : [],
  ]);
  return {
    task,
    events,
    pullRequest: pullRequest ?? null,
    candidates: taskCandidates,
  };
}

export type TaskActionOutcome =
  | { kind: "moved"; task: TaskRow }
  | { kind: "unchanged"; task: TaskRow; reason: string }
  | { kind: "refused"; task: TaskRow; reason: string }
  | { kind: "not-found" };

/**
 * Retries or cancels a task for an operator (admin API, CLI, `/retry` and `/cancel` on an issue), through the guarded transition (expected state in
 * the statement, event with the actor appended by the same statement). Losing a race to another
 * change is retried against the new state, a few times, so the answer always describes the state
 * the task is really in.
 */
export async function runTaskAction(
  db: Db,
  taskId: string,
  action: "retry" | "cancel",
  who: { actor: string; reason?: string | undefined; via?: string },
): Promise<TaskActionOutcome> {
  for (let round = 0; round < 5; round++) {
    const task = await getTaskRow(db, taskId);
    if (!task) return { kind: "not-found" };
    const decision: TaskActionDecision =
      action === "retry" ? decideRetry(task.state) : decideCancel(task.state);
    if (decision.kind === "unchanged") return { kind: "unchanged", task, reason: decision.reason };
    if (decision.kind === "refuse") return { kind: "refused", task, reason: decision.reason };
    const because = who.reason ? `: ${who.reason}` : "";
    const moved = await transitionTask(db, {
      taskId,
      from: [decision.from],
      to: decision.to,
      actor: who.actor,
      reason:
        action === "retry"
          ? `retried by ${who.actor} from ${decision.from}${because}`
          : `cancelled by ${who.actor}${because}`,
      data: { via: who.via ?? "admin-api", action },
      set:
        action === "retry"
          ? {
              // Claimable at once: a retry skips whatever backoff was left.
              availableAt: new Date(0),
              enqueuedAt: "now",
              runnerId: null,
              leaseExpiresAt: null,
              deadlineAt: null,
              ...(decision.resetAttempts ? { attempts: 0 } : {}),
              ...(decision.resetFollowUps ? { ciFixes: 0, reviewFixes: 0 } : {}),
            }
          : { finished: true, leaseExpiresAt: null, deadlineAt: null },
    });
    if (moved) return { kind: "moved", task: { ...task, ...moved } };
  }
  const task = await getTaskRow(db, taskId);
  return task
    ? { kind: "refused", task, reason: `task is changing too fast (now ${task.state}); try again` }
    : { kind: "not-found" };
}
