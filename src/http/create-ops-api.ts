import { Hono } from "hono";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";
import { createAdminOpsRoutes } from "./admin-ops-routes.ts";
import { createAnalyticsRoutes } from "./analytics-routes.ts";
import { createTaskRoutes } from "./task-routes.ts";
import { createTokenRoutes } from "./token-routes.ts";

export interface OpsApiDeps {
  database: Database;
  auth: ApiAuth;
  /** The root logger (the log-level route changes its level). */
  logger: Logger;
  /** Tasks changed (retry, cancel, import): wake the loops that act on them. */
  onTasksChanged: () => void;
}

/**
 * The operator's part of the admin API, to be mounted at `/api`: tokens, tasks, `/admin/*` and
 * the outcome analytics.
 * The server mounts it; the CLI serves it in-process over a database it opened itself, so both
 * paths run the same code and print the same JSON.
 */
export function createOpsApi(deps: OpsApiDeps): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  const { database, auth, logger, onTasksChanged } = deps;
  api.route("/", createTokenRoutes({ db: database.db, auth, logger }));
  api.route("/", createTaskRoutes({ db: database.db, auth, logger, onTasksChanged }));
  api.route("/", createAdminOpsRoutes({ database, auth, logger, onTasksChanged }));
  api.route("/", createAnalyticsRoutes({ db: database.db, auth }));
  return api;
}
