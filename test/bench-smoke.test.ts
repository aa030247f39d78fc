import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, inject, it } from "vitest";
import { judgeTarget, type Target } from "../bench/lib/targets.ts";

const run = promisify(execFile);
const ROOT = new URL("..", import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), "conveyor-bench-smoke-"));

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** `npm run bench` as a user runs it, with tiny sizes, against the test suite's PostgreSQL. */
function bench(args: string[]) {
  return run(process.execPath, ["--import", "tsx", "bench/run.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, BENCH_DATABASE_URL: "" },
    timeout: 60_000,
  });
}

describe("npm run bench --smoke", () => {
  it("runs a benchmark end to end and writes its JSON with the machine, versions and samples", async () => {
    const { stdout } = await bench([
      "--smoke",
      "dispatch-latency",
      "merge-decision",
      "--out",
      out,
      "--database-url",
      inject("postgresAdminUrl"),
    ]);
    expect(stdout).toContain("dispatch-latency: done");
    expect(stdout).toMatch(/webhook → assign \(ours\)/);

    const dispatch = JSON.parse(readFileSync(join(out, "dispatch-latency.json"), "utf8"));
    expect(dispatch).toMatchObject({
      benchmark: "dispatch-latency",
      mode: "smoke",
      machine: { logicalCpus: expect.any(Number), cpuModel: expect.any(String) },
      versions: { node: process.version, postgres: expect.stringContaining("PostgreSQL") },
      postgres: { origin: "given with --database-url" },
      results: { runnerProblems: [] },
      peer: { name: "graphile-worker" },
    });
    expect(dispatch.samples.dispatchMs).toHaveLength(dispatch.parameters.tasks);
    expect(dispatch.samples.dispatchMs.every((ms: number) => ms > 0)).toBe(true);
    expect(dispatch.ratios.p50.value).toBeGreaterThan(0);

    const merge = JSON.parse(readFileSync(join(out, "merge-decision.json"), "utf8"));
    expect(merge.results.evaluationsPerSecond).toBeGreaterThan(0);
    expect(merge.results.perCaseMicroseconds.length).toBe(merge.parameters.cases);

    // Issue #22's target, judged in the JSON and printed after the benchmark and in the summary.
    const [target] = dispatch.targets;
    expect(dispatch.targets).toHaveLength(1);
    expect(target).toEqual({
      row: "p99: webhook → assign ÷ graphile-worker addJob → start",
      value: dispatch.ratios.p99.value,
      op: "<=",
      target: 2,
      goal: "≤ 2",
      met: dispatch.ratios.p99.value <= 2,
    });
    expect(merge.targets).toEqual([]);
    const verdict = target.met ? "met" : "missed";
    const after = stdout.slice(stdout.indexOf("dispatch-latency: targets of issue #22"));
    expect(after).toMatch(/^dispatch-latency: targets of issue #22\nrow +value +target +met\n/);
    expect(after).toMatch(
      new RegExp(
        `p99: webhook → assign ÷ graphile-worker addJob → start +[\\d.,]+ +≤ 2 +${verdict}`,
      ),
    );
    const summary = stdout.slice(stdout.lastIndexOf("targets of issue #22: "));
    expect(summary).toMatch(
      new RegExp(
        `^targets of issue #22: ${target.met ? 1 : 0} of 1 met\nbenchmark: row +value +target +met\n`,
      ),
    );
    expect(summary).toMatch(
      new RegExp(`dispatch-latency: p99: webhook → assign .* +≤ 2 +${verdict}`),
    );
    expect(summary).not.toContain("merge-decision");
  });

  it.each<[string, Target, boolean]>([
    ["at most, under", { row: "r", value: 1.5, op: "<=", target: 2 }, true],
    ["at most, equal", { row: "r", value: 2, op: "<=", target: 2 }, true],
    ["at most, over", { row: "r", value: 2.01, op: "<=", target: 2 }, false],
    ["at least, over", { row: "r", value: 0.6, op: ">=", target: 0.5 }, true],
    ["at least, under", { row: "r", value: 0.49, op: ">=", target: 0.5 }, false],
    ["not measured", { row: "r", value: undefined, op: "<=", target: 2 }, false],
    ["not a number", { row: "r", value: Number.NaN, op: ">=", target: 0 }, false],
  ])("judges a target: %s", (_name, target, met) => {
    expect(judgeTarget(target)).toEqual({
      ...target,
      goal: `${target.op === "<=" ? "≤" : "≥"} ${target.target}`,
      met,
    });
  });

  it("lists every benchmark, lifecycle-cost among them", async () => {
    const { stdout } = await bench(["--list"]);
    const names = stdout
      .trim()
      .split("\n")
      .map((line) => line.split(/\s+/)[0]);
    expect(names).toEqual([
      "dispatch-latency",
      "queue-throughput",
      "webhook-ingest",
      "runner-scale",
      "merge-decision",
      "lifecycle-cost",
    ]);
  });

  it("refuses an unknown benchmark, naming the ones there are", async () => {
    const failed = await bench(["no-such-bench"]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toContain(
      'unknown benchmark "no-such-bench"; the benchmarks are: dispatch-latency, queue-throughput',
    );
  });
});
