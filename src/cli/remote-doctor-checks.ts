import { z } from "zod";
import type { Env } from "./cli-support.ts";
import type { Check } from "./doctor-checks.ts";

const ServerUrl = z.url({ protocol: /^https?$/, error: "expected an http(s) URL" });

const Readiness = z.object({
  status: z.string(),
  reason: z.string().optional(),
  database: z.string().optional(),
  github: z.string().optional(),
});
const WhoAmI = z.object({ name: z.string(), role: z.string(), kind: z.string() });
const DatabaseReport = z.object({
  reachable: z.boolean(),
  kind: z.string().optional(),
  error: z.string().optional(),
  migrations: z
    .object({ current: z.string().nullable().optional(), pending: z.array(z.string()) })
    .optional(),
});

/**
 * `conveyor doctor` with `CONVEYOR_URL`: checks the deployment that URL names, from the outside,
 * instead of the local configuration: the server answers, it is ready (database, migrations, the
 * GitHub App), the token is accepted and with which role, and its database report. A check that
 * depends on an earlier one that failed is skipped.
 */
export async function runRemoteDoctorChecks(
  env: Env,
  options: { timeoutMs?: number } = {},
): Promise<Check[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const raw = env.CONVEYOR_URL?.trim() ?? "";
  const parsed = ServerUrl.safeParse(raw);
  const names = ["server", "readiness", "token", "database"];
  if (!parsed.success) {
    return [
      {
        name: "server",
        status: "fail",
        message: `CONVEYOR_URL: ${parsed.error.issues[0]?.message} (got ${JSON.stringify(raw)})`,
        fix: "Set CONVEYOR_URL to the server's address, e.g. https://conveyor.example.com",
      },
      ...skipped(names.slice(1), "the server address is invalid"),
    ];
  }
  const base = parsed.data.replace(/\/+$/, "");
  const token = env.CONVEYOR_TOKEN?.trim() || env.CONVEYOR_ADMIN_TOKEN?.trim();
  const get = async (path: string, auth = false) => {
    const response = await fetch(`${base}${path}`, {
      headers: auth && token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, json, text };
  };

  const checks: Check[] = [];
  try {
    const health = await get("/healthz");
    if (health.status !== 200) throw new Error(`GET /healthz answered HTTP ${health.status}`);
    checks.push({ name: "server", status: "ok", message: `${base} answers` });
  } catch (error) {
    const cause = (error as Error).cause;
    const reason = cause instanceof Error ? cause.message : (error as Error).message;
    return [
      {
        name: "server",
        status: "fail",
        message: `cannot reach ${base}: ${reason}`,
        fix: "Check CONVEYOR_URL, that the server is running, and that this machine can reach it",
      },
      ...skipped(names.slice(1), "the server did not answer"),
    ];
  }

  const ready = await get("/readyz").catch((error: Error) => ({
    status: 0,
    json: undefined,
    text: error.message,
  }));
  const readiness = Readiness.safeParse(ready.json);
  if (ready.status === 200 && readiness.success) {
    const setup = readiness.data.github === "setup";
    checks.push({
      name: "readiness",
      status: setup ? "warn" : "ok",
      message: setup
        ? `ready (database: ${readiness.data.database}), but the GitHub App is not configured: the server is in setup mode`
        : `ready (database: ${readiness.data.database}, GitHub App configured)`,
      ...(setup
        ? {
            fix: "Finish the App's set-up at <server>/probot, or set APP_ID and PRIVATE_KEY on the server",
          }
        : {}),
    });
  } else {
    checks.push({
      name: "readiness",
      status: "fail",
      message: `not ready: ${readiness.success ? (readiness.data.reason ?? readiness.data.status) : `HTTP ${ready.status}`}`,
      fix: "Look at the server's log; conveyor doctor on the server's machine says more",
    });
  }

  if (!token) {
    checks.push({
      name: "token",
      status: "fail",
      message: "no credential for the admin API",
      fix: "Set CONVEYOR_TOKEN to an API token of that server (conveyor tokens add …), or CONVEYOR_ADMIN_TOKEN to its value",
    });
    checks.push(...skipped(["database"], "there is no token"));
    return checks;
  }
  const who = await get("/api/admin/whoami", true);
  const principal = WhoAmI.safeParse(who.json);
  if (who.status !== 200 || !principal.success) {
    const said = (who.json as { error?: string } | undefined)?.error ?? `HTTP ${who.status}`;
    checks.push({
      name: "token",
      status: "fail",
      message: `the server refused the token: ${said}`,
      fix: "Set CONVEYOR_TOKEN to a valid API token of that server, or CONVEYOR_ADMIN_TOKEN to its value",
    });
    checks.push(...skipped(["database"], "the token was refused"));
    return checks;
  }
  const { name, role } = principal.data;
  checks.push(
    role === "admin"
      ? { name: "token", status: "ok", message: `accepted: ${name} (admin)` }
      : {
          name: "token",
          status: "warn",
          message: `accepted: ${name} (${role}); commands that change something need an admin token`,
          fix: "Use an admin API token (conveyor tokens add <name> --role admin) for runners add/revoke, tasks retry/cancel, tokens, export, import and migrate",
        },
  );

  const db = await get("/api/admin/database", true);
  const report = DatabaseReport.safeParse(db.json);
  if (!report.success || !report.data.reachable) {
    checks.push({
      name: "database",
      status: "fail",
      message: `the server cannot reach its database: ${report.success ? report.data.error : `HTTP ${db.status}`}`,
      fix: "Check the server's DATABASE_URL and that PostgreSQL runs",
    });
    return checks;
  }
  const pending = report.data.migrations?.pending ?? [];
  checks.push(
    pending.length
      ? {
          name: "database",
          status: "warn",
          message: `${report.data.kind} database reachable; ${pending.length} migrations pending (${pending.join(", ")})`,
          fix: "Run conveyor migrate (it goes to this server), or restart the server, which applies them",
        }
      : {
          name: "database",
          status: "ok",
          message: `${report.data.kind} database reachable; schema is current (${report.data.migrations?.current ?? "none"})`,
        },
  );
  return checks;
}

function skipped(names: string[], why: string): Check[] {
  return names.map((name) => ({ name, status: "skip", message: `skipped: ${why}` }));
}
