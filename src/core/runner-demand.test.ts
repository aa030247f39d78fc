import { describe, expect, it } from "vitest";
import { runnersWanted, supplyOf, workForFleet } from "./runner-demand.ts";

const work = (capabilities: string[], count: number, repo = "acme/widgets") => ({
  capabilities,
  repo,
  count,
});
const runner = (capabilities: string[], freeSlots: number, repos: string[] = []) => ({
  capabilities,
  repos,
  freeSlots,
});

describe("runners wanted", () => {
  it.each([
    ["nothing waits", [], [runner([], 3)], []],
    [
      "no runner: every waiting task wants one",
      [work([], 3), work(["gpu"], 2)],
      [],
      [
        { capabilities: [], waiting: 3, freeSlots: 0, runnersWanted: 3 },
        { capabilities: ["gpu"], waiting: 2, freeSlots: 0, runnersWanted: 2 },
      ],
    ],
    [
      "free slots are subtracted, each once",
      [work([], 5)],
      [runner([], 2), runner(["gpu"], 1)],
      [{ capabilities: [], waiting: 5, freeSlots: 3, runnersWanted: 2 }],
    ],
    [
      "a runner without the capability does not count",
      [work(["gpu"], 2)],
      [runner([], 4)],
      [{ capabilities: ["gpu"], waiting: 2, freeSlots: 0, runnersWanted: 2 }],
    ],
    [
      "the special runner serves the special task first",
      [work([], 1), work(["gpu"], 1)],
      [runner(["gpu"], 1), runner([], 1)],
      [
        { capabilities: [], waiting: 1, freeSlots: 1, runnersWanted: 0 },
        { capabilities: ["gpu"], waiting: 1, freeSlots: 1, runnersWanted: 0 },
      ],
    ],
    [
      "a scoped runner's slots serve only its scope",
      [work([], 2, "globex/gadgets"), work([], 1, "acme/widgets")],
      [runner([], 5, ["acme/*"])],
      [{ capabilities: [], waiting: 3, freeSlots: 1, runnersWanted: 2 }],
    ],
    [
      "repositories add up per capability set",
      [work(["gpu", "node"], 1), work(["node", "gpu"], 2, "acme/other")],
      [],
      [{ capabilities: ["gpu", "node"], waiting: 3, freeSlots: 0, runnersWanted: 3 }],
    ],
  ])("%s", (_name, waiting, supply, expected) => {
    expect(runnersWanted(waiting, supply)).toEqual(expected);
  });

  it("takes a fleet's work: capabilities it offers, repositories in its scope", () => {
    const waiting = [work([], 1), work(["gpu"], 1), work([], 1, "globex/x")];
    expect(workForFleet(waiting, {})).toEqual(waiting);
    expect(workForFleet(waiting, { offers: [] })).toEqual([waiting[0], waiting[2]]);
    expect(workForFleet(waiting, { offers: ["gpu"], repos: ["acme/*"] })).toEqual([
      waiting[0],
      waiting[1],
    ]);
  });

  it.each([
    ["idle", { slots: 2, tasks: { size: 0 }, draining: false }, 2],
    ["busy", { slots: 2, tasks: { size: 2 }, draining: false }, 0],
    ["draining", { slots: 2, tasks: { size: 0 }, draining: true }, 0],
    [
      "one-time, unused",
      { slots: 4, tasks: { size: 0 }, draining: false, maxTasks: 1, taken: 0 },
      1,
    ],
    [
      "one-time, spent",
      { slots: 4, tasks: { size: 0 }, draining: false, maxTasks: 1, taken: 1 },
      0,
    ],
  ])("a connection's supply: %s", (_name, facts, free) => {
    expect(supplyOf({ capabilities: [], ...facts }).freeSlots).toBe(free);
  });
});
