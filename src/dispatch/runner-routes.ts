import { createHash } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { Db } from "../../db/client.ts";
import { checkChangePaths } from "../core/change-set-rules.ts";
import { addressKey, loginWaitMs, recordLoginFailure } from "../core/login-failures.ts";
import type { RunnerClass } from "../core/task-states.ts";
import {
  ChangeSet,
  fieldErrors,
  MAX_CHANGE_SET_BYTES,
  UploadTarget,
} from "../protocol/messages.ts";
import { hashRunnerToken } from "../store/runners.ts";
import type { Dispatcher, DispatchTimings } from "./dispatcher.ts";
import type { createFramePolicies } from "./frame-policy.ts";
import { createHelloDeadlines, RunnerSession, type SessionContext } from "./runner-session.ts";
import { createRunnerWrites } from "./runner-writes.ts";
import { acceptWebSocket } from "./websocket-upgrades.ts";

export interface AuthenticatedRunner {
  runnerId: string;
  name: string;
  capabilities: readonly string[];
  /** Repositories it may take tasks from (`owner/name`, `owner/*`); empty: every one. */
  repos: readonly string[];
  /** A one-time credential: at most one task on its one connection, spent when it closes. */
  oneTime: boolean;
  /** Its class (`runners add --class`): lighter classes are offered tasks first. */
  runnerClass: RunnerClass;
}

export interface RunnerRoutesDeps {
  db: Db;
  logger: Logger;
  dispatcher: Dispatcher;
  timings: DispatchTimings;
  policies: ReturnType<typeof createFramePolicies>;
  /**
   * Looks a bearer token up, or says why it is refused. `connect` is true for the WebSocket
   * upgrade, which spends a one-time credential.
   */
  authenticate: (
    token: string,
    options: { connect: boolean },
  ) => Promise<AuthenticatedRunner | { refused: string }>;
  /** A one-time runner's connection closed: its credential is spent for good. */
  spendOneTime?: (runnerId: string) => Promise<void>;
  onChange: () => void;
  recordError?: (source: string, error: unknown) => void;
  /** An attempt ended and was recorded. */
  onAttempt?: SessionContext["onAttempt"];
  /** Open sockets one runner token may hold on this instance (`CONVEYOR_RUNNER_MAX_SOCKETS`). */
  maxSockets?: number;
  /** Most slots filled on one connection (`CONVEYOR_RUNNER_MAX_SLOTS`). */
  maxSlots?: number;
  /** The server's own secrets, redacted from agent output before it is stored or shown. */
  knownSecrets?: readonly string[];
}

export const DEFAULT_RUNNER_MAX_SOCKETS = 2;
export const DEFAULT_RUNNER_MAX_SLOTS = 32;
/** Addresses whose failed logins are remembered before the oldest quiet ones are forgotten. */
const MAX_LOGIN_KEYS = 10_000;

type Env = {
  Bindings: HttpBindings;
  Variables: { runner: AuthenticatedRunner; tokenHash: string };
};

const bearer = (header: string | undefined) => /^Bearer\s+(\S+)$/i.exec(header ?? "")?.[1];

/**
 * The runner side of the server: `GET /runners/v1` (WebSocket; the token is checked before the
 * upgrade) and `PUT /runners/v1/tasks/{task_id}/changes?generation=g` (the change set, over HTTP
 * because it can be large).
 */
