/**
 * `npm run bench`: runs the benchmarks (all, or the ones named) against a PostgreSQL server started
 * for the run, prints a table for each and writes bench/results/<name>.json with the machine, the
 * versions and the raw samples. See docs/benchmarks.md.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dispatchLatency } from "./benchmarks/dispatch-latency.ts";
import { lifecycleCost } from "./benchmarks/lifecycle-cost.ts";
import { mergeDecision } from "./benchmarks/merge-decision.ts";
import { queueThroughput } from "./benchmarks/queue-throughput.ts";
import { runnerScale } from "./benchmarks/runner-scale.ts";
import { webhookIngest } from "./benchmarks/webhook-ingest.ts";
import { parseBenchArgs, USAGE } from "./lib/args.ts";
import { type BenchContext, type Benchmark, renderTable, writeResult } from "./lib/benchmark.ts";
import { describeMachine, describeVersions } from "./lib/machine.ts";
import { type BenchPostgres, type CommitCeiling, startBenchPostgres } from "./lib/postgres.ts";
import { type JudgedTarget, judgeTarget, summaryTable, targetTable } from "./lib/targets.ts";

const BENCHMARKS: Benchmark[] = [
  dispatchLatency,
  queueThroughput,
  webhookIngest,
  runnerScale,
  mergeDecision,
  lifecycleCost,
];

const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));
const started = Date.now();

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function clock(): string {
  const seconds = Math.floor((Date.now() - started) / 1000);
  return `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(seconds % 60).padStart(2, "0")}`;
}

/** The soft limit on open files this process runs with (what `ulimit -n` reports). */
function openFileLimit(kind: "S" | "H" = "S"): number {
  const result = spawnSync("sh", ["-c", `ulimit -${kind}n`], { encoding: "utf8" });
  const value = result.stdout.trim();
  return value === "unlimited" ? Number.POSITIVE_INFINITY : Number(value);
}

/**
 * Node cannot raise its own open-file limit, so when a benchmark needs more than the soft limit
 * the run starts itself again under a shell that raised it (as far as the hard limit allows).
 */
