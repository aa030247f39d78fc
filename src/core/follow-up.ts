/**
 * Whether a pull request gets another attempt after failing checks or a review asking for changes,
 * or goes to a human. Each kind has its own cap (`tasks.max_ci_fixes`, `tasks.max_review_fixes`).
 */
export type FollowUpDecision =
  | { kind: "retry"; feedback: string; count: number; reason: string }
  | { kind: "human"; reason: string; comment: string };

export interface FailedCheck {
  name: string;
  summary: string;
}

const MAX_FEEDBACK = 8_000;

export function decideCiFollowUp(facts: {
  prNumber: number;
  failed: FailedCheck[];
  fixesSoFar: number;
  maxFixes: number;
}): FollowUpDecision {
  const names = facts.failed.map((c) => c.name).join(", ");
  if (facts.fixesSoFar >= facts.maxFixes) {
    return {
      kind: "human",
      reason: `checks failed (${names}) after ${facts.fixesSoFar} follow-up attempts`,
      comment:
        `Checks still fail on #${facts.prNumber} (${names}) after ${facts.fixesSoFar} automatic ` +
        "follow-up attempts, so Conveyor stopped. A maintainer can push a fix, comment `/fix <what to " +
        "change>`, or close the pull request.",
    };
  }
  const feedback = [
    "The checks failed on your pull request. Fix the cause; keep the rest of your change.",
    "",
    ...facts.failed.map((c) => `### ${c.name}\n\n${c.summary.trim() || "(no output)"}`),
  ]
    .join("\n")
    .slice(0, MAX_FEEDBACK);
  return {
    kind: "retry",
    feedback,
    count: facts.fixesSoFar + 1,
    reason: `checks failed (${names}); follow-up ${facts.fixesSoFar + 1} of ${facts.maxFixes}`,
  };
}

export function decideReviewFollowUp(facts: {
  prNumber: number;
  reviewer: string;
  text: string;
  fixesSoFar: number;
  maxFixes: number;
}): FollowUpDecision {
  if (facts.fixesSoFar >= facts.maxFixes) {
    return {
      kind: "human",
      reason: `changes requested by ${facts.reviewer} after ${facts.fixesSoFar} follow-up attempts`,
      comment:
        `@${facts.reviewer} Conveyor has already made ${facts.fixesSoFar} follow-up attempts on ` +
        `#${facts.prNumber} (the limit), so this one is left to a person.`,
    };
  }
  return {
    kind: "retry",
    feedback: [
      `A reviewer (@${facts.reviewer}) asked for changes. Address them; keep the rest of your change.`,
      "",
      facts.text.trim() || "(no text)",
    ]
      .join("\n")
      .slice(0, MAX_FEEDBACK),
    count: facts.fixesSoFar + 1,
    reason: `changes requested by ${facts.reviewer}; follow-up ${facts.fixesSoFar + 1} of ${facts.maxFixes}`,
  };
}

/** Conclusions that make a check red (GitHub's names); `neutral`/`skipped`/`cancelled` do not. */
export function isRedConclusion(conclusion: string | null | undefined): boolean {
  return conclusion === "failure" || conclusion === "timed_out" || conclusion === "startup_failure";
}

/**
 * A pull request that conflicts with its base because another merge landed first: a follow-up
 * attempt that starts from the base's current tip with "rebase onto <sha>" as feedback, up to
 * `tasks.max_conflict_retries`, then a human.
 */
export function decideConflictFollowUp(facts: {
  prNumber: number;
  baseRef: string;
  baseSha: string;
  retriesSoFar: number;
  maxRetries: number;
}): FollowUpDecision {
  const sha = facts.baseSha.slice(0, 7) || "the current base";
  if (facts.retriesSoFar >= facts.maxRetries) {
    return {
      kind: "human",
      reason: `conflicts with ${facts.baseRef} at ${sha} after ${facts.retriesSoFar} retries on a new base`,
      comment:
        `#${facts.prNumber} conflicts with \`${facts.baseRef}\` again after ${facts.retriesSoFar} ` +
        "automatic retries on the new base, so Conveyor stopped. A maintainer can resolve the " +
        "conflict, comment `/update`, or close the pull request.",
    };
  }
  return {
    kind: "retry",
    feedback: [
      `Another change was merged into \`${facts.baseRef}\` first, and your pull request now ` +
        `conflicts with it. Rebase onto ${facts.baseSha} and keep the change: this attempt starts ` +
        "from that commit; make the same change again on top of it, keeping what the other " +
        "change did.",
    ].join("\n"),
    count: facts.retriesSoFar + 1,
    reason: `conflicts with ${facts.baseRef} at ${sha} (another merge landed first); retry on the new base ${facts.retriesSoFar + 1} of ${facts.maxRetries}`,
  };
}
