import { LANES, type Lane, type TaskState } from "./task-states.ts";

/**
 * Allowed transitions of the task life cycle. Anything not listed is refused, so a bug
 * or a stale message cannot move a task somewhere it should not be.
 */
const TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  // queued → running: a best-of-N task starting its round of candidates (no runner holds it).
  queued: ["assigned", "cancelled", "held", "running"],
  assigned: ["running", "queued", "retry_wait", "dead", "cancelled", "failed"],
  running: ["pushed", "retry_wait", "dead", "cancelled", "failed", "queued"],
  pushed: ["review", "merging", "merged", "waiting_human", "queued", "cancelled", "held"],
  // → pushed: `/pick <k>` puts another best-of-N candidate on the pull request.
  review: ["merging", "waiting_human", "queued", "cancelled", "held", "merged", "pushed"],
  merging: ["merged", "review", "waiting_human", "cancelled"],
  merged: [],
  waiting_human: ["review", "merging", "merged", "queued", "cancelled", "held", "pushed"],
  retry_wait: ["queued", "cancelled", "held"],
  failed: ["queued", "retry_wait", "dead", "cancelled"],
  dead: ["queued", "cancelled"],
  cancelled: [],
  held: ["queued", "review", "cancelled"],
};

/** States in which a runner holds the task under a lease. */
export const LEASED_STATES = ["assigned", "running"] as const satisfies readonly TaskState[];

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states from which `to` can be reached: the guard of a transition's SQL statement. */
export function statesLeadingTo(to: TaskState): TaskState[] {
  return (Object.keys(TRANSITIONS) as TaskState[]).filter((from) => TRANSITIONS[from].includes(to));
}

/** Whether a task in this state still occupies its issue (one active task per issue). */
export function isActive(state: TaskState): boolean {
  return state !== "merged" && state !== "cancelled";
}

export const BACKOFF_BASE_MS = 30_000;
export const BACKOFF_FACTOR = 4;
export const BACKOFF_MAX_MS = 60 * 60_000;

/** Wait before attempt `attempt + 1`, after `attempt` failed ones: 30 s, 2 min, 8 min … capped at 1 h. */
export function backoffMs(failedAttempts: number, baseMs: number = BACKOFF_BASE_MS): number {
  const exponent = Math.max(0, failedAttempts - 1);
  return Math.min(BACKOFF_MAX_MS, baseMs * BACKOFF_FACTOR ** exponent);
}

export type AttemptOutcome =
  | { state: "retry_wait"; availableAt: Date; attempts: number; reason: string }
  | { state: "dead"; attempts: number; reason: string };

/**
 * After a failed attempt (failure, lease expiry, accept timeout, deadline): retry later with
 * backoff, or give up once every attempt is spent.
 */
export function afterFailedAttempt(
  task: { attempts: number; maxAttempts: number },
  cause: string,
  now: Date,
  backoffBaseMs: number = BACKOFF_BASE_MS,
): AttemptOutcome {
  const attempts = task.attempts + 1;
  if (attempts >= task.maxAttempts) {
    return {
      state: "dead",
      attempts,
      reason: `${cause}; gave up after ${attempts} of ${task.maxAttempts} attempts`,
    };
  }
  const wait = backoffMs(attempts, backoffBaseMs);
  return {
    state: "retry_wait",
    attempts,
    availableAt: new Date(now.getTime() + wait),
    reason: `${cause}; attempt ${attempts} of ${task.maxAttempts} failed, retrying in ${formatDuration(wait)}`,
  };
}

/**
 * The lane a waiting task competes in: one lane up per `agingMs` spent waiting, so a low task
 * cannot starve behind a stream of higher ones. Lanes are strict otherwise.
 */
export function effectiveLane(lane: Lane, enqueuedAt: Date, now: Date, agingMs: number): Lane {
  const index = LANES.indexOf(lane);
  if (agingMs <= 0) return lane;
  const steps = Math.floor(Math.max(0, now.getTime() - enqueuedAt.getTime()) / agingMs);
  return LANES[Math.max(0, index - steps)] ?? lane;
}

/** Rank for ordering: lower is served first; equal ranks are served oldest first. */
export function laneRank(lane: Lane): number {
  return LANES.indexOf(lane);
}

export interface QueuedTaskFacts {
  taskId: string;
  lane: Lane;
  enqueuedAt: Date;
}

/** Service order of waiting tasks: effective lane, then FIFO. The dispatcher's SQL mirrors this. */
export function queueOrder<T extends QueuedTaskFacts>(tasks: T[], now: Date, agingMs: number): T[] {
  return [...tasks].sort((a, b) => {
    const byLane =
      laneRank(effectiveLane(a.lane, a.enqueuedAt, now, agingMs)) -
      laneRank(effectiveLane(b.lane, b.enqueuedAt, now, agingMs));
    return byLane || a.enqueuedAt.getTime() - b.enqueuedAt.getTime();
  });
}

/** "45 s", "2 min", "1 h 5 min": for status comments and reasons. */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}
