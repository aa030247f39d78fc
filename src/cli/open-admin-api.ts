import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { z } from "zod";
import { createDatabase, type Database, DataDirLockedError } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import type { Config } from "../config.ts";
import { DISPATCH_CHANNEL } from "../dispatch/dispatcher.ts";
import { type ApiEnv, createApiAuth } from "../http/admin-auth.ts";
import { createAdminRoutes } from "../http/admin-routes.ts";
import { createOpsApi } from "../http/create-ops-api.ts";
import { createLogger } from "../logger.ts";
import { readServerInfo, serverInfoPath } from "../server-info.ts";
import { CliError } from "./cli-error.ts";
import type { Env } from "./cli-support.ts";

export interface AdminRequest {
  body?: unknown;
  /** A stream to send as the body as it is read (import). */
  stream?: ReadableStream<Uint8Array>;
  /** Whole-request time limit; none for export and import, which take as long as they take. */
  timeoutMs?: number | null;
}

/**
 * The admin API, wherever it is: a server over HTTP, or served in-process over a database this
 * command opened itself. Commands speak only HTTP to it, so they behave the same either way.
 */
export interface AdminApi {
  readonly via: "database" | "server";
  /** For the operator: where the commands go. */
  readonly description: string;
  /** `path` is below `/api` (e.g. `/tasks`). */
  request(method: string, path: string, options?: AdminRequest): Promise<Response>;
  close(): Promise<void>;
}

const PublicUrl = z.url({ protocol: /^https?$/, error: "expected an http(s) URL" });

/**
 * Decides where every command that reads or changes state goes (`runners`, `tokens`, `tasks`,
 * `export`, `import`, and `migrate` and `doctor` with `CONVEYOR_URL`):
 *
 * 1. `CONVEYOR_URL` set: that server's admin API, with `CONVEYOR_TOKEN` (an API token) or
 *    `CONVEYOR_ADMIN_TOKEN` — for operating a deployment from anywhere.
 * 2. `DATABASE_URL` set: that PostgreSQL database, directly.
 * 3. Otherwise the embedded database in `CONVEYOR_DATA_DIR`, unless a running server holds it;
 *    then that server's admin API, found through `<dataDir>/server.json`.
 *
 * A database opened directly is migrated first (as `conveyor start` would).
 */
export async function openAdminApi(config: Config, env: Env): Promise<AdminApi> {
  const token = env.CONVEYOR_TOKEN?.trim() || config.adminToken;
  const explicitUrl = env.CONVEYOR_URL?.trim();
  if (explicitUrl) {
    const url = PublicUrl.safeParse(explicitUrl);
    if (!url.success) throw new CliError(`CONVEYOR_URL: ${url.error.issues[0]?.message}`, 2);
    const base = url.data.replace(/\/+$/, "");
    const description = `the server at ${base}`;
    if (!token) {
      throw new CliError(
        `CONVEYOR_URL is set, so this command goes to ${description}, which needs a token: ` +
          "set CONVEYOR_TOKEN to an API token (conveyor tokens add … on that deployment) or CONVEYOR_ADMIN_TOKEN.",
      );
    }
    return httpAdminApi(base, token, description);
  }
  if (config.databaseUrl) {
    const database = await createDatabase({ url: config.databaseUrl, max: 2 });
    return inProcessAdminApi(database, "PostgreSQL (DATABASE_URL)");
  }
  let database: Database;
  try {
    database = await createDatabase({ dataDir: config.dataDir });
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    const server = serverHoldingDataDir(config, error);
    if (!token) {
      throw new CliError(
        `The embedded database in ${config.dataDir} is in use by ${server.description}, so this ` +
          "command has to go through that server's admin API, which needs a token.\n" +
          "Set CONVEYOR_ADMIN_TOKEN (in the environment or .env) to the server's value, or " +
          "CONVEYOR_TOKEN to an API token, or stop the server and run the command again.",
      );
    }
    return httpAdminApi(server.url, token, server.description);
  }
  return inProcessAdminApi(database, `the embedded database in ${config.dataDir}`);
}

