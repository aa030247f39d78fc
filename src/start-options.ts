import type { Database } from "../db/client.ts";
import type { DashboardOptions } from "./dashboard/create-dashboard.ts";
import type { DispatchOptions } from "./dispatch/create-dispatch.ts";
import type { Dispatcher, DispatchTimings } from "./dispatch/dispatcher.ts";
import type { GitHubOptions } from "./github/create-github.ts";
import type { ApiOptions } from "./http/create-api.ts";
import type { Logger } from "./logger.ts";
import type { LoopsOptions } from "./loops/create-loops.ts";
import type { RedeliveryOptions, RedeliveryReport } from "./loops/create-redelivery.ts";
import type { ReconcileReport } from "./loops/reconciler.ts";
import type { Monitoring, MonitoringOptions } from "./metrics/create-monitoring.ts";
import type { ObservabilityOptions } from "./metrics/create-observability.ts";

/**
 * How `startConveyor` runs the server beyond its configuration: what tests, the bench and the demo
 * change. Each subsystem declares its own options beside its builder; this is all of them.
 */
export interface StartOptions
  extends ObservabilityOptions,
    GitHubOptions,
    DispatchOptions,
    LoopsOptions,
    RedeliveryOptions,
    ApiOptions,
    MonitoringOptions,
    DashboardOptions {
  logger?: Logger;
  /** Protocol timings (heartbeat, lease, accept, sweep); tests shorten them. */
  dispatchTimings?: Partial<DispatchTimings>;
}

/** A started server, as `startConveyor` returns it. */
export interface RunningConveyor {
  url: string;
  port: number;
  database: Database;
  logger: Logger;
  /** Runs reconciliation now (also runs at start-up and on its interval). */
  reconcile(): Promise<ReconcileReport | undefined>;
  /** Runs a webhook redelivery pass now (also runs at start-up and on its interval). */
  redeliver(): Promise<RedeliveryReport | undefined>;
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
