import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { migrationStatus } from "../../db/migrate.ts";
import { EXPORT_FORMAT, EXPORT_FORMAT_VERSION, renderExportHeader } from "../core/export-format.ts";
import { quoteIdent, schemaTables } from "./schema-tables.ts";

/** Rows fetched from the cursor at a time: enough to be quick, little enough to stay small. */
const BATCH_ROWS = 500;

export interface ExportSummary {
  migration: string;
  /** Rows per table, in the order written. */
  tables: Record<string, number>;
}

/**
 * The migration this database is at: the last one applied, in the code's order. Export and import
 * compare it, so data only ever goes into the schema it came from.
 */
export async function currentMigration(db: Db): Promise<{ current: string; pending: string[] }> {
  const status = await migrationStatus(db);
  return { current: status.applied.at(-1) ?? "none", pending: status.pending };
}

/**
 * Writes every table of `db/schema.ts` in the export format (see `core/export-format.ts`), one
 * consistent snapshot (a repeatable-read, read-only transaction), streaming: rows come from a
 * cursor in batches and `write` is awaited, so a slow reader holds back the export instead of
 * filling memory. Timestamps are printed in UTC so two exports of the same data are identical.
 */
export async function exportDatabase(
  db: Db,
  write: (text: string) => Promise<void>,
  options: { now?: Date } = {},
): Promise<ExportSummary> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`set transaction isolation level repeatable read, read only`);
    await tx.execute(sql`set local timezone = 'UTC'`);
    const { current } = await currentMigration(tx);
    await write(
      renderExportHeader({
        format: EXPORT_FORMAT,
        format_version: EXPORT_FORMAT_VERSION,
        migration: current,
        exported_at: (options.now ?? new Date()).toISOString(),
      }),
    );
    const tables = schemaTables();
    const counts: Record<string, number> = {};
    for (const [index, table] of tables.entries()) {
      await write(`${JSON.stringify(table.name)}:[\n`);
      await tx.execute(
        sql.raw(
          `declare conveyor_export no scroll cursor for select to_jsonb(t)::text as row from ${quoteIdent(table.name)} t order by ${table.orderBy}`,
        ),
      );
      let count = 0;
      // One row is held back until the next is known, so the last row of a table has no comma.
      let previous: string | undefined;
      for (;;) {
        const rows = resultRows<{ row: string }>(
          await tx.execute(sql.raw(`fetch forward ${BATCH_ROWS} from conveyor_export`)),
        );
        if (rows.length === 0) break;
        const lines: string[] = [];
        for (const { row } of rows) {
          if (previous !== undefined) lines.push(`${previous},\n`);
          previous = row;
        }
        count += rows.length;
        if (lines.length) await write(lines.join(""));
      }
      await tx.execute(sql.raw("close conveyor_export"));
      if (previous !== undefined) await write(`${previous}\n`);
      await write(index === tables.length - 1 ? "]\n" : "],\n");
      counts[table.name] = count;
    }
    await write("}}\n");
    return { migration: current, tables: counts };
  });
}
