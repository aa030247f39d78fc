import { type ZodError, z } from "zod";

/**
 * Run-time settings that operators change through `PUT /api/settings`: the alerter's rules and
 * where alerts go. Stored in the `settings` table (one row per section, key `alerts.<section>`),
 * shared by every instance and read at every check, so a change takes effect on the next one.
 */

/** The alert rules, in the order they are checked and shown. */
export const ALERT_RULES = [
  "queue_growing",
  "failure_rate",
  "stuck_task",
  "no_runners_online",
  "error_rate",
  "webhook_failures",
  "database_unavailable",
] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

export const ALERT_SEVERITIES = ["warning", "critical"] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `expected a whole number (${what})` })
    .int({ error: `expected a whole number (${what})` })
    .min(min, { error: `expected at least ${min} (${what})` })
    .max(max, { error: `expected at most ${max} (${what})` });

const common = {
  enabled: z.boolean({ error: "expected true or false" }),
  severity: z.enum(ALERT_SEVERITIES, { error: `expected one of ${ALERT_SEVERITIES.join(", ")}` }),
  cooldown_minutes: int("minutes before the same rule notifies again", 0, 7 * 24 * 60),
};

const rule = <T extends z.ZodRawShape>(shape: T) => z.strictObject({ ...common, ...shape });

const RepositoryName = z
  .string({ error: "expected a repository as owner/name" })
  .trim()
  .regex(/^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/, {
    error: "expected a repository as owner/name",
  });

/** Every section of the alert settings, each a strict object (an unknown key is an error). */
export const ALERT_SECTIONS = {
  github_issues: z.strictObject({
    enabled: z.boolean({ error: "expected true or false" }),
    /** Where alert issues are opened: an installed repository, `owner/name`. */
    repository: RepositoryName.nullable(),
  }),
  queue_growing: rule({
    growing_checks: int("checks in a row the queue must grow", 1, 100),
    stable_checks: int("checks in a row without growth that clear it", 1, 100),
  }),
  failure_rate: rule({
    threshold_percent: z
      .number({ error: "expected a percentage" })
      .min(0, { error: "expected 0–100" })
      .max(100, { error: "expected 0–100" }),
    window_minutes: int("minutes of attempts looked at", 1, 7 * 24 * 60),
    min_attempts: int("attempts needed before a rate means anything", 1, 1_000_000),
  }),
  stuck_task: rule({
    minutes: int("minutes without a heartbeat", 1, 7 * 24 * 60),
  }),
  no_runners_online: rule({}),
  error_rate: rule({
    max_per_hour: int("errors per hour tolerated", 0, 1_000_000),
  }),
  webhook_failures: rule({
    max_failures: int("failed deliveries tolerated in the window", 0, 1_000_000),
    window_minutes: int("minutes of deliveries looked at", 1, 7 * 24 * 60),
  }),
  database_unavailable: rule({
    failed_checks: int("failed checks in a row", 1, 100),
  }),
} as const;

export type AlertSection = keyof typeof ALERT_SECTIONS;
export const ALERT_SECTION_NAMES = Object.keys(ALERT_SECTIONS) as AlertSection[];

export const AlertSettings = z.strictObject(ALERT_SECTIONS);
export type AlertSettings = z.output<typeof AlertSettings>;
export type RuleSettings = { [R in AlertRule]: AlertSettings[R] };
export type CommonRuleSettings = AlertSettings[AlertRule];

/** The settings as `GET /api/settings` shows them and `PUT` changes them. */
export const Settings = z.strictObject({ alerts: AlertSettings });
export type Settings = z.output<typeof Settings>;

/**
 * The seed's numbers: growth in 3 checks in a row (cleared by 3 without growth), failure rate over
 * 50 %, a task 5 min without a heartbeat, no runner online while some are registered, over 10
 * errors an hour; plus failed webhook deliveries and an unreachable database.
 */
export const DEFAULT_SETTINGS: Settings = {
  alerts: {
    github_issues: { enabled: false, repository: null },
    queue_growing: {
      enabled: true,
      severity: "warning",
      cooldown_minutes: 15,
      growing_checks: 3,
      stable_checks: 3,
    },
    failure_rate: {
      enabled: true,
      severity: "warning",
      cooldown_minutes: 15,
      threshold_percent: 50,
      window_minutes: 60,
      min_attempts: 4,
    },
    stuck_task: { enabled: true, severity: "warning", cooldown_minutes: 10, minutes: 5 },
    no_runners_online: { enabled: true, severity: "critical", cooldown_minutes: 10 },
    error_rate: { enabled: true, severity: "warning", cooldown_minutes: 30, max_per_hour: 10 },
    webhook_failures: {
      enabled: true,
      severity: "warning",
      cooldown_minutes: 15,
      max_failures: 0,
      window_minutes: 15,
    },
    database_unavailable: {
      enabled: true,
      severity: "critical",
      cooldown_minutes: 5,
      failed_checks: 2,
    },
  },
};

