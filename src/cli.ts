import { existsSync } from "node:fs";
import { ConfigError } from "./config.ts";

const USAGE = `Usage: conveyor <command>

Commands:
  start      run the server (webhooks, runner socket, API, dashboard)
  migrate    apply database migrations and exit
  runners    register, list and revoke runners (conveyor runners help)
  tokens     create, list and revoke API tokens for the admin API (conveyor tokens help)
  tasks      list, show, retry and cancel tasks (conveyor tasks help)
  report     outcomes per agent and per runner: merged rate, cost, tokens (conveyor report --help)
  export     write all state to a JSON file (backup; conveyor export --help)
  import     load an export into an empty database (restore; conveyor import --help)
  doctor     check the configuration, database, GitHub App and webhooks, saying what to fix
  help       show this help

Settings come from the environment or a .env file; see .env.example. With CONVEYOR_URL every
command but start goes to that server's admin API (with CONVEYOR_TOKEN or CONVEYOR_ADMIN_TOKEN)
instead of a database. Exit codes: 0 done, 1 failed, 2 wrong command line. docs/operations.md
describes operating Conveyor.`;

/** Loads `.env` from the working directory if there is one; real environment variables win. */
function loadDotEnv(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

/**
 * Runs one command. Each command's module is loaded when it is chosen, so a quick command (help,
 * a mistake on the command line, `runners list` over the API) does not pay for loading the server.
 */
export async function cli(argv: string[]): Promise<void> {
  const [command = "help"] = argv;
  loadDotEnv();
  switch (command) {
    case "start":
      return (await import("./cli/start-command.ts")).runStartCommand();
    case "migrate":
      process.exitCode = await (await import("./cli/migrate-command.ts")).runMigrateCommand(
        argv.slice(1),
      );
      return;
    case "runners":
      process.exitCode = await (await import("./cli/runners-command.ts")).runRunnersCommand(
        argv.slice(1),
      );
      return;
    case "tokens":
      process.exitCode = await (await import("./cli/tokens-command.ts")).runTokensCommand(
        argv.slice(1),
      );
      return;
    case "tasks":
      process.exitCode = await (await import("./cli/tasks-command.ts")).runTasksCommand(
        argv.slice(1),
      );
      return;
    case "report":
      process.exitCode = await (await import("./cli/report-command.ts")).runReportCommand(
        argv.slice(1),
      );
      return;
    case "export":
      process.exitCode = await (await import("./cli/backup-command.ts")).runExportCommand(
        argv.slice(1),
      );
      return;
    case "import":
      process.exitCode = await (await import("./cli/backup-command.ts")).runImportCommand(
        argv.slice(1),
      );
      return;
    case "doctor":
      process.exitCode = await (await import("./cli/doctor-command.ts")).runDoctorCommand(
        argv.slice(1),
      );
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
