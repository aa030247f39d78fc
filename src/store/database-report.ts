import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { currentMigration } from "./database-export.ts";
import { countRows } from "./database-import.ts";
import { schemaTables } from "./schema-tables.ts";

export type DatabaseReport =
  | {
      reachable: true;
      kind: Database["kind"];
      /** Round trip of a trivial query, in milliseconds. */
      latency_ms: number;
      server_version: string;
      migrations: { current: string; pending: string[] };
      /** Exact row counts of every table in `db/schema.ts`, in foreign-key order. */
      tables: { name: string; rows: number }[];
    }
  | { reachable: false; kind: Database["kind"]; error: string };

/** What `GET /api/admin/database` answers: can we talk to it, how fast, and what is in it. */
export async function databaseReport(
  database: Database,
  now: () => number = () => performance.now(),
): Promise<DatabaseReport> {
  const started = now();
  try {
    await database.ping();
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined;
    return {
      reachable: false,
      kind: database.kind,
      error: cause?.message ?? (error as Error).message,
    };
  }
  const latency = now() - started;
  const [version] = await database.rows<{ server_version: string }>(sql`show server_version`);
  const migrations = await currentMigration(database.db);
  return {
    reachable: true,
    kind: database.kind,
    latency_ms: Math.round(latency * 100) / 100,
    server_version: version?.server_version ?? "unknown",
    migrations,
    tables: await countRows(database.db, schemaTables()),
  };
}
