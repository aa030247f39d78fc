import { describe, expect, it } from "vitest";
import { type CommitFacts, isRequestedUpdate } from "./branch-update.ts";

const FROM = "a".repeat(40);
const BASE_THEN = "b".repeat(40);
const BASE_NOW = "c".repeat(40);
const update = (over: Partial<CommitFacts> = {}): CommitFacts => ({
  sha: "d".repeat(40),
  parents: [FROM, BASE_THEN],
  committerEmail: "noreply@github.com",
  verified: true,
  ...over,
});
const request = { from: FROM, bases: [BASE_THEN, BASE_NOW] };

describe("isRequestedUpdate: only GitHub's merge commit for Conveyor's own request is adopted", () => {
  it.each([
    ["GitHub's merge of the base tip at the request", update(), true],
    ["GitHub's merge of the base tip now", update({ parents: [FROM, BASE_NOW] }), true],
    [
      "upper-case SHAs and address",
      update({ parents: [FROM.toUpperCase(), BASE_THEN], committerEmail: "NoReply@GitHub.com" }),
      true,
    ],
    ["a person's commit on top (one parent)", update({ parents: [FROM] }), false],
    ["parents in the other order", update({ parents: [BASE_THEN, FROM] }), false],
    ["a merge of some other commit", update({ parents: [FROM, "e".repeat(40)] }), false],
    ["an octopus merge", update({ parents: [FROM, BASE_THEN, BASE_NOW] }), false],
    ["a merge on top of another head", update({ parents: ["f".repeat(40), BASE_THEN] }), false],
    ["not signed", update({ verified: false }), false],
    ["committed by someone else", update({ committerEmail: "maria@example.com" }), false],
    ["no committer", update({ committerEmail: undefined }), false],
  ])("%s → %s", (_name, commit, adopted) => {
    expect(isRequestedUpdate(commit, request)).toBe(adopted);
  });

  it("never adopts against an empty base list", () => {
    expect(
      isRequestedUpdate(update({ parents: [FROM, ""] }), { from: FROM, bases: ["", ""] }),
    ).toBe(false);
  });
});
