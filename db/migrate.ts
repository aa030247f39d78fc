import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { resultRows } from "./client.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
// Arbitrary constant shared by every instance: pg_advisory_xact_lock serialises migrators.
const MIGRATION_LOCK_KEY = 7_262_001;

export interface Migration {
  tag: string;
  hash: string;
  statements: string[];
}

interface Journal {
  entries: { idx: number; tag: string }[];
}

/** The migrations drizzle-kit generated, in order, read from `db/migrations`. */
export function loadMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const journal = JSON.parse(readFileSync(new URL("meta/_journal.json", dir), "utf8")) as Journal;
  return [...journal.entries]
    .sort((a, b) => a.idx - b.idx)
    .map(({ tag }) => {
      const text = readFileSync(new URL(`${tag}.sql`, dir), "utf8");
      return {
        tag,
        hash: createHash("sha256").update(text).digest("hex"),
        statements: text
          .split("--> statement-breakpoint")
          .map((s) => s.trim())
          .filter(Boolean),
      };
    });
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

/**
 * Applies pending migrations in one transaction under an advisory lock, so instances starting
 * together take turns and the later ones find nothing to do. A migration edited after it was applied
 * is refused: migrations are append-only.
 */
export async function migrate(
  db: Db,
  migrations: Migration[] = loadMigrations(),
): Promise<MigrationStatus> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.execute(sql`
      create table if not exists conveyor_migrations (
        tag text primary key,
        hash text not null,
        applied_at timestamptz not null default now()
      )`);
    const done = new Map(
      resultRows<{ tag: string; hash: string }>(
        await tx.execute(sql`select tag, hash from conveyor_migrations`),
      ).map((r) => [r.tag, r.hash]),
    );
    const applied: string[] = [];
    for (const migration of migrations) {
      const hash = done.get(migration.tag);
      if (hash !== undefined) {
        if (hash !== migration.hash) {
          throw new Error(
            `migration ${migration.tag} changed after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      for (const statement of migration.statements) await tx.execute(sql.raw(statement));
      await tx.execute(
        sql`insert into conveyor_migrations (tag, hash) values (${migration.tag}, ${migration.hash})`,
      );
      applied.push(migration.tag);
    }
    return { applied, pending: [] };
  });
}

/** Which migrations the database has and which it still lacks (for `/readyz`). */
export async function migrationStatus(
  db: Db,
  migrations: Migration[] = loadMigrations(),
): Promise<MigrationStatus> {
  const exists = resultRows<{ present: boolean }>(
    await db.execute(sql`select to_regclass('conveyor_migrations') is not null as present`),
  );
  const done = exists[0]?.present
    ? new Set(
        resultRows<{ tag: string }>(await db.execute(sql`select tag from conveyor_migrations`)).map(
          (r) => r.tag,
        ),
      )
    : new Set<string>();
  return {
    applied: migrations.filter((m) => done.has(m.tag)).map((m) => m.tag),
    pending: migrations.filter((m) => !done.has(m.tag)).map((m) => m.tag),
  };
}
