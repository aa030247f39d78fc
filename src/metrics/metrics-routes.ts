import { sql } from "drizzle-orm";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import { z } from "zod";
import { type Db, resultRows } from "../../db/client.ts";
import type { SettingsFieldError } from "../core/alert-settings.ts";
import { getPrincipal } from "../http/admin-auth.ts";
import { parseJsonBody, smallBody } from "../http/validation.ts";
import type { LocalAlert } from "../loops/alerter.ts";
import { type AlertRow, acknowledgeAlert, alertsVersion, listAlerts } from "../store/alerts.ts";
import type { MetricsReport } from "./metrics-report.ts";

/** No fields: who acknowledged is the signed-in token or session, never what the body claims. */
const AckBody = z.strictObject({
  by: z
    .never({
      error: "the acknowledger is the token or session you signed in with; leave out `by`",
    })
    .optional(),
});

import { readSettings, updateSettings } from "../store/settings.ts";

export interface MetricsRoutesDeps {
  db: Db;
  logger: Logger;
  /** Prometheus text of this server's registry. */
  scrape: () => Promise<string>;
  contentType: string;
  report: { get(): Promise<{ report: MetricsReport; etag: string }> };
  /** Alerts held in memory by this instance (the database is down). */
  localAlerts?: () => LocalAlert[];
  /** `read` guards every GET, `admin` every change. */
  auth: { read: MiddlewareHandler; admin: MiddlewareHandler };
  now?: () => Date;
  /** An alert was acknowledged or settings changed (live views refresh). */
  onChange?: (topic: "alerts" | "settings") => void;
}

/** An alert as the API shows it. */
export interface AlertJson {
  id: number | null;
  rule: string;
  severity: string;
  status: string;
  message: string;
  details: Record<string, unknown>;
  first_fired_at: string;
  last_fired_at: string;
  fire_count: number;
  cleared_at: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  github_issue: { repository: string | null; number: number } | null;
  /** Set for an alert only one instance knows about (it could not store it). */
  instance?: string;
}

function alertJson(row: AlertRow, repositories: Map<number, string>): AlertJson {
  return {
    id: row.alertId,
    rule: row.rule,
    severity: row.severity,
    status: row.status,
    message: row.message,
    details: row.details as Record<string, unknown>,
    first_fired_at: row.firstFiredAt.toISOString(),
    last_fired_at: row.lastFiredAt.toISOString(),
    fire_count: row.fireCount,
    cleared_at: row.clearedAt?.toISOString() ?? null,
    acknowledged_at: row.acknowledgedAt?.toISOString() ?? null,
    acknowledged_by: row.acknowledgedBy,
    github_issue:
      row.githubIssueNumber === null
        ? null
        : {
            repository: repositories.get(row.githubRepositoryId ?? 0) ?? null,
            number: row.githubIssueNumber,
          },
  };
}

function localJson(alert: LocalAlert): AlertJson {
  return {
    id: null,
    rule: alert.rule,
    severity: alert.severity,
    status: alert.status,
    message: alert.message,
    details: alert.details,
    first_fired_at: alert.firstFiredAt.toISOString(),
    last_fired_at: alert.lastFiredAt.toISOString(),
    fire_count: alert.fireCount,
    cleared_at: null,
    acknowledged_at: null,
    acknowledged_by: null,
    github_issue:
      alert.githubIssueNumber === null
        ? null
        : { repository: null, number: alert.githubIssueNumber },
    instance: alert.instanceId,
  };
}

const invalid = (fields: SettingsFieldError[]) => ({
  error: `invalid settings: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`,
  fields,
});

/** Answers 304 when the client already has this version. */
function notModified(c: Context, etag: string): Response | undefined {
  c.header("ETag", etag);
  // Pollers revalidate every time; the ETag makes an unchanged answer a bodiless 304.
  c.header("Cache-Control", "no-cache");
  const seen = c.req.header("if-none-match");
  if (seen?.split(",").some((tag) => tag.trim() === etag)) {
    return c.body(null, 304);
  }
  return undefined;
}

/**
 * `/metrics` (Prometheus text, unauthenticated as usual for scrapers: restrict it at the network
 * or proxy), and the JSON API for metrics, alerts and settings. GETs need `auth.read`, changes
 * `auth.admin`; the middlewares are per route, so mounting this at `/` takes in nothing else.
 */
