import {
  ALERT_RULES,
  type AlertRule,
  type AlertSettings,
  type AlertSeverity,
} from "./alert-settings.ts";
import { lastChangesAll, orderSamples, type Sample } from "./metrics-math.ts";
import { formatDuration } from "./task-machine.ts";

/**
 * The alerter's decisions. Each check gathers facts (from the database, or the instance itself for
 * the database rule), and this module decides, rule by rule, whether to fire a new alert, remind
 * of one still firing, update its figures quietly, clear it, or do nothing, and says why.
 */

/** A task that holds a runner slot, with the last time it showed life. */
export interface ActiveTask {
  taskId: string;
  repo: string;
  issueNumber: number;
  state: string;
  /** Milliseconds: the assignment, or the last heartbeat once the runner accepted. */
  lastSignAt: number;
}

/** What one check knows. Counts that could not be read are left out, and their rule holds. */
export interface AlertFacts {
  /** Tasks waiting (queued or in backoff) at each sample, any order; the newest ones matter. */
  queueDepth?: readonly Sample[];
  /** Attempts that ended in the failure window: all of them, and those that failed. */
  attempts?: { total: number; failed: number };
  activeTasks?: readonly ActiveTask[];
  runners?: { registered: number; online: number };
  /** Errors recorded in the last hour, and by where they happened. */
  errors?: { lastHour: number; bySource: Readonly<Record<string, number>> };
  /** Webhook deliveries whose handling failed, in the rule's window. */
  webhookFailures?: { count: number; lastMessage?: string | undefined };
  /** Failed database checks in a row on this instance (0 after a good one). */
  database?: { failedChecks: number; lastError?: string | undefined };
}

/** The firing alert of a rule, as stored. */
export interface FiringAlert {
  alertId: number;
  severity: AlertSeverity;
  message: string;
  /** Milliseconds. */
  lastFiredAt: number;
  acknowledged: boolean;
}

/** What happened with a rule before this check. */
export interface RuleHistory {
  firing?: FiringAlert | undefined;
  /** When the rule last fired or reminded (milliseconds), firing or since cleared. */
  lastFiredAt?: number | undefined;
}

export type Condition =
  | { status: "firing"; message: string; details: Record<string, unknown> }
  | { status: "clear"; reason: string }
  /** Between the fire and clear thresholds (hysteresis), or facts missing: stay as it is. */
  | { status: "hold"; reason: string };

export type AlertDecision =
  | {
      kind: "fire";
      rule: AlertRule;
      severity: AlertSeverity;
      message: string;
      details: Record<string, unknown>;
      reason: string;
    }
  | {
      kind: "refire";
      rule: AlertRule;
      alertId: number;
      severity: AlertSeverity;
      message: string;
      details: Record<string, unknown>;
      reason: string;
    }
  /** Still firing, figures changed, no one is told again (cooldown or acknowledged). */
  | {
      kind: "update";
      rule: AlertRule;
      alertId: number;
      message: string;
      details: Record<string, unknown>;
      reason: string;
    }
  | { kind: "clear"; rule: AlertRule; alertId: number; reason: string }
  | { kind: "none"; rule: AlertRule; reason: string };

