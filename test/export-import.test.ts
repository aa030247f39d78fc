import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { exportDatabase } from "../src/store/database-export.ts";
import { ImportError, importDatabase, readLines } from "../src/store/database-import.ts";
import { schemaTables } from "../src/store/schema-tables.ts";
import { seedEveryTable } from "./helpers/seed-every-table.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

async function exportText(database: Database): Promise<string> {
  let text = "";
  await exportDatabase(database.db, async (chunk) => {
    text += chunk;
  });
  return text;
}

/** Feeds text to the importer in awkward chunks, the way a socket would. */
async function* chunked(text: string, size = 7): AsyncGenerator<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const importText = (database: Database, text: string) =>
  importDatabase(database.db, readLines(chunked(text, 4093)));

/** The export without the one line that must differ between two exports: when it was made. */
const withoutStamp = (text: string) => text.replace(/"exported_at":"[^"]+"/, '"exported_at":"…"');

async function refusal(promise: Promise<unknown>): Promise<ImportError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImportError);
  return error as ImportError;
}

async function rowCount(database: Database, table: string): Promise<number> {
  const [row] = await database.rows<{ n: number }>(
    sql.raw(`select count(*)::int as n from "${table}"`),
  );
  return row!.n;
}

describe("export and import", () => {
  let source: TestDatabase;
  let target: TestDatabase;
  let exported: string;
  let seeded: Awaited<ReturnType<typeof seedEveryTable>>;

  beforeAll(async () => {
    source = await createTestDatabase();
    target = await createTestDatabase();
    seeded = await seedEveryTable(source);
    exported = await exportText(source);
  });
  afterAll(async () => {
    await source?.drop();
    await target?.drop();
  });

  it("covers every table of the database, referenced tables first, each with rows", () => {
    const document = JSON.parse(exported) as {
      format: string;
      format_version: number;
      migration: string;
      tables: Record<string, unknown[]>;
    };
    expect(document).toMatchObject({ format: "conveyor-export", format_version: 1 });
    expect(document.migration).toMatch(/^\d{4}_/);
    const names = Object.keys(document.tables);
    expect(names).toEqual(schemaTables().map((t) => t.name));
    // The seed fills every table, so a table the round trip mangles cannot hide as empty.
    for (const name of names) expect(document.tables[name]!.length, name).toBeGreaterThan(0);
    expect(names.indexOf("repositories")).toBeLessThan(names.indexOf("tasks"));
    expect(names.indexOf("tasks")).toBeLessThan(names.indexOf("task_events"));
    expect(names.indexOf("api_tokens")).toBeLessThan(names.indexOf("dashboard_sessions"));
  });

  it("knows every table the migrations created (the schema and the database agree)", async () => {
    const rows = await source.rows<{ table_name: string }>(sql`
      select table_name from information_schema.tables
      where table_schema = current_schema() and table_type = 'BASE TABLE'
        and table_name <> 'conveyor_migrations'
      order by table_name`);
    expect(rows.map((r) => r.table_name)).toEqual(
      schemaTables()
        .map((t) => t.name)
        .sort(),
    );
  });

  it("writes one row per line, so both ends can stream it", () => {
    const lines = exported.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\{"format":"conveyor-export",.*"tables":\{$/);
    expect(lines.at(-1)).toBe("}}");
    const taskLines = lines.filter((l) => l.includes('"snapshot_hash"'));
    expect(taskLines).toHaveLength(2);
  });

  it("imports into an empty database; exporting that gives the same file", async () => {
    const summary = await importText(target, exported);
    expect(summary.tables).toMatchObject({ tasks: 2, task_events: 4, repositories: 2 });
    expect(summary.sequences).toEqual(
      expect.arrayContaining(["task_events.event_id", "alerts.alert_id", "approvals.approval_id"]),
    );
    const again = await exportText(target);
    expect(withoutStamp(again)).toBe(withoutStamp(exported));
  });

  it("keeps the values that are easy to lose", async () => {
    const [task] = await target.rows<{ created: string; status_comment_id: string; body: string }>(
      sql`select to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as created,
                 t.status_comment_id::text as status_comment_id, t.body
          from tasks t join repositories r using (repository_id) where t.task_id = ${seeded.taskId}`,
    );
    expect(task).toMatchObject({
      created: "2026-01-02 03:04:05.123456",
      status_comment_id: "4294967297",
    });
    expect(task!.body).toContain("Line \"one\"\nline 'two'\ttab \\ backslash — ünïcödé 🚀");
  });

  it("sets sequences past the restored ids, so new rows do not collide", async () => {
    const [max] = await target.rows<{ id: number }>(
      sql`select max(event_id)::int as id from task_events`,
    );
    const [inserted] = await target.rows<{ id: number }>(sql`
      insert into task_events (task_id, actor, to_state, generation, reason)
      values (${seeded.taskId}, 'test', 'queued', 9, 'after import') returning event_id::int as id`);
    expect(inserted!.id).toBe(max!.id + 1);
  });

  it("refuses a database that is not empty, naming what is in it, and changes nothing", async () => {
    const before = await rowCount(target, "tasks");
    const error = await refusal(importText(target, exported));
    expect(error.status).toBe(409);
    expect(error.message).toMatch(/^the database is not empty \(alerts: 2 rows, /);
    expect(error.message).toContain("repositories: 2 rows, ");
    expect(error.message).toContain("import only into a new database");
    expect(await rowCount(target, "tasks")).toBe(before);
  });

  it("also restores into the embedded database (moving between PostgreSQL and PGlite)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "conveyor-import-"));
    const embedded = await createDatabase({ dataDir: dir });
    try {
      await migrate(embedded.db);
      await importText(embedded, exported);
      expect(withoutStamp(await exportText(embedded))).toBe(withoutStamp(exported));
    } finally {
      await embedded.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("import refuses what it cannot take, and writes nothing", () => {
  let exported: string;
  let empty: TestDatabase;

  beforeAll(async () => {
    const source = await createTestDatabase();
    await seedEveryTable(source);
    exported = await exportText(source);
    await source.drop();
    empty = await createTestDatabase();
  });
  afterAll(async () => {
    await empty?.drop();
  });

  const lines = () => exported.split("\n");
  const withLine = (index: number, replace: (line: string) => string) =>
    lines()
      .map((line, i) => (i === index ? replace(line) : line))
      .join("\n");

  it.each([
    [
      "another migration",
      () => exported.replace(/"migration":"[^"]+"/, '"migration":"0001_intake"'),
      /exported at migration 0001_intake, but this database is at \d{4}_\w+\. Import it with the Conveyor version that exported it/,
      "migration",
    ],
    [
      "another format version",
      () => exported.replace('"format_version":1', '"format_version":2'),
      /export format 2; this Conveyor reads format 1/,
      "format_version",
    ],
    ["not an export", () => '{"hello": "world"}\n', /line 1: expected the export header/, "format"],
    ["an empty file", () => "", /the file is empty/, undefined],
    [
      "a file cut off in the middle",
      () => lines().slice(0, 20).join("\n"),
      /the file ends at line 20 before the export does: it was cut off/,
      undefined,
    ],
    [
      "an unknown table",
      () => withLine(1, () => '"widgets":[],\n"repositories":['),
      /line 2: unknown table widgets; this database has alerts, api_tokens, /,
      "tables.widgets",
    ],
    [
      "a row the table rejects",
      () => exported.replace('"state": "running"', '"state": "sleeping"'),
      /^table tasks, lines \d+-\d+: invalid input value for enum task_state: "sleeping"\. Nothing was imported$/,
      "tables.tasks",
    ],
    [
      "a row that is not JSON",
      () => exported.replace('"tier": "heavy"', '"tier": heavy'),
      /^table runners, lines? [\d-]+: invalid input syntax for type json/,
      "tables.runners",
    ],
  ])("refuses %s", async (_, file, message, path) => {
    const error = await refusal(importText(empty, file()));
    expect(error.status).toBe(422);
    expect(error.message).toMatch(message);
    expect(error.path).toBe(path);
    for (const table of schemaTables()) expect(await rowCount(empty, table.name)).toBe(0);
  });

  it("splits lines correctly however the bytes arrive", async () => {
    const text = "ab\ncd\n\nüé\n🚀";
    for (const size of [1, 2, 3, 100]) {
      const got: string[] = [];
      for await (const line of readLines(chunked(text, size))) got.push(line);
      expect(got).toEqual(["ab", "cd", "", "üé", "🚀"]);
    }
  });
});
