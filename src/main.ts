import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { WebSocketServer } from "ws";
import type { Database } from "../db/client.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { MAX_FRAME_BYTES } from "./core/frame-violations.ts";
import type { TierLimits } from "./core/rate-limit.ts";
import { createSignals } from "./core/signals.ts";
import {
  createDashboard,
  type Dashboard,
  type DashboardDeps,
} from "./dashboard/create-dashboard.ts";
import { createDispatch, type Dispatch } from "./dispatch/create-dispatch.ts";
import { DEFAULT_TIMINGS, type Dispatcher, type DispatchTimings } from "./dispatch/dispatcher.ts";
import type { createAlertIssues } from "./github/alert-issues.ts";
import { createGitHub } from "./github/create-github.ts";
import { createApiAuth } from "./http/admin-auth.ts";
import { createAdminRoutes } from "./http/admin-routes.ts";
import type { ApiRateLimits } from "./http/api-rate-limiter.ts";
import { createHttpApp } from "./http/create-http-app.ts";
import { createOpsApi } from "./http/create-ops-api.ts";
import { createLogger, type Logger } from "./logger.ts";
import type { Loop } from "./loops/create-loop.ts";
import { createLoops } from "./loops/create-loops.ts";
import type { ReconcileReport } from "./loops/reconciler.ts";
import { createObservability } from "./metrics/create-observability.ts";
import { type Monitoring, startMonitoring } from "./metrics/start-monitoring.ts";
import { removeServerInfo, writeServerInfo } from "./server-info.ts";
import { createStore } from "./store/create-store.ts";

export interface StartOptions {
  logger?: Logger;
  /**
   * Extra Octokit options for Probot's clients. Tests turn retries and throttling off so a simulated
   * 500 answers at once instead of after minutes of backoff.
   */
  octokitOptions?: Record<string, unknown>;
  /** How often the notifier looks for work without being woken (default 2 s). */
  notifierIntervalMs?: number;
  /** Protocol timings (heartbeat, lease, accept, sweep); tests shorten them. */
  dispatchTimings?: Partial<DispatchTimings>;
  /** Per-tier frame limits per minute; tests and benchmarks raise them. */
  rateLimits?: TierLimits;
  /** How often open Conveyor PRs are re-evaluated without an event (default 60 s). */
  mergerIntervalMs?: number;
  /** GitHub writes per minute across all installations (default 80, GitHub's secondary limit). */
  githubWritesPerMinute?: number;
  /** Reconcile at start-up (default) or only on the interval (tests that seed tasks directly). */
  reconcileOnStart?: boolean;
  /**
   * Write pull requests from results (default). Off leaves results in `pushed`: for measuring or
   * testing dispatch alone.
   */
  publishPullRequests?: boolean;
  /** Slash-command comments one person may write per minute (default 10). */
  commandsPerMinute?: number;
  /** Per-client admin API budgets (requests per minute); tests lower them. */
  apiRateLimits?: ApiRateLimits;
  /** The dashboard's refresh, session re-check and cross-instance timings; tests shorten them. */
  dashboardTimings?: DashboardDeps["timings"];
  /** How often alerts are checked (default 30 s) and the delay before the first check (30 s). */
  alertCheckIntervalMs?: number;
  alertStartDelayMs?: number;
  /** How often queue depth and runner slots are sampled for trends and charts (default 30 s). */
  metricsSampleIntervalMs?: number;
  /** How often runner presence is stamped and task transitions are fed to histograms (5 s). */
  metricsTickIntervalMs?: number;
  /** The alerter's and sampler's clock (tests move it). */
  now?: () => number;
}

export interface RunningConveyor {
  url: string;
  port: number;
  database: Database;
  logger: Logger;
  /** Runs reconciliation now (also runs at start-up and on its interval). */
  reconcile(): Promise<ReconcileReport | undefined>;
  /** Absent until the GitHub App is configured. */
  dispatcher: Dispatcher | undefined;
  /**
   * Alerts and metrics: `checkAlerts()` and `sampleMetrics()` run a check or a sample now (they
   * also run on their intervals); `subscribe` hears of changes on any instance (live views).
   */
  monitoring: Pick<Monitoring, "checkAlerts" | "sampleMetrics" | "subscribe">;
  /** Graceful shutdown: stop accepting, let in-flight requests finish, close the database. */
  stop(): Promise<void>;
}