export function createMetricsRoutes(deps: MetricsRoutesDeps): Hono {
  const routes = new Hono();
  const { auth } = deps;
  const logger = deps.logger.child({ component: "metrics-api" });
  const now = deps.now ?? (() => new Date());

  routes.get("/metrics", async (c) => {
    const text = await deps.scrape();
    return c.body(text, 200, { "Content-Type": deps.contentType });
  });

  routes.get("/api/metrics", auth.read, async (c) => {
    const { report, etag } = await deps.report.get();
    return notModified(c, etag) ?? c.json(report);
  });

  routes.get("/api/alerts", auth.read, async (c) => {
    const raw = c.req.query("recent");
    const recent = raw === undefined ? 50 : Number(raw);
    if (!Number.isInteger(recent) || recent < 0 || recent > 500) {
      return c.json(
        {
          error: "invalid query: recent: expected a whole number 0–500",
          fields: [{ path: "recent", message: "expected a whole number 0–500" }],
        },
        422,
      );
    }
    const local = (deps.localAlerts?.() ?? []).map(localJson);
    let listed: Awaited<ReturnType<typeof listAlerts>>;
    let version: string;
    try {
      [listed, version] = await Promise.all([listAlerts(deps.db, recent), alertsVersion(deps.db)]);
    } catch (error) {
      // The alert that matters most then is the database's own, which this instance holds.
      logger.warn(
        { err: error },
        "alerts API: database unavailable; showing this instance's alerts",
      );
      return c.json(
        { firing: local, recent: [], database: "unavailable" },
        local.length ? 200 : 503,
      );
    }
    const ids = [...listed.firing, ...listed.recent]
      .map((a) => a.githubRepositoryId)
      .filter((id): id is number => id !== null);
    const names = new Map<number, string>();
    if (ids.length) {
      const rows = resultRows<{ repository_id: number; full_name: string }>(
        await deps.db.execute(sql`
          select repository_id, full_name from repositories
          where repository_id in (${sql.join(
            [...new Set(ids)].map((id) => sql`${id}`),
            sql`, `,
          )})`),
      );
      for (const r of rows) names.set(Number(r.repository_id), r.full_name);
    }
    const etag = `"${version}-${recent}-${local.map((a) => `${a.last_fired_at}/${a.fire_count}`).join(",")}"`;
    return (
      notModified(c, etag) ??
      c.json({
        firing: [...local, ...listed.firing.map((a) => alertJson(a, names))],
        recent: listed.recent.map((a) => alertJson(a, names)),
      })
    );
  });

  routes.post(
    "/api/alerts/:id/ack",
    auth.admin,
    bodyLimit({
      maxSize: 4 * 1024,
      onError: (c) => c.json({ error: "request body over 4 KiB" }, 413),
    }),
    async (c) => {
      const id = Number(c.req.param("id"));
      if (!Number.isSafeInteger(id) || id < 1) {
        return c.json(
          {
            error: "expected an alert id",
            fields: [{ path: "id", message: "expected a positive whole number" }],
          },
          422,
        );
      }
      const parsed = await parseJsonBody(c, AckBody);
      if (!parsed.ok) return parsed.response;
      // Who acknowledged: the token or session the request signed in with (auth.admin ran).
      const by = getPrincipal(c)?.actor ?? "api";
      const result = await acknowledgeAlert(deps.db, id, by, now());
      if (result.kind === "not_found") return c.json({ error: `no alert ${id}` }, 404);
      if (result.kind === "cleared") {
        return c.json(
          { error: `alert ${id} has already cleared; there is nothing to acknowledge` },
          409,
        );
      }
      logger.info({ alertId: id, rule: result.alert.rule, by }, "alert acknowledged");
      deps.onChange?.("alerts");
      return c.json(alertJson(result.alert, new Map()));
    },
  );

  routes.get("/api/settings", auth.read, async (c) => {
    const { settings } = await readSettings(deps.db);
    return c.json(settings);
  });

  routes.put("/api/settings", auth.admin, smallBody, async (c) => {
    let patch: unknown;
    try {
      patch = await c.req.json();
    } catch {
      return c.json(invalid([{ path: "body", message: "expected a JSON object" }]), 422);
    }
    const touchesIssues = Boolean(
      (patch as { alerts?: { github_issues?: unknown } } | null)?.alerts?.github_issues,
    );
    const result = await updateSettings(deps.db, patch, async (settings, tx) => {
      const issues = settings.alerts.github_issues;
      if (!touchesIssues || !issues.repository) return [];
      const [row] = resultRows<{ full_name: string }>(
        await tx.execute(sql`
            select full_name from repositories
            where lower(full_name) = lower(${issues.repository}) and removed_at is null`),
      );
      return row
        ? []
        : [
            {
              path: "alerts.github_issues.repository",
              message: `${issues.repository} is not a repository the App is installed on; install it there first`,
            },
          ];
    });
    if (!result.ok) return c.json(invalid(result.errors), 422);
    logger.info({ changed: result.changed }, "settings changed");
    deps.onChange?.("settings");
    return c.json(result.settings);
  });

  return routes;
}
