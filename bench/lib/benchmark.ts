import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchPostgres, CommitCeiling } from "./postgres.ts";
import type { Target } from "./targets.ts";

/** A table printed at the end of a benchmark (and kept in its JSON). */
export interface Table {
  title: string;
  columns: string[];
  rows: (string | number | undefined)[][];
}

/** What a benchmark reports; written to `bench/results/<name>.json` with the machine and versions. */
export interface Outcome {
  /** The sizes and settings it ran with. */
  parameters: Record<string, unknown>;
  /** Our numbers. */
  results: Record<string, unknown>;
  /** The peer it ran in the same run, and its numbers. */
  peer: { name: string; description: string; results: Record<string, unknown> };
  /** Ours relative to the peer's, each with what it means. */
  ratios: Record<string, { value: number | undefined; meaning: string }>;
  /**
   * Issue #22's targets for this benchmark's rows (none for a benchmark without one); judged and
   * printed by the runner, written to the JSON's `targets` with their verdicts.
   */
  targets?: Target[];
  /** Every measurement the summaries were computed from. */
  samples: Record<string, unknown>;
  tables: Table[];
  /** What limits the numbers, and anything unusual seen during the run. */
  notes: string[];
}

export interface BenchContext {
  smoke: boolean;
  /** The run's PostgreSQL server (benchmarks that do not need one never see it). */
  postgres: BenchPostgres;
  /** pgbench's commit rate on that server, measured at the start of the run. */
  commitCeiling: CommitCeiling | undefined;
  /** Where child processes write their logs. */
  logDir: string;
  /** A line of progress: which benchmark, which phase. */
  progress(message: string): void;
}

export interface Benchmark {
  name: string;
  /** One line: what it measures. */
  title: string;
  needsPostgres: boolean;
  /** Open files the driver and the server need (runner-scale holds thousands of sockets). */
  openFiles?: (smoke: boolean) => number;
  run(ctx: BenchContext): Promise<Outcome>;
}

/** Renders a table as aligned text. */
export function renderTable(table: Table): string {
  const cells = table.rows.map((row) => row.map((cell) => formatCell(cell)));
  const widths = table.columns.map((column, i) =>
    Math.max(column.length, ...cells.map((row) => row[i]?.length ?? 0)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => (i === 0 ? value.padEnd(widths[i]!) : value.padStart(widths[i]!)))
      .join("  ");
  return [
    table.title,
    line(table.columns),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...cells.map(line),
  ].join("\n");
}

function formatCell(cell: string | number | undefined): string {
  if (cell === undefined) return "-";
  if (typeof cell === "string") return cell;
  if (!Number.isFinite(cell)) return String(cell);
  if (Number.isInteger(cell)) return cell.toLocaleString("en-US");
  const digits = Math.abs(cell) >= 100 ? 1 : Math.abs(cell) >= 1 ? 2 : 3;
  return cell.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/**
 * JSON with arrays of numbers (and arrays of such arrays) kept on one line: the raw samples stay
 * readable in a diff without one line per sample.
 */
export function toJson(value: unknown): string {
  const numbers = /\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g;
  const nested = /\[\s*(\[[-\d.e+,]*\](?:,\s*\[[-\d.e+,]*\])*)\s*\]/g;
  return `${JSON.stringify(value, null, 2)
    .replace(numbers, (_, inner: string) => `[${inner.replace(/\s+/g, "")}]`)
    .replace(nested, (_, inner: string) => `[${inner.replace(/\s+/g, "")}]`)}\n`;
}

export function writeResult(dir: string, file: string, document: unknown): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(path, toJson(document));
  return path;
}

/** Resolves after `ms` (pauses that let a system settle; never used to synchronise). */
export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it is true; fails with `what` after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(10);
  }
}
