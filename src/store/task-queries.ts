import { and, asc, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { pullRequests, repositories, runners, taskEvents, tasks } from "../../db/schema.ts";
import { decideCancel, decideRetry, type TaskActionDecision } from "../core/task-actions.ts";
import type { Lane, TaskState } from "../core/task-states.ts";
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
  const conditions: SQL[] = [];
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
    .where(conditions.length ? and(...conditions) : undefined)
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
): Promise<{ task: TaskRow; events: TaskEvent[]; pullRequest: PullRequestRow | null } | undefined> {
  const task = await getTaskRow(db, taskId);
  if (!task) return undefined;
  const [events, [pullRequest]] = await Promise.all([
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
  ]);
  return {
    task,
    events,
    pullRequest: pullRequest ?? null,
  };
}

export type TaskActionOutcome =
  | { kind: "moved"; task: TaskRow }
  | { kind: "unchanged"; task: TaskRow; reason: string }
  | { kind: "refused"; task: TaskRow; reason: string }
  | { kind: "not-found" };

/**
 * Retries or cancels a task for an operator, through the guarded transition (expected state in
 * the statement, event with the actor appended by the same statement). Losing a race to another
 * change is retried against the new state, a few times, so the answer always describes the state
 * the task is really in.
 */
export async function runTaskAction(
  db: Db,
  taskId: string,
  action: "retry" | "cancel",
  who: { actor: string; reason?: string | undefined },
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
      data: { via: "admin-api", action },
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