const MINUTE = 60_000;
const count = (n: number) => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Whether the rule's condition holds now, with the message an operator reads. */
export function evaluateCondition(
  rule: AlertRule,
  facts: AlertFacts,
  settings: AlertSettings,
  now: number,
): Condition {
  switch (rule) {
    case "queue_growing": {
      const s = settings.queue_growing;
      if (!facts.queueDepth) return { status: "hold", reason: "queue depth unknown" };
      const samples = orderSamples(facts.queueDepth);
      if (lastChangesAll(samples, s.growing_checks, (d) => d > 0)) {
        const recent = samples.slice(-(s.growing_checks + 1));
        const from = recent[0]!.value;
        const to = recent.at(-1)!.value;
        return {
          status: "firing",
          message: `The queue grew at each of the last ${s.growing_checks} checks: ${from} → ${to} tasks waiting`,
          details: { depths: recent.map((r) => r.value), from, to },
        };
      }
      if (lastChangesAll(samples, s.stable_checks, (d) => d <= 0)) {
        return {
          status: "clear",
          reason: `the queue did not grow at the last ${plural(s.stable_checks, "check")}`,
        };
      }
      return {
        status: "hold",
        reason: `waiting for ${plural(s.stable_checks, "check")} in a row without growth`,
      };
    }
    case "failure_rate": {
      const s = settings.failure_rate;
      if (!facts.attempts) return { status: "hold", reason: "attempt counts unknown" };
      const total = count(facts.attempts.total);
      const failed = Math.min(count(facts.attempts.failed), total);
      if (total < s.min_attempts) {
        return {
          status: "clear",
          reason: `${plural(total, "attempt")} in ${s.window_minutes} min, fewer than the ${s.min_attempts} a rate needs`,
        };
      }
      const percent = (failed / total) * 100;
      if (percent > s.threshold_percent) {
        return {
          status: "firing",
          message: `${Math.round(percent)} % of attempts failed in the last ${s.window_minutes} min (${failed} of ${total}; threshold ${s.threshold_percent} %)`,
          details: { failed, total, percent: Math.round(percent * 10) / 10 },
        };
      }
      return {
        status: "clear",
        reason: `${Math.round(percent)} % failed, within ${s.threshold_percent} %`,
      };
    }
    case "stuck_task": {
      const s = settings.stuck_task;
      if (!facts.activeTasks) return { status: "hold", reason: "active tasks unknown" };
      const limit = s.minutes * MINUTE;
      const stuck = facts.activeTasks
        .filter((t) => Number.isFinite(t.lastSignAt) && now - t.lastSignAt > limit)
        .sort((a, b) => a.lastSignAt - b.lastSignAt);
      if (stuck.length === 0) {
        return { status: "clear", reason: `every active task showed life within ${s.minutes} min` };
      }
      const named = stuck
        .slice(0, 5)
        .map(
          (t) =>
            `${t.repo}#${t.issueNumber} (${t.state}, silent ${formatDuration(now - t.lastSignAt)})`,
        );
      const more = stuck.length > 5 ? ` and ${stuck.length - 5} more` : "";
      return {
        status: "firing",
        message: `${plural(stuck.length, "task")} without a heartbeat for over ${s.minutes} min: ${named.join(", ")}${more}`,
        details: {
          tasks: stuck.slice(0, 20).map((t) => ({
            task_id: t.taskId,
            repo: t.repo,
            issue_number: t.issueNumber,
            state: t.state,
            silent_seconds: Math.round((now - t.lastSignAt) / 1000),
          })),
          count: stuck.length,
        },
      };
    }
    case "no_runners_online": {
      if (!facts.runners) return { status: "hold", reason: "runner counts unknown" };
      const registered = count(facts.runners.registered);
      const online = count(facts.runners.online);
      if (registered > 0 && online === 0) {
        return {
          status: "firing",
          message: `No runner is online, though ${plural(registered, "runner is", "runners are")} registered: queued work waits`,
          details: { registered, online },
        };
      }
      return {
        status: "clear",
        reason:
          registered === 0 ? "no runners are registered" : `${plural(online, "runner")} online`,
      };
    }
    case "error_rate": {
      const s = settings.error_rate;
      if (!facts.errors) return { status: "hold", reason: "error count unknown" };
      const lastHour = count(facts.errors.lastHour);
      if (lastHour > s.max_per_hour) {
        const sources = Object.entries(facts.errors.bySource)
          .map(([source, n]) => [source, count(n)] as const)
          .filter(([, n]) => n > 0)
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
        const top = sources.slice(0, 5).map(([source, n]) => `${source} ${n}`);
        return {
          status: "firing",
          message: `${plural(lastHour, "error")} in the last hour (more than ${s.max_per_hour})${top.length ? `: ${top.join(", ")}` : ""}`,
          details: { last_hour: lastHour, by_source: Object.fromEntries(sources) },
        };
      }
      return {
        status: "clear",
        reason: `${plural(lastHour, "error")} in the last hour, within ${s.max_per_hour}`,
      };
    }
    case "webhook_failures": {
      const s = settings.webhook_failures;
      if (!facts.webhookFailures) return { status: "hold", reason: "webhook failures unknown" };
      const failures = count(facts.webhookFailures.count);
      if (failures > s.max_failures) {
        const last = facts.webhookFailures.lastMessage;
        return {
          status: "firing",
          message: `${plural(failures, "webhook delivery", "webhook deliveries")} failed in the last ${s.window_minutes} min${last ? `; last: ${last}` : ""}`,
          details: { failures, ...(last ? { last_message: last } : {}) },
        };
      }
      return {
        status: "clear",
        reason: `${plural(failures, "failed delivery", "failed deliveries")} in ${s.window_minutes} min`,
      };
    }
    case "database_unavailable": {
      const s = settings.database_unavailable;
      if (!facts.database) return { status: "hold", reason: "database not checked" };
      const failed = count(facts.database.failedChecks);
      if (failed === 0) return { status: "clear", reason: "the database answers" };
      if (failed < s.failed_checks) {
        return {
          status: "hold",
          reason: `${plural(failed, "failed check")} of ${s.failed_checks} before it fires`,
        };
      }
      const error = facts.database.lastError;
      return {
        status: "firing",
        message: `The database has not answered ${plural(failed, "check")} in a row${error ? `: ${error}` : ""}`,
        details: { failed_checks: failed, ...(error ? { error } : {}) },
      };
    }
  }
}

