import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdaptorServer } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database, resultRows } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { type ApiEnv, createApiAuth } from "../src/http/admin-auth.ts";
import { createOpsApi } from "../src/http/create-ops-api.ts";
import { createLogger } from "../src/logger.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { writeServerInfo } from "../src/server-info.ts";
import { listApiTokens } from "../src/store/api-tokens.ts";
import { createRunner } from "../src/store/runners.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { spawnConveyor } from "./helpers/spawn-conveyor.ts";
import { waitFor } from "./helpers/wait-for.ts";

type AssignFrame = Extract<ServerMessage, { type: "assign" }>;

describe("the admin API on a running server", () => {
  let h: Harness;
  const runners: FakeRunner[] = [];
  let registered = 0;

  beforeAll(async () => {
    h = await createHarness({ start: { publishPullRequests: false } });
  });
  afterAll(async () => {
    await h?.close();
  });
  afterEach(() => {
    for (const r of runners.splice(0)) r.close();
    expect(h.sim.violations).toEqual([]);
  });

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${h.conveyor.url}/api${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  async function queueIssue(title: string) {
    const { issue } = await h.sim.openIssue(h.repo, { title, body: title, user: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    // The webhook is answered once stored; the intake loop queues the task just after.
    await h.sim.idle();
    const [row] = resultRows<{ task_id: string }>(
      await h.database.db.execute(
        sql`select task_id from tasks where issue_number = ${issue.number}`,
      ),
    );
    return { issueNumber: issue.number, taskId: row!.task_id };
  }

  async function connect() {
    const { token } = await createRunner(h.database.db, { name: `ops-${++registered}` });
    const runner = await connectRunner(h.conveyor.url, token);
    runners.push(runner);
    return runner;
  }

  it("cancelling a running task tells its runner at once, and the issue's status comment says so", async () => {
    const runner = await connect();
    const { taskId, issueNumber } = await queueIssue("Cancel me from the API");
    const assign = (await runner.next("assign")) as AssignFrame;
    expect(assign.task_id).toBe(taskId);
    runner.send({ type: "accept", id: "a1", task_id: taskId, generation: assign.generation });
    await runner.next("ack", (f) => f.id === "a1");

    const response = await api("POST", `/tasks/${taskId}/cancel`, { reason: "not needed" });
    expect(response.status).toBe(200);
    const cancel = await runner.next("cancel", (f) => f.task_id === taskId);
    expect(cancel.generation).toBe(assign.generation);
    await waitFor(() =>
      h.sim
        .listComments(h.repo, issueNumber)
        .find((c) => c.body?.includes("conveyor:status") && c.body.includes("Cancelled")),
    );
  });

  it("retrying a dead task hands it out again", async () => {
    const runner = await connect();
    const { taskId } = await queueIssue("Retry me from the API");
    const first = (await runner.next("assign")) as AssignFrame;
    runner.send({ type: "accept", id: "a2", task_id: taskId, generation: first.generation });
    await runner.next("ack", (f) => f.id === "a2");
    runner.send({
      type: "fail",
      id: "f2",
      task_id: taskId,
      generation: first.generation,
      reason: "the agent is missing",
      retryable: false,
      detail: "",
    });
    await runner.next("ack", (f) => f.id === "f2");
    const dead = await waitFor(async () => {
      const shown = (await (await api("GET", `/tasks/${taskId}`)).json()) as { state: string };
      return shown.state === "dead" ? shown : undefined;
    });
    expect(dead).toMatchObject({ state: "dead" });

    const retried = await api("POST", `/tasks/${taskId}/retry`);
    expect(retried.status).toBe(200);
    const again = (await runner.next("assign", (f) => f.task_id === taskId)) as AssignFrame;
    expect(again.generation).toBe(first.generation + 1);
    await api("POST", `/tasks/${taskId}/cancel`);
  });

  it("serves the operator routes beside the webhook and the runner routes", async () => {
    const levels = await api("PUT", "/admin/log-level", { level: "debug" });
    expect(await levels.json()).toMatchObject({ level: "debug" });
    expect(h.conveyor.logger.level).toBe("debug");
    await api("PUT", "/admin/log-level", { level: "silent" });
    const report = (await (await api("GET", "/admin/database")).json()) as {
      reachable: boolean;
      tables: { name: string; rows: number }[];
    };
    expect(report.reachable).toBe(true);
    expect(report.tables.find((t) => t.name === "repositories")?.rows).toBeGreaterThan(0);
    expect((await api("GET", "/runners")).status).toBe(200);
    // Unauthenticated requests are refused, but the webhook route is not behind the admin auth.
    expect((await fetch(`${h.conveyor.url}/api/tasks`)).status).toBe(401);
    const webhook = await fetch(`${h.conveyor.url}/api/github/webhooks`, { method: "POST" });
    expect(webhook.status).not.toBe(401);
  });
});

describe("the CLI while a server holds the embedded database", () => {
  const ADMIN = "held-admin-token-0123456789";
  let dataDir: string;
  let server: Server;
  let held: Database;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "conveyor-ops-held-"));
    // Stands in for `conveyor start`: this process holds the lock and serves the admin API.
    const database = await createDatabase({ dataDir });
    held = database;
    await migrate(database.db);
    const logger = createLogger({ level: "silent" });
    const app = new Hono<ApiEnv>();
    app.route(
      "/api",
      createOpsApi({
        database,
        auth: createApiAuth({ db: database.db, adminToken: ADMIN, logger }),
        logger,
        onTasksChanged: () => {},
      }),
    );
    server = createAdaptorServer({ fetch: app.fetch }) as Server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    writeServerInfo(dataDir, { pid: process.pid, url });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await held?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("creates a token and exports through the server's API, leaving its lock alone", async () => {
    const env = { CONVEYOR_DATA_DIR: dataDir, CONVEYOR_ADMIN_TOKEN: ADMIN };
    const added = spawnConveyor(["tokens", "add", "held", "--role", "admin", "--json"], env);
    expect(await added.exited).toBe(0);
    expect(added.output()).toContain("going through the server at http://127.0.0.1:");
    expect((await listApiTokens(held.db)).map((t) => t.name)).toEqual(["held"]);
    const file = join(dataDir, "backup.json");
    const exported = spawnConveyor(["export", file], env);
    expect(await exported.exited).toBe(0);
    const document = JSON.parse(readFileSync(file, "utf8")) as {
      tables: { api_tokens: { name: string }[] };
    };
    expect(document.tables.api_tokens.map((t) => t.name)).toEqual(["held"]);
    expect(readFileSync(join(dataDir, "conveyor.pid"), "utf8").trim()).toBe(String(process.pid));
  }, 90_000);
});
