import { inArray, sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { webhookDeliveries } from "../../db/schema.ts";

export interface DeliveryRecord {
  deliveryId: string;
  event: string;
  action?: string | undefined;
  installationId?: number | undefined;
  outcome: string;
}

/** How many deliveries of an event were recorded (for tests and metrics). */
export async function countDeliveries(db: Db, event?: string): Promise<number> {
  const rows = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(webhookDeliveries)
    .where(event ? sql`${webhookDeliveries.event} = ${event}` : undefined);
  return rows[0]?.n ?? 0;
}

/**
 * Which of these delivery ids (`X-GitHub-Delivery`) Conveyor recorded: their effects were carried
 * out, so GitHub's log saying they failed (an answer lost or too late) needs no redelivery.
 */
export async function recordedDeliveryIds(
  db: Db,
  deliveryIds: readonly string[],
): Promise<Set<string>> {
  if (deliveryIds.length === 0) return new Set();
  const rows = await db
    .select({ deliveryId: webhookDeliveries.deliveryId })
    .from(webhookDeliveries)
    .where(inArray(webhookDeliveries.deliveryId, [...deliveryIds]));
  return new Set(rows.map((r) => r.deliveryId));
}

/** The delivery fields every record and intent carries. */
export type DeliveryKey = Omit<DeliveryRecord, "outcome">;

/** A delivery to store: with an `intent`, its effect is owed until the intake loop acts on it. */
export interface DeliveryEntry extends DeliveryRecord {
  intent?: unknown;
  /** What the delivery is about (`issue:<repository id>:<number>`, …), for one with an intent. */
  subject?: string | undefined;
  /**
   * Store the intent already claimed (its first claim) by this holder for `leaseMs`: the instance
   * that stored it acts on it at once, in-process, without a claim of its own (a commit). If it
   * dies, another instance takes the claim over as it does any dead holder's.
   */
  claim?: { holder: string; leaseMs: number } | undefined;
}

/**
 * Stores deliveries, each at most once (`ON CONFLICT DO NOTHING` on the delivery id), as one
 * statement: a single-statement insert is its own transaction, so a batch costs one commit and
 * one round trip. Returns the ids that were new (a redelivery of a stored one is not).
 */
export async function insertDeliveries(
  db: Db,
  entries: readonly DeliveryEntry[],
): Promise<Set<string>> {
  if (entries.length === 0) return new Set();
  // One JSON parameter however many rows: no per-row placeholders to build or bind.
  const rows = entries.map((e) => ({
    delivery_id: e.deliveryId,
    event: e.event,
    action: e.action ?? null,
    installation_id: e.installationId ?? null,
    outcome: e.outcome,
    intent: e.intent ?? null,
    subject: e.subject ?? null,
    lease_holder: e.intent != null && e.claim ? e.claim.holder : null,
    lease_ms: e.intent != null && e.claim ? e.claim.leaseMs : null,
  }));
  const inserted = resultRows<{ delivery_id: string }>(
    await db.execute(sql`
      insert into webhook_deliveries (delivery_id, event, action, installation_id, outcome, intent,
                                      subject, lease_holder, lease_until, attempts)
      select delivery_id, event, action, installation_id, outcome, intent, subject, lease_holder,
             now() + lease_ms * interval '1 millisecond',
             case when lease_holder is null then 0 else 1 end
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as r(delivery_id text, event text, action text, installation_id bigint, outcome text,
             intent jsonb, subject text, lease_holder text, lease_ms bigint)
      on conflict (delivery_id) do nothing
      returning delivery_id`),
  );
  return new Set(inserted.map((r) => r.delivery_id));
}

/**
 * Records a delivery once. Returns false when GitHub (or anyone) sent this delivery id before, so
 * the caller can skip effects it already carried out.
 */
export async function recordDelivery(db: Db, record: DeliveryEntry): Promise<boolean> {
  return (await insertDeliveries(db, [record])).has(record.deliveryId);
}

/** Stores one delivery, batched with the others arriving at the same time. */
export interface DeliveryRecorder {
  /** Resolves once the delivery is committed: true when it was new, false for a repeat. */
  record(entry: DeliveryEntry): Promise<boolean>;
}

/**
 * Group commit for webhook deliveries: what arrives while two batches are being written waits for
 * the next one, so under load one commit carries many deliveries, and a lone delivery is written
 * at once. A batch that fails is retried one delivery at a time, so one bad row fails only its own
 * delivery (answered 500, and GitHub can redeliver it).
 */
export function createDeliveryRecorder(
  db: Db,
  options: { maxBatch?: number; maxInFlight?: number } = {},
) {
  const maxBatch = options.maxBatch ?? 500;
  // Two batches at once: the next one is sent while the last waits for its commit (the flush to
  // disk), instead of after it, so a delivery waits about one commit, not one and a half.
  const maxInFlight = options.maxInFlight ?? 2;
  type Waiting = {
    entry: DeliveryEntry;
    resolve: (fresh: boolean) => void;
    reject: (error: unknown) => void;
  };
  let waiting: Waiting[] = [];
  let inFlight = 0;
  let scheduled = false;

  async function write(batch: Waiting[]): Promise<void> {
    // The same id twice in one batch: the first is stored, the second is a repeat. (In two
    // batches at once, the unique delivery id makes the second insert wait for the first's
    // commit and then store nothing.)
    const seen = new Set<string>();
    const unique = batch.filter(
      (w) => !seen.has(w.entry.deliveryId) && seen.add(w.entry.deliveryId),
    );
    try {
      const fresh = await insertDeliveries(
        db,
        unique.map((w) => w.entry),
      );
      for (const w of batch) {
        w.resolve(unique.includes(w) && fresh.has(w.entry.deliveryId));
      }
    } catch (error) {
      if (batch.length === 1) return batch[0]!.reject(error);
      for (const w of batch) await write([w]);
    }
  }

  function pump(): void {
    scheduled = false;
    while (waiting.length && inFlight < maxInFlight) {
      const batch = waiting.slice(0, maxBatch);
      waiting = waiting.slice(batch.length);
      inFlight++;
      void write(batch).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  return {
    record(entry: DeliveryEntry): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) => {
        waiting.push({ entry, resolve, reject });
        // Deliveries parsed in the same turn of the event loop share a batch.
        if (!scheduled && inFlight < maxInFlight) {
          scheduled = true;
          setImmediate(pump);
        }
      });
    },
  } satisfies DeliveryRecorder;
}

