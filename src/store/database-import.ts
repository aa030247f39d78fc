import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import {
  classifyExportLine,
  ExportHeader,
  type ExportLine,
  headerProblem,
} from "../core/export-format.ts";
import { currentMigration } from "./database-export.ts";
import { quoteIdent, type SchemaTable, schemaTables } from "./schema-tables.ts";

/** Rows per INSERT, and the most text one INSERT carries. */
const BATCH_ROWS = 500;
const BATCH_BYTES = 4 * 1024 * 1024;
/** No row of ours comes near this; a longer line is not an export. */
const MAX_LINE_BYTES = 256 * 1024 * 1024;

/**
 * An import that was refused or failed; nothing was written. `status` is the HTTP answer: 409
 * when the database is not empty, 422 when the file is not something this database can take.
 */
export class ImportError extends Error {
  override name = "ImportError";
  constructor(
    readonly status: 409 | 422,
    message: string,
    /** The field of the file at fault, for the API's field errors. */
    readonly path?: string,
  ) {
    super(message);
  }
}

export interface ImportSummary {
  migration: string;
  /** Rows imported per table, in file order. */
  tables: Record<string, number>;
  /** `table.column` of every sequence set past the imported ids. */
  sequences: string[];
}

/** Splits a byte stream into lines (UTF-8), however the chunks fall. */
export async function* readLines(
  chunks: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let buffered = "";
  for await (const chunk of chunks) {
    buffered += typeof chunk === "string" ? chunk : decode(decoder, chunk, true);
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
    if (buffered.length > MAX_LINE_BYTES) {
      throw new ImportError(
        422,
        "a line of the file is over 256 MiB: this is not a Conveyor export",
      );
    }
  }
  buffered += decode(decoder, new Uint8Array(), false);
  if (buffered) yield buffered;
}

function decode(
  decoder: InstanceType<typeof TextDecoder>,
  chunk: Uint8Array,
  stream: boolean,
): string {
  try {
    return decoder.decode(chunk, { stream });
  } catch {
    throw new ImportError(422, "the file is not UTF-8 text: this is not a Conveyor export");
  }
}

/**
 * Loads an export into this database, which must be empty, in ONE transaction: all of it or, on
 * any problem, none of it. The file is read as it arrives, rows go in batches in the file's table
 * order (the export writes referenced tables first), and afterwards every serial sequence is set
 * past the largest imported id, so new rows do not collide with restored ones. Every table is
 * locked against writes for the duration, so a running server cannot slip rows in between the
 * emptiness check and the import.
 */
