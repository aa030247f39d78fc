import { createPrivateKey, type KeyObject, sign } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createDatabase, type Database, DataDirLockedError } from "../../db/client.ts";
import { migrationStatus } from "../../db/migrate.ts";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import { readServerInfo } from "../server-info.ts";
import { hasActiveApiTokens } from "../store/api-tokens.ts";
import type { Env } from "./cli-support.ts";
import {
  APP_REGISTRATION_CHECKS,
  type AppFacts,
  checkAppRegistration,
} from "./doctor-app-checks.ts";
import type { Check } from "./doctor-check.ts";

export type { Check, CheckStatus } from "./doctor-check.ts";

export interface DoctorOptions {
  cwd?: string;
  /** Per network call (database, GitHub, the public URL). */
  timeoutMs?: number;
  /** Seconds since the epoch, for the App JWT (tests move it). */
  now?: () => number;
}

/**
 * Everything `conveyor doctor` checks, in order: the configuration, the database, the GitHub
 * App's credentials (a JWT GitHub accepts), the App as GitHub sees it (events, permissions, the
 * webhook's URL and content type, and whether that URL reaches this server), the webhook secret,
 * whether the public URL reaches this server, and whether anybody can get into the admin API. A
 * check that depends on an earlier one that failed is skipped rather than failing twice.
 */
export async function runDoctorChecks(env: Env, options: DoctorOptions = {}): Promise<Check[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let config: Config;
  try {
    config = loadConfig(env, options.cwd);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const problems = error.message.replace(/^Invalid configuration:\n/, "").split("\n");
    return [
      {
        name: "configuration",
        status: "fail",
        message: problems.map((p) => p.trim()).join("; "),
        fix: "Fix the variables named above, in the environment or .env (every setting is described in .env.example)",
      },
      ...[
        "database",
        "github app",
        ...APP_REGISTRATION_CHECKS,
        "webhook secret",
        "public url",
        "admin access",
      ].map(
        (name): Check => ({
          name,
          status: "skip",
          message: "skipped until the configuration is valid",
        }),
      ),
    ];
  }
  const checks: Check[] = [
    {
      name: "configuration",
      status: "ok",
      message: `valid: ${config.databaseUrl ? `PostgreSQL ${describeDatabaseUrl(config.databaseUrl)}` : `embedded database in ${config.dataDir}`}, port ${config.port}, log level ${config.logLevel}`,
    },
  ];
  const database = await checkDatabase(config, timeoutMs);
  checks.push(database.check);
  const app = await checkGitHubApp(config, timeoutMs, options.now);
  checks.push(app.check);
  if (app.accepted) {
    checks.push(
      ...(await checkAppRegistration({
        config,
        jwt: app.accepted.jwt,
        app: app.accepted.app,
        timeoutMs,
        database: database.open,
      })),
    );
  } else {
    const why = config.github
      ? "skipped until GitHub accepts the App's JWT"
      : "skipped: the GitHub App is not configured";
    checks.push(
      ...APP_REGISTRATION_CHECKS.map((name): Check => ({ name, status: "skip", message: why })),
    );
  }
  checks.push(checkWebhookSecret(config));
  checks.push(await checkPublicUrl(config, timeoutMs));
  checks.push(await checkAdminAccess(config, database.open));
  await database.open?.close();
  return checks;
}

