import type { Hono } from "hono";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import type { Signals } from "../core/ports.ts";
import type { RunnerConnection } from "../dispatch/dispatcher.ts";
import type { ApiAuth, ApiEnv } from "../http/admin-auth.ts";
import { hasActiveApiTokens } from "../store/api-tokens.ts";
import { endSessionsOfReplacedAdminToken, rememberAdminToken } from "./admin-session-guard.ts";
import { loadDashboardAssets } from "./dashboard-assets.ts";
import {
  createDashboardHub,
  type DashboardHub,
  type DashboardHubTimings,
} from "./dashboard-hub.ts";
import { createDashboardRoutes } from "./dashboard-routes.ts";
import { createLiveBoard, type LiveBoardTimings } from "./live-board.ts";
import type { TaskPageTimings } from "./task-page.ts";

export interface DashboardDeps {
  database: Database;
  auth: ApiAuth;
  logger: Logger;
  /** Names this instance to the others (live state is shared over NOTIFY). */
  instanceId: string;
  /** The runner sockets this instance holds (none until the GitHub App is configured). */
  connections: () => readonly RunnerConnection[];
  /** The queue's aging (positions), the admin token (sign-in) and the public URL (links). */
  config: Pick<Config, "agingMs" | "adminToken" | "publicUrl">;
  options: DashboardOptions;
  /** The GitHub budget panel's source. */
  githubBudget?: Pick<GitHubBudget, "snapshot"> | undefined;
  /**
   * Open pages update at once on `operator-changed-tasks` and `monitoring-changed` (alerts fired,
   * cleared or acknowledged on any instance), instead of at the next refresh.
   */
  signals: Signals;
}

export interface DashboardOptions {
  /** The dashboard's refresh, session re-check and cross-instance timings; tests shorten them. */
  dashboardTimings?:
    | {
        hub?: Partial<DashboardHubTimings>;
        board?: Partial<LiveBoardTimings>;
        taskPage?: Partial<TaskPageTimings>;
      }
    | undefined;
}

export interface Dashboard {
  /** Mount at `/`: every route starts with `/dashboard`. */
  routes: Hono<ApiEnv>;
  hub: DashboardHub;
  /** Listens for other instances' live state; ends sessions of a replaced admin token. */
  start(): Promise<void>;
  /** Ends every open stream (before the HTTP server closes, which would wait for them). */
  stop(): Promise<void>;
}

/** The dashboard: its routes, the hub that feeds every open page, and the shared live board. */
export function createDashboard(deps: DashboardDeps): Dashboard {
  const { agingMs, adminToken, publicUrl } = deps.config;
  const timings = deps.options.dashboardTimings;
  const { assets, pages } = loadDashboardAssets();
  let adminTokenRemembered = false;
  let closeTaskStreams = () => {};
  const board = createLiveBoard({
    database: deps.database,
    instanceId: deps.instanceId,
    connections: deps.connections,
    logger: deps.logger,
    timings: timings?.board,
  });
  const hub = createDashboardHub({
    db: deps.database.db,
    board,
    logger: deps.logger,
    agingMs,
    timings: timings?.hub,
    githubBudget: deps.githubBudget && (() => deps.githubBudget!.snapshot()),
  });
  const routes = createDashboardRoutes({
    db: deps.database.db,
    auth: deps.auth,
    hub,
    logger: deps.logger,
    assets,
    pages,
    publicUrl,
    taskPageTimings: timings?.taskPage,
    onTaskStreams: (close) => {
      closeTaskStreams = close;
    },
    hasCredentials: async () => Boolean(adminToken) || (await hasActiveApiTokens(deps.database.db)),
    async onAdminTokenSignIn() {
      // Once per process: the fingerprint only changes with the token, which needs a restart.
      if (adminTokenRemembered || !adminToken) return;
      await rememberAdminToken(deps.database.db, adminToken);
      adminTokenRemembered = true;
    },
  });
  deps.signals.on("operator-changed-tasks", () => hub.poke());
  deps.signals.on("monitoring-changed", () => hub.poke());
  return {
    routes,
    hub,
    async start() {
      await board.start();
      const ended = await endSessionsOfReplacedAdminToken(deps.database.db, adminToken);
      if (ended > 0) {
        deps.logger.info(
          { ended },
          "dashboard: CONVEYOR_ADMIN_TOKEN changed; ended the sessions signed in with the old one",
        );
      }
    },
    async stop() {
      closeTaskStreams();
      await hub.close();
      await board.stop();
    },
  };
}
