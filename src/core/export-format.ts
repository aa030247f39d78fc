import { z } from "zod";

/**
 * The export file: one JSON document laid out one row per line, so that both ends can stream it
 * (a table of a million task events never has to fit in memory) while it stays plain JSON that
 * `jq` and every JSON parser read:
 *
 * ```
 * {"format":"conveyor-export","format_version":1,"migration":"0006_…","exported_at":"…","tables":{
 * "repositories":[
 * {"repository_id":1,…},
 * {"repository_id":2,…}
 * ],
 * "tasks":[
 * ]
 * }}
 * ```
 *
 * Rows are Postgres's own `to_jsonb(row)` text, so timestamps keep their microseconds and bigints
 * every digit. Tables come in foreign-key order (referenced tables first), rows in primary-key
 * order, so exporting the same data twice gives the same bytes apart from `exported_at`.
 */
export const EXPORT_FORMAT = "conveyor-export";
export const EXPORT_FORMAT_VERSION = 1;

export const ExportHeader = z.object({
  format: z.literal(EXPORT_FORMAT, {
    error: `expected "${EXPORT_FORMAT}": this is not a Conveyor export`,
  }),
  format_version: z.number({ error: "expected a number" }).int(),
  migration: z.string({ error: "expected the migration the data was exported at" }).min(1),
  exported_at: z.string().optional(),
});
export type ExportHeader = z.infer<typeof ExportHeader>;

/** The first line of an export: the header, opening the `tables` object. */
export function renderExportHeader(header: ExportHeader): string {
  const text = JSON.stringify({ ...header, tables: {} });
  // `…,"tables":{}}` → `…,"tables":{`: the tables follow on the next lines.
  return `${text.slice(0, -2)}\n`;
}

/** One line of an export, classified without parsing rows (Postgres parses them on import). */
export type ExportLine =
  | { kind: "header"; header: unknown }
  | { kind: "table"; name: string }
  | { kind: "row"; json: string }
  | { kind: "table-end" }
  | { kind: "end" }
  | { kind: "blank" }
  | { kind: "invalid"; message: string };

const TABLE_LINE = /^"([a-z_][a-z0-9_]*)":\[(\])?,?$/;

/**
 * Classifies line `n` (1-based) of an export. Line 1 must be the header; after that, table
 * openings, rows (a JSON object, with the comma that separates it from the next), table ends and
 * the final `}}`. A table with no rows may be written on one line (`"leases":[],`).
 */
export function classifyExportLine(line: string, n: number): ExportLine | ExportLine[] {
  const text = line.trim();
  if (n === 1) {
    if (!text.startsWith("{") || !text.endsWith('"tables":{')) {
      return {
        kind: "invalid",
        message:
          'expected the export header ({"format":"conveyor-export",…,"tables":{) on the first line',
      };
    }
    try {
      return { kind: "header", header: JSON.parse(`${text}}}`) };
    } catch {
      return { kind: "invalid", message: "the header on the first line is not valid JSON" };
    }
  }
  if (text === "") return { kind: "blank" };
  if (text.startsWith("{"))
    return { kind: "row", json: text.endsWith(",") ? text.slice(0, -1) : text };
  const table = TABLE_LINE.exec(text);
  if (table) {
    const open: ExportLine = { kind: "table", name: table[1]! };
    return table[2] ? [open, { kind: "table-end" }] : open;
  }
  if (text === "]" || text === "],") return { kind: "table-end" };
  if (text === "}}") return { kind: "end" };
  return {
    kind: "invalid",
    message: `unexpected text "${text.slice(0, 40)}${text.length > 40 ? "…" : ""}"`,
  };
}

export interface TableDependencies {
  name: string;
  /** Tables this one has foreign keys to. */
  references: readonly string[];
}

/**
 * Tables in an order in which every table comes after the tables it references (so rows can be
 * inserted in that order), ties broken by name so the order is stable. A reference to itself or
 * to a table not in the list is ignored. Throws on a cycle, which a schema must not have for a
 * plain import to work.
 */
export function foreignKeyOrder(tables: readonly TableDependencies[]): string[] {
  const names = new Set(tables.map((t) => t.name));
  const pending = new Map(
    tables.map((t) => [t.name, new Set(t.references.filter((r) => r !== t.name && names.has(r)))]),
  );
  const order: string[] = [];
  while (pending.size > 0) {
    const ready = [...pending].filter(([, refs]) => refs.size === 0).map(([name]) => name);
    if (ready.length === 0) {
      throw new Error(`foreign keys form a cycle among ${[...pending.keys()].sort().join(", ")}`);
    }
    ready.sort();
    const next = ready[0]!;
    order.push(next);
    pending.delete(next);
    for (const refs of pending.values()) refs.delete(next);
  }
  return order;
}

/**
 * Why a header cannot be imported here, or undefined when it can. The data must come from the
 * same schema: rows of another migration would lack columns or carry unknown ones.
 */
export function headerProblem(
  header: ExportHeader,
  currentMigration: string,
): { path: string; message: string } | undefined {
  if (header.format_version !== EXPORT_FORMAT_VERSION) {
    return {
      path: "format_version",
      message: `the file is export format ${header.format_version}; this Conveyor reads format ${EXPORT_FORMAT_VERSION}. Import it with the Conveyor version that wrote it`,
    };
  }
  if (header.migration !== currentMigration) {
    return {
      path: "migration",
      message: `the data was exported at migration ${header.migration}, but this database is at ${currentMigration}. Import it with the Conveyor version that exported it (same migrations), then upgrade`,
    };
  }
  return undefined;
}
