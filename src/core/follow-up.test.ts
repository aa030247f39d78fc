import { describe, expect, it } from "vitest";
import { decideCiFollowUp, decideReviewFollowUp, isRedConclusion } from "./follow-up.ts";

describe("follow-up attempts", () => {
  const failed = [{ name: "test", summary: "1 failing: expected 2 to be 3" }];

  it.each([
    [0, 2, "retry"],
    [1, 2, "retry"],
    [2, 2, "human"],
    [0, 0, "human"],
  ])("CI: %i fixes so far with cap %i → %s", (fixesSoFar, maxFixes, kind) => {
    expect(decideCiFollowUp({ prNumber: 7, failed, fixesSoFar, maxFixes }).kind).toBe(kind);
  });

  it("gives the failing checks' names and output as feedback", () => {
    const decision = decideCiFollowUp({ prNumber: 7, failed, fixesSoFar: 0, maxFixes: 2 });
    expect(decision).toMatchObject({ kind: "retry", count: 1 });
    if (decision.kind === "retry") {
      expect(decision.feedback).toContain("### test");
      expect(decision.feedback).toContain("expected 2 to be 3");
    }
  });

  it("bounds the feedback and hands over to a person with a comment", () => {
    const huge = decideCiFollowUp({
      prNumber: 1,
      failed: [{ name: "x", summary: "y".repeat(50_000) }],
      fixesSoFar: 0,
      maxFixes: 1,
    });
    expect(huge.kind === "retry" && huge.feedback.length).toBeLessThanOrEqual(8_000);
    const done = decideReviewFollowUp({
      prNumber: 3,
      reviewer: "maint",
      text: "rename it",
      fixesSoFar: 3,
      maxFixes: 3,
    });
    expect(done).toMatchObject({ kind: "human" });
    if (done.kind === "human") expect(done.comment).toContain("@maint");
  });

  it.each([
    ["failure", true],
    ["timed_out", true],
    ["startup_failure", true],
    ["success", false],
    ["neutral", false],
    ["cancelled", false],
    [null, false],
  ])("conclusion %s is red: %s", (conclusion, red) => {
    expect(isRedConclusion(conclusion)).toBe(red);
  });
});
