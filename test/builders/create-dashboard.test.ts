import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSignals } from "../../src/core/signals.ts";
import { createDashboard, type Dashboard } from "../../src/dashboard/create-dashboard.ts";
import type { DashboardClient } from "../../src/dashboard/dashboard-hub.ts";
import { createApiAuth } from "../../src/http/admin-auth.ts";
import { seedQueuedTask } from "../helpers/seed-task.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const HOUR = 3_600_000;

describe("the dashboard subsystem, built alone", () => {
  let database: TestDatabase;
  let dashboard: Dashboard;
  const signals = createSignals();
  const events: string[] = [];
  let closed = false;
  let issues = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
    const logger = pino({ level: "silent" });
    dashboard = createDashboard({
      database,
      auth: createApiAuth({ db: database.db, adminToken: "dashboard-admin-token", logger }),
      logger,
      instanceId: "dashboard-test",
      connections: () => [],
      config: { agingMs: 30 * 60_000, adminToken: "dashboard-admin-token", publicUrl: undefined },
      // Nothing refreshes by itself within the test: only signals wake the hub.
      options: {
        dashboardTimings: {
          hub: { tickMs: HOUR, fullEveryMs: HOUR, recheckEveryMs: HOUR, keepAliveMs: HOUR },
        },
      },
      signals,
    });
    await dashboard.start();
  });
  afterAll(async () => {
    await dashboard?.stop();
    await database?.drop();
  });

  const queueTask = () =>
    seedQueuedTask(database.db, {
      repositoryId: 21,
      installationId: 2,
      issueNumber: ++issues,
      title: `Task ${issues}`,
    });

  it("serves its pages under /dashboard", async () => {
    const page = await dashboard.routes.request("/dashboard/sign-in");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
  });

  it("updates open pages at once when an operator changes tasks or monitoring changes", async () => {
    const client: DashboardClient = {
      send: async (event) => {
        events.push(event);
        return true;
      },
      close: () => {
        closed = true;
      },
      stillAllowed: async () => true,
    };
    dashboard.hub.subscribe(client);
    await waitFor(() => events.length > 0, { message: "the first state" });

    for (const signal of ["operator-changed-tasks", "monitoring-changed"] as const) {
      const before = events.length;
      await queueTask();
      signals.emit(signal);
      await waitFor(() => events.length > before, { message: `an update after ${signal}` });
    }
  });

  it("ends every open stream when it stops", async () => {
    await dashboard.stop();
    expect(closed).toBe(true);
  });
});
