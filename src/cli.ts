import { existsSync } from "node:fs";
import { createDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { runRunnersCommand } from "./cli/runners-command.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { main } from "./main.ts";

const USAGE = `Usage: conveyor <command>

Commands:
  start      run the server (webhooks, runner socket, API, dashboard)
  migrate    apply database migrations and exit
  runners    register, list and revoke runners (conveyor runners help)
  help       show this help

Settings come from the environment or a .env file; see .env.example.`;

/** Loads `.env` from the working directory if there is one; real environment variables win. */
function loadDotEnv(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

async function runMigrate(): Promise<void> {
  const config = loadConfig();
  const database = await createDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const { applied } = await migrate(database.db);
    process.stdout.write(
      applied.length ? `applied ${applied.join(", ")}\n` : "database schema is current\n",
    );
  } finally {
    await database.close();
  }
}

export async function cli(argv: string[]): Promise<void> {
  const [command = "help"] = argv;
  loadDotEnv();
  switch (command) {
    case "start":
      return main();
    case "migrate":
      return runMigrate();
    case "runners":
      process.exitCode = await runRunnersCommand(argv.slice(1));
      return;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      process.stderr.write(`conveyor: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

cli(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`conveyor: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`conveyor: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
