import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startConveyor } from "../src/main.ts";
import type { MetricsReport } from "../src/metrics/metrics-report.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner } from "./helpers/fake-runner.ts";
import { promtoolCheck, seriesValue } from "./helpers/promtool.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { createTestDatabase } from "./helpers/test-database.ts";
import { waitFor } from "./helpers/wait-for.ts";

let h: Harness;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;

beforeAll(async () => {
  h = await createHarness({
    files: { "src/app.txt": "line 1\nline 2\nline 3\n" },
    start: { metricsTickIntervalMs: 100, metricsSampleIntervalMs: 200 },
  });
  scripted = await startScriptedRunner(h, "metrics-runner");
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});

const scrape = async () => {
  const response = await fetch(`${h.conveyor.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return response.text();
};
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${h.conveyor.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...init.headers },
  });

describe("metrics during an end-to-end run", () => {
  it("scrapes pass promtool while a task runs to a merged PR, and count what happened", async () => {
    await waitFor(async () => seriesValue(await scrape(), "conveyor_runners_connected") === 1, {
      message: "the runner connected",
    });
    const { taskId } = await queueScriptedIssue(
      h,
      "Tiny fix",
      "write src/app.txt\n<<<\nline 1\nline two\nline 3\n>>>",
    );
    const pr = await waitFor(
      async () => {
        const [p] = resultRows<{ pr_number: number; head_sha: string }>(
          await h.database.db.execute(
            sql`select pr_number, head_sha from pull_requests where task_id = ${taskId}`,
          ),
        );
        return p;
      },
      { timeoutMs: 30_000, message: `a PR\n${scripted?.runner.output().slice(-800)}` },
    );

    // A scrape in the middle of the run: the PR is open, its check not green yet.
    const midway = await scrape();
    expect(promtoolCheck(midway)).toEqual({ status: 0, output: "" });
    expect(seriesValue(midway, "conveyor_runner_slots")).toBe(2);

    await h.sim.createCheckRun(h.repo, {
      name: "ci",
      headSha: pr.head_sha,
      status: "completed",
      conclusion: "success",
    });
    await waitFor(async () => (await getTask(h.database.db, taskId))?.state === "merged", {
      timeoutMs: 20_000,
      message: "merged",
    });

    // The event tail lets transitions settle for 2 s before it counts them.
    const text = await waitFor(
      async () => {
        const t = await scrape();
        return seriesValue(t, "conveyor_merges_total") === 1 ? t : undefined;
      },
      { timeoutMs: 15_000, message: "the merge counted" },
    );
    if (process.env.DUMP_METRICS) (await import("node:fs")).writeFileSync("/tmp/scrape.txt", text);
    const check = promtoolCheck(text);
    expect(check).toEqual({ status: 0, output: "" });

    // Database facts.
    expect(seriesValue(text, "conveyor_database_up")).toBe(1);
    expect(seriesValue(text, "conveyor_tasks", { state: "merged", lane: "normal" })).toBe(1);
    expect(seriesValue(text, "conveyor_tasks", { state: "queued", lane: "normal" })).toBe(0);
    expect(seriesValue(text, "conveyor_runners", { state: "online" })).toBe(1);
    expect(seriesValue(text, "conveyor_runners", { state: "offline" })).toBe(0);
    expect(
      seriesValue(text, "conveyor_pull_requests", { state: "merged", verdict: "merge", tier: "1" }),
    ).toBe(1);
    // Durations, observed once each from task_events.
    expect(seriesValue(text, "conveyor_task_end_to_end_seconds_count")).toBe(1);
    expect(seriesValue(text, "conveyor_task_wait_seconds_count", { lane: "normal" })).toBe(1);
    expect(seriesValue(text, "conveyor_task_run_seconds_count", { outcome: "succeeded" })).toBe(1);
    expect(
      seriesValue(text, "conveyor_task_transitions_total", { from: "review", to: "merging" }),
    ).toBe(1);
    // This instance's own work.
    expect(seriesValue(text, "conveyor_dispatch_latency_seconds_count", { lane: "normal" })).toBe(
      1,
    );
    expect(
      seriesValue(text, "conveyor_webhook_deliveries_total", {
        event: "issues",
        outcome: "handled",
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      seriesValue(text, "conveyor_github_requests_total", {
        method: "PUT",
        route: "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
        status: "200",
      }),
    ).toBe(1);
    const remaining = seriesValue(text, "conveyor_github_rate_limit_remaining", {
      client: String(h.installationId),
      resource: "core",
    });
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThan(5000);
    expect(seriesValue(text, "conveyor_runners_connected")).toBe(1);
    expect(seriesValue(text, "conveyor_runner_slots_busy")).toBe(0);
    expect(seriesValue(text, "conveyor_errors_total", { source: "webhook" })).toBeUndefined();
    // Process metrics, with the prefix.
    expect(seriesValue(text, "conveyor_process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(h.sim.violations).toEqual([]);
  });

  it("reports the run in /api/metrics from the database", async () => {
    await h.conveyor.monitoring.sampleMetrics();
    const response = await api("/api/metrics");
    expect(response.status).toBe(200);
    const etag = response.headers.get("etag");
    expect(etag).toBeTruthy();
    const report = (await response.json()) as MetricsReport;
    expect(report.queue.depth).toEqual({
      total: 0,
      by_lane: { urgent: 0, high: 0, normal: 0, low: 0 },
    });
    expect(report.queue.series.length).toBeGreaterThan(0);
    expect(report.queue.window_1h.max).toBeGreaterThanOrEqual(0);
    for (const kind of ["wait", "run", "end_to_end"] as const) {
      expect(report.latency_seconds[kind].window_1h.count).toBe(1);
      expect(report.latency_seconds[kind].cumulative.count).toBe(1);
      // One duration: every percentile is that duration, in the window and over all history.
      const w = report.latency_seconds[kind].window_1h;
      expect(w.p50).toBe(w.p99);
      expect(report.latency_seconds[kind].cumulative.p50).toBeCloseTo(w.p50 ?? -1, 2);
    }
    expect(report.rates.window_1h).toMatchObject({
      attempts: 1,
      failed_attempts: 0,
      failure_rate: 0,
      merged: 1,
      dead: 0,
      dead_rate: 0,
    });
    expect(report.runners).toMatchObject({ registered: 1, online: 1 });
    expect(report.runners.utilisation.per_runner).toEqual([
      expect.objectContaining({ name: "metrics-runner", online: true, slots: 2, busy: 0 }),
    ]);
    expect(report.runners.utilisation.current).toBe(0);
    // Polling again with the ETag costs a 304 while nothing changed.
    const again = await api("/api/metrics", { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
  });

  it("keeps /metrics open and the JSON API behind the token", async () => {
    expect((await fetch(`${h.conveyor.url}/metrics`)).status).toBe(200);
    for (const path of ["/api/metrics", "/api/alerts", "/api/settings"]) {
      expect((await fetch(`${h.conveyor.url}${path}`)).status).toBe(401);
    }
  });

  it("counts rate-limited and invalid runner frames, and the disconnect they earn", async () => {
    const { token } = await createRunner(h.database.db, {
      name: "noisy",
      capabilities: [],
      tier: "normal",
    });
    const runner = await connectRunner(h.conveyor.url, token);
    // `hello` and `drain` are heavy frames, 10 a minute: hello and 9 drains pass, 2 are limited.
    for (let i = 0; i < 11; i++) runner.send({ type: "drain", id: `d${i}` });
    await runner.next("rate_limited");
    for (let i = 0; i < 10; i++) runner.sendRaw("{not json");
    expect((await runner.closed).code).toBe(1008);
    const text = await scrape();
    expect(seriesValue(text, "conveyor_runner_frames_rate_limited_total", { tier: "heavy" })).toBe(
      2,
    );
    expect(seriesValue(text, "conveyor_runner_frames_invalid_total")).toBe(10);
    expect(seriesValue(text, "conveyor_runner_violation_disconnects_total")).toBe(1);
    expect(promtoolCheck(text).status).toBe(0);
  });

  it("promtool is a real check: it refuses what Prometheus would", () => {
    const bad = "# HELP x_total a gauge named like a counter\n# TYPE x_total gauge\nx_total 1\n";
    expect(promtoolCheck(bad).status).not.toBe(0);
  });
});

describe("metrics before the GitHub App is set up", () => {
  it("serves /metrics and the JSON API without a dispatcher", async () => {
    const database = await createTestDatabase();
    const conveyor = await startConveyor(
      loadConfig({
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: database.url,
        CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
      }),
      { logger: createLogger({ level: "silent" }) },
    );
    try {
      const text = await (await fetch(`${conveyor.url}/metrics`)).text();
      expect(promtoolCheck(text)).toEqual({ status: 0, output: "" });
      expect(seriesValue(text, "conveyor_runners_connected")).toBe(0);
      expect(seriesValue(text, "conveyor_database_up")).toBe(1);
      const report = await fetch(`${conveyor.url}/api/metrics`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(report.status).toBe(200);
      expect(((await report.json()) as MetricsReport).latency_seconds.wait.cumulative.count).toBe(
        0,
      );
      const checked = await conveyor.monitoring.checkAlerts();
      expect(checked).toMatchObject({ database: "up", evaluated: true });
    } finally {
      await conveyor.stop();
      await database.drop();
    }
  });
});
