import { Hono } from "hono";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import {
  type FieldError,
  OneTimeRunnerRequest,
  RunnerRegistration,
  toFieldErrors,
} from "../core/runner-registration.ts";
import {
  createOneTimeRunner,
  createRunner,
  listRunners,
  RunnerNameTakenError,
  revokeRunner,
} from "../store/runners.ts";
import { type ApiAuth, type ApiEnv, createApiAuth } from "./admin-auth.ts";
import { type ConnectedRunner, toRunnerJson } from "./runner-json.ts";
import { smallBody } from "./validation.ts";

export interface AdminRoutesDeps {
  db: Db;
  /** `CONVEYOR_ADMIN_TOKEN`; with no API token either, the admin API answers 503. */
  adminToken: string | undefined;
  /** Shared authentication and rate limits; made from `db` and `adminToken` when absent. */
  auth?: ApiAuth;
  logger: Logger;
  /** Called after a runner is revoked, so its live sockets on this instance close at once. */
  onRunnerRevoked: (runnerId: string) => void;
  /** The runners connected to this instance; without it the list cannot say who is online. */
  listConnectedRunners?: () => ConnectedRunner[];
}

// `fields` is the shape of every admin API 422; `errors` stays for clients written before it.
const invalid = (errors: FieldError[]) => ({
  error: `invalid request: ${errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`,
  fields: errors.map((e) => ({ path: e.field, message: e.message })),
  errors,
});

/**
 * The runner routes of the admin API, to be mounted at `/api`: listing needs `read`, registering
 * and revoking `admin`. The middlewares are registered per route, not for `*`, because a sub-app's
 * `*` would become `/api/*` and take in sibling routes such as the GitHub webhook.
 */
export function createAdminRoutes(deps: AdminRoutesDeps): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  const logger = deps.logger.child({ component: "admin-api" });
  const auth =
    deps.auth ?? createApiAuth({ db: deps.db, adminToken: deps.adminToken, logger: deps.logger });

  routes.get("/runners", auth.read, async (c) => {
    const all = await listRunners(deps.db);
    const connected = deps.listConnectedRunners
      ? new Map(deps.listConnectedRunners().map((r) => [r.runnerId, r]))
      : undefined;
    return c.json({
      runners: all.map((r) =>
        toRunnerJson(r, connected ? (connected.get(r.runnerId) ?? null) : undefined),
      ),
    });
  });

  routes.post("/runners", auth.admin, smallBody, async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json(invalid([{ field: "body", message: "expected a JSON object" }]), 422);
    }
    const parsed = RunnerRegistration.safeParse(body);
    if (!parsed.success) return c.json(invalid(toFieldErrors(parsed.error)), 422);
    try {
      const { runner, token } = await createRunner(deps.db, parsed.data);
      logger.info({ runnerId: runner.runnerId, name: runner.name }, "runner registered");
      // The token is in this response and nowhere else: keep it out of every cache.
      c.header("Cache-Control", "no-store");
      return c.json({ runner: toRunnerJson(runner), token }, 201);
    } catch (error) {
      if (error instanceof RunnerNameTakenError) return c.json({ error: error.message }, 409);
      throw error;
    }
  });

  // A one-time credential for one ephemeral runner (an Actions job, a Kubernetes Job).
  routes.post("/runners/jit", auth.admin, smallBody, async (c) => {
    let body: unknown;
    try {
      const text = await c.req.text();
      body = text.trim() === "" ? {} : JSON.parse(text);
    } catch {
      return c.json(invalid([{ field: "body", message: "expected a JSON object" }]), 422);
    }
    const parsed = OneTimeRunnerRequest.safeParse(body);
    if (!parsed.success) return c.json(invalid(toFieldErrors(parsed.error)), 422);
    try {
      const { runner, token } = await createOneTimeRunner(deps.db, parsed.data);
      logger.info(
        { runnerId: runner.runnerId, name: runner.name, expiresAt: runner.expiresAt },
        "one-time runner credential minted",
      );
      c.header("Cache-Control", "no-store");
      return c.json({ runner: toRunnerJson(runner), token }, 201);
    } catch (error) {
      if (error instanceof RunnerNameTakenError) return c.json({ error: error.message }, 409);
      throw error;
    }
  });

  routes.post("/runners/:name/revoke", auth.admin, async (c) => {
    const name = c.req.param("name");
    const runner = await revokeRunner(deps.db, name);
    if (!runner) return c.json({ error: `no runner named ${name}` }, 404);
    logger.info({ runnerId: runner.runnerId, name: runner.name }, "runner revoked");
    try {
      // Also on a repeated revoke: closing sockets a revoked token still holds is always right.
      deps.onRunnerRevoked(runner.runnerId);
    } catch (error) {
      logger.error(
        { err: error, runnerId: runner.runnerId },
        "closing a revoked runner's sockets failed",
      );
    }
    return c.json(toRunnerJson(runner));
  });

  return routes;
}
