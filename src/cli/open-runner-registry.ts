import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createDatabase, type Database, DataDirLockedError } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import type { Config } from "../config.ts";
import type { RunnerRegistration } from "../core/runner-registration.ts";
import { toRunnerJson } from "../http/runner-json.ts";
import { readServerInfo, serverInfoPath } from "../server-info.ts";
import {
  createRunner,
  InvalidRunnerError,
  listRunners,
  RunnerNameTakenError,
  revokeRunner,
} from "../store/runners.ts";
import { createAdminApiClient } from "./admin-api-client.ts";
import { CliError } from "./cli-error.ts";
import type { RunnerRegistry } from "./runner-registry.ts";

/**
 * Decides where runner commands go. With DATABASE_URL: that PostgreSQL server. Without: the
 * embedded database, unless a running server holds it; then that server's admin API, found through
 * `<dataDir>/server.json`. A locked data directory is never opened: PGlite allows one process.
 */
export async function openRunnerRegistry(config: Config): Promise<RunnerRegistry> {
  if (config.databaseUrl) {
    const database = await createDatabase({ url: config.databaseUrl, max: 2 });
    return databaseRegistry(database, "PostgreSQL (DATABASE_URL)");
  }
  let database: Database;
  try {
    database = await createDatabase({ dataDir: config.dataDir });
  } catch (error) {
    if (error instanceof DataDirLockedError) return serverRegistry(config, error);
    throw error;
  }
  return databaseRegistry(database, `the embedded database in ${config.dataDir}`);
}

async function databaseRegistry(database: Database, description: string): Promise<RunnerRegistry> {
  try {
    await migrate(database.db);
  } catch (error) {
    await database.close();
    throw error;
  }
  const { db } = database;
  return {
    via: "database",
    description,
    async add(registration: RunnerRegistration) {
      try {
        const { runner, token } = await createRunner(db, registration);
        return { runner: toRunnerJson(runner), token };
      } catch (error) {
        if (error instanceof RunnerNameTakenError) throw new CliError(error.message);
        if (error instanceof InvalidRunnerError) throw new CliError(error.message, 2);
        throw error;
      }
    },
    async list() {
      return (await listRunners(db)).map((r) => toRunnerJson(r));
    },
    async revoke(name: string) {
      const runner = await revokeRunner(db, name);
      return runner && toRunnerJson(runner);
    },
    close: () => database.close(),
  };
}

/**
 * The server that holds the locked embedded database, from `<dataDir>/server.json`, or a
 * {@link CliError} saying why it cannot be reached that way.
 */
export function serverHoldingDataDir(
  config: Config,
  locked: DataDirLockedError,
): { url: string; pid: number; description: string } {
  const info = readServerInfo(config.dataDir);
  const owner = lockOwner(config.dataDir);
  // server.json left by an earlier server (it crashed) must not send us to a stranger's port.
  if (!info || info.pid !== owner) {
    throw new CliError(
      `${locked.message}\nThat process has not published its address in ${serverInfoPath(config.dataDir)} ` +
        "(it may still be starting, or be another conveyor command): try again in a moment.",
    );
  }
  return { ...info, description: `the server at ${info.url} (process ${info.pid})` };
}

function serverRegistry(config: Config, locked: DataDirLockedError): RunnerRegistry {
  const info = serverHoldingDataDir(config, locked);
  const { description } = info;
  if (!config.adminToken) {
    throw new CliError(
      `The embedded database in ${config.dataDir} is in use by ${description}, so this command ` +
        "has to go through that server's admin API, which needs the admin token.\n" +
        "Set CONVEYOR_ADMIN_TOKEN (in the environment or .env) to the server's value, " +
        "or stop the server and run the command again.",
    );
  }
  return createAdminApiClient({ url: info.url, adminToken: config.adminToken, description });
}

/** The pid in the data directory's lock file (read only: the lock belongs to its owner). */
function lockOwner(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(join(dataDir, "conveyor.pid"), "utf8").trim()) || undefined;
  } catch {
    return undefined;
  }
}
