import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import { type Db, resultRows } from "../../db/client.ts";
import {
  renderAlertCleared,
  renderAlertIssueBody,
  renderAlertIssueTitle,
  renderAlertReminder,
} from "../core/alert-issue.ts";
import {
  type ActiveTask,
  type AlertDecision,
  type AlertFacts,
  decideAlert,
  evaluateAlerts,
  evaluateCondition,
  type RuleHistory,
} from "../core/alert-rules.ts";
import {
  ALERT_RULES,
  type AlertRule,
  type AlertSeverity,
  DEFAULT_SETTINGS,
  type Settings,
} from "../core/alert-settings.ts";
import type { AlertIssues, AlertIssueTarget } from "../core/ports.ts";
import {
  type AlertRow,
  alertHistory,
  alertsWithIssueWork,
  clearAlert,
  insertAlert,
  insertClearedAlert,
  markAlertIssueClosed,
  refireAlert,
  setAlertIssue,
  updateAlertFigures,
} from "../store/alerts.ts";
import { countErrors, countWebhookFailures } from "../store/error-events.ts";
import { tryAcquireLease } from "../store/leases.ts";
import {
  activeTasks,
  countOutcomes,
  countRunners,
  firstEventIdSince,
  readSamples,
} from "../store/metrics.ts";
import { readSettings } from "../store/settings.ts";
import { SAMPLE_METRICS } from "./metrics-sampler.ts";

export interface AlerterDeps {
  db: Db;
  logger: Logger;
  instanceId: string;
  /** Throws when the database does not answer (bounded by `pingTimeoutMs`). */
  ping: () => Promise<void>;
  /** Absent without a GitHub App: alerts then go to the log and the API only. */
  issues?: AlertIssues | undefined;
  /** Protocol timings: a task's last sign of life is its lease end minus these. */
  timings: { leaseMs: number; acceptMs: number };
  /** How recently a runner's socket must have been seen for it to count as online. */
  onlineWindowMs: number;
  /** The sampler's interval: how far back the queue-depth samples for a check may reach. */
  sampleIntervalMs: number;
  checkIntervalMs: number;
  now?: () => number;
  pingTimeoutMs?: number;
  /** Alerts fired, reminded or cleared (for `conveyor_alert_notifications_total`). */
  notified?: (
    rule: AlertRule,
    severity: AlertSeverity,
    kind: "fired" | "reminded" | "cleared",
  ) => void;
  /** Something changed: dashboards may refresh. */
  onChange?: () => void;
  /** An error worth counting (GitHub refused an alert issue …). */
  recordError?: (source: string, error: unknown) => void;
}

/** An alert this instance holds in memory because the database cannot store it. */
export interface LocalAlert {
  rule: "database_unavailable";
  severity: AlertSeverity;
  status: "firing";
  message: string;
  details: Record<string, unknown>;
  firstFiredAt: Date;
  lastFiredAt: Date;
  fireCount: number;
  githubIssueNumber: number | null;
  instanceId: string;
}

export interface CheckReport {
  database: "up" | "down";
  /** False when another instance holds the alerter's lease (only the database rule ran here). */
  evaluated: boolean;
  decisions: AlertDecision[];
}

const LEASE = "alerter";

/**
 * The alerter. Every check (30 s after a 30 s start-up delay) pings the database on every
 * instance; the instance holding the lease then gathers the facts, lets the core decide rule by
 * rule, stores the outcome in `alerts`, logs it, and keeps the GitHub issues in step. Settings are
 * read at every check, so a threshold changed through the API counts at the next one.
 *
 * "Database unavailable" cannot be stored while it holds: each instance keeps it in memory, shows
 * it through the API and the log (and an issue, if it can), and writes it as history once the
 * database answers again.
 */
