import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import pino from "pino";
import { createAgentAdapter } from "./adapters/create-agent-adapter.ts";
import { formatDoctorReport, runDoctor } from "./doctor.ts";
import { createJournal } from "./journal.ts";
import { createRunnerClient } from "./runner-client.ts";
import {
  loadRunnerConfig,
  privateFileProblem,
  RUNNER_CONFIG_USAGE,
  type RunnerConfig,
  RunnerConfigError,
} from "./runner-config.ts";
import { chooseIsolation, createSandbox, probeHost, type Sandbox } from "./sandbox.ts";
import { createTaskRunner } from "./task-runner.ts";

const USAGE = `Usage: conveyor-runner <command> [options]

Commands:
  start      connect to a Conveyor server and run tasks (SIGTERM drains, then exits 0)
  doctor     check git, the agent command, the work directory, the server URL, the token and the sandbox
  help       show this help

Run \`conveyor-runner start --help\` for the options; see runners/README.md.`;

/** How long SIGTERM waits for running tasks before handing them back. */
const DRAIN_GRACE_MS = 5 * 60_000;

function version(): string {
  const pkg = new URL("../package.json", import.meta.url);
  return (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
}

/** The sandbox `start` runs the agent in, or the reason there is none (the runner then refuses). */
async function sandboxFor(config: RunnerConfig): Promise<Sandbox | string> {
  const choice = chooseIsolation(
    config.isolation,
    config.network,
    await probeHost({ network: config.network }),
  );
  if (!choice.ok) return choice.reason;
  try {
    return await createSandbox({
      choice,
      slots: config.slots,
      network: config.network,
      workDir: config.workDir,
      journalPath: config.journalPath,
      configFile: config.configFile,
      tokenFile: config.tokenFile,
      envFile: existsSync(".env") ? resolve(".env") : undefined,
      agent: config.agent,
      sandboxWritable: config.sandboxWritable,
    });
  } catch (error) {
    return (error as Error).message;
  }
}

async function start(config: RunnerConfig): Promise<number> {
  // Whatever the runner writes (journal, prompt files, workspaces) is for its user alone.
  process.umask(0o077);
  const sandbox = await sandboxFor(config);
  if (typeof sandbox === "string") {
    process.stderr.write(`conveyor-runner: ${sandbox}\n`);
    return 2;
  }
  const logger = pino({
    name: "conveyor-runner",
    level: process.env.LOG_LEVEL ?? "info",
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization"],
      censor: "[redacted]",
    },
  });
  if (sandbox.kind === "none") {
    logger.warn({ isolation: sandbox.kind, detail: sandbox.detail }, "the agent is not sandboxed");
  } else {
    logger.info({ isolation: sandbox.kind, detail: sandbox.detail }, "agent sandbox");
  }
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
  let stopOnce: (reason: string) => Promise<void> = async () => {};
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
    onAssign: (assign) => {
      tasks?.onAssign(assign);
      // --ephemeral: the first task taken is the only one; finish it, then exit.
      if (config.ephemeral && (tasks?.activeCount() ?? 0) > 0) void stopOnce("ephemeral");
    },
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
    adapter: createAgentAdapter(config.adapter, config.agent),
    model: config.model,
    workDir: config.workDir,
    slots: config.slots,
    sandbox,
    limits: {
      wallClockMs: config.wallClockMinutes * 60_000,
      idleMs: config.idleMinutes * 60_000,
      outputCapBytes: config.outputCapBytes,
    },
  });
  client.start();
  logger.info(
    {
      server: config.serverUrl,
      name: config.name,
      slots: config.slots,
      agent: config.adapter,
      model: config.model,
      ephemeral: config.ephemeral,
    },
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
    stopOnce = stop;
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
  if (existsSync(".env")) {
    // A .env that holds the runner token must be as private as a token file.
    const holdsToken = /^\s*(?:export\s+)?CONVEYOR_RUNNER_TOKEN\s*=/m.test(
      readFileSync(".env", "utf8"),
    );
    const problem = holdsToken ? privateFileProblem(".env") : undefined;
    if (problem) {
      process.stderr.write(
        `conveyor-runner: .env holds CONVEYOR_RUNNER_TOKEN but ${problem}: chmod 600 .env\n`,
      );
      return 2;
    }
    process.loadEnvFile(".env");
  }
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