function ensureOpenFiles(needed: number): void {
  if (openFileLimit() >= needed || process.env.CONVEYOR_BENCH_RELAUNCHED) return;
  say(`raising the open-file limit to ${needed} (was ${openFileLimit()})`);
  const shell = `ulimit -n ${needed} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const relaunched = spawnSync(
    "sh",
    ["-c", shell, process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, CONVEYOR_BENCH_RELAUNCHED: "1" } },
  );
  process.exit(relaunched.status ?? 1);
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseBenchArgs>;
  try {
    args = parseBenchArgs(
      process.argv.slice(2),
      BENCHMARKS.map((b) => b.name),
    );
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    say(USAGE);
    return 0;
  }
  if (args.list) {
    for (const b of BENCHMARKS) say(`${b.name.padEnd(18)} ${b.title}`);
    return 0;
  }
  const selected = args.names.length
    ? BENCHMARKS.filter((b) => args.names.includes(b.name))
    : BENCHMARKS;
  const neededFiles = Math.max(1_024, ...selected.map((b) => b.openFiles?.(args.smoke) ?? 0));
  ensureOpenFiles(neededFiles);
  if (openFileLimit() < neededFiles) {
    process.stderr.write(
      `bench: ${selected.map((b) => b.name).join(", ")} needs ${neededFiles} open files, but the ` +
        `limit is ${openFileLimit()} (hard limit ${openFileLimit("H")}). Raise it (ulimit -n, ` +
        "LimitNOFILE= for a service) or run as root.\n",
    );
    return 2;
  }

  const outDir = args.out ?? RESULTS_DIR;
  const fileFor = (name: string) => (args.smoke && !args.out ? `${name}.tmp.json` : `${name}.json`);
  const logDir = mkdtempSync(join(tmpdir(), "conveyor-bench-logs-"));
  const machine = describeMachine();
  say(
    `conveyor benchmarks${args.smoke ? " (smoke: tiny sizes, numbers mean nothing)" : ""}: ` +
      `${selected.map((b) => b.name).join(", ")}`,
  );
  say(
    `machine: ${machine.cpuModel}, ${machine.logicalCpus} CPUs, ${machine.memoryGiB} GiB, load ${machine.loadAverage.join(" ")}`,
  );

  let postgres: BenchPostgres | undefined;
  let ceiling: CommitCeiling | undefined;
  const failures: string[] = [];
  const judged: { benchmark: string; targets: JudgedTarget[] }[] = [];
  const cleanup = async () => {
    await postgres?.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      say(`\n${signal}: stopping PostgreSQL`);
      cleanup().finally(() => process.exit(130));
    });
  }
  try {
    if (selected.some((b) => b.needsPostgres)) {
      postgres = await startBenchPostgres({
        url: args.databaseUrl,
        progress: (message) => say(`[${clock()}] postgres: ${message}`),
      });
      const seconds = args.smoke ? 1 : 5;
      say(`[${clock()}] postgres: measuring the commit rate with pgbench (${seconds} s × 2)`);
      ceiling = await postgres.measureCommitCeiling(seconds);
      say(
        ceiling
          ? `[${clock()}] postgres: ${Object.entries(ceiling.tpsByClients)
              .map(([clients, tps]) => `${tps} commits/s with ${clients} client(s)`)
              .join(", ")}`
          : `[${clock()}] postgres: pgbench not found; the commit ceiling is not measured`,
      );
    }
    for (const benchmark of selected) {
      const progress = (message: string) => say(`[${clock()}] ${benchmark.name}: ${message}`);
      const ctx: BenchContext = {
        smoke: args.smoke,
        postgres: postgres as BenchPostgres,
        commitCeiling: ceiling,
        logDir,
        progress,
      };
      const startedAt = new Date();
      const loadBefore = describeMachine().loadAverage;
      progress(benchmark.title);
      try {
        const { targets: wanted, ...outcome } = await benchmark.run(ctx);
        const targets = (wanted ?? []).map(judgeTarget);
        const finishedAt = new Date();
        const path = writeResult(outDir, fileFor(benchmark.name), {
          benchmark: benchmark.name,
          title: benchmark.title,
          mode: args.smoke ? "smoke" : "full",
          command: [
            "npm run bench",
            ...(process.argv.length > 2 ? ["--"] : []),
            ...process.argv.slice(2),
          ].join(" "),
          startedAt: startedAt.toISOString(),
          finishedAt: finishedAt.toISOString(),
          durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
          machine: {
            ...machine,
            loadAverage: undefined,
            loadAverageBefore: loadBefore,
            loadAverageAfter: describeMachine().loadAverage,
          },
          versions: describeVersions(postgres?.version),
          postgres: postgres && {
            origin: postgres.origin,
            settings: postgres.settings,
            commitCeiling: ceiling,
          },
          ...outcome,
          targets,
        });
        say("");
        for (const table of outcome.tables) say(`${renderTable(table)}\n`);
        if (targets.length > 0) {
          judged.push({ benchmark: benchmark.name, targets });
          say(`${renderTable(targetTable(`${benchmark.name}: targets of issue #22`, targets))}\n`);
        }
        for (const note of outcome.notes) say(`note: ${note}`);
        progress(
          `done in ${Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000)} s; wrote ${path}`,
        );
      } catch (error) {
        failures.push(benchmark.name);
        process.stderr.write(
          `[${clock()}] ${benchmark.name} FAILED: ${(error as Error).stack ?? error}\n` +
            `the logs of its processes are in ${logDir}\n`,
        );
      }
    }
  } finally {
    await cleanup();
  }
  if (judged.length > 0) say(`\n${renderTable(summaryTable(judged))}\n`);
  if (failures.length) {
    process.stderr.write(`bench: ${failures.join(", ")} failed; logs in ${logDir}\n`);
    return 1;
  }
  rmSync(logDir, { recursive: true, force: true });
  say(`[${clock()}] all done`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
