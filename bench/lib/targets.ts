import type { Table } from "./benchmark.ts";

/**
 * A target of issue #22 for one row of a benchmark: a ratio against the peer of the same run, or
 * an absolute figure (commits per task, GitHub requests per task).
 */
export interface Target {
  /** The row the target is for, as printed ("M = 8: tasks/s ÷ graphile-worker jobs/s"). */
  row: string;
  /** The measured ratio or figure; undefined when it could not be measured (then the target is missed). */
  value: number | undefined;
  /** `<=`: at most `target` meets it; `>=`: at least `target`. */
  op: "<=" | ">=";
  target: number;
}

/** A target with its verdict, as printed and as written to `targets` in the JSON. */
export interface JudgedTarget extends Target {
  /** The target as text, e.g. `≥ 0.25`. */
  goal: string;
  met: boolean;
}

export function judgeTarget(t: Target): JudgedTarget {
  const v = t.value;
  const met =
    v !== undefined && Number.isFinite(v) && (t.op === "<=" ? v <= t.target : v >= t.target);
  return { ...t, goal: `${t.op === "<=" ? "≤" : "≥"} ${t.target}`, met };
}

/** The table printed after a benchmark's own tables: each row, its figure, its target, met or not. */
export function targetTable(title: string, targets: readonly JudgedTarget[]): Table {
  return {
    title,
    columns: ["row", "value", "target", "met"],
    rows: targets.map((t) => [t.row, t.value, t.goal, t.met ? "met" : "missed"]),
  };
}

/** The run's last table: every target of every benchmark that ran. */
export function summaryTable(
  byBenchmark: readonly { benchmark: string; targets: readonly JudgedTarget[] }[],
): Table {
  const all = byBenchmark.flatMap((b) => b.targets.map((t) => ({ ...t, benchmark: b.benchmark })));
  const met = all.filter((t) => t.met).length;
  return {
    title: `targets of issue #22: ${met} of ${all.length} met`,
    columns: ["benchmark: row", "value", "target", "met"],
    rows: all.map((t) => [`${t.benchmark}: ${t.row}`, t.value, t.goal, t.met ? "met" : "missed"]),
  };
}
