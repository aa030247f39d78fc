/**
 * Names shared by the task state machine, the database enums and the API. The tuples are the single
 * source: the database enums and the TypeScript unions are both built from them.
 */
export const TASK_STATES = [
  "queued",
  "assigned",
  "running",
  "pushed",
  "review",
  "merging",
  "merged",
  "waiting_human",
  "retry_wait",
  "failed",
  "dead",
  "cancelled",
  "held",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** States after which a task never moves again by itself (a new series starts a new task). */
export const TERMINAL_STATES = ["merged", "cancelled"] as const satisfies readonly TaskState[];

export const LANES = ["urgent", "high", "normal", "low"] as const;
export type Lane = (typeof LANES)[number];

export const RUNNER_TIERS = ["light", "normal", "heavy"] as const;
export type RunnerTier = (typeof RUNNER_TIERS)[number];