/**
 * Turns a rule's condition and history into a decision.
 *
 * - A new alert waits out the rule's cooldown after its last one, so a flapping condition does not
 *   open an alert every few checks; a critical one never waits.
 * - A firing alert is repeated (a reminder, a comment on its issue) once per cooldown while the
 *   condition holds, critical or not, so an outage is not commented on every 30 s; an acknowledged
 *   one is not repeated at all. Its figures are still updated quietly.
 * - A clock that stepped back (a last fire in the future) counts as inside the cooldown.
 */
export function decideAlert(
  rule: AlertRule,
  condition: Condition,
  history: RuleHistory,
  settings: AlertSettings,
  now: number,
): AlertDecision {
  const s = settings[rule];
  const firing = history.firing;
  if (!s.enabled) {
    return firing
      ? { kind: "clear", rule, alertId: firing.alertId, reason: "the rule was switched off" }
      : { kind: "none", rule, reason: "the rule is off" };
  }
  const cooldownMs = s.cooldown_minutes * MINUTE;
  const sinceLast = (at: number | undefined) =>
    at === undefined || !Number.isFinite(at) ? Number.POSITIVE_INFINITY : Math.max(0, now - at);
  const inCooldown = (at: number | undefined) =>
    at !== undefined && Number.isFinite(at) && (at > now || sinceLast(at) < cooldownMs);

  if (condition.status === "hold") return { kind: "none", rule, reason: condition.reason };
  if (condition.status === "clear") {
    return firing
      ? { kind: "clear", rule, alertId: firing.alertId, reason: condition.reason }
      : { kind: "none", rule, reason: condition.reason };
  }

  const { message, details } = condition;
  if (firing) {
    const quiet = (reason: string): AlertDecision =>
      firing.message === message
        ? { kind: "none", rule, reason }
        : { kind: "update", rule, alertId: firing.alertId, message, details, reason };
    if (firing.acknowledged) return quiet("acknowledged: no reminders until it clears");
    if (inCooldown(firing.lastFiredAt)) {
      const next = new Date(firing.lastFiredAt + cooldownMs).toISOString();
      return quiet(`still firing; next reminder after ${next} (cooldown)`);
    }
    return {
      kind: "refire",
      rule,
      alertId: firing.alertId,
      severity: s.severity,
      message,
      details,
      reason: `still firing after the ${s.cooldown_minutes} min cooldown`,
    };
  }
  const last = history.lastFiredAt;
  if (s.severity !== "critical" && inCooldown(last)) {
    return {
      kind: "none",
      rule,
      reason: `condition holds, but the rule fired at ${new Date(last!).toISOString()}, within its ${s.cooldown_minutes} min cooldown`,
    };
  }
  return {
    kind: "fire",
    rule,
    severity: s.severity,
    message,
    details,
    reason:
      s.severity === "critical" && inCooldown(last)
        ? "critical: fires despite the cooldown"
        : "condition holds",
  };
}

/** One check: every rule (or the ones named) evaluated and decided. */
export function evaluateAlerts(input: {
  facts: AlertFacts;
  settings: AlertSettings;
  history: Partial<Record<AlertRule, RuleHistory>>;
  now: number;
  rules?: readonly AlertRule[];
}): AlertDecision[] {
  return (input.rules ?? ALERT_RULES).map((rule) =>
    decideAlert(
      rule,
      evaluateCondition(rule, input.facts, input.settings, input.now),
      input.history[rule] ?? {},
      input.settings,
      input.now,
    ),
  );
}
