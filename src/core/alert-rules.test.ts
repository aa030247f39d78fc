import { describe, expect, it } from "vitest";
import {
  type AlertDecision,
  type AlertFacts,
  type Condition,
  decideAlert,
  evaluateAlerts,
  evaluateCondition,
  type RuleHistory,
} from "./alert-rules.ts";
import { type AlertRule, type AlertSettings, DEFAULT_SETTINGS } from "./alert-settings.ts";

const NOW = Date.parse("2026-11-25T12:00:00Z");
const MIN = 60_000;
const settings = DEFAULT_SETTINGS.alerts;
const depths = (...values: number[]) =>
  values.map((value, i) => ({ at: NOW - (values.length - 1 - i) * 30_000, value }));
const task = (silentMs: number, state = "running") => ({
  taskId: `t-${silentMs}`,
  repo: "acme/widgets",
  issueNumber: 7,
  state,
  lastSignAt: NOW - silentMs,
});
const cond = (rule: AlertRule, facts: AlertFacts, s: AlertSettings = settings) =>
  evaluateCondition(rule, facts, s, NOW);

describe("conditions", () => {
  it.each<{ name: string; rule: AlertRule; facts: AlertFacts; status: Condition["status"] }>([
    // Queue growth, with hysteresis: 3 increases fire, 3 without growth clear, else hold.
    {
      name: "3 increases",
      rule: "queue_growing",
      facts: { queueDepth: depths(1, 2, 3, 4) },
      status: "firing",
    },
    {
      name: "2 increases",
      rule: "queue_growing",
      facts: { queueDepth: depths(1, 2, 3) },
      status: "hold",
    },
    {
      name: "growth then a flat check",
      rule: "queue_growing",
      facts: { queueDepth: depths(1, 2, 3, 4, 4) },
      status: "hold",
    },
    {
      name: "3 flat checks",
      rule: "queue_growing",
      facts: { queueDepth: depths(4, 4, 4, 4) },
      status: "clear",
    },
    {
      name: "3 shrinking checks",
      rule: "queue_growing",
      facts: { queueDepth: depths(9, 5, 2, 0) },
      status: "clear",
    },
    {
      name: "an empty queue (0, 0, 0, 0)",
      rule: "queue_growing",
      facts: { queueDepth: depths(0, 0, 0, 0) },
      status: "clear",
    },
    { name: "no samples yet", rule: "queue_growing", facts: { queueDepth: [] }, status: "hold" },
    { name: "depth unknown", rule: "queue_growing", facts: {}, status: "hold" },
    // Failure rate over 50 %, once there are enough attempts to mean something.
    {
      name: "3 of 4 failed",
      rule: "failure_rate",
      facts: { attempts: { total: 4, failed: 3 } },
      status: "firing",
    },
    {
      name: "exactly 50 %",
      rule: "failure_rate",
      facts: { attempts: { total: 4, failed: 2 } },
      status: "clear",
    },
    {
      name: "3 of 3 failed (too few)",
      rule: "failure_rate",
      facts: { attempts: { total: 3, failed: 3 } },
      status: "clear",
    },
    {
      name: "more failures than attempts (corrupt)",
      rule: "failure_rate",
      facts: { attempts: { total: 4, failed: 40 } },
      status: "firing",
    },
    {
      name: "negative counts",
      rule: "failure_rate",
      facts: { attempts: { total: -4, failed: -3 } },
      status: "clear",
    },
    {
      name: "NaN counts",
      rule: "failure_rate",
      facts: { attempts: { total: Number.NaN, failed: 3 } },
      status: "clear",
    },
    // Stuck: over 5 min without a heartbeat.
    {
      name: "6 min silent",
      rule: "stuck_task",
      facts: { activeTasks: [task(6 * MIN)] },
      status: "firing",
    },
    {
      name: "exactly 5 min silent",
      rule: "stuck_task",
      facts: { activeTasks: [task(5 * MIN)] },
      status: "clear",
    },
    {
      name: "a heartbeat from the future (clock skew)",
      rule: "stuck_task",
      facts: { activeTasks: [task(-MIN)] },
      status: "clear",
    },
    {
      name: "a task with no time at all",
      rule: "stuck_task",
      facts: { activeTasks: [task(Number.NaN)] },
      status: "clear",
    },
    { name: "no active tasks", rule: "stuck_task", facts: { activeTasks: [] }, status: "clear" },
    // No runners online while some are registered.
    {
      name: "2 registered, 0 online",
      rule: "no_runners_online",
      facts: { runners: { registered: 2, online: 0 } },
      status: "firing",
    },
    {
      name: "2 registered, 1 online",
      rule: "no_runners_online",
      facts: { runners: { registered: 2, online: 1 } },
      status: "clear",
    },
    {
      name: "none registered",
      rule: "no_runners_online",
      facts: { runners: { registered: 0, online: 0 } },
      status: "clear",
    },
    // More than 10 errors an hour.
    {
      name: "11 errors",
      rule: "error_rate",
      facts: { errors: { lastHour: 11, bySource: { webhook: 11 } } },
      status: "firing",
    },
    {
      name: "10 errors",
      rule: "error_rate",
      facts: { errors: { lastHour: 10, bySource: {} } },
      status: "clear",
    },
    // Any failed webhook in 15 min.
    {
      name: "1 failed delivery",
      rule: "webhook_failures",
      facts: { webhookFailures: { count: 1 } },
      status: "firing",
    },
    {
      name: "no failed delivery",
      rule: "webhook_failures",
      facts: { webhookFailures: { count: 0 } },
      status: "clear",
    },
    // The database: 2 failed checks in a row.
    {
      name: "1 failed check",
      rule: "database_unavailable",
      facts: { database: { failedChecks: 1 } },
      status: "hold",
    },
    {
      name: "2 failed checks",
      rule: "database_unavailable",
      facts: { database: { failedChecks: 2 } },
      status: "firing",
    },
    {
      name: "a good check",
      rule: "database_unavailable",
      facts: { database: { failedChecks: 0 } },
      status: "clear",
    },
  ])("$rule: $name → $status", ({ rule, facts, status }) => {
    expect(cond(rule, facts).status).toBe(status);
  });

  it("says what is wrong in the message", () => {
    const growing = cond("queue_growing", { queueDepth: depths(2, 3, 5, 8) });
    expect(growing).toMatchObject({
      status: "firing",
      message: "The queue grew at each of the last 3 checks: 2 → 8 tasks waiting",
    });
    const stuck = cond("stuck_task", { activeTasks: [task(7 * MIN), task(MIN)] });
    expect(stuck).toMatchObject({
      message: "1 task without a heartbeat for over 5 min: acme/widgets#7 (running, silent 7 min)",
    });
    const errors = cond("error_rate", {
      errors: { lastHour: 12, bySource: { merger: 3, webhook: 9, none: 0 } },
    });
    expect(errors).toMatchObject({
      message: "12 errors in the last hour (more than 10): webhook 9, merger 3",
    });
    const failures = cond("failure_rate", { attempts: { total: 8, failed: 5 } });
    expect(failures).toMatchObject({
      message: "63 % of attempts failed in the last 60 min (5 of 8; threshold 50 %)",
    });
  });

  it("reads its thresholds from the settings", () => {
    const strict = { ...settings, error_rate: { ...settings.error_rate, max_per_hour: 2 } };
    expect(cond("error_rate", { errors: { lastHour: 3, bySource: {} } }, strict).status).toBe(
      "firing",
    );
    const patient = { ...settings, stuck_task: { ...settings.stuck_task, minutes: 30 } };
    expect(cond("stuck_task", { activeTasks: [task(10 * MIN)] }, patient).status).toBe("clear");
    const longer = {
      ...settings,
      queue_growing: { ...settings.queue_growing, growing_checks: 5 },
    };
    expect(cond("queue_growing", { queueDepth: depths(1, 2, 3, 4) }, longer).status).toBe("hold");
  });
});

