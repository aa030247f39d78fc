import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { HookDeliveryLog } from "../../src/core/ports.ts";
import type { HookDelivery } from "../../src/core/redelivery.ts";
import {
  createRedelivery,
  type Redelivery,
  type RedeliveryOutcome,
} from "../../src/loops/create-redelivery.ts";
import { releaseLease, tryAcquireLease } from "../../src/store/leases.ts";
import { recordDelivery } from "../../src/store/webhook-deliveries.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const NOW = Date.parse("2025-06-10T12:00:00Z");
const HOUR = 3_600_000;
const logger = pino({ level: "silent" });

/**
 * GitHub's delivery log, newest first, in pages of `perPage` with a cursor; `refuse` makes the
 * redelivery of those attempt ids fail as GitHub would answer.
 */
function fakeLog(deliveries: HookDelivery[], refuse = new Set<number>()) {
  const asked: number[] = [];
  const pagesRead: (string | undefined)[] = [];
  const log: HookDeliveryLog = {
    async list({ cursor, perPage }) {
      pagesRead.push(cursor);
      const start = cursor ? Number(cursor) : 0;
      const page = deliveries.slice(start, start + perPage);
      const next = start + perPage < deliveries.length ? String(start + perPage) : undefined;
      return { deliveries: page, next };
    },
    async redeliver(id) {
      if (refuse.has(id)) throw new Error("HttpError: Not Found");
      asked.push(id);
    },
  };
  return { log, asked, pagesRead };
}

let nextId = 1;
function attempt(guid: string, statusCode: number, hoursAgo: number, redelivery = false) {
  return {
    id: nextId++,
    guid,
    deliveredAt: new Date(NOW - hoursAgo * HOUR).toISOString(),
    redelivery,
    statusCode,
    event: "issue_comment",
    action: "created",
  } satisfies HookDelivery;
}

describe("the redelivery subsystem, built alone", () => {
  let database: TestDatabase;
  let counted: RedeliveryOutcome[];
  let errors: string[];
  const build = (log: HookDeliveryLog, options: Record<string, unknown> = {}): Redelivery =>
    createRedelivery({
      database,
      logger,
      instanceId: "redelivery-test",
      config: { reconcileIntervalMs: HOUR },
      options: { now: () => NOW, redeliverOnStart: false, ...options },
      hookDeliveries: log,
      recordError: (source, error) => errors.push(`${source}: ${String(error)}`),
      metrics: { webhookRedelivery: (outcome) => counted.push(outcome) },
    });

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });
  beforeEach(() => {
    counted = [];
    errors = [];
  });

  it("reads the log back three days, redelivers what failed and was not handled, oldest first", async () => {
    await recordDelivery(database.db, {
      deliveryId: "handled",
      event: "issue_comment",
      outcome: "received",
    });
    const deliveries = [
      attempt("new", 500, 1),
      attempt("handled", 0, 2),
      attempt("fine", 200, 3),
      attempt("old", 0, 50),
      attempt("too-old", 500, 73),
      attempt("beyond", 500, 80),
    ];
    const { log, asked, pagesRead } = fakeLog(deliveries);
    const report = await build(log, { redeliveryPages: 10 }).runOnce();
    expect(asked).toEqual([deliveries[3]!.id, deliveries[0]!.id]);
    expect(report).toMatchObject({
      skipped: false,
      listed: 6,
      pages: 1,
      cutShort: false,
      redelivered: 2,
      handled: 1,
    });
    expect(pagesRead).toEqual([undefined]);
    expect(counted).toEqual(["requested", "requested"]);
  });

  it("follows the cursor page by page and stops at its page limit, saying so", async () => {
    const deliveries = Array.from({ length: 250 }, (_, i) => attempt(`g${i}`, 200, i / 100));
    const { log, pagesRead } = fakeLog(deliveries);
    const report = await build(log, { redeliveryPages: 2 }).runOnce();
    expect(pagesRead).toEqual([undefined, "100"]);
    expect(report).toMatchObject({ listed: 200, pages: 2, cutShort: true, redelivered: 0 });
    const all = fakeLog(deliveries);
    expect(await build(all.log).runOnce()).toMatchObject({
      listed: 250,
      pages: 3,
      cutShort: false,
    });
  });

  it("bounds the redeliveries per pass; GitHub refusing one fails nothing else", async () => {
    const deliveries = [attempt("a", 500, 3), attempt("b", 500, 2), attempt("c", 500, 1)];
    const { log, asked } = fakeLog(deliveries, new Set([deliveries[0]!.id]));
    const report = await build(log, { redeliveriesPerPass: 2 }).runOnce();
    // Oldest first: a is refused, b asked for, c waits for the next pass.
    expect(report).toMatchObject({ redelivered: 1, refused: 1, deferred: 1 });
    expect(asked).toEqual([deliveries[1]!.id]);
    expect(counted).toEqual(["refused", "requested"]);
    expect(errors).toEqual([]);
  });

  it("gives up on a delivery that failed three redeliveries, counting it once", async () => {
    const deliveries = [
      attempt("poison", 500, 1, true),
      attempt("poison", 500, 2, true),
      attempt("poison", 500, 3, true),
      attempt("poison", 500, 4),
    ];
    const { log, asked } = fakeLog(deliveries);
    const redelivery = build(log);
    expect(await redelivery.runOnce()).toMatchObject({ givenUp: 1, redelivered: 0 });
    expect(await redelivery.runOnce()).toMatchObject({ givenUp: 1, redelivered: 0 });
    expect(asked).toEqual([]);
    expect(counted).toEqual(["given_up"]);
  });

  it("leaves the pass to the instance holding the lease", async () => {
    expect(await tryAcquireLease(database.db, "webhook-redelivery", "another", 60_000)).toBe(true);
    const { log, pagesRead } = fakeLog([attempt("a", 500, 1)]);
    expect(await build(log).runOnce()).toMatchObject({ skipped: true, redelivered: 0 });
    expect(pagesRead).toEqual([]);
    await releaseLease(database.db, "webhook-redelivery", "another");
  });

  it("runs at start-up, and stop ends the loop", async () => {
    const { log, pagesRead } = fakeLog([]);
    const redelivery = build(log, { redeliverOnStart: true });
    await redelivery.start?.();
    await waitFor(() => pagesRead.length === 1, { message: "the start-up pass" });
    await redelivery.stop?.();
    const after = pagesRead.length;
    await redelivery.stop?.();
    expect(pagesRead.length).toBe(after);
  });

  it("counts a log GitHub will not show as the loop's error", async () => {
    const failing: HookDeliveryLog = {
      list: () => Promise.reject(new Error("HttpError: Resource not accessible by integration")),
      redeliver: () => Promise.resolve(),
    };
    const redelivery = build(failing, { redeliverOnStart: true });
    await redelivery.start?.();
    await waitFor(() => errors.length > 0, { message: "the recorded error" });
    await redelivery.stop?.();
    expect(errors[0]).toMatch(/^loop:redelivery: Error: HttpError/);
  });
});