export function createAlerter(deps: AlerterDeps) {
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: "alerter" });
  const pingTimeoutMs = deps.pingTimeoutMs ?? 5_000;
  const leaseMs = Math.max(60_000, deps.checkIntervalMs * 3);
  let settings: Settings = DEFAULT_SETTINGS;
  let lastProblems = "";
  let failedPings = 0;
  let lastPingError: string | undefined;
  let local: LocalAlert | undefined;
  let localHistory: RuleHistory = {};
  // Where alert issues go, remembered so an issue can be opened while the database is down.
  let issueTarget: (AlertIssueTarget & { repositoryId: number }) | undefined;
  let missingTarget: string | undefined;

  async function pingDatabase(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        deps.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${pingTimeoutMs} ms`)),
            pingTimeoutMs,
          );
        }),
      ]);
      return true;
    } catch (error) {
      lastPingError = (error as Error).message || String(error);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The database rule, decided on this instance alone with its in-memory history. */
  async function checkDatabase(up: boolean): Promise<AlertDecision> {
    failedPings = up ? 0 : failedPings + 1;
    const at = now();
    const facts: AlertFacts = {
      database: { failedChecks: failedPings, lastError: up ? undefined : lastPingError },
    };
    const rule = "database_unavailable";
    const decision = decideAlert(
      rule,
      evaluateCondition(rule, facts, settings.alerts, at),
      localHistory,
      settings.alerts,
      at,
    );
    if (decision.kind === "fire" || decision.kind === "refire") {
      local = {
        rule,
        severity: decision.severity,
        status: "firing",
        message: decision.message,
        details: decision.details,
        firstFiredAt: local?.firstFiredAt ?? new Date(at),
        lastFiredAt: new Date(at),
        fireCount: (local?.fireCount ?? 0) + 1,
        githubIssueNumber: local?.githubIssueNumber ?? null,
        instanceId: deps.instanceId,
      };
      localHistory = {
        lastFiredAt: at,
        firing: {
          alertId: 0,
          severity: decision.severity,
          message: decision.message,
          lastFiredAt: at,
          acknowledged: false,
        },
      };
      announce(decision);
      await mirrorLocal(decision.kind);
    } else if (decision.kind === "update" && local) {
      local = { ...local, message: decision.message, details: decision.details };
    } else if (decision.kind === "clear" && local) {
      const ended = local;
      local = undefined;
      localHistory = { lastFiredAt: localHistory.lastFiredAt };
      announce(decision, ended.severity);
      // The database answers again: keep the outage as history, and close its issue.
      try {
        const row = await insertClearedAlert(deps.db, {
          rule,
          severity: ended.severity,
          message: ended.message,
          details: { ...ended.details, instance: deps.instanceId },
          at: ended.firstFiredAt,
          clearedAt: new Date(at),
          fireCount: ended.fireCount,
          clearedReason: decision.reason,
        });
        if (row && ended.githubIssueNumber !== null && issueTarget) {
          await setAlertIssue(deps.db, row.alertId, {
            repositoryId: issueTarget.repositoryId,
            issueNumber: ended.githubIssueNumber,
          });
        }
      } catch (error) {
        log.warn({ err: error }, "could not store the database outage as history");
      }
      if (ended.githubIssueNumber !== null && issueTarget && deps.issues) {
        await deps.issues
          .close(
            issueTarget,
            ended.githubIssueNumber,
            renderAlertCleared({ clearedAt: new Date(at), reason: decision.reason }),
          )
          .catch((error: unknown) => log.warn({ err: error }, "closing the alert issue failed"));
      }
      deps.onChange?.();
    }
    return decision;
  }

  /** Best effort while the database is down: the issue uses only what is remembered. */
  async function mirrorLocal(kind: "fire" | "refire") {
    if (!local || !deps.issues || !issueTarget || !settings.alerts.github_issues.enabled) return;
    try {
      if (local.githubIssueNumber === null) {
        // No row exists yet, so alert id 0: every instance that loses the database finds and
        // shares the one open outage issue instead of opening its own.
        local.githubIssueNumber = await deps.issues.open(issueTarget, 0, {
          title: renderAlertIssueTitle(local),
          body: renderAlertIssueBody({
            alertId: 0,
            rule: local.rule,
            severity: local.severity,
            message: `${local.message} (seen from ${deps.instanceId})`,
            firedAt: local.firstFiredAt,
          }),
        });
      } else if (kind === "refire") {
        await deps.issues.comment(
          issueTarget,
          local.githubIssueNumber,
          renderAlertReminder({
            message: local.message,
            fireCount: local.fireCount,
            firedAt: local.lastFiredAt,
          }),
        );
      }
    } catch (error) {
      log.warn({ err: error }, "could not mirror the database alert on GitHub");
    }
  }

  function announce(decision: AlertDecision, clearedSeverity?: AlertSeverity) {
    switch (decision.kind) {
      case "fire":
      case "refire": {
        const fields = {
          rule: decision.rule,
          severity: decision.severity,
          message: decision.message,
          details: decision.details,
        };
        const text = decision.kind === "fire" ? "alert fired" : "alert still firing";
        if (decision.severity === "critical") log.error(fields, text);
        else log.warn(fields, text);
        deps.notified?.(
          decision.rule,
          decision.severity,
          decision.kind === "fire" ? "fired" : "reminded",
        );
        break;
      }
      case "clear":
        log.info({ rule: decision.rule, reason: decision.reason }, "alert cleared");
        deps.notified?.(decision.rule, clearedSeverity ?? "warning", "cleared");
        break;
      default:
        break;
    }
  }

  async function gatherFacts(at: number): Promise<AlertFacts> {
    const a = settings.alerts;
    const q = a.queue_growing;
    // Enough samples for either reading, from a bounded stretch of time: stale samples from a
    // sampler that stopped must not keep the rule firing.
    const needed = Math.max(q.growing_checks, q.stable_checks) + 1;
    const since = new Date(at - (needed + 2) * deps.sampleIntervalMs);
    const depth = (await readSamples(deps.db, SAMPLE_METRICS.queueDepth, "", since)).slice(-needed);
    const fromEvent = await firstEventIdSince(
      deps.db,
      new Date(at - a.failure_rate.window_minutes * 60_000),
    );
    const [outcomes, tasks, runners, errors, webhooks] = await Promise.all([
      countOutcomes(deps.db, fromEvent),
      activeTasks(deps.db),
      countRunners(deps.db, new Date(at - deps.onlineWindowMs)),
      countErrors(deps.db, new Date(at - 60 * 60_000)),
      countWebhookFailures(deps.db, new Date(at - a.webhook_failures.window_minutes * 60_000)),
    ]);
    return {
      queueDepth: depth,
      attempts: { total: outcomes.attempts, failed: outcomes.failedAttempts },
      activeTasks: tasks.map(
        (t): ActiveTask => ({
          taskId: t.taskId,
          repo: t.repo,
          issueNumber: t.issueNumber,
          state: t.state,
          // The lease is renewed to "heartbeat + lease" (or set to "assignment + accept window").
          lastSignAt:
            t.leaseExpiresAt === null
              ? t.updatedAt
              : t.leaseExpiresAt -
                (t.state === "running" ? deps.timings.leaseMs : deps.timings.acceptMs),
        }),
      ),
      runners: { registered: runners.registered, online: runners.online },
      errors: { lastHour: errors.total, bySource: errors.bySource },
      webhookFailures: webhooks,
    };
  }

  /** The installed repository alert issues go to, or undefined (with a warning) if there is none. */
  async function resolveTarget(): Promise<typeof issueTarget> {
    const wanted = settings.alerts.github_issues.repository;
    if (!wanted) return undefined;
    const [row] = resultRows<{ repository_id: number; installation_id: number; full_name: string }>(
      await deps.db.execute(sql`
        select repository_id, installation_id, full_name from repositories
        where lower(full_name) = lower(${wanted}) and removed_at is null
        limit 1`),
    );
    if (!row) {
      // Once per repository name, not at every check.
      if (missingTarget !== wanted) {
        log.warn(
          { repo: wanted },
          "alert issues: the repository is not installed; no issue written",
        );
      }
      missingTarget = wanted;
      return undefined;
    }
    missingTarget = undefined;
    return {
      repositoryId: Number(row.repository_id),
      installationId: Number(row.installation_id),
      fullName: row.full_name,
    };
  }

  async function targetForRow(row: AlertRow): Promise<AlertIssueTarget | undefined> {
    if (!row.githubRepositoryId) return undefined;
    if (issueTarget?.repositoryId === row.githubRepositoryId) return issueTarget;
    const [repo] = resultRows<{ installation_id: number; full_name: string }>(
      await deps.db.execute(sql`
        select installation_id, full_name from repositories
        where repository_id = ${row.githubRepositoryId}`),
    );
    return repo
      ? { installationId: Number(repo.installation_id), fullName: repo.full_name }
      : undefined;
  }

  async function openIssue(row: AlertRow) {
    if (!deps.issues || !issueTarget) return;
    const number = await deps.issues.open(issueTarget, row.alertId, {
      title: renderAlertIssueTitle({
        rule: row.rule as AlertRule,
        severity: row.severity,
        message: row.message,
      }),
      body: renderAlertIssueBody({
        alertId: row.alertId,
        rule: row.rule as AlertRule,
        severity: row.severity,
        message: row.message,
        firedAt: row.firstFiredAt,
      }),
    });
    await setAlertIssue(deps.db, row.alertId, {
      repositoryId: issueTarget.repositoryId,
      issueNumber: number,
    });
    log.info(
      { rule: row.rule, repo: issueTarget.fullName, issueNumber: number },
      "alert issue opened",
    );
  }

  /** Applies one decision to the table; returns the row it touched, if any. */
  async function apply(decision: AlertDecision, at: Date): Promise<AlertRow | undefined> {
    switch (decision.kind) {
      case "fire":
        return insertAlert(deps.db, { ...decision, at });
      case "refire":
        return refireAlert(deps.db, decision.alertId, { ...decision, at });
      case "update":
        await updateAlertFigures(deps.db, decision.alertId, decision);
        return undefined;
      case "clear":
        return clearAlert(deps.db, decision.alertId, at, decision.reason);
      case "none":
        return undefined;
    }
  }

  /** Keeps the GitHub issues in step with the rows (also repairs what an earlier check missed). */
  async function mirror(touched: { decision: AlertDecision; row: AlertRow }[], at: Date) {
    if (!deps.issues) return;
    const enabled = settings.alerts.github_issues.enabled;
    issueTarget = enabled ? await resolveTarget() : undefined;
    const guard = async (what: string, rule: string, action: () => Promise<void>) => {
      try {
        await action();
      } catch (error) {
        log.warn({ err: error, rule }, `alert issue: ${what} failed; retried at the next check`);
        deps.recordError?.("alerter", error);
      }
    };
    for (const { decision, row } of touched) {
      if (decision.kind === "refire" && row.githubIssueNumber) {
        const target = await targetForRow(row);
        if (target) {
          await guard("comment", row.rule, () =>
            deps.issues!.comment(
              target,
              row.githubIssueNumber!,
              renderAlertReminder({
                message: row.message,
                fireCount: row.fireCount,
                firedAt: at,
              }),
            ),
          );
        }
      }
    }
    const work = await alertsWithIssueWork(deps.db);
    if (enabled && issueTarget) {
      for (const row of work.toOpen) await guard("open", row.rule, () => openIssue(row));
    }
    // Closing does not depend on issues being on now: an issue that was opened gets closed.
    for (const row of work.toClose) {
      const target = await targetForRow(row);
      if (!target) {
        await markAlertIssueClosed(deps.db, row.alertId);
        continue;
      }
      await guard("close", row.rule, async () => {
        await deps.issues!.close(
          target,
          row.githubIssueNumber!,
          renderAlertCleared({
            clearedAt: row.clearedAt ?? at,
            reason: String(
              (row.details as { cleared_reason?: string }).cleared_reason ?? "the condition ended",
            ),
          }),
        );
        await markAlertIssueClosed(deps.db, row.alertId);
      });
    }
  }

  return {
    /** One check at `now()`; tests call it directly with a moved clock. */
    async checkOnce(): Promise<CheckReport> {
      const up = await pingDatabase();
      if (up) {
        try {
          const read = await readSettings(deps.db);
          settings = read.settings;
          const problems = JSON.stringify(read.problems);
          if (read.problems.length && problems !== lastProblems) {
            log.warn(
              { problems: read.problems },
              "stored settings are invalid; defaults used for them",
            );
          }
          lastProblems = problems;
        } catch (error) {
          log.warn({ err: error }, "could not read settings; the last ones are used");
        }
      }
      const dbDecision = await checkDatabase(up);
      if (!up) return { database: "down", evaluated: false, decisions: [dbDecision] };
      if (!(await tryAcquireLease(deps.db, LEASE, deps.instanceId, leaseMs))) {
        return { database: "up", evaluated: false, decisions: [dbDecision] };
      }
      const at = now();
      const facts = await gatherFacts(at);
      const history = await alertHistory(deps.db);
      const decisions = evaluateAlerts({
        facts,
        settings: settings.alerts,
        history,
        now: at,
        rules: ALERT_RULES.filter((r) => r !== "database_unavailable"),
      });
      const touched: { decision: AlertDecision; row: AlertRow }[] = [];
      for (const decision of decisions) {
        const row = await apply(decision, new Date(at));
        // A fire that found a firing row lost a race with another instance: nothing to announce.
        if (row) {
          touched.push({ decision, row });
          announce(decision, row.severity);
        }
      }
      await mirror(touched, new Date(at));
      if (touched.length || decisions.some((d) => d.kind === "update")) deps.onChange?.();
      return { database: "up", evaluated: true, decisions: [...decisions, dbDecision] };
    },

    /** Alerts only this instance knows (the database is down). */
    localAlerts(): LocalAlert[] {
      return local ? [local] : [];
    },
  };
}
