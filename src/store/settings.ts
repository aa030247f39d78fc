import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import {
  ALERT_SECTION_NAMES,
  applySettingsPatch,
  type PatchResult,
  type Settings,
  type SettingsFieldError,
  settingsFromStored,
} from "../core/alert-settings.ts";

/*
 * The `settings` table holds one row per section (`alerts.failure_rate` → its whole object), so
 * a change to one rule is one row, and a row written by an older version fills in new keys from
 * the defaults when read.
 */

const KEYS = ALERT_SECTION_NAMES.map((name) => `alerts.${name}`);

/** The effective settings (defaults where nothing is stored) and any stored value that was bad. */
export async function readSettings(
  db: Db,
): Promise<{ settings: Settings; problems: SettingsFieldError[] }> {
  const rows = resultRows<{ key: string; value: unknown }>(
    await db.execute(sql`
      select key, value from settings
      where key in (${sql.join(
        KEYS.map((k) => sql`${k}`),
        sql`, `,
      )})`),
  );
  return settingsFromStored(new Map(rows.map((r) => [r.key, parseJson(r.value)])));
}

/** jsonb comes back parsed from postgres.js and PGlite alike; a string is parsed defensively. */
function parseJson(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/**
 * Applies a patch atomically: read, merge, validate, write the changed sections, under a
 * transaction-scoped advisory lock so two operators changing different keys of one rule at once
 * both win. `check` may refuse the merged result (e.g. a repository that is not installed).
 */
export async function updateSettings(
  db: Db,
  patch: unknown,
  check?: (settings: Settings, tx: Db) => Promise<SettingsFieldError[]>,
): Promise<PatchResult> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('conveyor.settings'))`);
    const { settings } = await readSettings(tx);
    const result = applySettingsPatch(settings, patch);
    if (!result.ok) return result;
    const refused = check ? await check(result.settings, tx) : [];
    if (refused.length) return { ok: false, errors: refused };
    for (const name of result.changed) {
      const value = JSON.stringify(result.settings.alerts[name]);
      await tx.execute(sql`
        insert into settings (key, value, updated_at)
        values (${`alerts.${name}`}, ${value}::jsonb, now())
        on conflict (key) do update set value = excluded.value, updated_at = now()`);
    }
    return result;
  });
}
