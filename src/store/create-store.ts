import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { createDatabase, type Database, type DatabaseOptions } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import type { Config } from "../config.ts";

export interface StoreDeps {
  config: Pick<Config, "databaseUrl" | "dataDir">;
  logger: Logger;
  /** Opens the database (default: PostgreSQL at `databaseUrl`, else PGlite in `dataDir`). */
  open?: (options: DatabaseOptions) => Promise<Database>;
}

export interface Store {
  database: Database;
  /**
   * Names this instance as a lease holder and as the `application_name` of its database
   * connections: the leases it holds are free as soon as its connections are gone.
   */
  instanceId: string;
  /** Applies pending migrations (instances starting together take turns). */
  start(): Promise<void>;
  /** Closes the database: last of all at shutdown. */
  stop(): Promise<void>;
}

/** The database of one server: opened now (PGlite takes its lock here), migrated at start-up. */
export async function createStore(deps: StoreDeps): Promise<Store> {
  const { config, logger } = deps;
  const instanceId = createInstanceId();
  const database = await (deps.open ?? createDatabase)({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    applicationName: instanceId,
  });
  return {
    database,
    instanceId,
    async start() {
      const { applied } = await migrate(database.db);
      logger.info(
        { database: database.kind, applied },
        applied.length ? "database migrated" : "database schema is current",
      );
    },
    stop: () => database.close(),
  };
}

/**
 * Postgres keeps `application_name` to 63 ASCII characters: the random part first, so it is never
 * cut off.
 */
function createInstanceId(): string {
  return `${randomBytes(4).toString("hex")}:${process.pid}:${hostname()}`
    .replace(/[^\x20-\x7e]/g, "?")
    .slice(0, 63);
}
