import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import type { Database } from "../../db/client.ts";
import { type Config, ConfigError, displayHost } from "../config.ts";
import { MAX_FRAME_BYTES } from "../core/frame-violations.ts";
import type { RecordError } from "../core/ports.ts";
import { handleWebSocketUpgrades } from "../dispatch/websocket-upgrades.ts";
import type { Lifecycle } from "../lifecycle.ts";
import { removeServerInfo, writeServerInfo } from "../server-info.ts";
import { createHttpApp } from "./create-http-app.ts";
import type { NodeHandler } from "./node-handler.ts";
import { logStartupMessage } from "./startup-message.ts";

/** A group of routes and where it is mounted; absent groups (no GitHub App) are skipped. */
// biome-ignore lint/suspicious/noExplicitAny: route groups differ in their Hono environment
export type Mount = readonly [path: string, routes: Hono<any, any, any> | undefined];

export interface HttpDeps {
  config: Pick<Config, "port" | "host" | "dataDir" | "publicUrl" | "github"> &
    Partial<Pick<Config, "webhookConcurrency">>;
  database: Database;
  logger: Logger;
  recordError: RecordError;
  /** Probot's webhook middleware; absent until the App has credentials. */
  webhooks?: NodeHandler | undefined;
  /** Probot's first-run setup flow, served when the App has no credentials yet. */
  setup?: NodeHandler | undefined;
  /** The setup flow's one-time code, printed with the start-up lines. */
  setupCode?: string | undefined;
  /** Route groups, in mounting order: where two match, the first mounted answers. */
  mounts: readonly Mount[];
}

export interface Http {
  /**
   * Stops by waiting for the requests and sockets still open: after the listener stopped
   * accepting, and after the subsystems that hold long-lived connections (runner sockets,
   * dashboard streams) closed theirs.
   */
  connections: Lifecycle;
  /**
   * Starts listening on `PORT` (a port in use is a configuration error) and, on the embedded
   * database, writes the server-info file the CLI finds this server by. Stops by removing that
   * file, no longer accepting connections, and closing idle keep-alive ones.
   */
  listener: Lifecycle;
  /** Where the server listens; after the listener started. */
  address(): { url: string; port: number };
}

/** One HTTP server for every route: health, webhooks, runner sockets, the API, the dashboard. */
/** How long shutdown waits for requests still in flight before it closes their connections. */
const CONNECTION_DRAIN_MS = 3_000;

export function createHttp(deps: HttpDeps): Http {
  const { config, database, logger } = deps;
  const app = createHttpApp({
    database,
    logger,
    webhooks: deps.webhooks,
    webhookSecret: config.github?.webhookSecret,
    webhookConcurrency: config.webhookConcurrency,
    setup: deps.setup,
    recordError: deps.recordError,
    mount(http) {
      for (const [path, routes] of deps.mounts) if (routes) http.route(path, routes);
    },
  });
  // Frames over 1 MiB close the socket with 1009 (ws enforces maxPayload).
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  handleWebSocketUpgrades({ server, wss, fetch: app.fetch });
  let address: { url: string; port: number } | undefined;
  let closed: Promise<void> | undefined;
  const serverInfo = database.kind === "pglite";

  return {
    connections: {
      async stop() {
        if (!closed) return;
        // Connections that finished since the listener stopped are idle now.
        server.closeIdleConnections();
        // A client that keeps a connection busy (or a proxy that never passes the close on) must
        // not hold shutdown past the 10 s `conveyor start` allows: after a grace period, cut it.
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<"cut">((resolve) => {
          timer = setTimeout(() => resolve("cut"), CONNECTION_DRAIN_MS);
        });
        if ((await Promise.race([closed, grace])) === "cut") {
          logger.warn(
            { graceMs: CONNECTION_DRAIN_MS },
            "open connections did not finish in time; closing them",
          );
          server.closeAllConnections();
          await closed;
        }
        clearTimeout(timer);
      },
    },
    listener: {
      async start() {
        try {
          await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(config.port, config.host, () => resolve());
          });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
          throw new ConfigError(
            `Invalid configuration:\n  PORT: ${config.port} is already in use on ${config.host}; choose another port`,
          );
        }
        const { port } = server.address() as AddressInfo;
        address = { url: `http://${displayHost(config.host)}:${port}`, port };
        logStartupMessage(logger, {
          url: address.url,
          publicUrl: config.publicUrl,
          githubConfigured: !!config.github,
          setupCode: deps.setupCode,
        });
        // The embedded database admits one process: the CLI finds this server here, uses its API.
        if (serverInfo) writeServerInfo(config.dataDir, { pid: process.pid, url: address.url });
      },
      stop() {
        if (serverInfo && address) removeServerInfo(config.dataDir);
        closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
        // Idle keep-alive sockets would hold close() open; busy ones finish their request.
        server.closeIdleConnections();
      },
    },
    address() {
      if (!address) throw new Error("the HTTP server is not listening yet");
      return address;
    },
  };
}
