import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/*
 * Errors worth counting (a webhook handler that threw, a loop pass that failed …), one row each:
 * the alerter's "errors per hour" and "webhook failures" count these, so the figures agree across
 * instances and survive restarts.
 */

export interface ErrorEvent {
  /** Where it happened: `webhook`, `loop:publisher`, `merger`, … (a fixed, short vocabulary). */
  source: string;
  message: string;
  details?: Record<string, unknown>;
  at?: Date;
}

export async function insertErrorEvents(db: Db, events: readonly ErrorEvent[]): Promise<void> {
  if (events.length === 0) return;
  const values = events.map(
    (e) =>
      sql`(${e.source}, ${e.message.slice(0, 2_000)}, ${JSON.stringify(e.details ?? {})}::jsonb,
           ${(e.at ?? new Date()).toISOString()}::timestamptz)`,
  );
  await db.execute(sql`
    insert into error_events (source, message, details, at)
    values ${sql.join(values, sql`, `)}`);
}

/** Errors since `since`, in total and by source. */
export async function countErrors(
  db: Db,
  since: Date,
): Promise<{ total: number; bySource: Record<string, number> }> {
  const rows = resultRows<{ source: string; n: number }>(
    await db.execute(sql`
      select source, count(*)::int as n from error_events
      where at >= ${since.toISOString()}::timestamptz
      group by source`),
  );
  const bySource = Object.fromEntries(rows.map((r) => [r.source, Number(r.n)]));
  return { total: rows.reduce((sum, r) => sum + Number(r.n), 0), bySource };
}

/** Webhook deliveries whose handling failed since `since`, and the latest failure's message. */
export async function countWebhookFailures(
  db: Db,
  since: Date,
): Promise<{ count: number; lastMessage?: string }> {
  const [row] = resultRows<{ n: number; last_message: string | null }>(
    await db.execute(sql`
      select count(*)::int as n,
             (array_agg(message order by at desc))[1] as last_message
      from error_events
      where source = 'webhook' and at >= ${since.toISOString()}::timestamptz`),
  );
  return {
    count: Number(row?.n ?? 0),
    ...(row?.last_message ? { lastMessage: row.last_message } : {}),
  };
}

export async function pruneErrorEvents(db: Db, before: Date): Promise<void> {
  await db.execute(sql`delete from error_events where at < ${before.toISOString()}::timestamptz`);
}
