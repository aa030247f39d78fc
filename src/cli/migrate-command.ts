import { createDatabase, DataDirLockedError } from "../../db/client.ts";
import { migrate, migrationStatus } from "../../db/migrate.ts";
import { loadConfig } from "../config.ts";
import {
  type CliOutput,
  type Env,
  expectPositionals,
  parseCommandArgs,
  printJson,
  processOutput,
  runCli,
} from "./cli-support.ts";
import { openAdminApi, readAnswer } from "./open-admin-api.ts";

export const MIGRATE_USAGE = `Usage: conveyor migrate [--json]

Applies pending database migrations and exits. With CONVEYOR_URL it asks that server to do it
(POST /api/admin/migrate, with CONVEYOR_TOKEN, an admin API token, or CONVEYOR_ADMIN_TOKEN); a
server also migrates by itself when it starts, so there is usually nothing left to do. Otherwise
it migrates DATABASE_URL, or the embedded database in CONVEYOR_DATA_DIR (through the server that
holds it, if one does).`;

interface Migrated {
  applied: string[];
  /** The newest migration the database has. */
  current: string | null;
}

/** `conveyor migrate`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runMigrateCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  return runCli("migrate", out, async () => {
    const args = parseCommandArgs(argv);
    if (args.help) {
      out.stdout(`${MIGRATE_USAGE}\n`);
      return 0;
    }
    expectPositionals(args, [], "migrate");
    const config = loadConfig(env);
    let result: Migrated | undefined;
    if (!env.CONVEYOR_URL?.trim()) result = await migrateDirectly(config);
    if (!result) {
      const api = await openAdminApi(config, env);
      try {
        if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
        result = await readAnswer<Migrated>(api, await api.request("POST", "/admin/migrate"));
      } finally {
        await api.close();
      }
    }
    if (args.json) printJson(out, result);
    else {
      out.stdout(
        result.applied.length
          ? `applied ${result.applied.join(", ")}\n`
          : "database schema is current\n",
      );
    }
    return 0;
  });
}

/** Migrates the configured database itself; undefined when a running server holds it. */
async function migrateDirectly(
  config: ReturnType<typeof loadConfig>,
): Promise<Migrated | undefined> {
  let database: Awaited<ReturnType<typeof createDatabase>>;
  try {
    database = await createDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  } catch (error) {
    if (error instanceof DataDirLockedError) return undefined;
    throw error;
  }
  try {
    const { applied } = await migrate(database.db);
    const current = (await migrationStatus(database.db)).applied.at(-1) ?? null;
    return { applied, current };
  } finally {
    await database.close();
  }
}
