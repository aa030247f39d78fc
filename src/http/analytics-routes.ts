import { Hono } from "hono";
import { z } from "zod";
import type { Db } from "../../db/client.ts";
import { parseWindow } from "../core/outcome-analytics.ts";
import { readOutcomeReport } from "../store/analytics.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";
import { parseQuery } from "./validation.ts";

/** `?since=7d`: the window the analytics cover, ending now (default a week). */
export const AnalyticsQuery = z.strictObject({
  since: z
    .string()
    .default("7d")
    .transform((text, ctx) => {
      const window = parseWindow(text);
      if ("error" in window) {
        ctx.addIssue({ code: "custom", message: window.error });
        return z.NEVER;
      }
      return { text: text.trim(), ms: window.ms };
    }),
});

/**
 * `GET /api/analytics?since=7d` (read): outcomes per adapter + model and per runner, for the
 * attempts that ended in the window. The dashboard's panel and `conveyor report` read it.
 */
export function createAnalyticsRoutes(deps: { db: Db; auth: ApiAuth }): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  routes.get("/analytics", deps.auth.read, async (c) => {
    const query = parseQuery(c, AnalyticsQuery);
    if (!query.ok) return query.response;
    const report = await readOutcomeReport(deps.db, query.data.since.ms);
    return c.json({
      since: query.data.since.text,
      until: new Date().toISOString(),
      ...report,
    });
  });
  return routes;
}