/** `user@host:port/name`, never the password. */
function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.username ? `${decodeURIComponent(u.username)}@` : ""}${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} did not answer within ${ms / 1000} s`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The innermost error: drivers wrap the one with the useful code. */
function rootCause(error: unknown): Error & { code?: string } {
  let current = error as Error & { code?: string; cause?: unknown };
  while (current?.cause instanceof Error && !current.code) {
    current = current.cause as Error & { code?: string; cause?: unknown };
  }
  return current;
}

async function checkDatabase(
  config: Config,
  timeoutMs: number,
): Promise<{ check: Check; open?: Database }> {
  const name = "database";
  if (config.databaseUrl) {
    const where = describeDatabaseUrl(config.databaseUrl);
    let database: Database | undefined;
    try {
      database = await createDatabase({ url: config.databaseUrl, max: 1 });
      const started = performance.now();
      await withTimeout(database.ping(), timeoutMs, `PostgreSQL at ${where}`);
      const latency = Math.round(performance.now() - started);
      const { pending } = await migrationStatus(database.db);
      if (pending.length > 0) {
        return {
          open: database,
          check: {
            name,
            status: "warn",
            message: `PostgreSQL ${where} answers (${latency} ms) but ${pending.length} migrations are pending (${pending.join(", ")})`,
            fix: "Run conveyor migrate, or start the server, which applies them",
          },
        };
      }
      return {
        open: database,
        check: {
          name,
          status: "ok",
          message: `PostgreSQL ${where} answers in ${latency} ms; schema is current`,
        },
      };
    } catch (error) {
      await database?.close().catch(() => {});
      return { check: { name, status: "fail", ...explainPostgresError(error, where) } };
    }
  }
  if (!existsSync(join(config.dataDir, "pgdata"))) {
    return {
      check: {
        name,
        status: "ok",
        message: `no embedded database in ${config.dataDir} yet: conveyor start creates it`,
      },
    };
  }
  try {
    const database = await createDatabase({ dataDir: config.dataDir });
    const { pending } = await migrationStatus(database.db);
    return {
      open: database,
      check:
        pending.length > 0
          ? {
              name,
              status: "warn",
              message: `embedded database in ${config.dataDir}: ${pending.length} migrations pending`,
              fix: "Run conveyor migrate, or start the server, which applies them",
            }
          : {
              name,
              status: "ok",
              message: `embedded database in ${config.dataDir}; schema is current`,
            },
    };
  } catch (error) {
    if (error instanceof DataDirLockedError)
      return { check: await checkHeldDatabase(config, timeoutMs) };
    return {
      check: {
        name,
        status: "fail",
        message: `cannot open the embedded database in ${config.dataDir}: ${rootCause(error).message}`,
        fix: `Check that ${config.dataDir} is readable and writable by this user. If it is damaged, restore it from an export (conveyor import) into a new CONVEYOR_DATA_DIR`,
      },
    };
  }
}

/** A running server holds the embedded database: ask it through `/readyz`. */
async function checkHeldDatabase(config: Config, timeoutMs: number): Promise<Check> {
  const info = readServerInfo(config.dataDir);
  if (!info) {
    return {
      name: "database",
      status: "warn",
      message: `the embedded database in ${config.dataDir} is in use by another process that has not published its address`,
      fix: "Wait for it to finish starting and run doctor again, or stop it",
    };
  }
  try {
    const response = await fetch(`${info.url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.json()) as { status?: string; reason?: string };
    if (response.ok) {
      return {
        name: "database",
        status: "ok",
        message: `embedded database in ${config.dataDir}, held by the server at ${info.url} (process ${info.pid}), which is ready`,
      };
    }
    return {
      name: "database",
      status: "fail",
      message: `the server at ${info.url} holding the embedded database is not ready: ${body.reason ?? `HTTP ${response.status}`}`,
      fix: "Read the server's log for the cause; restarting it applies pending migrations",
    };
  } catch (error) {
    return {
      name: "database",
      status: "fail",
      message: `the server holding the embedded database (process ${info.pid}, ${info.url}) does not answer: ${rootCause(error).message}`,
      fix: "It may be hung: stop that process (kill it if SIGTERM does not work) and start it again",
    };
  }
}

/** What a connection failure means and what to do about it, by the driver's error code. */
function explainPostgresError(error: unknown, where: string): { message: string; fix: string } {
  const cause = rootCause(error);
  const said = cause.message;
  switch (cause.code) {
    case "ECONNREFUSED":
      return {
        message: `cannot connect to PostgreSQL at ${where}: connection refused`,
        fix: "Start PostgreSQL, or correct the host and port in DATABASE_URL",
      };
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return {
        message: `cannot connect to PostgreSQL at ${where}: the host name does not resolve`,
        fix: "Correct the host in DATABASE_URL",
      };
    case "28P01":
    case "28000":
      return {
        message: `PostgreSQL at ${where} refused the login: ${said}`,
        fix: "Correct the user and password in DATABASE_URL (special characters in the password must be percent-encoded)",
      };
    case "3D000":
      return {
        message: `PostgreSQL at ${where}: ${said}`,
        fix: "Create the database (e.g. createdb <name>), or correct its name in DATABASE_URL",
      };
    default:
      return {
        message: `PostgreSQL at ${where} is not usable: ${said}`,
        fix: "Check that the server is running and reachable from here, and that DATABASE_URL is right",
      };
  }
}

