import { and, desc, eq, isNotNull, isNull, sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { alerts } from "../../db/schema.ts";
import type { RuleHistory } from "../core/alert-rules.ts";
import type { AlertRule, AlertSeverity } from "../core/alert-settings.ts";

/*
 * Alert rows: at most one `firing` row per rule (a partial unique index decides, so two instances
 * racing to fire the same rule make one alert); cleared rows stay as history.
 */

export type AlertRow = typeof alerts.$inferSelect;

/**
 * New figures over the stored details: each rule's figures keep their keys from check to check, and
 * the issue bookkeeping kept beside them (`github_issue_closed`) survives.
 */
const mergeDetails = (details: Record<string, unknown>) =>
  sql`${alerts.details} || ${JSON.stringify(details)}::jsonb`;

/** The firing alert of each rule and when each rule last fired: the alerter's memory. */
export async function alertHistory(db: Db): Promise<Partial<Record<AlertRule, RuleHistory>>> {
  const firing = await db.select().from(alerts).where(eq(alerts.status, "firing"));
  const last = resultRows<{ rule: string; last_ms: number }>(
    await db.execute(sql`
      select rule, extract(epoch from max(last_fired_at))::float8 * 1000 as last_ms
      from alerts group by rule`),
  );
  const history: Partial<Record<AlertRule, RuleHistory>> = {};
  for (const row of last) {
    history[row.rule as AlertRule] = { lastFiredAt: Number(row.last_ms) };
  }
  for (const row of firing) {
    const rule = row.rule as AlertRule;
    history[rule] = {
      ...history[rule],
      firing: {
        alertId: row.alertId,
        severity: row.severity,
        message: row.message,
        lastFiredAt: row.lastFiredAt.getTime(),
        acknowledged: row.acknowledgedAt !== null,
      },
    };
  }
  return history;
}

export interface NewAlert {
  rule: AlertRule;
  severity: AlertSeverity;
  message: string;
  details: Record<string, unknown>;
  at: Date;
}

/** Opens an alert; undefined when the rule already has a firing one (another instance won). */
export async function insertAlert(db: Db, alert: NewAlert): Promise<AlertRow | undefined> {
  const [row] = await db
    .insert(alerts)
    .values({
      rule: alert.rule,
      severity: alert.severity,
      message: alert.message,
      details: alert.details,
      firstFiredAt: alert.at,
      lastFiredAt: alert.at,
    })
    .onConflictDoNothing()
    .returning();
  return row;
}

/** A reminder: the alert fired again while still firing. */
export async function refireAlert(
  db: Db,
  alertId: number,
  alert: Omit<NewAlert, "rule">,
): Promise<AlertRow | undefined> {
  const [row] = await db
    .update(alerts)
    .set({
      severity: alert.severity,
      message: alert.message,
      details: mergeDetails(alert.details),
      lastFiredAt: alert.at,
      fireCount: sql`${alerts.fireCount} + 1`,
    })
    .where(and(eq(alerts.alertId, alertId), eq(alerts.status, "firing")))
    .returning();
  return row;
}

/** New figures for a firing alert, without telling anyone again. */
export async function updateAlertFigures(
  db: Db,
  alertId: number,
  figures: { message: string; details: Record<string, unknown> },
): Promise<void> {
  await db
    .update(alerts)
    .set({ message: figures.message, details: mergeDetails(figures.details) })
    .where(and(eq(alerts.alertId, alertId), eq(alerts.status, "firing")));
}

export async function clearAlert(
  db: Db,
  alertId: number,
  at: Date,
  reason: string,
): Promise<AlertRow | undefined> {
  const [row] = await db
    .update(alerts)
    .set({
      status: "cleared",
      clearedAt: at,
      details: sql`${alerts.details} || ${JSON.stringify({ cleared_reason: reason })}::jsonb`,
    })
    .where(and(eq(alerts.alertId, alertId), eq(alerts.status, "firing")))
    .returning();
  return row;
}

/**
 * A past alert this instance could not store when it happened (the database was down): written
 * afterwards as history, already cleared.
 */
export async function insertClearedAlert(
  db: Db,
  alert: NewAlert & { clearedAt: Date; fireCount: number; clearedReason: string },
): Promise<AlertRow | undefined> {
  const [row] = await db
    .insert(alerts)
    .values({
      rule: alert.rule,
      severity: alert.severity,
      status: "cleared",
      message: alert.message,
      details: { ...alert.details, cleared_reason: alert.clearedReason },
      firstFiredAt: alert.at,
      lastFiredAt: alert.at,
      fireCount: alert.fireCount,
      clearedAt: alert.clearedAt,
    })
    .returning();
  return row;
}

export type AckResult =
  | { kind: "acknowledged"; alert: AlertRow }
  | { kind: "not_found" }
  | { kind: "cleared"; alert: AlertRow };

/** Acknowledges a firing alert (idempotent: a second ack keeps the first one's time and name). */
export async function acknowledgeAlert(
  db: Db,
  alertId: number,
  by: string,
  at: Date,
): Promise<AckResult> {
  const [updated] = await db
    .update(alerts)
    .set({ acknowledgedAt: at, acknowledgedBy: by })
    .where(
      and(eq(alerts.alertId, alertId), eq(alerts.status, "firing"), isNull(alerts.acknowledgedAt)),
    )
    .returning();
  if (updated) return { kind: "acknowledged", alert: updated };
  const [row] = await db.select().from(alerts).where(eq(alerts.alertId, alertId));
  if (!row) return { kind: "not_found" };
  return row.status === "firing"
    ? { kind: "acknowledged", alert: row }
    : { kind: "cleared", alert: row };
}

/** Every firing alert and the most recent others, newest first. */
export async function listAlerts(
  db: Db,
  recent: number,
): Promise<{ firing: AlertRow[]; recent: AlertRow[] }> {
  const firing = await db
    .select()
    .from(alerts)
    .where(eq(alerts.status, "firing"))
    .orderBy(desc(alerts.lastFiredAt));
  const others = await db
    .select()
    .from(alerts)
    .where(eq(alerts.status, "cleared"))
    .orderBy(desc(alerts.lastFiredAt), desc(alerts.alertId))
    .limit(recent);
  return { firing, recent: others };
}

/** A version of the alerts table that changes whenever any alert does: cheap polling (ETag). */
export async function alertsVersion(db: Db): Promise<string> {
  const [row] = resultRows<{ version: string | null }>(
    await db.execute(sql`
      select coalesce(max(alert_id), 0)::text || '-' || count(*)::text || '-' ||
             coalesce(extract(epoch from max(greatest(last_fired_at, cleared_at,
               acknowledged_at)))::text, '0') || '-' ||
             coalesce(sum(fire_count), 0)::text || '-' ||
             md5(coalesce(string_agg(message, '|' order by alert_id)
               filter (where status = 'firing'), '')) as version
      from alerts`),
  );
  return row?.version ?? "0";
}

/** The GitHub issue that mirrors the alert. */
export async function setAlertIssue(
  db: Db,
  alertId: number,
  issue: { repositoryId: number; issueNumber: number },
): Promise<void> {
  await db
    .update(alerts)
    .set({ githubRepositoryId: issue.repositoryId, githubIssueNumber: issue.issueNumber })
    .where(eq(alerts.alertId, alertId));
}

/** The alert's issue is closed (kept in details: the table has no column for it). */
export async function markAlertIssueClosed(db: Db, alertId: number): Promise<void> {
  await db
    .update(alerts)
    .set({ details: sql`${alerts.details} || '{"github_issue_closed": true}'::jsonb` })
    .where(eq(alerts.alertId, alertId));
}

/**
 * Alerts whose GitHub issue is behind: firing without an issue (the open failed or issues were
 * switched on), and cleared with an issue still open (the close failed).
 */
export async function alertsWithIssueWork(
  db: Db,
): Promise<{ toOpen: AlertRow[]; toClose: AlertRow[] }> {
  const toOpen = await db
    .select()
    .from(alerts)
    .where(and(eq(alerts.status, "firing"), isNull(alerts.githubIssueNumber)));
  const toClose = await db
    .select()
    .from(alerts)
    .where(
      and(
        eq(alerts.status, "cleared"),
        isNotNull(alerts.githubIssueNumber),
        sql`not coalesce((${alerts.details} ->> 'github_issue_closed')::boolean, false)`,
      ),
    )
    .limit(20);
  return { toOpen, toClose };
}
