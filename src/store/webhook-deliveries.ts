import { inArray, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { webhookDeliveries } from "../../db/schema.ts";

export interface DeliveryRecord {
  deliveryId: string;
  event: string;
  action?: string | undefined;
  installationId?: number | undefined;
  outcome: string;
}

/**
 * Records a delivery once. Returns false when GitHub (or anyone) sent this delivery id before, so
 * the caller can skip effects it already carried out. Call it inside the transaction that writes
 * those effects.
 */
export async function recordDelivery(db: Db, record: DeliveryRecord): Promise<boolean> {
  const inserted = await db
    .insert(webhookDeliveries)
    .values({
      deliveryId: record.deliveryId,
      event: record.event,
      action: record.action ?? null,
      installationId: record.installationId ?? null,
      outcome: record.outcome,
    })
    .onConflictDoNothing({ target: webhookDeliveries.deliveryId })
    .returning({ deliveryId: webhookDeliveries.deliveryId });
  return inserted.length > 0;
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

class AlreadyRecorded extends Error {}

/**
 * Carries out a delivery's effects and records the delivery in one transaction. The outcome the
 * effect returns is stored with it. If the delivery was recorded before (a redelivery racing the
 * first), the transaction rolls back, so nothing happens twice, and the result is "duplicate".
 */
export async function recordOnce(
  db: Db,
  delivery: Omit<DeliveryRecord, "outcome">,
  effect: (tx: Db) => Promise<string>,
): Promise<string> {
  try {
    return await db.transaction(async (tx) => {
      const outcome = await effect(tx);
      if (!(await recordDelivery(tx, { ...delivery, outcome }))) throw new AlreadyRecorded();
      return outcome;
    });
  } catch (error) {
    if (error instanceof AlreadyRecorded) return "duplicate";
    throw error;
  }
}
