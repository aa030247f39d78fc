import type { Hono, MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import type { AlertIssues, Clock, RecordError, Signals } from "../core/ports.ts";
import { type CheckReport, createAlerter } from "../loops/alerter.ts";
import { createLoop, type Loop } from "../loops/create-loop.ts";
import { createMetricsSampler, type SampledConnection } from "../loops/metrics-sampler.ts";
import type { ConnectionFacts, ConveyorMetrics } from "./create-metrics.ts";
import { createMetricsReport } from "./metrics-report.ts";
import { createMetricsRoutes } from "./metrics-routes.ts";

export interface MonitoringOptions {
  /** How often queue depth and runner slots are sampled for trends and charts (default 30 s). */
  metricsSampleIntervalMs?: number | undefined;
  /** How often runner presence is stamped and task transitions are fed to histograms (5 s). */
  metricsTickIntervalMs?: number | undefined;
  /** How often alerts are checked (default 30 s) and the delay before the first check (30 s). */
  alertCheckIntervalMs?: number | undefined;
  alertStartDelayMs?: number | undefined;
  /** The alerter's and sampler's clock (tests move it). */
  now?: Clock | undefined;
}

/** What changed, for live views: alerts (fired, cleared, acknowledged), settings, new samples. */
export type MonitoringTopic = "alerts" | "settings" | "metrics";
const TOPICS: readonly string[] = ["alerts", "settings", "metrics"];

/** NOTIFY channel that tells every instance's live views something changed. */
export const MONITORING_CHANNEL = "conveyor_monitoring";

export interface Monitoring {
  /** `/metrics` and `/api/{metrics,alerts,settings}`, to be mounted at `/`. */
  routes: Hono;
  checkAlerts(): Promise<CheckReport>;
  /** One sample and one tail pass now. */
  sampleMetrics(): Promise<void>;
  /**
   * Calls `listener` whenever alerts, settings or samples change on any instance (LISTEN/NOTIFY,
   * started on the first subscription): a dashboard can push instead of polling. Returns the
   * unsubscribe function.
   */
  subscribe(listener: (topic: MonitoringTopic) => void): () => void;
  /** Starts the sampler's and the alerter's loops; changes from any instance become signals. */
  start(): void;
  /** Stops the loops, hands the metrics leases to another instance, stops listening. */
  stop(): Promise<void>;
}

/**
 * The sampler, the alerter and the monitoring routes of one server, on the metrics registry and
 * the error recorder that `createObservability` made for every subsystem.
 */
export function createMonitoring(deps: {
  database: Database;
  logger: Logger;
  metrics: ConveyorMetrics;
  /** Shown in `/api/metrics` (`github_budget`). */
  githubBudget?: Pick<GitHubBudget, "snapshot"> | undefined;
  instanceId: string;
  /** The runner sockets this instance holds (none without the GitHub App). */
  connections: () => readonly (SampledConnection & ConnectionFacts)[];
  /** Absent without a GitHub App. */
  issues: AlertIssues | undefined;
  timings: { leaseMs: number; acceptMs: number };
  recordError: RecordError;
  auth: { read: MiddlewareHandler; admin: MiddlewareHandler };
  /** Emits `monitoring-changed` when alerts, settings or samples change on any instance. */
  signals: Signals;
  options: MonitoringOptions;
}): Monitoring {
  const { database, logger, metrics, recordError } = deps;
  metrics.setConnections(deps.connections);
  const { options } = deps;
  const clock = options.now ?? Date.now;
  const sampleIntervalMs = options.metricsSampleIntervalMs ?? 30_000;
  const tickIntervalMs = options.metricsTickIntervalMs ?? 5_000;
  const alertIntervalMs = options.alertCheckIntervalMs ?? 30_000;
  // A runner counts as online when some instance stamped it within a few ticks.
  const onlineWindowMs = Math.max(30_000, tickIntervalMs * 3);

  const listeners = new Set<(topic: MonitoringTopic) => void>();
  let listening: Promise<(() => Promise<void>) | undefined> | undefined;
  const announce = (topic: MonitoringTopic) => {
    database
      .notify(MONITORING_CHANNEL, topic)
      .catch((error: unknown) => logger.debug({ err: error }, "monitoring notify failed"));
  };
  const deliver = (payload: string) => {
    if (!TOPICS.includes(payload)) return;
    for (const listener of listeners) {
      try {
        listener(payload as MonitoringTopic);
      } catch (error) {
        logger.warn({ err: error }, "a monitoring subscriber failed");
      }
    }
  };

  const sampler = createMetricsSampler({
    db: database.db,
    logger,
    instanceId: deps.instanceId,
    connections: deps.connections,
    observe: (event) => metrics.transition(event),
    sampleIntervalMs,
    tickIntervalMs,
    now: () => new Date(clock()),
  });
  const alerter = createAlerter({
    db: database.db,
    logger,
    instanceId: deps.instanceId,
    ping: () => database.ping(),
    issues: deps.issues,
    timings: deps.timings,
    onlineWindowMs,
    sampleIntervalMs,
    checkIntervalMs: alertIntervalMs,
    now: clock,
    notified: (rule, severity, kind) => metrics.alertNotified(rule, severity, kind),
    recordError,
    onChange: () => announce("alerts"),
  });
  let loops: Loop[] = [];
  const routes = createMetricsRoutes({
    db: database.db,
    logger,
    scrape: metrics.scrape,
    contentType: metrics.contentType,
    report: createMetricsReport({
      db: database.db,
      sampleIntervalMs,
      onlineWindowMs,
      now: clock,
      githubBudget: deps.githubBudget && (() => deps.githubBudget!.snapshot()),
    }),
    localAlerts: () => alerter.localAlerts(),
    auth: deps.auth,
    onChange: announce,
  });
  const monitoring: Monitoring = {
    routes,
    checkAlerts: () => alerter.checkOnce(),
    async sampleMetrics() {
      if (await sampler.sample()) announce("metrics");
      await sampler.tick();
    },
    subscribe(listener) {
      listeners.add(listener);
      listening ??= database.listen(MONITORING_CHANNEL, deliver).catch((error: unknown) => {
        logger.warn({ err: error }, "could not listen for monitoring changes; live views poll");
        listening = undefined;
        return undefined;
      });
      return () => {
        listeners.delete(listener);
      };
    },
    start() {
      loops = [
        createLoop({
          name: "metrics-tick",
          intervalMs: tickIntervalMs,
          logger,
          onError: (error) => recordError("loop:metrics", error),
          body: async () => {
            await sampler.tick();
          },
        }),
        createLoop({
          name: "metrics-sampler",
          intervalMs: sampleIntervalMs,
          logger,
          onError: (error) => recordError("loop:metrics", error),
          body: async () => {
            if (await sampler.sample()) announce("metrics");
          },
        }),
        createLoop({
          name: "alerter",
          intervalMs: alertIntervalMs,
          initialDelayMs: options.alertStartDelayMs ?? 30_000,
          logger,
          // Not counted as an error event: a failing check is most likely the database being away,
          // which the check reports itself.
          body: async () => {
            await alerter.checkOnce();
          },
        }),
      ];
      monitoring.subscribe(() => deps.signals.emit("monitoring-changed"));
    },
    async stop() {
      const running = loops;
      loops = [];
      await Promise.all(running.map((loop) => loop.stop()));
      await sampler.stop();
      const unlisten = await listening;
      listening = undefined;
      await unlisten?.();
    },
  };
  return monitoring;
}
