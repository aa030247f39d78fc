import { parseArgs } from "node:util";
import { CliError } from "./cli-error.ts";

/** Where a command writes: the process's streams, or a test's buffers. */
export interface CliOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Standard output as a stream, for large output that must respect backpressure (export). */
  stdoutStream?: NodeJS.WritableStream;
}

export const processOutput: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stdoutStream: process.stdout,
};

export type Env = Readonly<Record<string, string | undefined>>;

export type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

export interface ParsedArgs {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
  json: boolean;
  help: boolean;
}

/**
 * Parses a subcommand's arguments strictly (an unknown option is a mistake, not something to
 * ignore); `--json` and `--help`/`-h` are always accepted. Throws a usage {@link CliError}.
 */
export function parseCommandArgs(argv: readonly string[], options: OptionSpec = {}): ParsedArgs {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // parseArgs names the option ("Unknown option '--nope'. To specify a positional …"); the
    // first sentence is the useful part.
    throw usage((error as Error).message.split(". ")[0] ?? "invalid arguments");
  }
  return {
    values: parsed.values as ParsedArgs["values"],
    positionals: parsed.positionals,
    json: parsed.values.json === true,
    help: parsed.values.help === true,
  };
}

/** A wrong command line: exit code 2. */
export function usage(message: string): CliError {
  return new CliError(message, 2);
}

/** Exactly `count` positional arguments, or a usage error naming them. */
export function expectPositionals(args: ParsedArgs, names: string[], command: string): string[] {
  if (args.positionals.length < names.length) {
    throw usage(`${command} needs ${names.map((n) => `<${n}>`).join(" ")}`);
  }
  if (args.positionals.length > names.length) {
    const extra = args.positionals.slice(names.length).join(" ");
    throw usage(
      names.length === 0
        ? `${command} takes no arguments (got ${extra})`
        : `${command} takes ${names.map((n) => `<${n}>`).join(" ")} only (also got ${extra})`,
    );
  }
  return args.positionals;
}

/** Columns padded to their widest cell, two spaces apart; the first row is the header. */
export function renderTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** `2025-11-25 10:43 UTC`: minutes are enough in a table, and UTC avoids guessing zones. */
export function formatTime(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "never";
}

export function printJson(out: CliOutput, value: unknown): void {
  out.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Runs a command body and turns the outcome into an exit code: 0 done, the {@link CliError}'s
 * code (1 failed, 2 usage) with its message on stderr. Anything else is a bug and is rethrown.
 */
export async function runCli(
  name: string,
  out: CliOutput,
  body: () => Promise<number | undefined>,
): Promise<number> {
  try {
    return (await body()) ?? 0;
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    out.stderr(`conveyor ${name}: ${error.message}\n`);
    if (error.exitCode === 2) out.stderr(`See: conveyor ${name} --help\n`);
    return error.exitCode;
  }
}
