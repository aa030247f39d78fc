import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { resultRows } from "../../db/client.ts";

/**
 * Takes (or renews) the named lease for `holder` if it is free, expired, already ours, or held by
 * an instance that is gone. One statement, so two instances asking at once cannot both win.
 *
 * An app instance names its database connections after itself (`application_name` = holder, see
 * `createDatabase`), and Postgres ends the sessions of a client that died (kill -9, OOM, a lost
 * host) as its sockets close: such an instance takes over a lease whose holder has no session
 * left at once, instead of publishing, merging or reconciliation waiting until it expires. A caller
 * whose connections do not carry its holder name (a tool, a test) only ever waits for the expiry,
 * which stays the backstop for everyone. (PGlite has one session: a previous process's lease is
 * free as soon as the new one asks.)
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
           or (current_setting('application_name') = excluded.holder
               and not exists (select 1 from pg_stat_activity
                               where application_name = leases.holder
                                 and datname = current_database()))
      returning holder`),
  );
  return rows.length > 0;
}

export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.execute(sql`delete from leases where name = ${name} and holder = ${holder}`);
}
