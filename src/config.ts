import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** `auto`: readable lines on a terminal, JSON lines otherwise (a pipe, a file, a log collector). */
export const LOG_FORMATS = ["auto", "json", "pretty"] as const;

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((value) => (value === "" ? undefined : value));

const urlString = (what: string) =>
  optionalString.pipe(
    z
      .url({ protocol: /^https?$/, error: `expected an http(s) URL ${what}` })
      .optional()
      .transform((value) => value?.replace(/\/+$/, "")),
  );

const minutes = (what: string, fallback: number) =>
  optionalString
    .transform((value) => (value === undefined ? fallback : Number(value)))
    .pipe(
      z
        .number({ error: `expected a number of minutes (${what})` })
        .positive({ error: `expected a positive number of minutes (${what})` })
        .max(7 * 24 * 60, { error: "expected at most a week" }),
    );

/**
 * The environment Conveyor reads, validated once. Every variable is documented in `.env.example`.
 */
export const EnvSchema = z
  .object({
    PORT: optionalString
      .transform((value) => (value === undefined ? 3000 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a port number (0-65535)" })
          .int({ error: "expected a port number (0-65535)" })
          .min(0, { error: "expected a port number (0-65535)" })
          .max(65535, { error: "expected a port number (0-65535)" }),
      ),
    HOST: optionalString.default("0.0.0.0"),
    DATABASE_URL: optionalString.pipe(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, { error: "expected a postgres:// or postgresql:// URL" })
        .optional(),
    ),
    CONVEYOR_DATA_DIR: optionalString.default(".conveyor"),
    APP_ID: optionalString.pipe(
      z.string().regex(/^\d+$/, { error: "expected the numeric GitHub App ID" }).optional(),
    ),
    PRIVATE_KEY: optionalString,
    PRIVATE_KEY_PATH: optionalString,
    WEBHOOK_SECRET: optionalString,
    GITHUB_API_URL: urlString("(e.g. https://api.github.com)").default("https://api.github.com"),
    CONVEYOR_PUBLIC_URL: urlString("where GitHub and runners reach this server"),
    WEBHOOK_PROXY_URL: urlString("of a webhook proxy channel (e.g. https://smee.io/<channel>)"),
    CONVEYOR_ADMIN_TOKEN: optionalString.pipe(
      z.string().min(16, { error: "expected at least 16 characters" }).optional(),
    ),
    LOG_LEVEL: optionalString.pipe(
      z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` }).default("info"),
    ),
    LOG_FORMAT: optionalString.pipe(
      z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(", ")}` }).default("auto"),
    ),
    CONVEYOR_RECONCILE_MINUTES: minutes(
      "how often open labelled issues are checked against tasks",
      5,
    ),
    CONVEYOR_AGING_MINUTES: minutes("how long a task waits before it moves up one lane", 30),
    CONVEYOR_WEBHOOK_CONCURRENCY: optionalString
      .transform((value) => (value === undefined ? 32 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a whole number of webhook bodies (1-256)" })
          .int({ error: "expected a whole number of webhook bodies (1-256)" })
          .min(1, { error: "expected a whole number of webhook bodies (1-256)" })
          .max(256, { error: "expected a whole number of webhook bodies (1-256)" }),
      ),
    CONVEYOR_RUNNER_MAX_SOCKETS: optionalString
      .transform((value) => (value === undefined ? 2 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a whole number of sockets (1-64)" })
          .int({ error: "expected a whole number of sockets (1-64)" })
          .min(1, { error: "expected a whole number of sockets (1-64)" })
          .max(64, { error: "expected a whole number of sockets (1-64)" }),
      ),
    CONVEYOR_INSTALLATION_DAILY_BUDGET_USD: optionalString
      .transform((value) => (value === undefined ? undefined : Number(value)))
      .pipe(
        z
          .number({ error: "expected an amount in USD greater than 0" })
          .positive({ error: "expected an amount in USD greater than 0" })
          .finite({ error: "expected an amount in USD greater than 0" })
          .optional(),
      ),
    CONVEYOR_RUNNER_MAX_SLOTS: optionalString
      .transform((value) => (value === undefined ? 32 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a whole number of slots (1-64)" })
          .int({ error: "expected a whole number of slots (1-64)" })
          .min(1, { error: "expected a whole number of slots (1-64)" })
          .max(64, { error: "expected a whole number of slots (1-64)" }),
      ),
    CONVEYOR_GITHUB_RESERVE_PERCENT: optionalString
      .transform((value) => (value === undefined ? 10 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a percentage of the hourly GitHub budget (0-90)" })
          .min(0, { error: "expected a percentage of the hourly GitHub budget (0-90)" })
          .max(90, { error: "expected a percentage of the hourly GitHub budget (0-90)" }),
      ),
    CONVEYOR_MAX_RUNNING_PER_INSTALLATION: optionalString
      .transform((value) => (value === undefined ? 0 : Number(value)))
      .pipe(
        z
          .number({ error: "expected a whole number of tasks (0 for no limit, up to 10000)" })
          .int({ error: "expected a whole number of tasks (0 for no limit, up to 10000)" })
          .min(0, { error: "expected a whole number of tasks (0 for no limit, up to 10000)" })
          .max(10_000, { error: "expected a whole number of tasks (0 for no limit, up to 10000)" }),
      ),
    NODE_ENV: optionalString,
  })
  .superRefine((env, ctx) => {
    if (env.PRIVATE_KEY && env.PRIVATE_KEY_PATH) {
      ctx.addIssue({
        code: "custom",
        path: ["PRIVATE_KEY_PATH"],
        message: "set either PRIVATE_KEY or PRIVATE_KEY_PATH, not both",
      });
    }
  });

export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  port: number;
  host: string;
  /** Unset means the embedded PGlite database in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** Present only when both the App ID and its private key are configured. */
  github: { appId: number; privateKey: string; webhookSecret: string } | undefined;
  webhookSecret: string | undefined;
  githubApiUrl: string;
  publicUrl: string | undefined;
  /**
   * A smee.io-style webhook proxy channel for local development: the App's webhooks go there, and
   * the server forwards what it receives to its own webhook route.
   */
  webhookProxyUrl: string | undefined;
  adminToken: string | undefined;
  logLevel: LogLevel;
  logFormat: LogFormat;
  production: boolean;
  reconcileIntervalMs: number;
  agingMs: number;
  /** Unauthenticated webhook bodies read at once; more get 429 before they are read. */
  webhookConcurrency: number;
  /** Open WebSockets one runner token may hold on one instance. */
  runnerMaxSockets: number;
  /** Most slots the server fills on one runner connection, whatever its `hello` says. */
  runnerMaxSlots: number;
  /**
   * Percent of each installation's hourly GitHub budget kept for essential work (merges, check
   * runs, pull-request writes); optional work waits below it.
   */
  githubReservePercent: number;
  /** Tasks one installation may have assigned or running at once, over all instances; 0: no limit. */
  maxRunningPerInstallation: number;
  /**
   * `CONVEYOR_INSTALLATION_DAILY_BUDGET_USD`: what one installation's agents may cost in a UTC
   * day; unset for no limit.
   */
  installationDailyBudgetUsd: number | undefined;
}

/** A configuration problem the operator must fix; its message names every offending variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses the environment once. Throws {@link ConfigError} naming each bad variable and what is
 * expected, so startup can print it and exit non-zero.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd = process.cwd(),
): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${issue.path.join(".") || "environment"}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === "production";
  let privateKey = e.PRIVATE_KEY?.replace(/\\n/g, "\n");
  if (e.PRIVATE_KEY_PATH) {
    try {
      privateKey = readFileSync(resolve(cwd, e.PRIVATE_KEY_PATH), "utf8");
    } catch (error) {
      throw new ConfigError(
        `Invalid configuration:\n  PRIVATE_KEY_PATH: cannot read ${e.PRIVATE_KEY_PATH} (${(error as Error).message})`,
      );
    }
  }
  if (privateKey !== undefined && !privateKey.includes("-----BEGIN")) {
    throw new ConfigError(
      "Invalid configuration:\n  PRIVATE_KEY: expected a PEM private key (-----BEGIN … PRIVATE KEY-----)",
    );
  }
  if (e.APP_ID && !privateKey) {
    throw new ConfigError(
      "Invalid configuration:\n  PRIVATE_KEY: APP_ID is set, so PRIVATE_KEY or PRIVATE_KEY_PATH is required",
    );
  }
  if (privateKey && !e.APP_ID) {
    throw new ConfigError(
      "Invalid configuration:\n  APP_ID: a private key is set, so the App ID is required",
    );
  }
  // No default secret: a guessable one ("development") would let anyone forge webhooks. The demo
  // and the tests set their own.
  if (e.APP_ID && !e.WEBHOOK_SECRET) {
    throw new ConfigError(
      "Invalid configuration:\n  WEBHOOK_SECRET: required when APP_ID is set, so forged webhooks are refused (copy it from the App's settings page)",
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: resolve(cwd, e.CONVEYOR_DATA_DIR),
    github:
      e.APP_ID && privateKey
        ? {
            appId: Number(e.APP_ID),
            privateKey,
            // Required with APP_ID (above).
            webhookSecret: e.WEBHOOK_SECRET ?? "",
          }
        : undefined,
    webhookSecret: e.WEBHOOK_SECRET,
    githubApiUrl: e.GITHUB_API_URL,
    publicUrl: e.CONVEYOR_PUBLIC_URL,
    webhookProxyUrl: e.WEBHOOK_PROXY_URL,
    adminToken: e.CONVEYOR_ADMIN_TOKEN,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    production,
    reconcileIntervalMs: e.CONVEYOR_RECONCILE_MINUTES * 60_000,
    agingMs: e.CONVEYOR_AGING_MINUTES * 60_000,
    webhookConcurrency: e.CONVEYOR_WEBHOOK_CONCURRENCY,
    runnerMaxSockets: e.CONVEYOR_RUNNER_MAX_SOCKETS,
    runnerMaxSlots: e.CONVEYOR_RUNNER_MAX_SLOTS,
    githubReservePercent: e.CONVEYOR_GITHUB_RESERVE_PERCENT,
    maxRunningPerInstallation: e.CONVEYOR_MAX_RUNNING_PER_INSTALLATION,
    installationDailyBudgetUsd: e.CONVEYOR_INSTALLATION_DAILY_BUDGET_USD,
  };
}

/** The host to put in a URL for this server: a wildcard listen address is not something to type. */
export function displayHost(host: string): string {
  return host === "0.0.0.0" || host === "::" ? "localhost" : host;
}
