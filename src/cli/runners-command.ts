import { loadConfig } from "../config.ts";
import type { RunnerJson } from "../http/runner-json.ts";
import { CliError } from "./cli-error.ts";
import { type CliOutput, type Env, processOutput, renderTable } from "./cli-support.ts";
import { openAdminApi, readAnswer } from "./open-admin-api.ts";
import { parseRunnersArgs, RUNNERS_USAGE } from "./runners-args.ts";

export type { CliOutput };

/**
 * `conveyor runners add|jit|list|revoke`. Returns the exit code: 0 done, 1 failed, 2 wrong command
 * line. The commands speak the admin API (`/api/runners`) wherever {@link openAdminApi} finds
 * it: the server `CONVEYOR_URL` names, the database opened directly, or the server holding the
 * embedded database. A bad setting throws the config's own error, like every command.
 */
export async function runRunnersCommand(
  argv: readonly string[],
  env: Env = process.env,
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
  if (args.command === "add")
    for (const note of args.notes ?? []) out.stderr(`conveyor: ${note}\n`);
  const config = loadConfig(env);
  let api: Awaited<ReturnType<typeof openAdminApi>>;
  try {
    api = await openAdminApi(config, env);
  } catch (error) {
    return reportCliError(error, out);
  }
  try {
    if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
    switch (args.command) {
      case "add": {
        const created = await readAnswer<{ runner: RunnerJson; token: string }>(
          api,
          await api.request("POST", "/runners", { body: args.registration }),
          [201],
        );
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
      case "jit": {
        const created = await readAnswer<{ runner: RunnerJson; token: string }>(
          api,
          await api.request("POST", "/runners/jit", { body: args.request }),
          [201],
        );
        if (args.json) out.stdout(`${JSON.stringify(created, null, 2)}\n`);
        else out.stdout(renderMinted(created.runner, created.token));
        return 0;
      }
      case "list": {
        const { runners } = await readAnswer<{ runners: RunnerJson[] }>(
          api,
          await api.request("GET", "/runners"),
        );
        out.stdout(args.json ? `${JSON.stringify({ runners }, null, 2)}\n` : renderList(runners));
        return 0;
      }
      case "revoke": {
        const response = await api.request(
          "POST",
          `/runners/${encodeURIComponent(args.name)}/revoke`,
        );
        const runner = await readAnswer<RunnerJson>(api, response).catch((error: unknown) => {
          // A 404 for the name, not for a route an older server lacks.
          if (response.status === 404 && error instanceof CliError) {
            throw new CliError(
              `no runner named ${args.name} (see: conveyor runners list)`,
              error.exitCode,
            );
          }
          throw error;
        });
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
    await api.close();
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
    `Registered runner ${runner.name} (id ${runner.runner_id}, class ${runner.class ?? runner.tier}, capabilities: ${capabilities}).`,
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

function renderMinted(runner: RunnerJson, token: string): string {
  const capabilities = runner.capabilities.length ? runner.capabilities.join(", ") : "none";
  const repos = runner.repos.length ? runner.repos.join(", ") : "every repository";
  return [
    `One-time credential for runner ${runner.name} (capabilities: ${capabilities}; repositories: ${repos}).`,
    `Good for one connection and at most one task; unused, it expires at ${formatTime(runner.expires_at)}.`,
    "Start the runner with: conveyor-runner start --ephemeral (token in CONVEYOR_RUNNER_TOKEN)",
    "",
    token,
    "",
  ].join("\n");
}

function renderList(runners: RunnerJson[]): string {
  if (runners.length === 0) {
    return "No runners registered. Register one with: conveyor runners add <name>\n";
  }
  const rows = [
    ["NAME", "CLASS", "CAPABILITIES", "STATUS", "LAST SEEN", "CREATED", "REPOS"],
    ...runners.map((r) => [
      r.name,
      // Servers from before the rename say only `tier`.
      r.class ?? r.tier,
      r.capabilities.join(",") || "-",
      status(r),
      formatTime(r.last_seen_at),
      formatTime(r.created_at),
      r.repos?.join(",") || "*",
    ]),
  ];
  return renderTable(rows);
}

function status(runner: RunnerJson): string {
  if (runner.status === "revoked") return runner.one_time && runner.used_at ? "spent" : "revoked";
  if (runner.status === "expired") return "expired (one-time, unused)";
  if (runner.status === "unused") return "one-time, unused";
  if (runner.connected) return `connected (${runner.connected.busy_slots} busy)`;
  return runner.connected === null ? "offline" : "active";
}

/** `2025-11-25 10:43 UTC`: minutes are enough in a table, and UTC avoids guessing zones. */
function formatTime(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "never";
}
