import { describe, expect, it } from "vitest";
import {
  applySettingsPatch,
  DEFAULT_SETTINGS,
  Settings,
  settingsFromStored,
} from "./alert-settings.ts";

describe("settings patches", () => {
  it("the defaults are valid settings", () => {
    expect(Settings.parse(DEFAULT_SETTINGS)).toEqual(DEFAULT_SETTINGS);
  });

  it("changes only the keys given, and says which sections changed", () => {
    const result = applySettingsPatch(DEFAULT_SETTINGS, {
      alerts: { failure_rate: { threshold_percent: 30 }, error_rate: { enabled: false } },
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.settings.alerts.failure_rate).toEqual({
      ...DEFAULT_SETTINGS.alerts.failure_rate,
      threshold_percent: 30,
    });
    expect(result.settings.alerts.error_rate.enabled).toBe(false);
    expect(result.settings.alerts.stuck_task).toEqual(DEFAULT_SETTINGS.alerts.stuck_task);
    expect(result.changed).toEqual(["failure_rate", "error_rate"]);
  });

  it("accepts an empty patch as no change", () => {
    expect(applySettingsPatch(DEFAULT_SETTINGS, {})).toEqual({
      ok: true,
      settings: DEFAULT_SETTINGS,
      changed: [],
    });
  });

  it.each([
    {
      name: "an unknown top-level key",
      patch: { alert: {} },
      errors: [{ path: "alert", message: "unknown setting" }],
    },
    {
      name: "an unknown rule",
      patch: { alerts: { disk_full: { enabled: true } } },
      errors: [{ path: "alerts.disk_full", message: "unknown setting" }],
    },
    {
      name: "a misspelt key inside a rule",
      patch: { alerts: { failure_rate: { threshold_precent: 30 } } },
      errors: [{ path: "alerts.failure_rate.threshold_precent", message: "unknown setting" }],
    },
    {
      name: "a number given as a string",
      patch: { alerts: { error_rate: { max_per_hour: "10" } } },
      errors: [
        {
          path: "alerts.error_rate.max_per_hour",
          message: "expected a whole number (errors per hour tolerated)",
        },
      ],
    },
    {
      name: "a percentage over 100",
      patch: { alerts: { failure_rate: { threshold_percent: 150 } } },
      errors: [{ path: "alerts.failure_rate.threshold_percent", message: "expected 0–100" }],
    },
    {
      name: "a fractional cooldown",
      patch: { alerts: { stuck_task: { cooldown_minutes: 1.5 } } },
      errors: [
        {
          path: "alerts.stuck_task.cooldown_minutes",
          message: "expected a whole number (minutes before the same rule notifies again)",
        },
      ],
    },
    {
      name: "an unknown severity",
      patch: { alerts: { stuck_task: { severity: "page" } } },
      errors: [
        { path: "alerts.stuck_task.severity", message: "expected one of warning, critical" },
      ],
    },
    {
      name: "alert issues switched on without a repository",
      patch: { alerts: { github_issues: { enabled: true } } },
      errors: [
        {
          path: "alerts.github_issues.repository",
          message: "alert issues are enabled, so a repository (owner/name) is required",
        },
      ],
    },
    {
      name: "a repository that is not owner/name",
      patch: { alerts: { github_issues: { repository: "https://github.com/acme/ops" } } },
      errors: [
        { path: "alerts.github_issues.repository", message: "expected a repository as owner/name" },
      ],
    },
    {
      name: "a section that is not an object",
      patch: { alerts: { stuck_task: 5 } },
      errors: [{ path: "alerts.stuck_task", message: expect.any(String) }],
    },
    { name: "an array", patch: [], errors: [{ path: "body", message: "expected a JSON object" }] },
    { name: "null", patch: null, errors: [{ path: "body", message: "expected a JSON object" }] },
    { name: "a string", patch: "x", errors: [{ path: "body", message: "expected a JSON object" }] },
  ])("refuses $name with the field that is wrong", ({ patch, errors }) => {
    expect(applySettingsPatch(DEFAULT_SETTINGS, patch)).toEqual({ ok: false, errors });
  });

  it("refuses the whole patch when one part is wrong (nothing half-applied)", () => {
    const result = applySettingsPatch(DEFAULT_SETTINGS, {
      alerts: { error_rate: { max_per_hour: 5 }, stuck_task: { minutes: 0 } },
    });
    expect(result.ok).toBe(false);
  });

  it("lets issues be switched on when a repository is already stored, and off again", () => {
    const withRepo = applySettingsPatch(DEFAULT_SETTINGS, {
      alerts: { github_issues: { repository: "acme/ops" } },
    });
    if (!withRepo.ok) throw new Error("expected ok");
    const on = applySettingsPatch(withRepo.settings, {
      alerts: { github_issues: { enabled: true } },
    });
    expect(on.ok && on.settings.alerts.github_issues).toEqual({
      enabled: true,
      repository: "acme/ops",
    });
  });
});

describe("stored settings", () => {
  it("uses the defaults for sections never stored", () => {
    expect(settingsFromStored(new Map())).toEqual({ settings: DEFAULT_SETTINGS, problems: [] });
  });

  it("fills keys added after a section was stored from the defaults", () => {
    const { settings, problems } = settingsFromStored(
      new Map([["alerts.failure_rate", { threshold_percent: 70 }]]),
    );
    expect(problems).toEqual([]);
    expect(settings.alerts.failure_rate).toEqual({
      ...DEFAULT_SETTINGS.alerts.failure_rate,
      threshold_percent: 70,
    });
  });

  it.each([
    { name: "a string", value: "oops" },
    { name: "an array", value: [1, 2] },
    { name: "a wrong type inside", value: { enabled: "yes" } },
    { name: "an unknown key inside", value: { enabled: true, extra: 1 } },
    { name: "a value out of range", value: { minutes: -3 } },
  ])("replaces a stored section holding $name by its defaults, and reports it", ({ value }) => {
    const { settings, problems } = settingsFromStored(new Map([["alerts.stuck_task", value]]));
    expect(settings.alerts.stuck_task).toEqual(DEFAULT_SETTINGS.alerts.stuck_task);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]?.path).toMatch(/^alerts\.stuck_task/);
  });
});
