import { describe, expect, it } from "vitest";
import { type HookDelivery, isDelivered, planRedeliveries } from "./redelivery.ts";

const NOW = Date.parse("2025-06-10T12:00:00Z");
const minutesAgo = (m: number) => new Date(NOW - m * 60_000).toISOString();
let nextId = 100;

/** One attempt: `guid` `g`, `status` its answer, `m` minutes ago. */
function attempt(
  guid: string,
  statusCode: number,
  m: number,
  extra: Partial<HookDelivery> = {},
): HookDelivery {
  return {
    id: nextId++,
    guid,
    deliveredAt: minutesAgo(m),
    redelivery: false,
    statusCode,
    event: "issue_comment",
    action: "created",
    ...extra,
  };
}

const OPTIONS = {
  handled: new Set<string>(),
  limit: 20,
  maxRedeliveries: 3,
  notBefore: NOW - 3 * 24 * 60 * 60_000,
};

describe("isDelivered: GitHub's success range", () => {
  it.each([
    [200, true],
    [202, true],
    [302, true],
    [399, true],
    [0, false],
    [199, false],
    [400, false],
    [404, false],
    [500, false],
    [503, false],
  ])("status %i delivered: %s", (status, delivered) => {
    expect(isDelivered(status)).toBe(delivered);
  });
});

describe("planRedeliveries", () => {
  it.each([
    ["a failed delivery nobody handled", [attempt("a", 500, 5)], {}, ["a"]],
    ["a delivery that never connected (status 0)", [attempt("a", 0, 5)], {}, ["a"]],
    ["a delivery Conveyor refused (a bad signature: 401)", [attempt("a", 401, 5)], {}, ["a"]],
    ["a delivered one", [attempt("a", 200, 5)], {}, []],
    [
      "a failed one whose redelivery arrived",
      [attempt("a", 200, 1, { redelivery: true }), attempt("a", 502, 5)],
      {},
      [],
    ],
    [
      "a failed one Conveyor handled (its answer was lost)",
      [attempt("a", 0, 5)],
      { handled: new Set(["a"]) },
      [],
    ],
    ["one older than GitHub's three days", [attempt("a", 500, 3 * 24 * 60 + 1)], {}, []],
    [
      "a failed one with two failed redeliveries (one more try)",
      [
        attempt("a", 500, 1, { redelivery: true }),
        attempt("a", 500, 2, { redelivery: true }),
        attempt("a", 500, 5),
      ],
      {},
      ["a"],
    ],
    [
      "a failed one with three failed redeliveries (given up)",
      [
        attempt("a", 500, 1, { redelivery: true }),
        attempt("a", 500, 2, { redelivery: true }),
        attempt("a", 500, 3, { redelivery: true }),
        attempt("a", 500, 5),
      ],
      {},
      [],
    ],
  ])("%s", (_, deliveries, options, expected) => {
    const plan = planRedeliveries(deliveries, { ...OPTIONS, ...options });
    expect(plan.redeliver.map((d) => d.guid)).toEqual(expected);
  });

  it("asks for the newest attempt of an event, oldest events first, at most `limit` per pass", () => {
    const newerOfB = attempt("b", 500, 2, { redelivery: true });
    const deliveries = [
      attempt("c", 500, 1),
      newerOfB,
      attempt("a", 0, 10),
      attempt("b", 500, 8),
      attempt("d", 200, 9),
    ];
    const plan = planRedeliveries(deliveries, { ...OPTIONS, limit: 2 });
    expect(plan.redeliver.map((d) => [d.guid, d.attempts])).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    expect(plan.redeliver[1]!.id).toBe(newerOfB.id);
    expect(plan.deferred).toBe(1);
  });

  it("reports what it gave up on and what Conveyor had handled", () => {
    const deliveries = [
      ...[1, 2, 3].map((m) => attempt("poison", 500, m, { redelivery: true })),
      attempt("poison", 500, 9),
      attempt("late", 0, 4),
    ];
    const plan = planRedeliveries(deliveries, { ...OPTIONS, handled: new Set(["late"]) });
    expect(plan.redeliver).toEqual([]);
    expect(plan.givenUp.map((d) => [d.guid, d.attempts])).toEqual([["poison", 4]]);
    expect(plan.handled).toBe(1);
  });

  it.each([
    ["a limit of 0 asks for nothing", { limit: 0 }],
    ["a negative limit asks for nothing", { limit: -5 }],
  ])("%s", (_, options) => {
    const plan = planRedeliveries([attempt("a", 500, 1)], { ...OPTIONS, ...options });
    expect(plan.redeliver).toEqual([]);
    expect(plan.deferred).toBe(1);
  });

  it("skips an attempt whose time does not parse rather than guessing its age", () => {
    const plan = planRedeliveries([attempt("a", 500, 1, { deliveredAt: "yesterday" })], OPTIONS);
    expect(plan.redeliver).toEqual([]);
  });
});
