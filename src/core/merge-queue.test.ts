import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { describeDequeueReason, mergeQueueFromRules, parseMergeGroupRef } from "./merge-queue.ts";

const require = createRequire(import.meta.url);
/** GitHub's own `merge_group` payloads (@octokit/webhooks-examples). */
const examples = (
  JSON.parse(
    readFileSync(require.resolve("@octokit/webhooks-examples/api.github.com/index.json"), "utf8"),
  ) as { name: string; examples: { merge_group: { head_ref: string } }[] }[]
).find((e) => e.name === "merge_group")!.examples;

describe("parseMergeGroupRef", () => {
  it.each(examples.map((e) => [e.merge_group.head_ref]))("reads GitHub's example %s", (ref) => {
    expect(parseMergeGroupRef(ref)).toEqual({ baseRef: "main", prNumber: 104 });
  });

  const sha = "929f8209d40f77f4abc622a499c93a83babdbe64";
  it.each([
    [
      `refs/heads/gh-readonly-queue/release/1.x/pr-7-${sha}`,
      { baseRef: "release/1.x", prNumber: 7 },
    ],
    [`gh-readonly-queue/main/pr-12-${sha}`, { baseRef: "main", prNumber: 12 }],
    // Hostile or foreign refs name no pull request.
    [`refs/heads/conveyor/issue-3`, undefined],
    [`refs/heads/gh-readonly-queue/main/pr-0-${sha}`, undefined],
    [`refs/heads/gh-readonly-queue/main/pr-12-${sha}/extra`, undefined],
    [`refs/heads/gh-readonly-queue/main/pr-12-nothex`, undefined],
    [`refs/heads/gh-readonly-queue/main/pr-99999999999999999999-${sha}`, undefined],
    [`refs/tags/gh-readonly-queue/main/pr-12-${sha}`, undefined],
  ])("%s → %o", (ref, expected) => {
    expect(parseMergeGroupRef(ref)).toEqual(expected);
  });
});

describe("mergeQueueFromRules", () => {
  const queue = (merge_method: string) => ({
    type: "merge_queue",
    parameters: {
      check_response_timeout_minutes: 60,
      grouping_strategy: "ALLGREEN",
      max_entries_to_build: 5,
      max_entries_to_merge: 5,
      merge_method,
      min_entries_to_merge: 1,
      min_entries_to_merge_wait_minutes: 5,
    },
  });
  it.each([
    [[], null],
    [[{ type: "required_status_checks", parameters: {} }], null],
    [[{ type: "required_status_checks" }, queue("SQUASH")], { mergeMethod: "SQUASH" }],
    [[queue("REBASE")], { mergeMethod: "REBASE" }],
    [[queue("MERGE")], { mergeMethod: "MERGE" }],
    // An unknown method still means "the queue is required"; GitHub's default is MERGE.
    [[queue("OCTOPUS")], { mergeMethod: "MERGE" }],
    [[{ type: "merge_queue" }], { mergeMethod: "MERGE" }],
  ])("%j → %j", (rules, expected) => {
    expect(mergeQueueFromRules(rules)).toEqual(expected);
  });
});

describe("describeDequeueReason", () => {
  it.each([
    ["CI_FAILURE", "a required check failed on the merge group (CI_FAILURE)"],
    ["MANUAL", "someone removed it from the queue (MANUAL)"],
    ["SOMETHING_NEW", "GitHub gave no reason (SOMETHING_NEW)"],
    [null, "GitHub gave no reason (UNKNOWN_REMOVAL_REASON)"],
    ["`@everyone` <b>", "GitHub gave no reason (UNKNOWN_REMOVAL_REASON)"],
  ])("%s", (reason, expected) => {
    expect(describeDequeueReason(reason)).toBe(expected);
  });
});
