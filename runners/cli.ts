import { existsSync, readFileSync } from "node:fs";
import pino from "pino";
import { formatDoctorReport, runDoctor } from "./doctor.ts";
import { createJournal } from "./journal.ts";
import { createRunnerClient } from "./runner-client.ts";
import {
  loadRunnerConfig,
  RUNNER_CONFIG_USAGE,
  type RunnerConfig,
  RunnerConfigError,
} from "./runner-config.ts";
import { createTaskRunner } from "./task-runner.ts";

const USAGE = `Usage: conveyor-runner <command> [options]

Commands:
  start      connect to a Conveyor server and run tasks (SIGTERM drains, then exits 0)
  doctor     check git, the agent command, the work directory, the server URL and the token
  help       show this help

Run \`conveyor-runner start --help\` for the options; see runners/README.md.`;

/** How long SIGTERM waits for running tasks before handing them back. */
const DRAIN_GRACE_MS = 5 * 60_000;

function version(): string {
  const pkg = new URL("../package.json", import.meta.url);
  return (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
}

async function start(config: RunnerConfig): Promise<number> {
  const logger = pino({
    name: "conveyor-runner",
    level: process.env.LOG_LEVEL ?? "info",
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization"],
      censor: "[redacted]",
    },
  });
  const journal = createJournal(config.journalPath);
  const loaded = await journal.load();
  if (loaded.corrupt) {
    logger.warn(
      { movedTo: loaded.corrupt.movedTo, reason: loaded.corrupt.reason },
      "journal was unreadable; moved aside",
    );
  }
  if (loaded.entries.length) {
    logger.info(
      { tasks: loaded.entries.map((e) => e.task_id) },
      "journal has tasks from a previous run",
    );
  }
  // The task runner and the client need each other; the client is only used once started.
  let tasks: ReturnType<typeof createTaskRunner> | undefined;
  const client = createRunnerClient({
    serverUrl: config.serverUrl,
    token: config.token,
    name: config.name,
    version: version(),
    capabilities: config.capabilities,
    slots: config.slots,
    running: () => tasks?.running() ?? [],
    onWelcome: (welcome) => {
      logger.info({ runnerId: welcome.runner_id }, "connected");
      tasks?.onWelcome(welcome);
    },
    onAssign: (assign) => tasks?.onAssign(assign),
    onCancel: (cancel) => tasks?.onCancel(cancel),
    logger,
  });
  tasks = createTaskRunner({
    client,
    journal,
    logger,
    serverUrl: config.serverUrl,
    token: config.token,
    agent: config.agent,
    workDir: config.workDir,
    slots: config.slots,
    limits: {
      wallClockMs: config.wallClockMinutes * 60_000,
      idleMs: config.idleMinutes * 60_000,
      outputCapBytes: config.outputCapBytes,
    },
  });
  client.start();
  logger.info(
    { server: config.serverUrl, name: config.name, slots: config.slots },
    "runner started",
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, running: tasks?.activeCount() }, "draining: no new work");
      await tasks?.drain(DRAIN_GRACE_MS);
      await client.stop();
      logger.info("runner stopped");
      resolve(0);
    };
    // `on`, not `once`: a second SIGTERM (GNU timeout signals the process and its group) must not
    // fall back to Node's default and kill the runner mid-drain.
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
  });
}

/** `conveyor-runner <command>`; resolves with the process exit code. */
export async function runnerCli(argv: string[]): Promise<number> {
  const [command = "help", ...rest] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command !== "start" && command !== "doctor") {
    process.stderr.write(`conveyor-runner: unknown command "${command}"\n\n${USAGE}\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${RUNNER_CONFIG_USAGE}\n`);
    return 0;
  }
  if (existsSync(".env")) process.loadEnvFile(".env");
  let config: RunnerConfig;
  try {
    config = loadRunnerConfig({ argv: rest, env: process.env, cwd: process.cwd() });
  } catch (error) {
    if (error instanceof RunnerConfigError) {
      process.stderr.write(`conveyor-runner: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (command === "doctor") {
    const result = await runDoctor(config);
    process.stdout.write(`${formatDoctorReport(result)}\n`);
    return result.ok ? 0 : 1;
  }
  return start(config);
}

runnerCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`conveyor-runner: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