/** A delivery whose effect is owed, claimed by one instance for `leaseMs`. */
export interface OwedDelivery extends DeliveryKey {
  intent: unknown;
  /** Claims so far, this one included: the fencing token of this claim. */
  attempts: number;
  holder: string;
}

/**
 * Claims up to `limit` owed deliveries, oldest first, for `holder` (an instance id). Free are those
 * never claimed, whose lease ran out, or whose holder has no database session left (the instance
 * died: its claims are taken over at once, as `tryAcquireLease` does). `FOR UPDATE SKIP LOCKED`
 * lets instances claim at the same time without waiting on each other or claiming one twice;
 * every claim increments `attempts`, which fences out a holder whose lease was taken over.
 */
export async function claimOwedDeliveries(
  db: Db,
  options: { holder: string; limit: number; leaseMs: number },
): Promise<OwedDelivery[]> {
  const rows = resultRows<{
    delivery_id: string;
    event: string;
    action: string | null;
    installation_id: string | number | null;
    intent: unknown;
    attempts: number;
  }>(
    await db.execute(sql`
      with claimed as (
        update webhook_deliveries d
        set lease_holder = ${options.holder},
            lease_until = now() + ${`${options.leaseMs} milliseconds`}::interval,
            attempts = d.attempts + 1
        where d.delivery_id in (
          select delivery_id from webhook_deliveries
          where intent is not null
            and (lease_until is null or lease_until < now()
                 or (lease_holder <> ${options.holder}
                     and current_setting('application_name') = ${options.holder}
                     and not exists (select 1 from pg_stat_activity
                                     where application_name = webhook_deliveries.lease_holder
                                       and datname = current_database())))
          order by received_at
          limit ${options.limit}
          for update skip locked)
        returning d.delivery_id, d.event, d.action, d.installation_id, d.intent, d.attempts,
                  d.received_at)
      select * from claimed order by received_at`),
  );
  return rows.map((r) => ({
    deliveryId: r.delivery_id,
    event: r.event,
    action: r.action ?? undefined,
    installationId: r.installation_id === null ? undefined : Number(r.installation_id),
    intent: r.intent,
    attempts: r.attempts,
    holder: options.holder,
  }));
}

class ClaimLost extends Error {}

/**
 * Carries out an owed delivery's effect and marks it done in one transaction, if `claim` still
 * holds it: the statement that marks it done is guarded by the claim (still owed, same holder,
 * same attempt) and runs last, so an instance that took the delivery over (the claim's lease ran
 * out) and this one cannot both commit the effect: the one that finds the claim moved rolls its
 * effect back. Returns the outcome, stored with the delivery, or "duplicate" when the claim was
 * lost and nothing was written.
 */
