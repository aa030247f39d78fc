import type { Hono } from "hono";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import type { Signals } from "../core/ports.ts";
import type { RunnerConnection } from "../dispatch/dispatcher.ts";
import { type ApiAuth, type ApiEnv, createApiAuth } from "./admin-auth.ts";
import { createAdminRoutes } from "./admin-routes.ts";
import type { ApiRateLimits } from "./api-rate-limiter.ts";
import { createOpsApi } from "./create-ops-api.ts";
import { createScalingRoutes } from "./scaling-routes.ts";

export interface ApiDeps {
  database: Database;
  logger: Logger;
  /** `CONVEYOR_ADMIN_TOKEN`. */
  config: Pick<Config, "adminToken">;
  options: ApiOptions;
  /** The runner sockets of this instance; absent without the GitHub App (no dispatcher). */
  runners?:
    | {
        connections(): readonly RunnerConnection[];
        revokeRunner(runnerId: string): void;
      }
    | undefined;
  /** An operator's change to tasks emits `tasks-changed` and `operator-changed-tasks`. */
  signals: Signals;
}

export interface ApiOptions {
  /** Per-client admin API budgets (requests per minute); tests lower them. */
  apiRateLimits?: ApiRateLimits | undefined;
}

export interface Api {
  /** Authentication, roles and rate limits, for every route that needs them. */
  auth: ApiAuth;
  /** The runner, task, token and `/admin/*` routes, each to be mounted at `/api`. */
  routes: Hono<ApiEnv>[];
}

/** The admin API: its authentication, the runner routes and the operator's routes. */
export function createApi(deps: ApiDeps): Api {
  const { database, logger, runners, signals } = deps;
  const { adminToken } = deps.config;
  const rateLimits = deps.options.apiRateLimits;
  const auth = createApiAuth({ db: database.db, adminToken, logger, rateLimits });
  const admin = createAdminRoutes({
    db: database.db,
    adminToken,
    auth,
    logger,
    onRunnerRevoked: (runnerId) => runners?.revokeRunner(runnerId),
    listConnectedRunners: () =>
      (runners?.connections() ?? []).map((c) => ({
        runnerId: c.runnerId,
        connectedAt: c.connectedAt,
        busySlots: c.tasks.size,
      })),
  });
  const ops = createOpsApi({
    database,
    auth,
    logger,
    onTasksChanged: () => {
      signals.emit("tasks-changed");
      signals.emit("operator-changed-tasks");
    },
  });
  const scaling = createScalingRoutes({
    db: database.db,
    auth,
    connections: () => runners?.connections() ?? [],
  });
  return { auth, routes: [admin, ops, scaling] };
}
