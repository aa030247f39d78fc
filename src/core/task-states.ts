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

/** The rate-limit tiers of runner frames and admin API requests (see core/rate-limit.ts). */
export const RATE_TIERS = ["light", "normal", "heavy"] as const;
export type RateTier = (typeof RATE_TIERS)[number];

/**
 * A runner's class (`conveyor runners add --class`), lightest first: the order in which dispatch
 * offers a task to the free runners that can take it (capabilities and repository scope decide
 * which can). Within a class the least recently assigned runner wins. It changes no rate limit
 * (the same for every runner). Called "tier" before; the database column and the API's deprecated
 * `tier` field keep that name.
 */
export const RUNNER_CLASSES = ["light", "normal", "heavy"] as const;
export type RunnerClass = (typeof RUNNER_CLASSES)[number];
