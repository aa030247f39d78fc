import { once } from "node:events";
import {
  createReadStream,
  createWriteStream,
  existsSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { Readable } from "node:stream";
import { loadConfig } from "../config.ts";
import { classifyExportLine } from "../core/export-format.ts";
import { CliError } from "./cli-error.ts";
import {
  type CliOutput,
  type Env,
  parseCommandArgs,
  printJson,
  processOutput,
  runCli,
  usage,
} from "./cli-support.ts";
import { type AdminApi, openAdminApi, readAnswer } from "./open-admin-api.ts";

export const EXPORT_USAGE = `Usage: conveyor export [<file>] [--force]

Writes all of Conveyor's state (every table: tasks and their history, runners, tokens, pull
requests, settings, alerts, …) as one JSON document to <file>, or to standard output without one
(or with "-"). It is one consistent snapshot, taken while the server keeps running. Progress goes
to standard error. An existing file is only replaced with --force; a failed export never leaves a
half-written file behind.

The file holds token hashes and issue text: keep it as safe as the database. Restore it with
conveyor import into an empty database.`;

export const IMPORT_USAGE = `Usage: conveyor import <file> [--json]

Loads a file written by conveyor export into an EMPTY database, all of it in one transaction:
on any problem nothing is written. "-" reads standard input. The file must come from the same
database migration as this Conveyor (the file names it); otherwise import it with the version
that exported it, then upgrade.

Typical restore: point DATABASE_URL at a new, empty database (or use a fresh CONVEYOR_DATA_DIR),
run conveyor import there with the server stopped, then start the server. Moving from the embedded
database to PostgreSQL works the same way: export with the old settings, import with the new.`;

/** `conveyor export [file]`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runExportCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  return runCli("export", out, async () => {
    const args = parseCommandArgs(argv, { force: { type: "boolean", short: "f" } });
    if (args.help) {
      out.stdout(`${EXPORT_USAGE}\n`);
      return 0;
    }
    if (args.positionals.length > 1) throw usage("export takes at most one file");
    const file = args.positionals[0] === "-" ? undefined : args.positionals[0];
    if (file && existsSync(file) && args.values.force !== true) {
      throw new CliError(`${file} exists: choose another file, or pass --force to replace it`);
    }
    const api = await openAdminApi(loadConfig(env), env);
    try {
      if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
      await exportTo(api, file, out);
      return 0;
    } finally {
      await api.close();
    }
  });
}

async function exportTo(api: AdminApi, file: string | undefined, out: CliOutput): Promise<void> {
  const response = await api.request("GET", "/admin/export", { timeoutMs: null });
  if (response.status !== 200 || !response.body) await readAnswer(api, response);
  const temporary = file && `${file}.partial-${process.pid}`;
  const target = temporary ? createWriteStream(temporary, { flags: "wx" }) : undefined;
  const sink = target ?? out.stdoutStream;
  const write = async (text: string) => {
    if (!sink) return out.stdout(text);
    if (!sink.write(text)) await once(sink, "drain");
  };
  const started = Date.now();
  let rows = 0;
  let tables = 0;
  let bytes = 0;
  let tableName = "";
  let tableRows = 0;
  let complete = false;
  let lineNumber = 0;
  let carry = "";
  const decoder = new TextDecoder();
  try {
    // Counted line by line as it passes, to report progress and to notice a cut-off export.
    const onLine = (line: string) => {
      const item = classifyExportLine(line, ++lineNumber);
      for (const entry of Array.isArray(item) ? item : [item]) {
        if (entry.kind === "table") {
          tableName = entry.name;
          tableRows = 0;
        } else if (entry.kind === "row") {
          rows++;
          tableRows++;
        } else if (entry.kind === "table-end") {
          tables++;
          out.stderr(`  ${tableName}: ${tableRows} rows\n`);
        } else if (entry.kind === "end") {
          complete = true;
        }
      }
    };
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      const text = decoder.decode(chunk, { stream: true });
      await write(text);
      const lines = (carry + text).split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
    if (carry) onLine(carry);
    if (!complete) {
      throw new CliError(
        `the export stopped before its end (after ${rows} rows): ${api.description} failed while ` +
          "sending it; see its log, then export again",
      );
    }
    if (target && temporary) {
      await new Promise<void>((resolve, reject) =>
        target.end((e?: Error | null) => (e ? reject(e) : resolve())),
      );
      renameSync(temporary, file!);
    }
  } catch (error) {
    if (target && temporary) {
      target.destroy();
      rmSync(temporary, { force: true });
    }
    throw error;
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  out.stderr(
    `Exported ${rows} rows from ${tables} tables (${formatBytes(bytes)}) in ${seconds} s${file ? ` to ${file}` : ""}.\n`,
  );
}

/** `conveyor import <file>`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runImportCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  return runCli("import", out, async () => {
    const args = parseCommandArgs(argv);
    if (args.help) {
      out.stdout(`${IMPORT_USAGE}\n`);
      return 0;
    }
    if (args.positionals.length !== 1) {
      throw usage(args.positionals.length === 0 ? "import needs <file>" : "import takes one file");
    }
    const file = args.positionals[0]!;
    let size: number | undefined;
    if (file !== "-") {
      try {
        size = statSync(file).size;
      } catch (error) {
        throw new CliError(`cannot read ${file}: ${(error as Error).message}`);
      }
    }
    const api = await openAdminApi(loadConfig(env), env);
    try {
      if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
      const source = file === "-" ? process.stdin : createReadStream(file);
      const stream = Readable.toWeb(withProgress(source, size, out)) as ReadableStream<Uint8Array>;
      const started = Date.now();
      const result = await readAnswer<{
        migration: string;
        tables: Record<string, number>;
        sequences: string[];
      }>(api, await api.request("POST", "/admin/import", { stream, timeoutMs: null }));
      if (args.json) {
        printJson(out, result);
        return 0;
      }
      const counts = Object.entries(result.tables);
      for (const [table, rows] of counts) out.stderr(`  ${table}: ${rows} rows\n`);
      const total = counts.reduce((sum, [, rows]) => sum + rows, 0);
      out.stdout(
        `Imported ${total} rows into ${counts.length} tables (migration ${result.migration}) in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s; ${result.sequences.length} id sequences moved past the restored rows.\n`,
      );
      return 0;
    } finally {
      await api.close();
    }
  });
}

/** Passes the file through, saying every 10 % how far it got (for files worth waiting for). */
function withProgress(
  source: NodeJS.ReadableStream,
  size: number | undefined,
  out: CliOutput,
): Readable {
  let sent = 0;
  let reported = 0;
  const readable = Readable.from(
    (async function* () {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        sent += chunk.length;
        if (size && size > 5 * 1024 * 1024) {
          const tenth = Math.floor((sent / size) * 10);
          if (tenth > reported && tenth < 10) {
            reported = tenth;
            out.stderr(`  sent ${formatBytes(sent)} of ${formatBytes(size)} (${tenth * 10} %)\n`);
          }
        }
        yield chunk;
      }
    })(),
  );
  return readable;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
