import { describe, expect, it } from "vitest";
import { decideCancel, decideRetry } from "./task-actions.ts";
import { TASK_STATES, type TaskState } from "./task-states.ts";

describe("decideRetry", () => {
  it.each([
    [
      "dead",
      { kind: "move", from: "dead", to: "queued", resetAttempts: true, resetFollowUps: false },
    ],
    ["failed", { kind: "move", to: "queued", resetAttempts: false, resetFollowUps: false }],
    ["retry_wait", { kind: "move", to: "queued", resetAttempts: false, resetFollowUps: false }],
    ["waiting_human", { kind: "move", to: "queued", resetAttempts: false, resetFollowUps: true }],
    ["queued", { kind: "unchanged", reason: "task is already queued" }],
  ] as const)("%s → %j", (state, expected) => {
    expect(decideRetry(state)).toMatchObject(expected);
  });

  it.each([
    [
      "running",
      /task is running: only dead, failed, retry_wait, waiting_human tasks can be retried \(it is being worked on now\)/,
    ],
    ["assigned", /being worked on now/],
    ["merged", /its pull request is merged/],
    ["cancelled", /queue the issue again with the label or \/queue/],
    ["held", /\/unhold it on the issue/],
    ["merging", /task is merging/],
  ] as const)("refuses %s", (state, reason) => {
    const decision = decideRetry(state);
    expect(decision.kind).toBe("refuse");
    expect((decision as { reason: string }).reason).toMatch(reason);
  });
});

describe("decideCancel", () => {
  it.each(TASK_STATES.filter((s) => !["merged", "cancelled"].includes(s)))(
    "cancels a %s task",
    (state: TaskState) => {
      expect(decideCancel(state)).toMatchObject({ kind: "move", from: state, to: "cancelled" });
    },
  );

  it("leaves a cancelled task alone and refuses a merged one", () => {
    expect(decideCancel("cancelled")).toEqual({
      kind: "unchanged",
      reason: "task is already cancelled",
    });
    expect(decideCancel("merged")).toEqual({
      kind: "refuse",
      reason: "task is merged: it cannot be cancelled any more",
    });
  });
});