/** An App JWT, as GitHub documents it: RS256, issued a minute ago (clock drift), for 9 minutes. */
function appJwt(appId: number, key: KeyObject, nowSeconds: number): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${encode({ alg: "RS256", typ: "JWT" })}.${encode({
    iat: nowSeconds - 60,
    exp: nowSeconds + 9 * 60,
    iss: String(appId),
  })}`;
  return `${unsigned}.${sign("RSA-SHA256", Buffer.from(unsigned), key).toString("base64url")}`;
}

/** The App check, and what the checks after it need when GitHub accepted the App's JWT. */
async function checkGitHubApp(
  config: Config,
  timeoutMs: number,
  now?: () => number,
): Promise<{ check: Check; accepted?: { jwt: string; app: AppFacts } }> {
  const sink: { accepted?: { jwt: string; app: AppFacts } } = {};
  const check = await githubAppCheck(config, timeoutMs, now, sink);
  return { check, ...(sink.accepted ? { accepted: sink.accepted } : {}) };
}

async function githubAppCheck(
  config: Config,
  timeoutMs: number,
  now: () => number = () => Math.floor(Date.now() / 1000),
  sink: { accepted?: { jwt: string; app: AppFacts } } = {},
): Promise<Check> {
  const name = "github app";
  if (!config.github) {
    return {
      name,
      status: "warn",
      message: "not configured: the server runs in setup mode and handles no webhooks",
      fix: "Start the server and register the App at <public URL>/probot, or set APP_ID and PRIVATE_KEY_PATH (or PRIVATE_KEY) from the App's settings page",
    };
  }
  const { appId } = config.github;
  let key: KeyObject;
  try {
    key = createPrivateKey(config.github.privateKey);
  } catch (error) {
    return {
      name,
      status: "fail",
      message: `the private key does not parse: ${rootCause(error).message}`,
      fix: "Generate a new private key on the App's settings page (Private keys → Generate) and point PRIVATE_KEY_PATH at the downloaded .pem file (or paste it into PRIVATE_KEY with \\n for newlines)",
    };
  }
  if (key.asymmetricKeyType !== "rsa") {
    return {
      name,
      status: "fail",
      message: `the private key is ${key.asymmetricKeyType ?? "not an asymmetric key"}, but GitHub App keys are RSA`,
      fix: "Use the .pem file GitHub generated for the App (Private keys → Generate on its settings page)",
    };
  }
  const url = `${config.githubApiUrl}/app`;
  const jwt = appJwt(appId, key, now());
  let response: Response;
  try {
    response = await fetch(url, {
      headers: {
        authorization: `Bearer ${jwt}`,
        accept: "application/vnd.github+json",
        "user-agent": "conveyor-doctor",
        "x-github-api-version": "2022-11-28",
      },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    return {
      name,
      status: "fail",
      message: `cannot reach GITHUB_API_URL (${config.githubApiUrl}): ${rootCause(error).message}`,
      fix: "Check GITHUB_API_URL (https://api.github.com, or https://<host>/api/v3 for GitHub Enterprise Server) and this machine's network and proxy settings",
    };
  }
  const body = (await response.json().catch(() => ({}))) as {
    id?: number;
    slug?: string;
    name?: string;
    message?: string;
    events?: string[];
    permissions?: Record<string, string>;
  };
  const skew = clockSkewSeconds(response.headers.get("date"), now());
  const skewNote =
    skew !== undefined && Math.abs(skew) > 30
      ? ` This machine's clock is ${Math.abs(skew)} s ${skew > 0 ? "behind" : "ahead of"} GitHub's: fix it (NTP), or JWTs will be refused.`
      : "";
  if (response.status === 200) {
    if (body.id !== undefined && body.id !== appId) {
      return {
        name,
        status: "fail",
        message: `GitHub says the key belongs to App ${body.id} (${body.slug}), but APP_ID is ${appId}`,
        fix: `Set APP_ID=${body.id}, or use the private key of App ${appId}`,
      };
    }
    sink.accepted = { jwt, app: { events: body.events, permissions: body.permissions } };
    return {
      name,
      status: skewNote ? "warn" : "ok",
      message: `GitHub accepts the App's JWT: ${body.slug ?? body.name ?? "the App"} (App ${appId}) at ${config.githubApiUrl}`,
      ...(skewNote ? { fix: skewNote.trim() } : {}),
    };
  }
  if (response.status === 401) {
    return {
      name,
      status: "fail",
      message: `GitHub refused the App's JWT (401: ${body.message ?? "no message"})`,
      fix: `APP_ID (${appId}) and the private key must belong to the same App: check the App ID on the App's settings page, or generate a new private key there.${skewNote}`,
    };
  }
  if (response.status === 404) {
    return {
      name,
      status: "fail",
      message: `${url} does not exist (404)`,
      fix: "Correct GITHUB_API_URL: https://api.github.com for github.com, https://<host>/api/v3 for GitHub Enterprise Server",
    };
  }
  return {
    name,
    status: "fail",
    message: `GitHub answered ${response.status} to GET /app: ${body.message ?? "no message"}`,
    fix: "Try again later; if it persists, check https://www.githubstatus.com and GITHUB_API_URL",
  };
}