export async function importDatabase(
  db: Db,
  source: AsyncIterable<string>,
): Promise<ImportSummary> {
  const lines = source[Symbol.asyncIterator]();
  let lineNumber = 0;
  const next = async (): Promise<ExportLine[] | undefined> => {
    const result = await lines.next();
    if (result.done) return undefined;
    lineNumber++;
    const classified = classifyExportLine(result.value, lineNumber);
    return Array.isArray(classified) ? classified : [classified];
  };

  const first = await next();
  const headerLine = first?.[0];
  if (!headerLine) throw new ImportError(422, "the file is empty: expected a Conveyor export");
  if (headerLine.kind === "invalid") {
    throw new ImportError(
      422,
      `line 1: ${headerLine.message}. Import the file exactly as conveyor export wrote it`,
      "format",
    );
  }
  const parsed = ExportHeader.safeParse((headerLine as { header: unknown }).header);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ImportError(
      422,
      `header: ${issue.path.join(".")}: ${issue.message}`,
      issue.path.join("."),
    );
  }
  const { current, pending } = await currentMigration(db);
  if (pending.length > 0) {
    throw new ImportError(
      409,
      `this database has migrations pending (${pending.join(", ")}): run conveyor migrate first`,
    );
  }
  const problem = headerProblem(parsed.data, current);
  if (problem) throw new ImportError(422, problem.message, problem.path);

  const tables = schemaTables();
  const byName = new Map(tables.map((t) => [t.name, t]));

  return db.transaction(async (tx) => {
    await tx.execute(
      sql.raw(`lock table ${tables.map((t) => quoteIdent(t.name)).join(", ")} in exclusive mode`),
    );
    const occupied = await nonEmptyTables(tx, tables);
    if (occupied.length > 0) {
      throw new ImportError(
        409,
        `the database is not empty (${occupied.map((o) => `${o.name}: ${o.rows} rows`).join(", ")}): ` +
          "import only into a new database. Point DATABASE_URL at an empty database (or use a new " +
          "CONVEYOR_DATA_DIR), run the import there with the server stopped, then start the server",
      );
    }

    const counts: Record<string, number> = {};
    let table: SchemaTable | undefined;
    let batch: string[] = [];
    let batchBytes = 0;
    let batchFirstLine = 0;
    let ended = false;

    const flush = async () => {
      if (!table || batch.length === 0) return;
      const target = table;
      try {
        await tx.execute(
          sql`insert into ${sql.raw(quoteIdent(target.name))}
              select * from jsonb_populate_recordset(null::${sql.raw(quoteIdent(target.name))}, ${`[${batch.join(",")}]`}::jsonb)`,
        );
      } catch (error) {
        const e = error as {
          message?: string;
          detail?: string;
          cause?: { message?: string; detail?: string };
        };
        const message = e.cause?.message ?? e.message ?? String(error);
        const detail = e.cause?.detail ?? e.detail;
        const where =
          batch.length === 1
            ? `line ${batchFirstLine}`
            : `lines ${batchFirstLine}-${batchFirstLine + batch.length - 1}`;
        throw new ImportError(
          422,
          `table ${target.name}, ${where}: ${message}${detail ? ` (${detail})` : ""}. Nothing was imported`,
          `tables.${target.name}`,
        );
      }
      counts[target.name] = (counts[target.name] ?? 0) + batch.length;
      batch = [];
      batchBytes = 0;
    };

    for (let items = await next(); items; items = await next()) {
      for (const item of items) {
        if (ended && item.kind !== "blank") {
          throw new ImportError(422, `line ${lineNumber}: text after the end of the export`);
        }
        switch (item.kind) {
          case "blank":
            break;
          case "header":
          case "invalid":
            throw new ImportError(
              422,
              `line ${lineNumber}: ${item.kind === "invalid" ? item.message : "a second header"}`,
            );
          case "table": {
            if (table) {
              throw new ImportError(
                422,
                `line ${lineNumber}: table ${item.name} starts inside table ${table.name}`,
              );
            }
            const known = byName.get(item.name);
            if (!known) {
              throw new ImportError(
                422,
                `line ${lineNumber}: unknown table ${item.name}; this database has ${tables.map((t) => t.name).join(", ")}`,
                `tables.${item.name}`,
              );
            }
            if (item.name in counts) {
              throw new ImportError(422, `line ${lineNumber}: table ${item.name} appears twice`);
            }
            counts[item.name] = 0;
            table = known;
            break;
          }
          case "row":
            if (!table) {
              throw new ImportError(422, `line ${lineNumber}: a row outside any table`);
            }
            if (batch.length === 0) batchFirstLine = lineNumber;
            batch.push(item.json);
            batchBytes += item.json.length;
            if (batch.length >= BATCH_ROWS || batchBytes >= BATCH_BYTES) await flush();
            break;
          case "table-end":
            if (!table) throw new ImportError(422, `line ${lineNumber}: "]" outside any table`);
            await flush();
            table = undefined;
            break;
          case "end":
            if (table)
              throw new ImportError(
                422,
                `line ${lineNumber}: the export ends inside table ${table.name}`,
              );
            ended = true;
            break;
        }
      }
    }
    if (!ended) {
      throw new ImportError(
        422,
        `the file ends at line ${lineNumber} before the export does: it was cut off. Export again`,
      );
    }
    const sequences = await resetSequences(tx, tables);
    return { migration: current, tables: counts, sequences };
  });
}

/** Tables that have rows, with how many. */
async function nonEmptyTables(
  db: Db,
  tables: SchemaTable[],
): Promise<{ name: string; rows: number }[]> {
  const counts = await countRows(db, tables);
  return counts.filter((c) => c.rows > 0);
}

/** Exact row counts of the given tables, in one statement. */
export async function countRows(
  db: Db,
  tables: SchemaTable[],
): Promise<{ name: string; rows: number }[]> {
  const query = tables
    .map(
      (t, i) =>
        `select ${i} as i, ${sqlString(t.name)} as name, count(*)::bigint as rows from ${quoteIdent(t.name)}`,
    )
    .join(" union all ");
  const rows = resultRows<{ i: number; name: string; rows: string | number }>(
    await db.execute(sql.raw(`${query} order by i`)),
  );
  return rows.map((r) => ({ name: r.name, rows: Number(r.rows) }));
}

/**
 * Sets every serial or identity sequence of the tables past the largest value in its column, so
 * the next insert does not collide with a restored id. Found in the catalog, not listed by hand.
 */
async function resetSequences(db: Db, tables: SchemaTable[]): Promise<string[]> {
  const names = tables.map((t) => sqlString(t.name)).join(", ");
  const serials = resultRows<{ table_name: string; column_name: string }>(
    await db.execute(
      sql.raw(`
        select table_name, column_name from information_schema.columns
        where table_schema = current_schema() and table_name in (${names})
          and (column_default like 'nextval(%' or is_identity = 'YES')
        order by table_name, column_name`),
    ),
  );
  for (const { table_name, column_name } of serials) {
    const table = quoteIdent(table_name);
    const column = quoteIdent(column_name);
    await db.execute(
      sql.raw(
        `select setval(pg_get_serial_sequence(${sqlString(table)}, ${sqlString(column_name)}), coalesce(max(${column}), 0) + 1, false) from ${table}`,
      ),
    );
  }
  return serials.map((s) => `${s.table_name}.${s.column_name}`);
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
