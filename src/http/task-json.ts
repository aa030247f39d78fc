import type { Lane, TaskState } from "../core/task-states.ts";
import type { CandidateRow, PullRequestRow, TaskEvent, TaskRow } from "../store/task-queries.ts";
import type { Task } from "../store/tasks.ts";

/** A task as `GET /api/tasks` lists it and `conveyor tasks list --json` prints it. */
export interface TaskJson {
  task_id: string;
  repo: string | null;
  issue_number: number;
  title: string;
  state: TaskState;
  lane: Lane;
  capabilities: string[];
  generation: number;
  attempts: number;
  max_attempts: number;
  queued_by: string;
  runner_id: string | null;
  runner_name: string | null;
  pr_number: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  enqueued_at: string;
  available_at: string;
  lease_expires_at: string | null;
  finished_at: string | null;
  /** Best of N (docs/merge-policy.md#best-of-n): how many candidates the task runs (1: none). */
  best_of: number;
  /** For a candidate: the task it is a candidate of, and its number k; null otherwise. */
  parent_task_id: string | null;
  candidate: number | null;
}

/** One candidate of a best-of-N task, as the task's `candidates` lists it. */
export interface CandidateJson {
  task_id: string;
  round: number;
  k: number;
  state: TaskState;
  runner_id: string | null;
  runner_name: string | null;
  adapter: string | null;
  branch: string;
  head_sha: string | null;
  cost_usd: number | null;
  rank: number | null;
  failure: string | null;
  picked: boolean;
  decided_at: string | null;
}

/** A task as `GET /api/tasks` lists it: with its candidates (empty unless it is best of N). */
export interface TaskListItemJson extends TaskJson {
  candidates: CandidateJson[];
}

export interface TaskEventJson {
  event_id: number;
  at: string;
  actor: string;
  from_state: TaskState | null;
  to_state: TaskState;
  generation: number;
  reason: string;
  data: unknown;
}

/** `GET /api/tasks/:id`: the task, the snapshot runners get, its pull request and its history. */
export interface TaskDetailsJson extends TaskListItemJson {
  body: string;
  snapshot_hash: string;
  deadline_at: string | null;
  base_sha: string | null;
  ci_fixes: number;
  review_fixes: number;
  limits: unknown;
  result: unknown;
  pull_request: {
    number: number;
    url: string;
    state: string;
    branch: string;
    head_sha: string;
  } | null;
  events: TaskEventJson[];
}

const iso = (date: Date | null) => date?.toISOString() ?? null;

export function toTaskJson(task: Task | TaskRow): TaskJson {
  const named = task as Partial<TaskRow>;
  return {
    task_id: task.taskId,
    repo: named.fullName ?? null,
    issue_number: task.issueNumber,
    title: task.title,
    state: task.state,
    lane: task.lane,
    capabilities: task.capabilities,
    generation: task.generation,
    attempts: task.attempts,
    max_attempts: task.maxAttempts,
    queued_by: task.queuedBy,
    runner_id: task.runnerId,
    runner_name: named.runnerName ?? null,
    pr_number: task.prNumber,
    last_error: task.lastError,
    created_at: task.createdAt.toISOString(),
    updated_at: task.updatedAt.toISOString(),
    enqueued_at: task.enqueuedAt.toISOString(),
    available_at: task.availableAt.toISOString(),
    lease_expires_at: iso(task.leaseExpiresAt),
    finished_at: iso(task.finishedAt),
    best_of: task.bestOf,
    parent_task_id: task.parentTaskId,
    candidate: task.candidate,
  };
}

export function toCandidateJson(row: CandidateRow): CandidateJson {
  return {
    task_id: row.candidateTaskId,
    round: row.round,
    k: row.k,
    state: row.state,
    runner_id: row.runnerId,
    runner_name: row.runnerName,
    adapter: row.adapter,
    branch: row.branch,
    head_sha: row.headSha,
    cost_usd: row.costUsd,
    rank: row.rank,
    failure: row.failure,
    picked: row.picked,
    decided_at: iso(row.decidedAt),
  };
}

export function toTaskListItemJson(task: TaskRow, candidates: CandidateRow[]): TaskListItemJson {
  return {
    ...toTaskJson(task),
    candidates: candidates.filter((c) => c.taskId === task.taskId).map(toCandidateJson),
  };
}

export function toTaskEventJson(event: TaskEvent): TaskEventJson {
  return {
    event_id: event.eventId,
    at: event.at.toISOString(),
    actor: event.actor,
    from_state: event.fromState,
    to_state: event.toState,
    generation: event.generation,
    reason: event.reason,
    data: event.data,
  };
}

export function toTaskDetailsJson(details: {
  task: TaskRow;
  events: TaskEvent[];
  pullRequest: PullRequestRow | null;
  candidates: CandidateRow[];
}): TaskDetailsJson {
  const { task, events, pullRequest } = details;
  return {
    ...toTaskListItemJson(task, details.candidates),
    body: task.body,
    snapshot_hash: task.snapshotHash,
    deadline_at: iso(task.deadlineAt),
    base_sha: task.baseSha,
    ci_fixes: task.ciFixes,
    review_fixes: task.reviewFixes,
    limits: task.limits,
    result: task.result,
    pull_request: pullRequest && {
      number: pullRequest.prNumber,
      url: pullRequest.url,
      state: pullRequest.state,
      branch: pullRequest.branch,
      head_sha: pullRequest.headSha,
    },
    events: events.map(toTaskEventJson),
  };
}