/**
 * The composition root: config → logger → database → Probot → Hono → one HTTP server. The only
 * place that constructs adapters.
 */
export async function startConveyor(
  config: Config,
  options: StartOptions = {},
): Promise<RunningConveyor> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const store = await createStore({ config, logger });
  const { database, instanceId } = store;
  let server: Server | undefined;
  const loops: Loop[] = [];
  let reconcile: () => Promise<ReconcileReport | undefined> = async () => undefined;
  let dispatcher: Dispatcher | undefined;
  const timings: DispatchTimings = { ...DEFAULT_TIMINGS, ...options.dispatchTimings };
  let runnerRoutes: Dispatch["routes"] | undefined;
  // What to wake after an operator changed tasks (retry, cancel, import); set once loops exist.
  let onTasksChanged: () => void = () => {};
  let dashboard: Dashboard | undefined;
  const signals = createSignals();
  const observability = createObservability({ database, logger, now: options.now });
  const { metrics, recordError } = observability;
  metrics.setConnections(() => dispatcher?.connections() ?? []);
  let alertIssues: ReturnType<typeof createAlertIssues> | undefined;
  let monitoring: Monitoring | undefined;
  try {
    await store.start();
    const github = await createGitHub({
      config,
      database,
      logger,
      metrics,
      recordError,
      signals,
      octokitOptions: options.octokitOptions,
      writesPerMinute: options.githubWritesPerMinute,
      commandsPerMinute: options.commandsPerMinute,
    });
    if (github.app) {
      alertIssues = github.app.alertIssues;
      const dispatch = createDispatch({
        database,
        logger,
        gateway: github.app.gateway,
        agingMs: config.agingMs,
        timings,
        rateLimits: options.rateLimits,
        metrics,
        recordError,
        signals,
      });
      dispatcher = dispatch.dispatcher;
      runnerRoutes = dispatch.routes;
      await dispatch.start();
      const background = createLoops({
        ...github.app,
        db: database.db,
        logger,
        instanceId,
        agingMs: config.agingMs,
        reconcileIntervalMs: config.reconcileIntervalMs,
        reconcileOnStart: options.reconcileOnStart,
        notifierIntervalMs: options.notifierIntervalMs,
        mergerIntervalMs: options.mergerIntervalMs,
        publishPullRequests: options.publishPullRequests,
        recordError,
        signals,
      });
      background.start();
      loops.push({ wake: () => {}, firstRun: Promise.resolve(), stop: () => background.stop() });
      reconcile = () => background.reconcile();
      onTasksChanged = () => signals.emit("tasks-changed");
    }

    const apiAuth = createApiAuth({
      db: database.db,
      adminToken: config.adminToken,
      logger,
      rateLimits: options.apiRateLimits,
    });
    const adminRoutes = createAdminRoutes({
      db: database.db,
      adminToken: config.adminToken,
      auth: apiAuth,
      logger,
      onRunnerRevoked: (runnerId) => dispatcher?.revokeRunner(runnerId),
      listConnectedRunners: () =>
        (dispatcher?.connections() ?? []).map((c) => ({
          runnerId: c.runnerId,
          connectedAt: c.connectedAt,
          busySlots: c.tasks.size,
        })),
    });
    const started = startMonitoring({
      database,
      logger,
      metrics,
      instanceId,
      connections: () => dispatcher?.connections() ?? [],
      issues: alertIssues,
      timings,
      recordError,
      auth: apiAuth,
      intervals: {
        sampleIntervalMs: options.metricsSampleIntervalMs,
        tickIntervalMs: options.metricsTickIntervalMs,
        alertIntervalMs: options.alertCheckIntervalMs,
        alertStartDelayMs: options.alertStartDelayMs,
      },
      now: options.now,
    });
    monitoring = started;
    loops.push(...started.loops);
    dashboard = createDashboard({
      database,
      auth: apiAuth,
      logger,
      instanceId,
      connections: () => dispatcher?.connections() ?? [],
      agingMs: config.agingMs,
      adminToken: config.adminToken,
      publicUrl: config.publicUrl,
      timings: options.dashboardTimings,
    });
    await dashboard.start();
    const dashboardRoutes = dashboard.routes;
    // Alerts fired, cleared or acknowledged on any instance: open dashboards update at once.
    started.subscribe(() => dashboard?.hub.poke());
    const app = createHttpApp({
      database,
      logger,
      webhooks: github.webhooks,
      setup: github.setup,
      recordError,
      mount(http) {
        if (runnerRoutes) http.route("/", runnerRoutes);
        http.route("/", started.routes);
        http.route("/api", adminRoutes);
        http.route(
          "/api",
          createOpsApi({
            database,
            auth: apiAuth,
            logger,
            onTasksChanged: () => {
              onTasksChanged();
              dashboard?.hub.poke();
            },
          }),
        );
        http.route("/", dashboardRoutes);
      },
    });
    // Frames over 1 MiB close the socket with 1009 (ws enforces maxPayload).
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
    server = createAdaptorServer({ fetch: app.fetch, websocket: { server: wss } }) as Server;
    const listening = server;
    await new Promise<void>((resolve, reject) => {
      listening.once("error", reject);
      listening.listen(config.port, config.host, () => resolve());
    });
  } catch (error) {
    server?.close();
    await dashboard?.stop();
    await dispatcher?.stop();
    await Promise.all(loops.map((l) => l.stop()));
    await observability.stop();
    await store.stop();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new ConfigError(
        `Invalid configuration:\n  PORT: ${config.port} is already in use on ${config.host}; choose another port`,
      );
    }
    throw error;
  }

  const { port } = server.address() as AddressInfo;
  const url = `http://${displayHost(config.host)}:${port}`;
  logger.info({ url }, "conveyor listening");
  // The embedded database admits one process: the CLI finds this server here and uses its API.
  if (database.kind === "pglite") writeServerInfo(config.dataDir, { pid: process.pid, url });

  const httpServer = server;
  const watch = monitoring;
  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    database,
    logger,
    reconcile: () => reconcile(),
    dispatcher,
    monitoring: {
      checkAlerts: () => watch.checkAlerts(),
      sampleMetrics: () => watch.sampleMetrics(),
      subscribe: (listener) => watch.subscribe(listener),
    },
    stop() {
      stopping ??= (async () => {
        if (database.kind === "pglite") removeServerInfo(config.dataDir);
        // Open dashboard streams would keep the server from closing.
        await dashboard?.stop();
        // Runners are told first (1001) so they reconnect elsewhere; their leases run on.
        await dispatcher?.stop();
        await new Promise<void>((resolve) => {
          httpServer.close(() => resolve());
          // Idle keep-alive sockets would hold close() open; busy ones finish their request.
          httpServer.closeIdleConnections();
        });
        await Promise.all(loops.map((l) => l.stop()));
        await watch.stop();
        await observability.stop();
        await store.stop();
        logger.info("conveyor stopped");
      })();
      return stopping;
    },
  };
}

/** A wildcard listen address is not something to type into a browser. */
function displayHost(host: string): string {
  return host === "0.0.0.0" || host === "::" ? "localhost" : host;
}

/**
 * `conveyor start`: load config, start, stop cleanly on SIGTERM/SIGINT. `options` are for entry
 * points that run the same server differently (the demo's, against the simulator, unpaced).
 */
export async function main(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: Omit<StartOptions, "logger"> = {},
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`conveyor: ${error.message}\nSee .env.example for every setting.\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  let running: RunningConveyor;
  try {
    running = await startConveyor(config, { ...options, logger });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`conveyor: ${error.message}\n`);
    } else {
      logger.fatal({ err: error }, "conveyor failed to start");
    }
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      logger.error("shutdown took longer than 10 s; exiting");
      process.exit(1);
    }, 10_000);
    force.unref();
    running.stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}