const firing = (over: Partial<NonNullable<RuleHistory["firing"]>> = {}): RuleHistory => ({
  lastFiredAt: over.lastFiredAt ?? NOW - 2 * MIN,
  firing: {
    alertId: 9,
    severity: "warning",
    message: "old figures",
    lastFiredAt: NOW - 2 * MIN,
    acknowledged: false,
    ...over,
  },
});
const holds: Condition = { status: "firing", message: "new figures", details: { n: 1 } };
const clears: Condition = { status: "clear", reason: "all good" };
const between: Condition = { status: "hold", reason: "hysteresis" };
const decide = (rule: AlertRule, c: Condition, history: RuleHistory, s = settings) =>
  decideAlert(rule, c, history, s, NOW);

describe("decisions", () => {
  it.each<{
    name: string;
    rule: AlertRule;
    condition: Condition;
    history: RuleHistory;
    kind: AlertDecision["kind"];
  }>([
    {
      name: "a new condition fires",
      rule: "error_rate",
      condition: holds,
      history: {},
      kind: "fire",
    },
    {
      name: "a clear condition with nothing firing does nothing",
      rule: "error_rate",
      condition: clears,
      history: {},
      kind: "none",
    },
    {
      name: "a clear condition clears the firing alert",
      rule: "error_rate",
      condition: clears,
      history: firing(),
      kind: "clear",
    },
    {
      name: "hysteresis keeps a firing alert firing",
      rule: "queue_growing",
      condition: between,
      history: firing(),
      kind: "none",
    },
    {
      name: "hysteresis does not fire a new one",
      rule: "queue_growing",
      condition: between,
      history: {},
      kind: "none",
    },
    {
      name: "within the cooldown, new figures update quietly",
      rule: "error_rate",
      condition: holds,
      history: firing(),
      kind: "update",
    },
    {
      name: "within the cooldown, same figures do nothing",
      rule: "error_rate",
      condition: holds,
      history: firing({ message: "new figures" }),
      kind: "none",
    },
    {
      name: "after the cooldown, it reminds",
      rule: "error_rate",
      condition: holds,
      history: firing({ lastFiredAt: NOW - 31 * MIN }),
      kind: "refire",
    },
    {
      name: "exactly at the cooldown's end, it reminds",
      rule: "error_rate",
      condition: holds,
      history: firing({ lastFiredAt: NOW - 30 * MIN }),
      kind: "refire",
    },
    {
      name: "acknowledged, it never reminds",
      rule: "error_rate",
      condition: holds,
      history: firing({ lastFiredAt: NOW - 300 * MIN, acknowledged: true }),
      kind: "update",
    },
    {
      name: "a new warning within the cooldown after a clear waits",
      rule: "error_rate",
      condition: holds,
      history: { lastFiredAt: NOW - 5 * MIN },
      kind: "none",
    },
    {
      name: "a new warning after the cooldown fires",
      rule: "error_rate",
      condition: holds,
      history: { lastFiredAt: NOW - 31 * MIN },
      kind: "fire",
    },
    {
      name: "a new critical within the cooldown fires anyway",
      rule: "no_runners_online",
      condition: holds,
      history: { lastFiredAt: NOW - MIN },
      kind: "fire",
    },
    {
      name: "a firing critical still waits its cooldown to remind",
      rule: "no_runners_online",
      condition: holds,
      history: firing({ severity: "critical", lastFiredAt: NOW - MIN }),
      kind: "update",
    },
    {
      name: "a last fire in the future (clock stepped back) counts as cooldown",
      rule: "error_rate",
      condition: holds,
      history: { lastFiredAt: NOW + 60 * MIN },
      kind: "none",
    },
    {
      name: "a corrupt last fire time does not block",
      rule: "error_rate",
      condition: holds,
      history: { lastFiredAt: Number.NaN },
      kind: "fire",
    },
  ])("$name", ({ rule, condition, history, kind }) => {
    expect(decide(rule, condition, history).kind).toBe(kind);
  });

  it("a rule switched off clears what it fired and fires nothing", () => {
    const off = { ...settings, error_rate: { ...settings.error_rate, enabled: false } };
    expect(decide("error_rate", holds, firing(), off)).toMatchObject({
      kind: "clear",
      alertId: 9,
      reason: "the rule was switched off",
    });
    expect(decide("error_rate", holds, {}, off)).toMatchObject({ kind: "none" });
  });

  it("a severity made critical in the settings fires through the cooldown", () => {
    const critical = {
      ...settings,
      error_rate: { ...settings.error_rate, severity: "critical" as const },
    };
    expect(decide("error_rate", holds, { lastFiredAt: NOW - MIN }, critical)).toMatchObject({
      kind: "fire",
      severity: "critical",
      reason: "critical: fires despite the cooldown",
    });
  });

  it("says when the next reminder comes", () => {
    const d = decide("error_rate", holds, firing({ message: "new figures" }));
    expect(d.reason).toBe("still firing; next reminder after 2026-11-25T12:28:00.000Z (cooldown)");
  });
});

