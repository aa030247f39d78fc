import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { type Context, Hono } from "hono";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import { migrationStatus } from "../../db/migrate.ts";
import { refusedUpgradesWithJson } from "../dispatch/refused-upgrades.ts";
import { protocolJsonSchemas } from "../protocol/messages.ts";
import type { NodeHandler } from "./node-handler.ts";
import { createWebhookGate } from "./webhook-body-limit.ts";

export interface HttpAppDeps {
  database: Database;
  logger: Logger;
  /** Probot's webhook middleware; absent until the App has credentials. */
  webhooks?: NodeHandler | undefined;
  webhookPath?: string;
  /** The secret webhook bodies are verified against while they stream in (with `webhooks`). */
  webhookSecret?: string | undefined;
  /** Unauthenticated webhook bodies read at once (`CONVEYOR_WEBHOOK_CONCURRENCY`). */
  webhookConcurrency?: number | undefined;
  /** Probot's first-run setup flow, served when the App has no credentials yet. */
  setup?: NodeHandler | undefined;
  /** Adds further route groups (the runner socket, the admin API). */
  mount?: (app: HttpApp) => void;
  /** An error worth counting (a route that threw). */
  recordError?: (source: string, error: unknown) => void;
}

export type HttpApp = Hono<{ Bindings: HttpBindings }>;

/** Where GitHub delivers webhooks (Probot's default path). */
export const DEFAULT_WEBHOOK_PATH = "/api/github/webhooks";

/**
 * Where Probot's own setup flow told GitHub to deliver (`<base URL>/`): Apps registered with it
 * before Conveyor named its webhook route keep working.
 */
export const PROBOT_SETUP_WEBHOOK_PATH = "/";

/** The answer of every route that needs the GitHub App while it has no credentials. */
export const SETUP_MODE_ERROR = "GitHub App not configured: open /probot";

/** Hands the raw Node request to a Probot handler, which writes the response itself. */
function delegate(handler: NodeHandler, options: { path?: string } = {}) {
  return async (c: { env: HttpBindings; notFound: () => Response | Promise<Response> }) => {
    // Probot's webhook middleware answers only at its own path: a delivery to another webhook
    // route is handed over as if it had been sent there (same signature check, same handlers).
    if (options.path) c.env.incoming.url = options.path;
    if (await handler(c.env.incoming, c.env.outgoing)) return RESPONSE_ALREADY_SENT;
    return c.notFound();
  };
}

/** Every HTTP route of the server, on one Hono app (Probot's routes are delegated to it). */
export function createHttpApp(deps: HttpAppDeps): HttpApp {
  const app: HttpApp = new Hono<{ Bindings: HttpBindings }>();
  const webhookPath = deps.webhookPath ?? DEFAULT_WEBHOOK_PATH;
  // First, so it sees the final answer to every WebSocket upgrade, refusals included.
  app.use("*", refusedUpgradesWithJson());

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    try {
      await deps.database.ping();
    } catch (error) {
      deps.logger.warn({ err: error }, "readiness check: database unreachable");
      return c.json({ status: "unavailable", reason: "database unreachable" }, 503);
    }
    const { pending } = await migrationStatus(deps.database.db);
    if (pending.length > 0) {
      return c.json(
        { status: "unavailable", reason: `migrations pending: ${pending.join(", ")}` },
        503,
      );
    }
    // Setup mode is ready to serve (the setup page, the dashboard, the API), so 200, but says so.
    if (!deps.webhooks) {
      return c.json({
        status: "setup",
        reason: SETUP_MODE_ERROR,
        database: deps.database.kind,
        github: "setup",
      });
    }
    return c.json({ status: "ready", database: deps.database.kind, github: "configured" });
  });

  const webhooks = deps.webhooks;
  if (webhooks) {
    if (deps.webhookSecret === undefined) throw new Error("webhooks need their secret");
    // One gate for both paths: the concurrency cap holds whichever path a flood uses.
    const gate = createWebhookGate({
      secret: deps.webhookSecret,
      concurrency: deps.webhookConcurrency,
    });
    for (const path of new Set([webhookPath, PROBOT_SETUP_WEBHOOK_PATH])) {
      app.post(path, gate.middleware, delegate(webhooks, { path: webhookPath }));
    }
  } else {
    for (const path of new Set([webhookPath, PROBOT_SETUP_WEBHOOK_PATH])) {
      app.post(path, (c) => c.json({ error: SETUP_MODE_ERROR }, 503));
    }
    // The runner socket and its HTTP routes exist only with the App; say why instead of 404.
    const setupMode = (c: Context) => c.json({ error: SETUP_MODE_ERROR }, 503);
    app.all("/runners/v1", setupMode);
    app.all("/runners/v1/*", setupMode);
  }
  if (deps.setup) {
    app.get("/", delegate(deps.setup));
    app.all("/probot", delegate(deps.setup));
    app.all("/probot/*", delegate(deps.setup));
  }

  app.get("/api/schemas", (c) => c.json(protocolJsonSchemas()));
  deps.mount?.(app);

  app.notFound((c) => c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((error, c) => {
    deps.logger.error({ err: error, path: c.req.path }, "unhandled HTTP error");
    deps.recordError?.("http", error);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
