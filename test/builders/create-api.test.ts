import { Hono } from "hono";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Signal } from "../../src/core/ports.ts";
import { createSignals } from "../../src/core/signals.ts";
import type { RunnerConnection } from "../../src/dispatch/dispatcher.ts";
import type { ApiEnv } from "../../src/http/admin-auth.ts";
import { createApi } from "../../src/http/create-api.ts";
import { seedQueuedTask } from "../helpers/seed-task.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

const ADMIN = "admin-token-for-the-api-builder-test";

describe("the admin API subsystem, built alone", () => {
  let database: TestDatabase;
  let app: Hono<ApiEnv>;
  const heard: Signal[] = [];
  const revoked: string[] = [];
  const connected: RunnerConnection[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const signals = createSignals();
    for (const signal of ["tasks-changed", "operator-changed-tasks"] as const) {
      signals.on(signal, () => heard.push(signal));
    }
    const api = createApi({
      database,
      logger: pino({ level: "silent" }),
      config: { adminToken: ADMIN },
      options: {},
      // A fake dispatcher: the sockets it holds, and the revocations it was told of.
      runners: { connections: () => connected, revokeRunner: (id) => revoked.push(id) },
      signals,
    });
    app = new Hono<ApiEnv>();
    for (const routes of api.routes) app.route("/api", routes);
  });
  afterAll(async () => {
    await database?.drop();
  });

  const call = (method: string, path: string, body?: unknown, token = ADMIN) =>
    app.request(`/api${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it("refuses a caller without a credential", async () => {
    expect((await call("GET", "/runners", undefined, "not-the-admin-token")).status).toBe(401);
  });

  it("shows which runners this instance's dispatcher holds, and tells it of a revocation", async () => {
    const registered = await call("POST", "/runners", { name: "lathe", capabilities: [] });
    expect(registered.status).toBe(201);
    const { runner } = (await registered.json()) as { runner: { runner_id: string } };
    connected.push({
      runnerId: runner.runner_id,
      connectedAt: "2025-01-01T00:00:00.000Z",
      tasks: new Map([["t", 1]]),
    } as unknown as RunnerConnection);
    const listed = (await (await call("GET", "/runners")).json()) as {
      runners: { name: string; connected: unknown }[];
    };
    expect(listed.runners).toEqual([
      expect.objectContaining({
        name: "lathe",
        connected: { connected_at: "2025-01-01T00:00:00.000Z", busy_slots: 1 },
      }),
    ]);
    expect((await call("POST", "/runners/lathe/revoke")).status).toBe(200);
    expect(revoked).toEqual([runner.runner_id]);
  });

  it("wakes the loops and the live views when an operator changes a task", async () => {
    const task = await seedQueuedTask(database.db, {
      repositoryId: 12,
      installationId: 3,
      issueNumber: 8,
      title: "Cancel me",
    });
    expect(heard).toEqual([]);
    const cancelled = await call("POST", `/tasks/${task.taskId}/cancel`, { reason: "not needed" });
    expect(cancelled.status).toBe(200);
    expect(heard).toEqual(["tasks-changed", "operator-changed-tasks"]);
  });
});
