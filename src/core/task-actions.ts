import { canTransition } from "./task-machine.ts";
import type { TaskState } from "./task-states.ts";

/**
 * What an operator's retry or cancel does to a task in a given state (the admin API and the CLI;
 * slash commands may share it). Expected outcomes are values: a refusal carries the reason to show.
 */
export type TaskActionDecision =
  | {
      kind: "move";
      to: TaskState;
      /** The guard of the transition: the state the decision was made for. */
      from: TaskState;
      /** Start a fresh series of attempts (a dead task used them all). */
      resetAttempts: boolean;
      /** Give the automatic follow-ups (red CI, review feedback) their budget back. */
      resetFollowUps: boolean;
    }
  | { kind: "unchanged"; reason: string }
  | { kind: "refuse"; reason: string };

/** The states an operator can retry from, in the order the docs list them. */
export const RETRYABLE_STATES = [
  "dead",
  "failed",
  "retry_wait",
  "waiting_human",
] as const satisfies readonly TaskState[];

/**
 * Retry: run the task again now. A dead task starts a fresh series of attempts; a task waiting out
 * its backoff skips the wait; a failed one goes back to the queue; a task waiting for a person
 * (its pull request ran out of automatic follow-ups or needs a decision) gets another attempt on
 * its branch with the follow-up budget restored. Anything still moving is refused: it is already
 * being worked on, and a second attempt would race it.
 */
export function decideRetry(state: TaskState): TaskActionDecision {
  if (state === "queued") return { kind: "unchanged", reason: "task is already queued" };
  if (
    (RETRYABLE_STATES as readonly TaskState[]).includes(state) &&
    canTransition(state, "queued")
  ) {
    return {
      kind: "move",
      from: state,
      to: "queued",
      resetAttempts: state === "dead",
      resetFollowUps: state === "waiting_human",
    };
  }
  return {
    kind: "refuse",
    reason: `task is ${state}: only ${RETRYABLE_STATES.join(", ")} tasks can be retried${refuseHint(state)}`,
  };
}

/** Cancel: stop the task for good (its runner is told to stop). Finished tasks stay as they are. */
export function decideCancel(state: TaskState): TaskActionDecision {
  if (state === "cancelled") return { kind: "unchanged", reason: "task is already cancelled" };
  if (canTransition(state, "cancelled")) {
    return {
      kind: "move",
      from: state,
      to: "cancelled",
      resetAttempts: false,
      resetFollowUps: false,
    };
  }
  return { kind: "refuse", reason: `task is ${state}: it cannot be cancelled any more` };
}

function refuseHint(state: TaskState): string {
  switch (state) {
    case "cancelled":
      return " (a cancelled task is finished; queue the issue again with the label or /queue)";
    case "merged":
      return " (its pull request is merged)";
    case "held":
      return " (it is on hold: /unhold it on the issue)";
    default:
      return " (it is being worked on now)";
  }
}
