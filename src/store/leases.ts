import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { resultRows } from "../../db/client.ts";

/**
 * Takes (or renews) the named lease for `holder` if it is free, expired, or already ours. One
 * statement, so two instances asking at once cannot both win.
 */
export async function tryAcquireLease(
  db: Db,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const rows = resultRows<{ holder: string }>(
    await db.execute(sql`
      insert into leases (name, holder, expires_at)
      values (${name}, ${holder}, now() + ${`${ttlMs} milliseconds`}::interval)
      on conflict (name) do update
        set holder = excluded.holder, expires_at = excluded.expires_at
        where leases.expires_at < now() or leases.holder = excluded.holder
      returning holder`),
  );
  return rows.length > 0;
}

export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.execute(sql`delete from leases where name = ${name} and holder = ${holder}`);
}
