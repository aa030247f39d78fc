import { is } from "drizzle-orm";
import { getTableConfig, PgTable } from "drizzle-orm/pg-core";
import * as schema from "../../db/schema.ts";
import { foreignKeyOrder } from "../core/export-format.ts";

/** A table of `db/schema.ts` as export, import and the database report need it. */
export interface SchemaTable {
  name: string;
  /** Primary-key columns, in key order. */
  primaryKey: string[];
  /**
   * SQL for `order by`: the primary key, text columns in the "C" collation, so the order (and so
   * the export) is the same whatever collation the database was created with.
   */
  orderBy: string;
  /** Tables this one has foreign keys to. */
  references: string[];
}

let cached: SchemaTable[] | undefined;

/**
 * Every table declared in `db/schema.ts`, referenced tables first (ties by name). Read from the
 * schema itself, so a table added there is exported, imported and counted without another edit.
 */
export function schemaTables(): SchemaTable[] {
  if (cached) return cached;
  const tables = (Object.values(schema) as unknown[])
    .filter((value): value is PgTable => is(value, PgTable))
    .map((table) => {
      const config = getTableConfig(table);
      // A composite key lists stand-in columns; the table's own columns carry the types.
      const keyNames = config.primaryKeys[0]?.columns.map((c) => c.name);
      const key = keyNames
        ? keyNames.map((name) => config.columns.find((c) => c.name === name)!)
        : config.columns.filter((c) => c.primary);
      return {
        name: config.name,
        primaryKey: key.map((c) => c.name),
        // A table without a key is ordered by its rows' text (the first selected column).
        orderBy: key.length
          ? key
              .map((c) =>
                /^(text|varchar|character)/.test(c.getSQLType())
                  ? `${quoteIdent(c.name)} collate "C"`
                  : quoteIdent(c.name),
              )
              .join(", ")
          : "1",
        references: config.foreignKeys.map(
          (fk) => getTableConfig(fk.reference().foreignTable).name,
        ),
      };
    });
  const byName = new Map(tables.map((t) => [t.name, t]));
  cached = foreignKeyOrder(tables).map((name) => byName.get(name)!);
  return cached;
}

/** A table name as an SQL identifier (names come from the schema, never from requests). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
