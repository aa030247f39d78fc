import { describe, expect, it } from "vitest";
import {
  mergeCarriesConfig,
  PUSH_COMMITS_LISTED_AT_MOST,
  type PushFacts,
  pushCarriesConfig,
} from "./config-carry.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);
const push = (over: Partial<PushFacts> = {}): PushFacts => ({
  before: A,
  after: B,
  created: false,
  deleted: false,
  forced: false,
  commits: [{ added: [], removed: [], modified: ["src/app.ts"] }],
  ...over,
});
const commit = (key: "added" | "removed" | "modified", path: string) => ({
  added: [],
  removed: [],
  modified: [],
  [key]: [path],
});

describe("pushCarriesConfig", () => {
  it.each<[string, PushFacts, boolean]>([
    ["a fast-forward that leaves the config alone", push(), true],
    [
      "a commit modifies it",
      push({ commits: [commit("modified", ".github/conveyor.yml")] }),
      false,
    ],
    ["a commit adds it", push({ commits: [commit("added", ".github/conveyor.yml")] }), false],
    ["a commit removes it", push({ commits: [commit("removed", ".github/conveyor.yml")] }), false],
    [
      "an earlier commit of several touches it",
      push({ commits: [commit("modified", ".github/conveyor.yml"), commit("modified", "x")] }),
      false,
    ],
    // git paths are case-sensitive: another file, even where the file system folds case.
    [
      "another case is another file",
      push({ commits: [commit("added", ".github/Conveyor.yml")] }),
      true,
    ],
    [
      "a file of the same name elsewhere",
      push({ commits: [commit("modified", "x/.github/conveyor.yml")] }),
      true,
    ],
    ["a commit without file lists", push({ commits: [{}] }), false],
    ["forced", push({ forced: true }), false],
    ["created", push({ created: true, before: "0".repeat(40) }), false],
    ["deleted", push({ deleted: true, after: "0".repeat(40) }), false],
    ["no commits listed", push({ commits: [] }), false],
    ["the head did not move", push({ after: A }), false],
    [
      "as many commits as GitHub lists at most (maybe cut short)",
      push({
        commits: Array.from({ length: PUSH_COMMITS_LISTED_AT_MOST }, () => commit("modified", "x")),
      }),
      false,
    ],
    [
      "one fewer",
      push({
        commits: Array.from({ length: PUSH_COMMITS_LISTED_AT_MOST - 1 }, () =>
          commit("modified", "x"),
        ),
      }),
      true,
    ],
  ])("%s", (_name, facts, carries) => {
    const decision = pushCarriesConfig(facts);
    expect(decision.carry).toBe(carries);
    if (!decision.carry) expect(decision.reason).not.toBe("");
  });

  it("GitHub's documented limit", () => {
    expect(PUSH_COMMITS_LISTED_AT_MOST).toBe(2048);
  });
});

describe("mergeCarriesConfig", () => {
  it.each<[string, Parameters<typeof mergeCarriesConfig>[0], boolean]>([
    ["a change elsewhere", { files: [{ path: "src/a.ts" }], filesComplete: true }, true],
    [
      "the config changed",
      { files: [{ path: ".github/conveyor.yml" }], filesComplete: true },
      false,
    ],
    [
      "the config renamed away",
      { files: [{ path: "old.yml", previousPath: ".github/conveyor.yml" }], filesComplete: true },
      false,
    ],
    [
      "a file renamed onto the config",
      { files: [{ path: ".github/conveyor.yml", previousPath: "x.yml" }], filesComplete: true },
      false,
    ],
    ["an incomplete list", { files: [{ path: "src/a.ts" }], filesComplete: false }, false],
    ["another case", { files: [{ path: ".GitHub/conveyor.yml" }], filesComplete: true }, true],
  ])("%s", (_name, change, carries) => {
    expect(mergeCarriesConfig(change).carry).toBe(carries);
  });
});