export function createRunnerRoutes(deps: RunnerRoutesDeps): Hono<Env> {
  const app = new Hono<Env>();
  const maxSockets = deps.maxSockets ?? DEFAULT_RUNNER_MAX_SOCKETS;
  const maxSlots = deps.maxSlots ?? DEFAULT_RUNNER_MAX_SLOTS;
  /** Open (or opening) sockets per runner on this instance. */
  const sockets = new Map<string, number>();
  /** Failed logins per address (IPv6: per /64), to make guessing tokens slow. */
  const failures = new Map<string, readonly number[]>();
  /**
   * The sessions open on this instance, by the hash of the token that opened them: an upload from
   * a runner whose socket is open here is authenticated by that socket, without a database read
   * (one commit fewer per task). Only while a socket is OPEN: revoking closes the runner's sockets
   * (`RUNNER_REVOKED_CHANNEL`), which takes it out at once, so an upload is trusted exactly as long
   * as the frames on that socket are.
   */
  const openByToken = new Map<string, { runner: AuthenticatedRunner; sessions: RunnerSession[] }>();
  const openRunner = (tokenHash: string): AuthenticatedRunner | undefined => {
    const entry = openByToken.get(tokenHash);
    return entry?.sessions.some((s) => s.isOpen()) ? entry.runner : undefined;
  };

  const requireRunner = (options: { reuseOpenSockets: boolean }): MiddlewareHandler<Env> =>
    async function requireRunner(c, next) {
      // `/runners/v1/*` matches `/runners/v1` too: authenticate once (a one-time credential is
      // spent by its first check).
      if (c.get("runner")) return next();
      const key = addressKey(c.env.incoming.socket.remoteAddress);
      const now = Date.now();
      const wait = loginWaitMs(failures.get(key) ?? [], now);
      if (wait > 0) {
        c.header("Retry-After", String(Math.ceil(wait / 1000)));
        return c.json(
          {
            error: `too many failed runner logins from your address; retry in ${Math.ceil(wait / 1000)} s`,
          },
          429,
        );
      }
      const token = bearer(c.req.header("authorization"));
      const tokenHash = token ? hashRunnerToken(token) : undefined;
      // Only a real upgrade spends a one-time credential (a plain GET is answered 404 below).
      const connect =
        c.req.path === "/runners/v1" && c.req.header("upgrade")?.toLowerCase() === "websocket";
      const runner = !token
        ? { refused: "unknown or revoked runner token (Authorization: Bearer cvr_…)" }
        : ((options.reuseOpenSockets && tokenHash ? openRunner(tokenHash) : undefined) ??
          (await deps.authenticate(token, { connect })));
      if ("refused" in runner) {
        if (failures.size >= MAX_LOGIN_KEYS) {
          for (const [k, times] of failures) if (loginWaitMs(times, now) === 0) failures.delete(k);
        }
        if (failures.size < MAX_LOGIN_KEYS) {
          failures.set(key, recordLoginFailure(failures.get(key) ?? [], now));
        }
        return c.json({ error: runner.refused }, 401);
      }
      c.set("runner", runner);
      c.set("tokenHash", tokenHash!);
      await next();
    };
  // A new socket is always checked against the database; an upload may reuse an open socket's.
  app.use("/runners/v1", requireRunner({ reuseOpenSockets: false }));
  app.use("/runners/v1/*", requireRunner({ reuseOpenSockets: true }));
  // A runner closed for invalid frames waits before it may connect again (30 s, 60 s, 5 min).
  app.use("/runners/v1", async (c, next) => {
    const wait = deps.policies.reconnectWait(c.get("runner").runnerId, Date.now());
    if (wait > 0) {
      c.header("Retry-After", String(Math.ceil(wait / 1000)));
      return c.json(
        { error: `too many invalid frames; reconnect in ${Math.ceil(wait / 1000)} s` },
        429,
      );
    }
    await next();
  });

  const release = (runnerId: string) => {
    const open = (sockets.get(runnerId) ?? 1) - 1;
    if (open > 0) sockets.set(runnerId, open);
    else sockets.delete(runnerId);
  };

  // One context and one set of socket listeners for every session on this instance.
  const context: SessionContext = {
    db: deps.db,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    timings: deps.timings,
    maxSlots,
    knownSecrets: deps.knownSecrets ?? [],
    onChange: deps.onChange,
    recordError: deps.recordError,
    onAttempt: deps.onAttempt,
    helloDeadlines: createHelloDeadlines(deps.timings.helloMs),
    writes: createRunnerWrites(deps.db, deps.timings.leaseMs),
  };
  const sessionOf = new WeakMap<WebSocket, RunnerSession>();
  const tokenOf = new WeakMap<RunnerSession, string>();
  function onMessage(this: WebSocket, data: Buffer | ArrayBuffer | Buffer[]) {
    const raw = Buffer.isBuffer(data)
      ? data.toString("utf8")
      : Array.isArray(data)
        ? Buffer.concat(data).toString("utf8")
        : Buffer.from(data).toString("utf8");
    sessionOf.get(this)?.receive(raw);
  }
  function onClose(this: WebSocket) {
    const session = sessionOf.get(this);
    if (!session) return;
    sessionOf.delete(this);
    const tokenHash = tokenOf.get(session);
    const entry = tokenHash ? openByToken.get(tokenHash) : undefined;
    if (entry && tokenHash) {
      entry.sessions = entry.sessions.filter((s) => s !== session);
      if (entry.sessions.length === 0) openByToken.delete(tokenHash);
    }
    release(session.runnerId);
    session.closed();
    if (session.runner.oneTime) {
      deps.spendOneTime?.(session.runnerId).catch((error: unknown) => {
        deps.logger.warn(
          { err: error, runnerId: session.runnerId },
          "could not spend a one-time runner credential",
        );
        deps.recordError?.("runner-routes", error);
      });
    }
  }
  // A socket error is followed by its close.
  const onError = () => {};

  app.get("/runners/v1", async (c, next) => {
    const runner = c.get("runner");
    const tokenHash = c.get("tokenHash");
    const { runnerId, name } = runner;
    // Counted from before the upgrade, so sockets opened at once cannot all slip through.
    const open = sockets.get(runnerId) ?? 0;
    if (open >= maxSockets) {
      return c.json(
        {
          error: `runner ${name} already has ${open} open connections (at most ${maxSockets} per runner token)`,
        },
        429,
      );
    }
    const policy = deps.policies.forRunner(runnerId);
    const accepted = acceptWebSocket(c.env, {
      open(ws) {
        const session = new RunnerSession(context, runner, policy, ws);
        sessionOf.set(ws, session);
        tokenOf.set(session, tokenHash);
        const entry = openByToken.get(tokenHash);
        if (entry) entry.sessions.push(session);
        else openByToken.set(tokenHash, { runner, sessions: [session] });
        ws.on("message", onMessage);
        ws.on("close", onClose);
        ws.on("error", onError);
      },
      aborted: () => release(runnerId),
    });
    if (!accepted) return next();
    sockets.set(runnerId, open + 1);
    return new Response(null);
  });

  app.put(
    "/runners/v1/tasks/:taskId/changes",
    bodyLimit({
      maxSize: MAX_CHANGE_SET_BYTES,
      onError: (c) =>
        c.json({ error: `change set larger than ${MAX_CHANGE_SET_BYTES} bytes` }, 413),
    }),
    async (c) => {
      const runner = c.get("runner");
      const target = UploadTarget.safeParse({
        task_id: c.req.param("taskId"),
        generation: c.req.query("generation"),
      });
      if (!target.success) {
        return c.json(
          {
            error: "expected /runners/v1/tasks/{task_id}/changes?generation=<n>",
            errors: fieldErrors(target.error),
          },
          422,
        );
      }
      const { task_id: taskId, generation } = target.data;
      // The digest is over the exact bytes received, as the runner computes it.
      const bytes = Buffer.from(await c.req.arrayBuffer());
      const raw = bytes.toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return c.json({ error: "body is not valid JSON", errors: [] }, 422);
      }
      const parsed = ChangeSet.safeParse(json);
      if (!parsed.success) {
        return c.json(
          { error: "change set does not match the schema", errors: fieldErrors(parsed.error) },
          422,
        );
      }
      const pathProblems = checkChangePaths(parsed.data.files);
      if (pathProblems.length) {
        return c.json(
          {
            error: "change set touches paths it may not",
            errors: pathProblems.map((p) => ({
              field: `files.${p.index}.path`,
              error: "forbidden_path",
              detail: `${p.path}: ${p.problem}`,
            })),
          },
          422,
        );
      }
      const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      const stored = await context.writes.storeChangeSet({
        taskId,
        generation,
        runnerId: runner.runnerId,
        digest,
        baseSha: parsed.data.base_sha,
        message: parsed.data.message,
        files: parsed.data.files,
        sizeBytes: bytes.length,
      });
      if (stored === "wrong_base") {
        return c.json(
          {
            error: "base_sha is not the commit this assignment started from",
            errors: [
              {
                field: "base_sha",
                error: "base_mismatch",
                detail: `${parsed.data.base_sha}: start from the repo.base_sha of the assign`,
              },
            ],
          },
          422,
        );
      }
      if (stored === "stale") {
        return c.json(
          { error: "you do not hold this task at this generation; the upload was not stored" },
          409,
        );
      }
      return c.json({ digest }, 201);
    },
  );
  return app;
}
