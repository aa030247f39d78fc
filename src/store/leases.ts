import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { resultRows } from "../../db/client.ts";

/**
 * Takes (or renews) the named lease for `holder` if it is free, expired, already ours, or held by
 * an instance that is gone. One statement, so two instances asking at once cannot both win.
 *
 * An instance names its database connections after itself (`application_name` = holder, see
 * `createDatabase`), and Postgres ends the sessions of a client that died (kill -9, OOM, a lost
 * host) as its sockets close: a lease whose holder has no session left is free at once, instead of
 * blocking publishing, merging or reconciliation until it expires. The expiry stays the backstop.
 * (On PGlite there is one process and no other session, so a previous process's lease is free.)
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
           or not exists (select 1 from pg_stat_activity
                          where application_name = leases.holder
                            and datname = current_database())
      returning holder`),
  );
  return rows.length > 0;
}

export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.execute(sql`delete from leases where name = ${name} and holder = ${holder}`);
}
