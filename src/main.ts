import type { Config } from "./config.ts";
import { createSignals } from "./core/signals.ts";
import { createDashboard } from "./dashboard/create-dashboard.ts";
import { createDispatch } from "./dispatch/create-dispatch.ts";
import { DEFAULT_TIMINGS } from "./dispatch/dispatcher.ts";
import { createGitHub } from "./github/create-github.ts";
import { createWebhookProxy, webhookProxyTarget } from "./github/webhook-proxy.ts";
import { createApi } from "./http/create-api.ts";
import { createHttp, type Http } from "./http/create-http.ts";
import { type Lifecycle, type Stage, startStages } from "./lifecycle.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createLoops } from "./loops/create-loops.ts";
import { createRedelivery } from "./loops/create-redelivery.ts";
import { INTAKE_LEASE_MS } from "./loops/intake-loop.ts";
import { createMonitoring } from "./metrics/create-monitoring.ts";
import { createObservability } from "./metrics/create-observability.ts";
import type { RunningConveyor, StartOptions } from "./start-options.ts";
import { createStore, type Store } from "./store/create-store.ts";

export type { RunningConveyor, StartOptions } from "./start-options.ts";

/** Every subsystem's start and stop; those that need the GitHub App are absent without it. */
export interface Subsystems {
  store: Lifecycle;
  observability: Lifecycle;
  monitoring: Lifecycle;
  loops: Lifecycle | undefined;
  http: Pick<Http, "connections" | "listener">;
  dispatch: Lifecycle | undefined;
  dashboard: Lifecycle;
  /** With `WEBHOOK_PROXY_URL` and the App only. */
  webhookProxy: Lifecycle | undefined;
  redelivery: Lifecycle | undefined;
  /** The write pacer: stopped early, so a backlog of paced GitHub writes cannot hold shutdown. */
  githubWrites: Lifecycle | undefined;
}

/**
 * The start-up order, first to last; shutdown runs it backwards. The database first and closed
 * last, the error events flushed just before it; the listener after everything it serves, so
 * nothing is served before everything is up, and the first to stop accepting but for what only
 * sends deliveries into it: the webhook proxy and the redelivery loop start once it listens and
 * stop first. Runner sockets (1001: reconnect elsewhere) and dashboard streams are closed before
 * the server waits for its open connections to finish.
 * Paced GitHub writes are refused right after the listener stops: what they would have written is
 * still owed in Postgres, and the loops, stopped later, end their passes at once.
 */
export function startupOrder(s: Subsystems): Stage[] {
  return [
    ["store", s.store],
    ["observability", s.observability],
    ["monitoring", s.monitoring],
    ["loops", s.loops],
    ["http connections", s.http.connections],
    ["dispatch", s.dispatch],
    ["dashboard", s.dashboard],
    ["github writes", s.githubWrites],
    ["http listener", s.http.listener],
    ["webhook proxy", s.webhookProxy],
    ["webhook redelivery", s.redelivery],
  ];
}

/**
 * The subsystems, built in the order their dependencies require. Each builder takes a typed
 * `deps` object: the shared ones below, plus what earlier builders made.
 */
async function build(config: Config, options: StartOptions, logger: Logger, store: Store) {
  const { database, instanceId } = store;
  const shared = { config, options, logger, database, instanceId, signals: createSignals() };
  const observability = createObservability(shared);
  const deps = {
    ...shared,
    metrics: observability.metrics,
    githubBudget: observability.githubBudget,
    recordError: observability.recordError,
  };
  const github = await createGitHub(deps);
  const timings = { ...DEFAULT_TIMINGS, ...options.dispatchTimings };
  const dispatch = github.app && createDispatch({ ...deps, ...github.app, timings });
  const loops =
    github.app &&
    createLoops({
      ...deps,
      ...github.app,
      connections: () => dispatch?.dispatcher.connections() ?? [],
    });
  // The instance that stores a delivery acts on it at once (others take it over if it dies).
  if (loops) {
    github.app?.handOffDeliveriesTo({
      holder: instanceId,
      leaseMs: INTAKE_LEASE_MS,
      ...loops.deliveryHandOff,
    });
  }
  const redelivery = github.app && createRedelivery({ ...deps, ...github.app });
  const runners = dispatch?.dispatcher;
  const connections = () => runners?.connections() ?? [];
  const api = createApi({ ...deps, runners });
  const issues = github.app?.alertIssues;
  const monitoring = createMonitoring({ ...deps, connections, timings, issues, auth: api.auth });
  const dashboard = createDashboard({ ...deps, connections, auth: api.auth });
  const http = createHttp({
    ...deps,
    ...github,
    // In mounting order: where two routes match, the first mounted answers.
    mounts: [
      ["/", dispatch?.routes],
      ["/", monitoring.routes],
      ...api.routes.map((routes) => ["/api", routes] as const),
      ["/", dashboard.routes],
    ],
  });
  const webhookProxy =
    github.app &&
    createWebhookProxy({
      ...deps,
      target: () => webhookProxyTarget(config.host, http.address().port),
    });
  const subsystems: Subsystems = {
    store,
    observability,
    monitoring,
    loops,
    http,
    dispatch,
    dashboard,
    githubWrites: github.app?.writes,
    webhookProxy,
    redelivery,
  };
  return { subsystems, http, loops, redelivery, monitoring, dispatcher: runners };
}

/** The composition root: builds every subsystem, starts them in order, stops them in reverse. */
export async function startConveyor(
  config: Config,
  options: StartOptions = {},
): Promise<RunningConveyor> {
  const logger =
    options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const store = await createStore({ config, logger });
  const built = await build(config, options, logger, store).catch(async (error: unknown) => {
    await store.stop();
    throw error;
  });
  const started = await startStages(startupOrder(built.subsystems), logger);
  const { monitoring, loops, redelivery } = built;
  let stopping: Promise<void> | undefined;
  return {
    ...built.http.address(),
    database: store.database,
    logger,
    dispatcher: built.dispatcher,
    reconcile: async () => loops?.reconcile(),
    redeliver: async () => redelivery?.runOnce(),
    monitoring: {
      checkAlerts: () => monitoring.checkAlerts(),
      sampleMetrics: () => monitoring.sampleMetrics(),
      subscribe: (listener) => monitoring.subscribe(listener),
    },
    stop() {
      stopping ??= started.stop().then(() => logger.info("conveyor stopped"));
      return stopping;
    },
  };
}