export async function settleOwedDelivery(
  db: Db,
  claim: Pick<OwedDelivery, "deliveryId" | "holder" | "attempts">,
  effect: (tx: Db) => Promise<string>,
): Promise<string> {
  try {
    return await db.transaction(async (tx) => {
      const outcome = await effect(tx);
      const settled = resultRows(
        await tx.execute(sql`
          update webhook_deliveries
          set outcome = ${outcome}, intent = null, lease_holder = null, lease_until = null
          where delivery_id = ${claim.deliveryId} and intent is not null
            and lease_holder = ${claim.holder} and attempts = ${claim.attempts}
          returning delivery_id`),
      );
      if (settled.length === 0) throw new ClaimLost();
      return outcome;
    });
  } catch (error) {
    if (error instanceof ClaimLost) return "duplicate";
    throw error;
  }
}

/**
 * An owed delivery's effect failed (GitHub did not answer, say): it stays owed, held by the same
 * claim until `retryInMs` from now, with why in `outcome`. A holder that dies meanwhile frees it.
 */
export async function deferOwedDelivery(
  db: Db,
  claim: Pick<OwedDelivery, "deliveryId" | "holder" | "attempts">,
  retryInMs: number,
  outcome: string,
): Promise<void> {
  await db.execute(sql`
    update webhook_deliveries
    set lease_until = now() + ${`${retryInMs} milliseconds`}::interval, outcome = ${outcome}
    where delivery_id = ${claim.deliveryId} and intent is not null
      and lease_holder = ${claim.holder} and attempts = ${claim.attempts}`);
}

/** Gives claims back without acting on them (the instance is stopping): another may take them now. */
export async function releaseOwedDeliveries(
  db: Db,
  claims: readonly Pick<OwedDelivery, "deliveryId" | "holder" | "attempts">[],
): Promise<void> {
  for (const claim of claims) {
    await db.execute(sql`
      update webhook_deliveries
      set lease_holder = null, lease_until = null
      where delivery_id = ${claim.deliveryId} and intent is not null
        and lease_holder = ${claim.holder} and attempts = ${claim.attempts}`);
  }
}

/** The subject of deliveries about an issue or pull request (their numbers share one sequence). */
export const issueSubject = (repositoryId: number, number: number) =>
  `issue:${repositoryId}:${number}`;

/**
 * Whether an `issues` delivery's payload may stand for the issue as it is now, so the intake loop
 * need not read the issue from GitHub before acting on it: the delivery arrived less than
 * `freshMs` ago, the payload's `updated_at` (the label's or state's change) is within `freshMs` of
 * its arrival by this server's clock (a redelivered old event is not), and no other `issues`
 * delivery about the same issue arrived from `quietMs` before it on (GitHub does not deliver in
 * order: an `unlabeled` may overtake the `labeled` before it). Any doubt reads GitHub.
 */
export async function isPayloadCurrent(
  db: Db,
  delivery: { deliveryId: string; subject: string; issueUpdatedAt: string },
  window: { freshMs: number; quietMs: number },
): Promise<boolean> {
  const updatedAt = Date.parse(delivery.issueUpdatedAt);
  if (!Number.isFinite(updatedAt)) return false;
  const fresh = `${window.freshMs} milliseconds`;
  const [row] = resultRows<{ current: boolean }>(
    await db.execute(sql`
      select d.subject = ${delivery.subject}
         and d.received_at > now() - ${fresh}::interval
         and abs(extract(epoch from d.received_at - ${new Date(updatedAt).toISOString()}::timestamptz))
             * 1000 <= ${window.freshMs}
         and not exists (
           select 1 from webhook_deliveries o
           where o.subject = ${delivery.subject} and o.event = 'issues'
             and o.delivery_id <> d.delivery_id
             and o.received_at > d.received_at - ${`${window.quietMs} milliseconds`}::interval)
         as current
      from webhook_deliveries d
      where d.delivery_id = ${delivery.deliveryId}`),
  );
  return row?.current === true;
}

/** How many deliveries still owe their effect (for tests and metrics). */
export async function countOwedDeliveries(db: Db): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await db.execute(
      sql`select count(*)::int as n from webhook_deliveries where intent is not null`,
    ),
  );
  return Number(row?.n ?? 0);
}
