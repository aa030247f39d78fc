import { loadConfig } from "../config.ts";
import type { RunnerJson } from "../http/runner-json.ts";
import { CliError } from "./cli-error.ts";
import { renderTable } from "./cli-support.ts";
import { openRunnerRegistry } from "./open-runner-registry.ts";
import { parseRunnersArgs, RUNNERS_USAGE } from "./runners-args.ts";

export interface CliOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processOutput: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * `conveyor runners add|list|revoke`. Returns the exit code: 0 done, 1 failed, 2 wrong command
 * line. Works with the server stopped (opens the database itself) and while it runs (see
 * {@link openRunnerRegistry}). A bad setting throws the config's own error, like every command.
 */
export async function runRunnersCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  const args = parseRunnersArgs(argv);
  if (args.command === "help") {
    out.stdout(`${RUNNERS_USAGE}\n`);
    return 0;
  }
  if (args.command === "usage-error") {
    out.stderr(
      `conveyor runners: ${args.message}\n${args.showUsage ? `\n${RUNNERS_USAGE}\n` : "See: conveyor runners help\n"}`,
    );
    return 2;
  }
  const config = loadConfig(env);
  let registry: Awaited<ReturnType<typeof openRunnerRegistry>>;
  try {
    registry = await openRunnerRegistry(config);
  } catch (error) {
    return reportCliError(error, out);
  }
  try {
    if (registry.via === "server") {
      out.stderr(
        `conveyor: the embedded database is in use; going through ${registry.description}\n`,
      );
    }
    switch (args.command) {
      case "add": {
        const created = await registry.add(args.registration);
        if (args.json) {
          out.stdout(`${JSON.stringify(created, null, 2)}\n`);
          out.stderr(
            "conveyor: store the token now (e.g. in the runner machine's secret store): it cannot be shown again.\n",
          );
        } else {
          out.stdout(renderAdded(created.runner, created.token));
        }
        return 0;
      }
      case "list": {
        const runners = await registry.list();
        out.stdout(args.json ? `${JSON.stringify({ runners }, null, 2)}\n` : renderList(runners));
        return 0;
      }
      case "revoke": {
        const runner = await registry.revoke(args.name);
        if (!runner) {
          out.stderr(`conveyor: no runner named ${args.name} (see: conveyor runners list)\n`);
          return 1;
        }
        out.stdout(
          args.json
            ? `${JSON.stringify(runner, null, 2)}\n`
            : `Runner ${runner.name} is revoked (since ${formatTime(runner.revoked_at)}): its token no longer works.\n`,
        );
        return 0;
      }
    }
  } catch (error) {
    return reportCliError(error, out);
  } finally {
    await registry.close();
  }
}

function reportCliError(error: unknown, out: CliOutput): number {
  if (!(error instanceof CliError)) throw error;
  out.stderr(`conveyor: ${error.message}\n`);
  return error.exitCode;
}

function renderAdded(runner: RunnerJson, token: string): string {
  const capabilities = runner.capabilities.length ? runner.capabilities.join(", ") : "none";
  return [
    `Registered runner ${runner.name} (id ${runner.runner_id}, tier ${runner.tier}, capabilities: ${capabilities}).`,
    "",
    "Its token is below. Store it now (e.g. in the runner machine's secret store):",
    "it is shown only this once and cannot be shown again.",
    "",
    token,
    "",
    `Lost it? Revoke the runner (conveyor runners revoke ${runner.name}) and register another.`,
    "",
  ].join("\n");
}

function renderList(runners: RunnerJson[]): string {
  if (runners.length === 0) {
    return "No runners registered. Register one with: conveyor runners add <name>\n";
  }
  const rows = [
    ["NAME", "TIER", "CAPABILITIES", "STATUS", "LAST SEEN", "CREATED"],
    ...runners.map((r) => [
      r.name,
      r.tier,
      r.capabilities.join(",") || "-",
      status(r),
      formatTime(r.last_seen_at),
      formatTime(r.created_at),
    ]),
  ];
  return renderTable(rows);
}

function status(runner: RunnerJson): string {
  if (runner.status === "revoked") return "revoked";
  if (runner.connected) return `connected (${runner.connected.busy_slots} busy)`;
  return runner.connected === null ? "offline" : "active";
}

/** `2025-11-25 10:43 UTC`: minutes are enough in a table, and UTC avoids guessing zones. */
function formatTime(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "never";
}