function clockSkewSeconds(dateHeader: string | null, nowSeconds: number): number | undefined {
  const theirs = dateHeader ? Date.parse(dateHeader) : Number.NaN;
  return Number.isNaN(theirs) ? undefined : Math.round(theirs / 1000 - nowSeconds);
}

function checkWebhookSecret(config: Config): Check {
  if (!config.github) {
    return { name: "webhook secret", status: "skip", message: "the GitHub App is not configured" };
  }
  // Configuration refuses an App without a secret, so this is always set here.
  return {
    name: "webhook secret",
    status: "ok",
    message: "set: unsigned or forged webhooks are refused",
  };
}

async function checkPublicUrl(config: Config, timeoutMs: number): Promise<Check> {
  const name = "public url";
  if (!config.publicUrl) {
    return {
      name,
      status: "warn",
      message:
        "CONVEYOR_PUBLIC_URL is not set, so nothing tells where GitHub and runners reach this server",
      fix: "Set CONVEYOR_PUBLIC_URL to the server's public address (e.g. https://conveyor.example.com); the App's webhook URL is that plus /api/github/webhooks",
    };
  }
  const url = `${config.publicUrl}/healthz`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.json().catch(() => undefined)) as { status?: string } | undefined;
    if (response.ok && body?.status === "ok") {
      return {
        name,
        status: "ok",
        message: `${url} answers: GitHub can deliver to ${config.publicUrl}/api/github/webhooks if it reaches this address too`,
      };
    }
    return {
      name,
      status: "fail",
      message: `${url} answered HTTP ${response.status}, not Conveyor's health check`,
      fix: "CONVEYOR_PUBLIC_URL points at something other than this server: fix the URL, or the reverse proxy so it forwards /healthz and /api/github/webhooks to Conveyor",
    };
  } catch (error) {
    return {
      name,
      status: "fail",
      message: `${url} does not answer: ${rootCause(error).message}`,
      fix: "Start the server (npm start), and make sure CONVEYOR_PUBLIC_URL reaches it: DNS, TLS certificate, firewall, and a reverse proxy forwarding /healthz and /api/github/webhooks",
    };
  }
}

async function checkAdminAccess(config: Config, database: Database | undefined): Promise<Check> {
  const name = "admin access";
  if (config.adminToken) {
    return { name, status: "ok", message: "CONVEYOR_ADMIN_TOKEN is set (an admin credential)" };
  }
  if (!database) {
    return {
      name,
      status: "skip",
      message:
        "CONVEYOR_ADMIN_TOKEN is not set, and API tokens cannot be counted without the database",
    };
  }
  if (await hasActiveApiTokens(database.db)) {
    return { name, status: "ok", message: "API tokens exist (CONVEYOR_ADMIN_TOKEN is not set)" };
  }
  return {
    name,
    status: "warn",
    message:
      "nobody can use the admin API or the dashboard: no CONVEYOR_ADMIN_TOKEN and no API token",
    fix: "Create a token with conveyor tokens add <name> --role admin, or set CONVEYOR_ADMIN_TOKEN (at least 16 characters)",
  };
}