function httpAdminApi(baseUrl: string, token: string, description: string): AdminApi {
  return {
    via: "server",
    description,
    async request(method, path, options = {}) {
      const timeoutMs = options.timeoutMs === undefined ? 30_000 : options.timeoutMs;
      try {
        return await fetch(`${baseUrl}/api${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(options.body !== undefined || options.stream
              ? { "content-type": "application/json" }
              : {}),
          },
          ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
          ...(options.stream ? { body: options.stream, duplex: "half" } : {}),
          ...(timeoutMs === null ? {} : { signal: AbortSignal.timeout(timeoutMs) }),
        } as RequestInit);
      } catch (error) {
        // fetch hides the reason (ECONNREFUSED, …) in `cause`.
        const cause = (error as Error).cause;
        const reason = cause instanceof Error ? cause.message : (error as Error).message;
        throw new CliError(
          `cannot reach ${description}: ${reason}. Is it running, and is the address right?`,
        );
      }
    },
    async close() {},
  };
}

async function inProcessAdminApi(database: Database, description: string): Promise<AdminApi> {
  try {
    await migrate(database.db);
  } catch (error) {
    await database.close();
    throw error;
  }
  const secret = randomBytes(32).toString("base64url");
  const logger = createLogger({ level: "silent" });
  const pending: Promise<unknown>[] = [];
  const api = new Hono<ApiEnv>();
  let failure: unknown;
  // The history names who ran the command on this machine.
  const auth = createApiAuth({
    db: database.db,
    adminToken: secret,
    adminName: `cli:${currentUser()}`,
    logger,
    rateLimits: false,
  });
  // Revoking notifies every server on this database, which closes the runner's sockets.
  api.route(
    "/api",
    createAdminRoutes({ db: database.db, adminToken: secret, auth, logger, onRunnerRevoked() {} }),
  );
  api.route(
    "/api",
    createOpsApi({
      database,
      logger,
      auth,
      // Servers on this database wake at once: the dispatcher's sweep tells a runner to stop a
      // cancelled task, and the notifier rewrites status comments.
      onTasksChanged: () => {
        pending.push(
          database.notify(DISPATCH_CHANNEL, JSON.stringify({ kind: "work" })).catch(() => {}),
        );
      },
    }),
  );
  api.onError((error, c) => {
    failure = error;
    return c.json({ error: "internal error" }, 500);
  });
  return {
    via: "database",
    description,
    async request(method, path, options = {}) {
      failure = undefined;
      const response = await api.request(`/api${path}`, {
        method,
        headers: {
          authorization: `Bearer ${secret}`,
          ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.stream ? { body: options.stream, duplex: "half" } : {}),
      } as RequestInit);
      // A bug or a database failure: show the real error, not "HTTP 500".
      if (failure) throw failure;
      return response;
    },
    async close() {
      await Promise.all(pending);
      await database.close();
    },
  };
}

function currentUser(): string {
  try {
    return userInfo().username || "unknown";
  } catch {
    return "unknown";
  }
}

interface ErrorBody {
  error?: string;
  fields?: { path: string; message: string }[];
}

/**
 * The JSON of a successful answer, or a {@link CliError} that says what went wrong and what to do.
 * `expected` lists the statuses that count as success.
 */
export async function readAnswer<T>(
  api: AdminApi,
  response: Response,
  expected: number[] = [200],
): Promise<T> {
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: text.slice(0, 200) };
  }
  if (expected.includes(response.status)) return json as T;
  const body = (json ?? {}) as ErrorBody;
  const said = body.error ?? "no details";
  switch (response.status) {
    case 401:
      throw new CliError(
        `${api.description} refused the token: ${said}\n` +
          "Set CONVEYOR_TOKEN to a valid API token, or CONVEYOR_ADMIN_TOKEN to the server's value.",
      );
    case 403:
    case 404:
    case 409:
    case 413:
      throw new CliError(said);
    case 422:
      throw new CliError(
        body.fields?.length ? body.fields.map((f) => `${f.path}: ${f.message}`).join("\n") : said,
      );
    case 429:
      throw new CliError(`${api.description} is rate limiting this token: ${said}`);
    case 503:
      throw new CliError(`${api.description} cannot do this now: ${said}`);
    default:
      throw new CliError(`${api.description} answered HTTP ${response.status}: ${said}`);
  }
}

/**
 * The server that holds the locked embedded database, from `<dataDir>/server.json`, or a
 * {@link CliError} saying why it cannot be reached that way.
 */
export function serverHoldingDataDir(
  config: Config,
  locked: DataDirLockedError,
): { url: string; pid: number; description: string } {
  const info = readServerInfo(config.dataDir);
  const owner = lockOwner(config.dataDir);
  // server.json left by an earlier server (it crashed) must not send us to a stranger's port.
  if (!info || info.pid !== owner) {
    throw new CliError(
      `${locked.message}\nThat process has not published its address in ${serverInfoPath(config.dataDir)} ` +
        "(it may still be starting, or be another conveyor command): try again in a moment.",
    );
  }
  return { ...info, description: `the server at ${info.url} (process ${info.pid})` };
}

/** The pid in the data directory's lock file (read only: the lock belongs to its owner). */
function lockOwner(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(join(dataDir, "conveyor.pid"), "utf8").trim()) || undefined;
  } catch {
    return undefined;
  }
}
