import type { MiddlewareHandler } from "hono";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertIssues, Signal } from "../../src/core/ports.ts";
import { createSignals } from "../../src/core/signals.ts";
import { createMetrics } from "../../src/metrics/create-metrics.ts";
import {
  createMonitoring,
  MONITORING_CHANNEL,
  type Monitoring,
} from "../../src/metrics/create-monitoring.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const HOUR = 3_600_000;

describe("the monitoring subsystem, built alone", () => {
  let database: TestDatabase;
  let monitoring: Monitoring;
  const heard: Signal[] = [];
  const allowed: string[] = [];
  const issues: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const logger = pino({ level: "silent" });
    const signals = createSignals();
    signals.on("monitoring-changed", () => heard.push("monitoring-changed"));
    // Fake authentication that lets everyone in and remembers which role a route asked for.
    const role =
      (name: string): MiddlewareHandler =>
      async (_c, next) => {
        allowed.push(name);
        await next();
      };
    const fakeIssues: AlertIssues = {
      open: async (target) => {
        issues.push(`open ${target.fullName}`);
        return 1;
      },
      comment: async () => {},
      close: async () => {},
    };
    monitoring = createMonitoring({
      database,
      logger,
      metrics: createMetrics({ database, logger, processMetrics: false }),
      instanceId: "monitoring-test",
      // Two runner sockets with three slots, one busy.
      connections: () => [
        { runnerId: "r1", slots: 2, tasks: new Map([["t", 1]]) },
        { runnerId: "r2", slots: 1, tasks: new Map() },
      ],
      issues: fakeIssues,
      timings: { leaseMs: 60_000, acceptMs: 30_000 },
      recordError: () => {},
      auth: { read: role("read"), admin: role("admin") },
      signals,
      // Only the test makes samples and checks.
      options: {
        metricsSampleIntervalMs: HOUR,
        metricsTickIntervalMs: HOUR,
        alertCheckIntervalMs: HOUR,
        alertStartDelayMs: HOUR,
      },
    });
  });
  afterAll(async () => {
    await monitoring?.stop();
    await database?.drop();
  });

  it("serves Prometheus text from this instance's runner sockets and the JSON API behind auth", async () => {
    const text = await (await monitoring.routes.request("/metrics")).text();
    expect(text).toMatch(/^conveyor_runner_slots 3$/m);
    expect(text).toMatch(/^conveyor_runner_slots_busy 1$/m);
    expect(allowed).toEqual([]);
    const report = await monitoring.routes.request("/api/metrics");
    expect(report.status).toBe(200);
    expect(allowed).toEqual(["read"]);
  });

  it("checks alerts on demand, with the database up", async () => {
    const report = await monitoring.checkAlerts();
    expect(report).toMatchObject({ database: "up", evaluated: true });
    expect(issues).toEqual([]);
  });

  it("turns another instance's monitoring change into a signal once started", async () => {
    monitoring.start();
    // Subscribing starts the LISTEN; keep announcing until it is heard.
    await waitFor(
      async () => {
        await database.notify(MONITORING_CHANNEL, "alerts");
        return heard.length > 0;
      },
      { message: "a monitoring-changed signal" },
    );
    expect(heard[0]).toBe("monitoring-changed");
  });
});
