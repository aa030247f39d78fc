import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, inject, it } from "vitest";

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
