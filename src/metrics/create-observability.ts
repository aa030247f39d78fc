import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import { createGitHubBudget, type GitHubBudget } from "../core/github-budget.ts";
import type { Clock, RecordError } from "../core/ports.ts";
import { type ConveyorMetrics, createMetrics } from "./create-metrics.ts";
import { createErrorRecorder } from "./error-recorder.ts";

export interface ObservabilityDeps {
  /** The reserve of each installation's GitHub budget (default 10 %). */
  config?: Partial<Pick<Config, "githubReservePercent">>;
  database: Database;
  logger: Logger;
  options: ObservabilityOptions;
}

export interface ObservabilityOptions {
  /** The error recorder's, alerter's and sampler's clock (tests move it). */
  now?: Clock | undefined;
}

export interface Observability {
  /** This server's Prometheus registry and the instruments every subsystem counts with. */
  metrics: ConveyorMetrics;
  /** Counts an error where it happens: `conveyor_errors_total`, and `error_events` for alerts. */
  recordError: RecordError;
  /**
   * Each installation's GitHub budget as its answers report it: the GitHub clients spend it, the
   * loops defer optional work by it, `/metrics`, `/api/metrics` and the dashboard show it.
   */
  githubBudget: GitHubBudget;
  /** Writes the error events still buffered: late at shutdown, just before the database closes. */
  stop(): Promise<void>;
}

/** The metrics registry and the error recorder: built early, because every subsystem uses them. */
export function createObservability(deps: ObservabilityDeps): Observability {
  const { database, logger } = deps;
  const clock = deps.options.now ?? Date.now;
  const githubBudget = createGitHubBudget({ reservePercent: deps.config?.githubReservePercent });
  const metrics = createMetrics({ database, logger, githubBudget: () => githubBudget.snapshot() });
  const errors = createErrorRecorder({
    db: database.db,
    logger,
    count: (source) => metrics.error(source),
    now: () => new Date(clock()),
  });
  return {
    metrics,
    githubBudget,
    recordError: (source, error, details) => errors.record(source, error, details),
    stop: () => errors.flush(),
  };
}
