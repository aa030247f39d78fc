import { Hono } from "hono";
import { stream } from "hono/streaming";
import type { Logger } from "pino";
import { z } from "zod";
import type { Database } from "../../db/client.ts";
import { migrate, migrationStatus } from "../../db/migrate.ts";
import { LOG_LEVELS } from "../config.ts";
import { exportDatabase } from "../store/database-export.ts";
import { ImportError, importDatabase, readLines } from "../store/database-import.ts";
import { databaseReport } from "../store/database-report.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";
import { invalidRequest, parseJsonBody, smallBody } from "./validation.ts";

export interface AdminOpsRoutesDeps {
  database: Database;
  auth: ApiAuth;
  /** The root logger: its level is the one `PUT /admin/log-level` changes. */
  logger: Logger;
  /** Called after an import, so loops pick up the restored tasks. */
  onTasksChanged?: () => void;
}

/** `POST /admin/migrate` takes no options (an empty body or `{}`). */
export const MigrateBody = z.strictObject({});

export const LogLevelBody = z.strictObject({
  level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` }),
});

/**
 * `/api/admin/*`: the log level (read to see, admin to change), the database report (read), who a
 * credential is (read), migrations (admin), and export and import of all state (admin, heavy on
 * the rate limit).
 */
export function createAdminOpsRoutes(deps: AdminOpsRoutesDeps): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  const { database, auth } = deps;
  const log = deps.logger.child({ component: "admin-api" });
  const heavy = auth.require("admin", { cost: "heavy" });

  routes.get("/admin/log-level", auth.read, (c) =>
    c.json({ level: deps.logger.level, scope: "instance" }),
  );

  // Children made without their own level follow the root, so this reaches every module's logger.
  // Not persisted and per instance: a restart goes back to LOG_LEVEL.
  routes.put("/admin/log-level", auth.admin, smallBody, async (c) => {
    const body = await parseJsonBody(c, LogLevelBody);
    if (!body.ok) return body.response;
    const previous = deps.logger.level;
    const announce = { previous, level: body.data.level, by: c.get("principal").actor };
    // Said once, at whichever level shows it: after the change if the new level shows info.
    const louder = deps.logger.levels.values[body.data.level]! <= deps.logger.levels.values.info!;
    if (!louder) log.info(announce, "log level changed");
    deps.logger.level = body.data.level;
    if (louder) log.info(announce, "log level changed");
    return c.json({ level: body.data.level, previous, scope: "instance" });
  });

  routes.get("/admin/database", auth.read, async (c) => {
    const report = await databaseReport(database);
    return c.json(report, report.reachable ? 200 : 503);
  });

  // Who the credential stands for: `conveyor doctor` checks a remote server's token with it.
  routes.get("/admin/whoami", auth.read, (c) => {
    const { kind, role, name } = c.get("principal");
    return c.json({ name, role, kind });
  });

  // `conveyor migrate` against a server (CONVEYOR_URL). A server migrates when it starts, so this
  // normally finds nothing to do; it is safe any time (one transaction under an advisory lock).
  routes.post("/admin/migrate", auth.admin, smallBody, async (c) => {
    const body = await parseJsonBody(c, MigrateBody);
    if (!body.ok) return body.response;
    const { applied } = await migrate(database.db);
    const current = (await migrationStatus(database.db)).applied.at(-1) ?? null;
    if (applied.length) log.info({ by: c.get("principal").actor, applied }, "database migrated");
    return c.json({ applied, current });
  });

  routes.get("/admin/export", heavy, (c) => {
    const by = c.get("principal").actor;
    const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "-");
    c.header("Content-Type", "application/json; charset=utf-8");
    c.header("Content-Disposition", `attachment; filename="conveyor-export-${stamp}.json"`);
    // Token hashes and issue text: never in a cache.
    c.header("Cache-Control", "no-store");
    return stream(
      c,
      async (out) => {
        const summary = await exportDatabase(database.db, async (text) => {
          await out.write(text);
        });
        log.info({ by, tables: summary.tables }, "database exported");
      },
      async (error) => {
        // The status line is gone; the body ends without its closing "}}", which every reader
        // of the format (conveyor export included) reports as a cut-off export.
        log.error({ err: error, by }, "database export failed");
      },
    );
  });

  routes.post("/admin/import", heavy, async (c) => {
    const by = c.get("principal").actor;
    const body = c.req.raw.body;
    if (!body) {
      return c.json(invalidRequest([{ path: "body", message: "expected an export file" }]), 422);
    }
    try {
      const summary = await importDatabase(database.db, readLines(body));
      log.info({ by, tables: summary.tables }, "database imported");
      deps.onTasksChanged?.();
      return c.json({ imported: true, ...summary });
    } catch (error) {
      if (!(error instanceof ImportError)) throw error;
      log.warn({ by, reason: error.message }, "database import refused");
      if (error.status === 409) return c.json({ error: error.message }, 409);
      return c.json(
        {
          error: `invalid export: ${error.message}`,
          fields: [{ path: error.path ?? "body", message: error.message }],
        },
        422,
      );
    }
  });

  return routes;
}