describe("a check over every rule", () => {
  it("fires what holds, leaves the rest, and skips rules not asked for", () => {
    const decisions = evaluateAlerts({
      facts: {
        queueDepth: depths(1, 2, 3, 4),
        attempts: { total: 10, failed: 1 },
        activeTasks: [],
        runners: { registered: 1, online: 0 },
        errors: { lastHour: 0, bySource: {} },
        webhookFailures: { count: 0 },
      },
      settings,
      history: {},
      now: NOW,
      rules: [
        "queue_growing",
        "failure_rate",
        "stuck_task",
        "no_runners_online",
        "error_rate",
        "webhook_failures",
      ],
    });
    expect(decisions.map((d) => [d.rule, d.kind])).toEqual([
      ["queue_growing", "fire"],
      ["failure_rate", "none"],
      ["stuck_task", "none"],
      ["no_runners_online", "fire"],
      ["error_rate", "none"],
      ["webhook_failures", "none"],
    ]);
  });

  it("holds every rule whose facts are missing (a failed query never clears an alert)", () => {
    const history = Object.fromEntries(
      (
        [
          "queue_growing",
          "failure_rate",
          "stuck_task",
          "no_runners_online",
          "error_rate",
          "webhook_failures",
          "database_unavailable",
        ] as const
      ).map((rule) => [rule, firing()]),
    );
    const decisions = evaluateAlerts({ facts: {}, settings, history, now: NOW });
    expect(decisions.every((d) => d.kind === "none")).toBe(true);
  });
});
