import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import {
  claimOwedDeliveries,
  countDeliveries,
  countOwedDeliveries,
  createDeliveryRecorder,
  deferOwedDelivery,
  isPayloadCurrent,
  releaseOwedDeliveries,
  settleOwedDelivery,
} from "../../src/store/webhook-deliveries.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { waitFor } from "../helpers/wait-for.ts";

describe.each(BACKENDS)("webhook deliveries on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(async () => {
    await database?.dispose();
  });

  const effects = async () => {
    const [row] = await database.rows<{ value: number }>(
      sql`select value from settings where key = 'effects'`,
    );
    return Number(row?.value ?? 0);
  };
  const effect = async (tx: typeof database.db) => {
    await tx.execute(sql`
      insert into settings (key, value) values ('effects', '1'::jsonb)
      on conflict (key) do update set value = to_jsonb((settings.value)::int + 1)`);
    return "done";
  };
  const outcomeOf = async (id: string) =>
    (
      await database.rows<{ outcome: string; intent: unknown }>(
        sql`select outcome, intent from webhook_deliveries where delivery_id = ${id}`,
      )
    )[0];

  it("stores deliveries arriving together in one batch, each id once", async () => {
    const recorder = createDeliveryRecorder(database.db);
    const entry = (id: string, intent?: unknown) => ({
      deliveryId: id,
      event: "issues",
      action: "labeled",
      installationId: 1,
      outcome: intent ? "owed" : "received",
      intent,
    });
    const fresh = await Promise.all([
      recorder.record(entry("b-1", { kind: "issues", n: 1 })),
      recorder.record(entry("b-2")),
      // The same id twice in one batch, and again later: stored once.
      recorder.record(entry("b-1", { kind: "issues", n: 2 })),
    ]);
    expect(fresh).toEqual([true, true, false]);
    expect(await recorder.record(entry("b-1", { kind: "issues", n: 3 }))).toBe(false);
    expect(await outcomeOf("b-1")).toEqual({ outcome: "owed", intent: { kind: "issues", n: 1 } });
    expect(await outcomeOf("b-2")).toEqual({ outcome: "received", intent: null });
    expect(await countDeliveries(database.db, "issues")).toBe(2);
  });

  it("sends the next batch while the last one waits for its commit, and no third", async () => {
    // Holds every insert until released: what is in flight at once is what started.
    let started = 0;
    const releases: (() => void)[] = [];
    const held = new Proxy(database.db, {
      get(target, property) {
        if (property !== "execute") return Reflect.get(target, property);
        return async (query: Parameters<typeof target.execute>[0]) => {
          started++;
          await new Promise<void>((resolve) => releases.push(resolve));
          return target.execute(query);
        };
      },
    });
    const recorder = createDeliveryRecorder(held);
    const entry = (id: string) => ({ deliveryId: id, event: "ping", outcome: "received" });
    const first = recorder.record(entry("p-1"));
    await waitFor(() => started === 1);
    const second = recorder.record(entry("p-2"));
    await waitFor(() => started === 2);
    // Both in flight: the third waits for one of them to finish.
    const third = recorder.record(entry("p-3"));
    const fourth = recorder.record(entry("p-4"));
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBe(2);
    releases.shift()!();
    expect(await first).toBe(true);
    // The two waiting ones go together, in one batch.
    await waitFor(() => started === 3);
    for (const release of releases.splice(0)) release();
    expect(await Promise.all([second, third, fourth])).toEqual([true, true, true]);
    expect(started).toBe(3);
    expect(await countDeliveries(database.db, "ping")).toBe(4);
  });

  it("fails only the delivery that cannot be stored when its batch fails", async () => {
    const recorder = createDeliveryRecorder(database.db);
    const results = await Promise.allSettled([
      recorder.record({ deliveryId: "ok-1", event: "push", outcome: "received" }),
      // Postgres refuses a NUL character in text.
      recorder.record({ deliveryId: "bad-\u0000", event: "push", outcome: "received" }),
      recorder.record({ deliveryId: "ok-2", event: "push", outcome: "received" }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await countDeliveries(database.db, "push")).toBe(2);
  });

  it("claims an owed delivery for one holder, fences a lost claim, and acts once", async () => {
    await createDeliveryRecorder(database.db).record({
      deliveryId: "c-1",
      event: "issues",
      outcome: "owed",
      intent: { kind: "issues" },
    });
    const before = await effects();
    const [first, second] = await Promise.all([
      claimOwedDeliveries(database.db, { holder: "a", limit: 10, leaseMs: 60_000 }),
      claimOwedDeliveries(database.db, { holder: "b", limit: 10, leaseMs: 60_000 }),
    ]);
    const claims = [...first!, ...second!].filter((c) => c.deliveryId === "c-1");
    expect(claims).toHaveLength(1);
    const claim = claims[0]!;
    expect(claim).toMatchObject({ intent: { kind: "issues" }, attempts: 1 });

    // The lease runs out; another holder takes it over, and the first holder's claim is dead.
    await deferOwedDelivery(database.db, claim, -1, "failed (attempt 1): boom");
    expect((await outcomeOf("c-1"))?.outcome).toBe("failed (attempt 1): boom");
    const [taken] = await claimOwedDeliveries(database.db, {
      holder: "b",
      limit: 10,
      leaseMs: 60_000,
    });
    expect(taken).toMatchObject({ deliveryId: "c-1", attempts: 2, holder: "b" });
    expect(await settleOwedDelivery(database.db, claim, effect)).toBe("duplicate");
    expect(await effects()).toBe(before);
    expect(await settleOwedDelivery(database.db, taken!, effect)).toBe("done");
    expect(await settleOwedDelivery(database.db, taken!, effect)).toBe("duplicate");
    expect(await effects()).toBe(before + 1);
    expect(await outcomeOf("c-1")).toEqual({ outcome: "done", intent: null });
  });

  it("stores an intent already claimed by the instance that acts on it, which others cannot claim until it is free", async () => {
    const recorder = createDeliveryRecorder(database.db);
    const entry = (id: string, leaseMs: number, intent?: unknown) => ({
      deliveryId: id,
      event: "issues",
      outcome: intent ? "owed" : "received",
      intent,
      claim: { holder: "a", leaseMs },
    });
    expect(
      await Promise.all([
        recorder.record(entry("h-1", 60_000, { kind: "issues" })),
        recorder.record(entry("h-2", -1, { kind: "issues" })),
        recorder.record(entry("h-3", 60_000)),
      ]),
    ).toEqual([true, true, true]);
    const leases = await database.rows<{ delivery_id: string; lease_holder: string | null }>(
      sql`select delivery_id, lease_holder, attempts from webhook_deliveries
          where delivery_id in ('h-1', 'h-2', 'h-3') order by delivery_id`,
    );
    // Nothing owed, nothing held: a delivery without an effect has no claim.
    expect(leases).toEqual([
      { delivery_id: "h-1", lease_holder: "a", attempts: 1 },
      { delivery_id: "h-2", lease_holder: "a", attempts: 1 },
      { delivery_id: "h-3", lease_holder: null, attempts: 0 },
    ]);
    // Another holder finds only the one whose lease ran out, and fences the first claim out.
    const taken = await claimOwedDeliveries(database.db, {
      holder: "b",
      limit: 10,
      leaseMs: 60_000,
    });
    expect(taken.map((c) => [c.deliveryId, c.attempts])).toEqual([["h-2", 2]]);
    const before = await effects();
    const held = (id: string) => ({ deliveryId: id, holder: "a", attempts: 1 });
    expect(await settleOwedDelivery(database.db, held("h-2"), effect)).toBe("duplicate");
    expect(await settleOwedDelivery(database.db, held("h-1"), effect)).toBe("done");
    expect(await settleOwedDelivery(database.db, taken[0]!, effect)).toBe("done");
    expect(await effects()).toBe(before + 2);
    // A repeat of a stored delivery is not new, so it is never handed over twice.
    expect(await recorder.record(entry("h-1", 60_000, { kind: "issues" }))).toBe(false);
  });

  it("gives released claims back at once and leaves held ones alone", async () => {
    const recorder = createDeliveryRecorder(database.db);
    const owedBefore = await countOwedDeliveries(database.db);
    for (const id of ["r-1", "r-2"]) {
      await recorder.record({ deliveryId: id, event: "issues", outcome: "owed", intent: {} });
    }
    const claims = await claimOwedDeliveries(database.db, {
      holder: "a",
      limit: 10,
      leaseMs: 60_000,
    });
    expect(claims.map((c) => c.deliveryId)).toEqual(["r-1", "r-2"]);
    expect(
      await claimOwedDeliveries(database.db, { holder: "b", limit: 10, leaseMs: 60_000 }),
    ).toEqual([]);
    await releaseOwedDeliveries(database.db, claims.slice(1));
    const again = await claimOwedDeliveries(database.db, {
      holder: "b",
      limit: 10,
      leaseMs: 60_000,
    });
    expect(again.map((c) => c.deliveryId)).toEqual(["r-2"]);
    expect(await countOwedDeliveries(database.db)).toBe(owedBefore + 2);
  });

  it.each([
    {
      name: "a fresh delivery alone about its issue",
      age: 0,
      updatedAgo: 0,
      other: undefined,
      current: true,
    },
    {
      name: "one that arrived too long ago",
      age: 6,
      updatedAgo: 6,
      other: undefined,
      current: false,
    },
    {
      name: "a payload older than its arrival (a redelivery)",
      age: 0,
      updatedAgo: 600,
      other: undefined,
      current: false,
    },
    {
      name: "a payload from a clock ahead",
      age: 0,
      updatedAgo: -30,
      other: undefined,
      current: false,
    },
    { name: "an unlabeled that arrived first", age: 0, updatedAgo: 0, other: -2, current: false },
    {
      name: "an event about the issue arriving after it",
      age: 1,
      updatedAgo: 1,
      other: 0,
      current: false,
    },
    {
      name: "an event about the issue long before",
      age: 0,
      updatedAgo: 0,
      other: -120,
      current: true,
    },
  ])("takes the payload for the issue as it is now: $name → $current", async (row) => {
    const id = `fresh-${row.name}`;
    const subject = `issue:77:${row.name.length}${row.age}${row.other ?? "x"}`;
    const insert = (deliveryId: string, secondsAgo: number) =>
      database.db.execute(sql`
        insert into webhook_deliveries (delivery_id, event, outcome, intent, subject, received_at)
        values (${deliveryId}, 'issues', 'owed', '{}'::jsonb, ${subject},
                now() - ${`${secondsAgo} seconds`}::interval)`);
    await insert(id, row.age);
    if (row.other !== undefined) await insert(`${id}-other`, row.age - row.other);
    const [{ now }] = (await database.rows<{ now: string }>(sql`select now()::text as now`)) as [
      { now: string },
    ];
    const updatedAt = new Date(Date.parse(now) - (row.age + row.updatedAgo) * 1000).toISOString();
    const window = { freshMs: 5_000, quietMs: 60_000 };
    expect(
      await isPayloadCurrent(
        database.db,
        { deliveryId: id, subject, issueUpdatedAt: updatedAt },
        window,
      ),
    ).toBe(row.current);
    // Another subject's deliveries, a missing subject or an unreadable time never count as current.
    expect(
      await isPayloadCurrent(
        database.db,
        { deliveryId: id, subject: "issue:77:none", issueUpdatedAt: updatedAt },
        window,
      ),
    ).toBe(false);
    expect(
      await isPayloadCurrent(
        database.db,
        { deliveryId: id, subject, issueUpdatedAt: "soon" },
        window,
      ),
    ).toBe(false);
  });
});