/** A change to some settings: any subset of sections and of keys inside them; unknown keys fail. */
export const SettingsPatch = z.strictObject({
  alerts: z
    .strictObject(
      Object.fromEntries(
        ALERT_SECTION_NAMES.map((name) => [name, ALERT_SECTIONS[name].partial().optional()]),
      ) as z.ZodRawShape,
    )
    .optional(),
});
export type SettingsPatch = { alerts?: { [S in AlertSection]?: Partial<AlertSettings[S]> } };

/** One problem with one field, as the API reports it (`{path, message}`). */
export interface SettingsFieldError {
  path: string;
  message: string;
}

/** Flattens a zod error into `{path, message}` entries; every unknown key gets its own entry. */
export function settingsFieldErrors(error: ZodError, prefix = ""): SettingsFieldError[] {
  return error.issues.flatMap((issue) => {
    const at = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        path: at ? `${at}.${key}` : key,
        message: "unknown setting",
      }));
    }
    return [{ path: at || "body", message: issue.message }];
  });
}

export type PatchResult =
  | { ok: true; settings: Settings; changed: AlertSection[] }
  | { ok: false; errors: SettingsFieldError[] };

/**
 * Applies a patch to the current settings. The patch is checked on its own (types, ranges, unknown
 * keys) and the result as a whole (e.g. alert issues switched on need a repository). Nothing is
 * applied unless everything is valid.
 */
export function applySettingsPatch(current: Settings, patch: unknown): PatchResult {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    return { ok: false, errors: [{ path: "body", message: "expected a JSON object" }] };
  }
  const parsed = SettingsPatch.safeParse(patch);
  if (!parsed.success) return { ok: false, errors: settingsFieldErrors(parsed.error) };
  const alerts = (parsed.data.alerts ?? {}) as SettingsPatch["alerts"] & object;
  const merged: Record<string, unknown> = { ...current.alerts };
  const changed: AlertSection[] = [];
  for (const name of ALERT_SECTION_NAMES) {
    const section = alerts[name];
    if (!section) continue;
    merged[name] = { ...current.alerts[name], ...section };
    changed.push(name);
  }
  const whole = Settings.safeParse({ alerts: merged });
  if (!whole.success) return { ok: false, errors: settingsFieldErrors(whole.error) };
  const issues = whole.data.alerts.github_issues;
  if (issues.enabled && !issues.repository) {
    return {
      ok: false,
      errors: [
        {
          path: "alerts.github_issues.repository",
          message: "alert issues are enabled, so a repository (owner/name) is required",
        },
      ],
    };
  }
  return { ok: true, settings: whole.data, changed };
}

/**
 * Builds the effective settings from stored sections. A stored section that no longer fits the
 * schema (edited by hand, written by an older version) is replaced by its defaults and reported,
 * never allowed to switch a rule off by accident.
 */
export function settingsFromStored(stored: ReadonlyMap<string, unknown>): {
  settings: Settings;
  problems: SettingsFieldError[];
} {
  const problems: SettingsFieldError[] = [];
  const alerts: Record<string, unknown> = {};
  for (const name of ALERT_SECTION_NAMES) {
    const key = `alerts.${name}`;
    const defaults = DEFAULT_SETTINGS.alerts[name];
    if (!stored.has(key)) {
      alerts[name] = defaults;
      continue;
    }
    const value = stored.get(key);
    // Keys added to a section after it was stored take their defaults.
    const candidate =
      value && typeof value === "object" && !Array.isArray(value)
        ? { ...defaults, ...(value as object) }
        : value;
    const parsed = ALERT_SECTIONS[name].safeParse(candidate);
    if (parsed.success) alerts[name] = parsed.data;
    else {
      alerts[name] = defaults;
      problems.push(...settingsFieldErrors(parsed.error, `alerts.${name}`));
    }
  }
  return { settings: { alerts: alerts as AlertSettings }, problems };
}
