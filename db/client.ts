import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { type SQL, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { createPreparedTexts, preparing } from "./prepared-statements.ts";
import * as schema from "./schema.ts";

export type Schema = typeof schema;
/** The drizzle handle shared by both drivers; repository modules take this. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface Database {
  readonly kind: "postgres" | "pglite";
  readonly db: Db;
  /** Runs a raw statement and returns its rows, whichever driver is underneath. */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  /** Throws when the database cannot answer a trivial query. */
  ping(): Promise<void>;
  /**
   * Subscribes to a NOTIFY channel; resolves once listening. Every instance on the database hears
   * every notification (PGlite: this process only, which is all it serves).
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres:// URL; unset means the embedded PGlite database in `dataDir`. */
  url?: string | undefined;
  dataDir?: string;
  /** postgres.js pool size. */
  max?: number;
  /**
   * `application_name` of every connection (default `conveyor`). An app instance names them after
   * itself, so the leases it holds die with its connections (see `tryAcquireLease`).
   */
  applicationName?: string;
}

/** The embedded database is in use by another process; opening it twice would corrupt it. */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/** Normalises the two drivers' results: postgres.js returns an array, PGlite `{rows}`. */
export function resultRows<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    return createPostgresDatabase(options.url, options.max ?? 10, options.applicationName);
  }
  if (!options.dataDir) throw new Error("createDatabase needs a url or a dataDir");
  return createPgliteDatabase(options.dataDir, options.applicationName);
}

function wrap(
  kind: Database["kind"],
  db: Db,
  listen: Database["listen"],
  close: () => Promise<void>,
): Database {
  const rows = async <T extends Record<string, unknown>>(query: SQL) =>
    resultRows<T>(await db.execute(query));
  return {
    kind,
    db,
    rows,
    async ping() {
      await rows(sql`select 1 as ok`);
    },
    listen,
    async notify(channel, payload) {
      await db.execute(sql`select pg_notify(${channel}, ${payload})`);
    },
    close,
  };
}

/**
 * A postgres.js pool that is replaced after the server closed its connections (a restart, a
 * failover). postgres.js 3.4.9 can leave a pooled connection that lost its socket unable to send
 * small messages afterwards: its queries wait until the 30 s connect timeout or until an unrelated
 * large query flushes them (https://github.com/porsager/postgres/issues/1208 and
 * LanternOps/breeze#3225 describe the write scheduler's defect). So when a connection of the
 * current pool closes, a fresh pool takes every new query as soon as the server answers again,
 * listeners move to it, and the old pool ends (what still waits on it fails within 2 s, and its
 * caller retries as after any database error).
 */
function createPostgresDatabase(url: string, max: number, applicationName = "conveyor"): Database {
  let closing = false;
  let renewing = false;
  const open = () => {
    const pool: postgres.Sql = postgres(url, {
      max,
      // "relation already exists, skipping" and friends are not worth a log line.
      onnotice: () => {},
      // JIT compilation pays off for long analytical queries, not for short statements: once a
      // table grows, a cost estimate crosses `jit_above_cost` and every run of the statement spends
      // tens of milliseconds compiling what executes in one (the dispatch pass's read, 57 ms).
      connection: { application_name: applicationName, jit: "off" },
      // Connections live until the server or the network ends them (as with node-postgres'
      // pool), so a close always means a lost connection, and the whole pool is renewed.
      max_lifetime: null,
      // Called for every connection of this pool that closes; only the current pool's matter.
      onclose: () => {
        if (pool === client) renew();
      },
    });
    return pool;
  };
  const prepared = createPreparedTexts();
  let client = open();
  let current = drizzlePostgres(preparing(client, prepared), { schema }) as unknown as Db;
  // Every module holds this one handle; it always answers with the current pool.
  const db = new Proxy({} as Db, {
    get(_target, property) {
      const value = Reflect.get(current, property, current);
      return typeof value === "function" ? value.bind(current) : value;
    },
  });
  const listeners = new Set<{
    channel: string;
    onNotify: (payload: string) => void;
    unlisten?: () => Promise<void>;
  }>();

  async function serverAnswers(): Promise<boolean> {
    const probe = postgres(url, {
      max: 1,
      connect_timeout: 5,
      onnotice: () => {},
      connection: { application_name: applicationName },
    });
    try {
      await probe`select 1`;
      return true;
    } catch {
      return false;
    } finally {
      await probe.end({ timeout: 0 }).catch(() => {});
    }
  }

  function renew(): void {
    if (closing || renewing) return;
    renewing = true;
    void (async () => {
      while (!closing && !(await serverAnswers())) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      renewing = false;
      if (closing) return;
      const old = client;
      client = open();
      current = drizzlePostgres(preparing(client, prepared), { schema }) as unknown as Db;
      for (const listener of listeners) {
        listener.unlisten = (await client.listen(listener.channel, listener.onNotify)).unlisten;
      }
      await old.end({ timeout: 2 }).catch(() => {});
    })();
  }

  return wrap(
    "postgres",
    db,
    async (channel, onNotify) => {
      // One dedicated connection for LISTEN; it moves to the new pool when the pool is renewed.
      const listener: {
        channel: string;
        onNotify: (payload: string) => void;
        unlisten?: () => Promise<void>;
      } = { channel, onNotify };
      listener.unlisten = (await client.listen(channel, onNotify)).unlisten;
      listeners.add(listener);
      return async () => {
        listeners.delete(listener);
        await listener.unlisten?.();
      };
    },
    () => {
      closing = true;
      return client.end({ timeout: 5 });
    },
  );
}

async function createPgliteDatabase(dataDir: string, applicationName?: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const releaseLock = lockDataDir(dataDir);
  try {
    const client = await PGlite.create(join(dataDir, "pgdata"));
    if (applicationName) {
      await client.query("select set_config('application_name', $1, false)", [applicationName]);
    }
    const db = drizzlePglite(client, { schema }) as unknown as Db;
    return wrap(
      "pglite",
      db,
      (channel, onNotify) => client.listen(channel, onNotify),
      async () => {
        await client.close();
        releaseLock();
      },
    );
  } catch (error) {
    releaseLock();
    throw new Error(`cannot open the embedded database in ${dataDir}`, { cause: error });
  }
}

/**
 * PGlite allows one process per data directory. A pid file makes a second process fail with a
 * clear message instead of corrupting the files; a stale pid file (its process is gone) is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = join(dataDir, "conveyor.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" });
      return () => rmSync(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(readFileSync(lockFile, "utf8").trim());
      if (owner && owner !== process.pid && isAlive(owner)) {
        throw new DataDirLockedError(
          `The embedded database in ${dataDir} is in use by process ${owner} (a running Conveyor). ` +
            "Stop that process, use its HTTP API, or set DATABASE_URL to a PostgreSQL server.",
        );
      }
      rmSync(lockFile, { force: true });
    }
  }
  throw new DataDirLockedError(`cannot lock the embedded database in ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
