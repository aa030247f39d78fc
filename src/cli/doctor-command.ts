import {
  type CliOutput,
  type Env,
  expectPositionals,
  parseCommandArgs,
  printJson,
  processOutput,
  runCli,
} from "./cli-support.ts";
import { type Check, type CheckStatus, runDoctorChecks } from "./doctor-checks.ts";
import { runRemoteDoctorChecks } from "./remote-doctor-checks.ts";

export const DOCTOR_USAGE = `Usage: conveyor doctor [--json]

Checks this installation and says exactly what to fix: the configuration (environment and .env),
the database (reachable, migrations applied), the GitHub App (the key parses and GitHub accepts a
JWT made with it at GITHUB_API_URL), the App as GitHub sees it (GET /app and GET /app/hook/config:
its events and permissions against app.yml, its webhook URL and content type against what
Conveyor serves, and whether a signed ping to that URL reaches this installation), the webhook
secret, whether CONVEYOR_PUBLIC_URL reaches this server, and whether anybody can use the admin
API. Exits 1 when a check fails (warnings do not).

With CONVEYOR_URL it checks that server from the outside instead: it answers, it is ready
(database, migrations, GitHub App), the token (CONVEYOR_TOKEN or CONVEYOR_ADMIN_TOKEN) is accepted
and with which role, and its database.`;

const MARK: Record<CheckStatus, string> = { ok: "ok", warn: "warn", fail: "FAIL", skip: "skip" };

/** `conveyor doctor`. Returns the exit code: 0 nothing failed, 1 something did, 2 usage. */
export async function runDoctorCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  return runCli("doctor", out, async () => {
    const args = parseCommandArgs(argv);
    if (args.help) {
      out.stdout(`${DOCTOR_USAGE}\n`);
      return 0;
    }
    expectPositionals(args, [], "doctor");
    const checks = env.CONVEYOR_URL?.trim()
      ? await runRemoteDoctorChecks(env)
      : await runDoctorChecks(env);
    const failed = checks.filter((c) => c.status === "fail").length;
    if (args.json) printJson(out, { ok: failed === 0, checks });
    else out.stdout(renderChecks(checks));
    return failed > 0 ? 1 : 0;
  });
}

export function renderChecks(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.flatMap((c) => [
    `[${MARK[c.status]}]${" ".repeat(5 - MARK[c.status].length)}${c.name.padEnd(width)}  ${c.message}`,
    ...(c.fix && c.status !== "ok" ? [`${" ".repeat(9 + width)}fix: ${c.fix}`] : []),
  ]);
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  const summary =
    failed === 0 && warned === 0
      ? "Everything looks right."
      : `${[
          failed ? `${failed} ${failed === 1 ? "problem" : "problems"} to fix` : "",
          warned ? `${warned} ${warned === 1 ? "warning" : "warnings"}` : "",
        ]
          .filter(Boolean)
          .join(", ")}.`;
  return `${lines.join("\n")}\n\n${summary}\n`;
}
