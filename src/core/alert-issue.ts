import type { AlertRule, AlertSeverity } from "./alert-settings.ts";

/**
 * The text of the GitHub issue that mirrors an alert (when alert issues are on): opened when the
 * alert fires, commented on when it fires again, closed with a comment when it clears.
 */

/** Label put on every alert issue, so Conveyor can find its own after a crash. */
export const ALERT_ISSUE_LABEL = "conveyor-alert";

/** Hidden marker that ties an issue to its alert row. */
export const alertIssueMarker = (alertId: number) => `<!-- conveyor-alert:${alertId} -->`;

/** What the operator should do, per rule: the same advice as docs/monitoring.md. */
export const ALERT_ADVICE: Record<AlertRule, string> = {
  queue_growing:
    "Work arrives faster than runners finish it. Check that runners are online and not failing (`GET /api/runners`, `conveyor_runners`), then add runners or slots.",
  failure_rate:
    "Most attempts fail. Read the recent failures (`conveyor tasks list`, the issues' status comments): a broken agent, an expired credential, or a repository whose verify commands fail.",
  stuck_task:
    "A runner holds a task but sends no heartbeats, and the sweep has not taken it back. Check that the dispatcher is running on some instance (`conveyor_runners_connected`, the logs) and the runner's host.",
  no_runners_online:
    "No runner is connected, so nothing queued will run. Start a runner (`conveyor-runner start`) or check the runners' network path and tokens.",
  error_rate:
    "Conveyor is recording many errors. The breakdown by source is in the alert details and `conveyor_errors_total`; the log has each error with its cause.",
  webhook_failures:
    "Webhook deliveries from GitHub failed to be handled. Find them under the App's advanced settings → Recent deliveries, fix the cause from the log, and redeliver them; the reconciler recovers labelled issues within minutes anyway.",
  database_unavailable:
    "The database does not answer. Check that PostgreSQL is up and reachable from this instance (`/readyz`), its connections and disk.",
};

const when = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, "Z");

export function renderAlertIssueTitle(alert: {
  rule: AlertRule;
  severity: AlertSeverity;
  message: string;
}): string {
  const text = `Conveyor alert (${alert.severity}): ${alert.rule.replaceAll("_", " ")} — ${alert.message}`;
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

export function renderAlertIssueBody(alert: {
  alertId: number;
  rule: AlertRule;
  severity: AlertSeverity;
  message: string;
  firedAt: Date;
}): string {
  return [
    `**${alert.severity === "critical" ? "🔴 Critical" : "🟠 Warning"}: \`${alert.rule}\`**`,
    "",
    alert.message,
    "",
    `Fired at ${when(alert.firedAt)} (alert ${alert.alertId}).`,
    "",
    `**What to do:** ${ALERT_ADVICE[alert.rule]}`,
    "",
    `Conveyor comments here when the alert fires again and closes this issue when it clears. Acknowledge it on the dashboard or with \`POST /api/alerts/${alert.alertId}/ack\` to stop the reminders; change its thresholds under \`alerts.${alert.rule}\` with \`PUT /api/settings\` (see docs/monitoring.md).`,
    "",
    alertIssueMarker(alert.alertId),
  ].join("\n");
}

export function renderAlertReminder(alert: {
  message: string;
  fireCount: number;
  firedAt: Date;
}): string {
  return `Still firing at ${when(alert.firedAt)} (${alert.fireCount} times so far): ${alert.message}`;
}

export function renderAlertCleared(alert: { clearedAt: Date; reason: string }): string {
  return `✅ Cleared at ${when(alert.clearedAt)}: ${alert.reason}.`;
}
