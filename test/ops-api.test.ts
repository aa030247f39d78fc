import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTaskPageState } from "../src/dashboard/task-page.ts";
import { type ApiAuthDeps, type ApiEnv, createApiAuth } from "../src/http/admin-auth.ts";
import { createAdminRoutes } from "../src/http/admin-routes.ts";
import { createOpsApi } from "../src/http/create-ops-api.ts";
import type { TaskDetailsJson, TaskJson, TaskListItemJson } from "../src/http/task-json.ts";
import type { ApiTokenJson } from "../src/http/token-routes.ts";
import { createLogger } from "../src/logger.ts";
import { startRound } from "../src/store/best-of.ts";
import { createDashboardSession } from "../src/store/dashboard-sessions.ts";
import {
  countTasksByStateAndLane,
  oldestQueuedByLane,
  queueDepthByLane,
} from "../src/store/metrics.ts";
import { waitingWork } from "../src/store/runner-demand.ts";
import {
  createTask,
  getTask,
  queuePosition,
  transitionTask,
  upsertRepository,
} from "../src/store/tasks.ts";
import { seedEveryTable } from "./helpers/seed-every-table.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { waitFor } from "./helpers/wait-for.ts";

const ADMIN_TOKEN = "ops-admin-token-0123456789";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

interface App {
  app: Hono<ApiEnv>;
  changed: number[];
  logger: ReturnType<typeof createLogger>;
}

/** The admin API as the server mounts it, over the test database. */
function createApp(over: Partial<ApiAuthDeps> = {}, db: TestDatabase = database): App {
  const logger = createLogger({ level: "silent" });
  const changed: number[] = [];
  const auth = createApiAuth({ db: db.db, adminToken: ADMIN_TOKEN, logger, ...over });
  const app = new Hono<ApiEnv>();
  app.route(
    "/api",
    createAdminRoutes({
      db: db.db,
      adminToken: ADMIN_TOKEN,
      auth,
      logger,
      onRunnerRevoked: () => {},
    }),
  );
  app.route(
    "/api",
    createOpsApi({ database: db, auth, logger, onTasksChanged: () => changed.push(Date.now()) }),
  );
  return { app, changed, logger };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function call(
  app: Hono<ApiEnv>,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
) {
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  const response = await app.request(path, {
    method,
    headers: {
      ...(token ? bearer(token) : {}),
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined
      ? { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) }
      : {}),
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, headers: response.headers, body };
}

async function createToken(app: Hono<ApiEnv>, name: string, role: "read" | "admin") {
  const created = await call(app, "POST", "/api/tokens", { body: { name, role } });
  expect(created.status).toBe(201);
  return created.body as unknown as { token: ApiTokenJson; secret: string };
}

const REPO_ID = 5150;
let issue = 100;

async function seedTask(state: "queued" | "dead" | "running" | "waiting_human" = "queued") {
  await upsertRepository(database.db, {
    repositoryId: REPO_ID,
    installationId: 3,
    fullName: "acme/Widgets",
  });
  const { task } = await createTask(
    database.db,
    {
      repositoryId: REPO_ID,
      installationId: 3,
      issueNumber: ++issue,
      title: `Task for issue ${issue}`,
      body: "body",
      lane: issue % 2 ? "high" : "normal",
      capabilities: [],
      maxAttempts: 3,
      limits: {},
      queuedBy: "octocat",
    },
    "label added",
  );
  if (state === "queued") return task;
  await transitionTask(database.db, {
    taskId: task.taskId,
    to: "assigned",
    actor: "dispatcher",
    reason: "test",
  });
  await transitionTask(database.db, {
    taskId: task.taskId,
    to: "running",
    actor: "runner",
    reason: "test",
  });
  if (state === "running") return (await getTask(database.db, task.taskId))!;
  if (state === "dead") {
    return (await transitionTask(database.db, {
      taskId: task.taskId,
      to: "dead",
      actor: "dispatcher",
      reason: "gave up after 3 of 3 attempts",
      set: { attempts: 3, lastError: "agent crashed" },
    }))!;
  }
  await transitionTask(database.db, {
    taskId: task.taskId,
    to: "pushed",
    actor: "runner",
    reason: "test",
  });
  return (await transitionTask(database.db, {
    taskId: task.taskId,
    to: "waiting_human",
    actor: "merger",
    reason: "out of CI fixes",
    set: { ciFixes: 2 },
  }))!;
}

describe("API tokens and roles", () => {
  it("creates a token shown once, lists it without its secret, and 409s a second of the name", async () => {
    const { app } = createApp();
    const created = await createToken(app, "lister", "read");
    expect(created.secret).toMatch(/^cva_[A-Za-z0-9_-]{43}$/);
    expect(created.token).toMatchObject({ name: "lister", role: "read", status: "active" });
    const list = await call(app, "GET", "/api/tokens");
    expect(JSON.stringify(list.body)).not.toContain(created.secret);
    expect(list.body.tokens).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "lister", role: "read" })]),
    );
    const again = await call(app, "POST", "/api/tokens", { body: { name: "lister" } });
    expect(again).toMatchObject({
      status: 409,
      body: { error: "a token named lister exists; revoke it or pick another name" },
    });
  });

  it("lets a read token look but not act: 403 naming the role needed", async () => {
    const { app } = createApp();
    const { secret } = await createToken(app, "viewer", "read");
    const task = await seedTask("dead");
    expect((await call(app, "GET", "/api/tasks", { token: secret })).status).toBe(200);
    expect((await call(app, "GET", `/api/tasks/${task.taskId}`, { token: secret })).status).toBe(
      200,
    );
    expect((await call(app, "GET", "/api/runners", { token: secret })).status).toBe(200);
    expect((await call(app, "GET", "/api/admin/database", { token: secret })).status).toBe(200);
    const retry = await call(app, "POST", `/api/tasks/${task.taskId}/retry`, { token: secret });
    expect(retry).toMatchObject({
      status: 403,
      body: {
        error:
          "this needs the admin role, and token viewer has the read role: use a token created with --role admin",
      },
    });
    for (const [method, path] of [
      ["POST", "/api/runners"],
      ["GET", "/api/tokens"],
      ["POST", "/api/tokens"],
      ["PUT", "/api/admin/log-level"],
      ["GET", "/api/admin/export"],
      ["POST", "/api/admin/import"],
    ] as const) {
      const body = method === "GET" ? undefined : {};
      expect((await call(app, method, path, { token: secret, body })).status, path).toBe(403);
    }
    const [row] = await database.rows<{ state: string }>(
      sql`select state from tasks where task_id = ${task.taskId}`,
    );
    expect(row?.state).toBe("dead");
  });

  it("lets an admin token act, recording it as the actor", async () => {
    const { app } = createApp();
    const { secret } = await createToken(app, "operator", "admin");
    const task = await seedTask("dead");
    const retry = await call(app, "POST", `/api/tasks/${task.taskId}/retry`, { token: secret });
    expect(retry.status).toBe(200);
    const [event] = await database.rows<{ actor: string }>(
      sql`select actor from task_events where task_id = ${task.taskId} order by event_id desc limit 1`,
    );
    expect(event?.actor).toBe("token:operator");
  });

  it("answers 401 to a revoked token (saying so) and to a wrong one", async () => {
    const { app } = createApp();
    const { secret, token } = await createToken(app, "leaked", "admin");
    expect((await call(app, "GET", "/api/tasks", { token: secret })).status).toBe(200);
    const revoked = await call(app, "POST", "/api/tokens/leaked/revoke");
    expect(revoked.body).toMatchObject({ status: "revoked", token_id: token.token_id });
    const refused = await call(app, "GET", "/api/tasks", { token: secret });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(refused.body.error).toMatch(
      /^token leaked was revoked on \S+: ask an admin for a new one/,
    );
    const wrong = await call(app, "GET", "/api/tasks", { token: `${secret.slice(0, -1)}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatch(/^unknown token: /);
    // Revoking by id works too, and again is harmless; an unknown name is 404.
    expect((await call(app, "POST", `/api/tokens/${token.token_id}/revoke`)).status).toBe(200);
    expect(await call(app, "POST", "/api/tokens/nobody/revoke")).toMatchObject({
      status: 404,
      body: { error: "no token named nobody" },
    });
  });

  it("records last use at most once a minute per token", async () => {
    let now = 1_000_000;
    const { app } = createApp({ now: () => now });
    const { secret, token } = await createToken(app, "polled", "read");
    const lastUsed = async () => {
      const [row] = await database.rows<{ at: string | null }>(
        sql`select last_used_at::text as at from api_tokens where token_id = ${token.token_id}`,
      );
      return row?.at ?? null;
    };
    expect(await lastUsed()).toBeNull();
    await call(app, "GET", "/api/tasks", { token: secret });
    const first = await waitFor(lastUsed);
    now += 10_000;
    await call(app, "GET", "/api/tasks", { token: secret });
    expect(await lastUsed()).toBe(first);
    await database.db.execute(
      sql`update api_tokens set last_used_at = last_used_at - interval '2 minutes' where token_id = ${token.token_id}`,
    );
    now += 60_000;
    await call(app, "GET", "/api/tasks", { token: secret });
    await waitFor(async () => (await lastUsed()) !== null && (await lastUsed())! > first);
  });

  it("answers 422 with field errors to a bad token request", async () => {
    const { app } = createApp();
    const bad = await call(app, "POST", "/api/tokens", {
      body: { name: "Bad Name", role: "root", x: 1 },
    });
    expect(bad.status).toBe(422);
    expect(bad.body).toEqual({
      error: expect.stringMatching(/^invalid request: /),
      fields: [
        { path: "name", message: expect.stringContaining("lower-case") },
        { path: "role", message: "expected read or admin" },
        { path: "x", message: "unknown field" },
      ],
    });
  });

  it("answers 503 saying how to get in when there is no credential at all", async () => {
    const empty = await createTestDatabase();
    try {
      const { app } = createApp({ adminToken: undefined }, empty);
      const response = await call(app, "GET", "/api/tasks", { token: "anything-at-all" });
      expect(response.status).toBe(503);
      expect(response.body.error).toContain("conveyor tokens add <name> --role admin");
    } finally {
      await empty.drop();
    }
  });

  it("accepts a dashboard session cookie, refuses cross-site changes, and ends with its token", async () => {
    const { app } = createApp();
    const { token } = await createToken(app, "dash", "admin");
    const { sessionId } = await createDashboardSession(database.db, {
      role: "admin",
      tokenId: token.token_id,
    });
    const cookie = { cookie: `conveyor_session=${sessionId}`, host: "conveyor.test" };
    const task = await seedTask("dead");
    expect((await call(app, "GET", "/api/tasks", { token: null, headers: cookie })).status).toBe(
      200,
    );
    const crossSite = await call(app, "POST", `/api/tasks/${task.taskId}/cancel`, {
      token: null,
      headers: { ...cookie, origin: "https://evil.example" },
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error).toMatch(/^cross-site request refused/);
    const sameSite = await call(app, "POST", `/api/tasks/${task.taskId}/cancel`, {
      token: null,
      headers: { ...cookie, origin: "https://conveyor.test" },
    });
    expect(sameSite.status).toBe(200);
    await call(app, "POST", "/api/tokens/dash/revoke");
    const after = await call(app, "GET", "/api/tasks", { token: null, headers: cookie });
    expect(after.status).toBe(401);
    expect(after.body.error).toMatch(/session has expired or was signed out/);
  });

  it("authenticates a presented token string for the dashboard's sign-in", async () => {
    const logger = createLogger({ level: "silent" });
    const auth = createApiAuth({ db: database.db, adminToken: ADMIN_TOKEN, logger });
    const { app } = createApp();
    const { secret } = await createToken(app, "signin", "read");
    expect(await auth.authenticate(secret)).toMatchObject({
      role: "read",
      name: "signin",
      kind: "api-token",
    });
    expect(await auth.authenticate(ADMIN_TOKEN)).toMatchObject({
      role: "admin",
      kind: "admin-token",
    });
    expect(await auth.authenticate("cva_nope")).toBeNull();
    await call(app, "POST", "/api/tokens/signin/revoke");
    expect(await auth.authenticate(secret)).toBeNull();
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After once a token spends its budget, other tokens unaffected", async () => {
    const { app } = createApp({ rateLimits: { read: 3, write: 2, heavy: 1, unauthenticated: 2 } });
    for (let i = 0; i < 3; i++) expect((await call(app, "GET", "/api/tasks")).status).toBe(200);
    const limited = await call(app, "GET", "/api/tasks");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("20");
    // One read refills in 20 s at 3 a minute (a little less once time has passed).
    expect(limited.body).toEqual({
      error: expect.stringMatching(
        /^too many requests: reads are limited to 3 a minute per token; retry in (19|20) s$/,
      ),
      retry_after_ms: expect.any(Number),
    });
    expect(limited.body.retry_after_ms).toBeGreaterThan(15_000);
    expect(limited.body.retry_after_ms).toBeLessThanOrEqual(20_000);
    // Changes draw from their own bucket.
    expect(
      (await call(app, "PUT", "/api/admin/log-level", { body: { level: "info" } })).status,
    ).toBe(200);
  });

  it("limits guessing: requests without a valid token are counted per address", async () => {
    const { app } = createApp({
      rateLimits: { read: 100, write: 100, heavy: 100, unauthenticated: 2 },
    });
    expect((await call(app, "GET", "/api/tasks", { token: "cva_guess1" })).status).toBe(401);
    expect((await call(app, "GET", "/api/tasks", { token: "cva_guess2" })).status).toBe(401);
    const limited = await call(app, "GET", "/api/tasks", { token: "cva_guess3" });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // A valid token is never held back by other people's failures.
    expect((await call(app, "GET", "/api/tasks")).status).toBe(200);
  });
});

describe("/api/tasks", () => {
  it("lists newest first with filters, and pages through everything without repeats", async () => {
    const { app } = createApp();
    const seeded = [];
    for (let i = 0; i < 5; i++) seeded.push(await seedTask(i === 0 ? "dead" : "queued"));
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `repo=ACME/widgets&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await call(app, "GET", `/api/tasks?${query}`);
      expect(page.status).toBe(200);
      const tasks = page.body.tasks as TaskJson[];
      expect(tasks.length).toBeLessThanOrEqual(2);
      all.push(...tasks.map((t) => t.task_id));
      cursor = page.body.next_cursor as string | null;
    } while (cursor);
    expect(new Set(all).size).toBe(all.length);
    for (const task of seeded) expect(all).toContain(task.taskId);
    const newest = await call(app, "GET", "/api/tasks?limit=1");
    expect((newest.body.tasks as TaskJson[])[0]).toMatchObject({
      task_id: seeded.at(-1)!.taskId,
      repo: "acme/Widgets",
      state: "queued",
    });

    const dead = await call(app, "GET", "/api/tasks?state=dead&state=failed");
    expect((dead.body.tasks as TaskJson[]).every((t) => t.state === "dead")).toBe(true);
    expect((dead.body.tasks as TaskJson[]).map((t) => t.task_id)).toContain(seeded[0]!.taskId);
    const byIssue = await call(
      app,
      "GET",
      `/api/tasks?repo=acme/widgets&issue=${seeded[2]!.issueNumber}&lane=high,normal`,
    );
    expect((byIssue.body.tasks as TaskJson[]).map((t) => t.task_id)).toEqual([seeded[2]!.taskId]);
  });

  it.each([
    ["state=sleeping", "query.state.0", /^expected task states: queued, /],
    ["lane=fast", "query.lane.0", /^expected lanes: urgent, high, normal, low$/],
    ["limit=0", "query.limit", /^expected a number from 1 to 200$/],
    ["limit=1000", "query.limit", /^expected a number from 1 to 200$/],
    ["repo=widgets", "query.repo", /^expected owner\/name$/],
    ["cursor=abc", "query.cursor", /^expected the next_cursor of a previous page$/],
    ["status=dead", "query.status", /^unknown field$/],
  ])("answers 422 to ?%s", async (query, path, message) => {
    const { app } = createApp();
    const response = await call(app, "GET", `/api/tasks?${query}`);
    expect(response.status).toBe(422);
    expect(response.body.fields).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  it("shows one task with its history and answers 404 to unknown ids", async () => {
    const { app } = createApp();
    const task = await seedTask("dead");
    const shown = await call(app, "GET", `/api/tasks/${task.taskId}`);
    const details = shown.body as unknown as TaskDetailsJson;
    expect(details).toMatchObject({
      task_id: task.taskId,
      state: "dead",
      body: "body",
      pull_request: null,
    });
    expect(details.events.map((e) => [e.from_state, e.to_state, e.actor])).toEqual([
      [null, "queued", "octocat"],
      ["queued", "assigned", "dispatcher"],
      ["assigned", "running", "runner"],
      ["running", "dead", "dispatcher"],
    ]);
    for (const id of [randomUUID(), "not-a-uuid"]) {
      expect(await call(app, "GET", `/api/tasks/${id}`)).toMatchObject({
        status: 404,
        body: { error: `no task ${id}` },
      });
      expect((await call(app, "POST", `/api/tasks/${id}/retry`)).status).toBe(404);
    }
  });

  it("retries a dead task: queued, a fresh series of attempts, an event naming the actor and the reason", async () => {
    const { app, changed } = createApp();
    const task = await seedTask("dead");
    const response = await call(app, "POST", `/api/tasks/${task.taskId}/retry`, {
      body: { reason: "the agent is fixed" },
    });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      changed: true,
      task: { task_id: task.taskId, state: "queued", attempts: 0 },
    });
    expect(changed).toHaveLength(1);
    const [event] = await database.rows<{
      actor: string;
      from_state: string;
      to_state: string;
      reason: string;
    }>(
      sql`select actor, from_state, to_state, reason from task_events
          where task_id = ${task.taskId} order by event_id desc limit 1`,
    );
    expect(event).toEqual({
      actor: "CONVEYOR_ADMIN_TOKEN",
      from_state: "dead",
      to_state: "queued",
      reason: "retried by CONVEYOR_ADMIN_TOKEN from dead: the agent is fixed",
    });
    // Retrying it again changes nothing and says why.
    const again = await call(app, "POST", `/api/tasks/${task.taskId}/retry`);
    expect(again.body).toMatchObject({ changed: false, reason: "task is already queued" });
    expect(changed).toHaveLength(1);
  });

  it("gives a task waiting for a person another attempt with its follow-up budget back", async () => {
    const { app } = createApp();
    const task = await seedTask("waiting_human");
    expect((await call(app, "POST", `/api/tasks/${task.taskId}/retry`)).status).toBe(200);
    const [row] = await database.rows<{ state: string; ci_fixes: number }>(
      sql`select state, ci_fixes from tasks where task_id = ${task.taskId}`,
    );
    expect(row).toEqual({ state: "queued", ci_fixes: 0 });
  });

  it("refuses to retry a running task (409 with the reason) and cancels it instead", async () => {
    const { app, changed } = createApp();
    const task = await seedTask("running");
    const retry = await call(app, "POST", `/api/tasks/${task.taskId}/retry`);
    expect(retry.status).toBe(409);
    expect(retry.body.error).toBe(
      "task is running: only dead, failed, retry_wait, waiting_human tasks can be retried (it is being worked on now)",
    );
    const cancel = await call(app, "POST", `/api/tasks/${task.taskId}/cancel`, {
      body: { reason: "wrong repository" },
    });
    expect(cancel.body).toMatchObject({ changed: true, task: { state: "cancelled" } });
    expect(changed).toHaveLength(1);
    const [row] = await database.rows<{ finished: boolean; reason: string }>(sql`
      select t.finished_at is not null as finished, e.reason from tasks t
      join task_events e using (task_id) where t.task_id = ${task.taskId} order by e.event_id desc limit 1`);
    expect(row).toEqual({
      finished: true,
      reason: "cancelled by CONVEYOR_ADMIN_TOKEN: wrong repository",
    });
    const again = await call(app, "POST", `/api/tasks/${task.taskId}/cancel`);
    expect(again.body).toMatchObject({ changed: false, reason: "task is already cancelled" });
  });

  it.each([
    ['{"reason": ', [{ path: "body", message: "expected a JSON object" }]],
    [{ reason: "" }, [{ path: "reason", message: "expected text" }]],
    [{ reason: "x".repeat(501) }, [{ path: "reason", message: "expected at most 500 characters" }]],
    [{ because: "x" }, [{ path: "because", message: "unknown field" }]],
    [[1], [{ path: "body", message: expect.any(String) }]],
  ])("answers 422 to the body %j, changing nothing", async (body, fields) => {
    const { app } = createApp();
    const task = await seedTask("dead");
    const response = await call(app, "POST", `/api/tasks/${task.taskId}/retry`, { body });
    expect(response.status).toBe(422);
    expect(response.body).toEqual({ error: expect.stringMatching(/^invalid request: /), fields });
    const [row] = await database.rows<{ state: string }>(
      sql`select state from tasks where task_id = ${task.taskId}`,
    );
    expect(row?.state).toBe("dead");
  });
});

describe("/api/admin", () => {
  it("changes the log level at run time, for every module's logger", async () => {
    const { app, logger } = createApp();
    const child = logger.child({ component: "merger" });
    expect(child.isLevelEnabled("debug")).toBe(false);
    expect((await call(app, "GET", "/api/admin/log-level")).body).toEqual({
      level: "silent",
      scope: "instance",
    });
    const changed = await call(app, "PUT", "/api/admin/log-level", { body: { level: "debug" } });
    expect(changed.body).toEqual({ level: "debug", previous: "silent", scope: "instance" });
    expect(logger.level).toBe("debug");
    expect(child.isLevelEnabled("debug")).toBe(true);
    expect((await call(app, "GET", "/api/admin/log-level")).body).toMatchObject({ level: "debug" });
    const bad = await call(app, "PUT", "/api/admin/log-level", { body: { level: "loud" } });
    expect(bad.status).toBe(422);
    expect(bad.body.fields).toEqual([
      { path: "level", message: "expected one of fatal, error, warn, info, debug, trace, silent" },
    ]);
    expect(logger.level).toBe("debug");
  });

  it("reports the database: reachable, latency, migrations, rows per table", async () => {
    const { app } = createApp();
    const report = await call(app, "GET", "/api/admin/database");
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({
      reachable: true,
      kind: "postgres",
      latency_ms: expect.any(Number),
      server_version: expect.any(String),
      migrations: { current: expect.stringMatching(/^\d{4}_/), pending: [] },
    });
    const tables = report.body.tables as { name: string; rows: number }[];
    expect(tables.find((t) => t.name === "tasks")?.rows).toBeGreaterThan(0);
    expect(tables.map((t) => t.name)).toContain("webhook_deliveries");
  });

  it("exports over HTTP and imports into an empty database; refuses a second import with 409", async () => {
    const source = await createTestDatabase();
    const target = await createTestDatabase();
    try {
      await seedEveryTable(source);
      const exported = await createApp({}, source).app.request("/api/admin/export", {
        headers: bearer(ADMIN_TOKEN),
      });
      expect(exported.status).toBe(200);
      expect(exported.headers.get("content-disposition")).toMatch(
        /^attachment; filename="conveyor-export-.*\.json"$/,
      );
      expect(exported.headers.get("cache-control")).toBe("no-store");
      const text = await exported.text();
      const targetApp = createApp({}, target);
      const imported = await call(targetApp.app, "POST", "/api/admin/import", { body: text });
      expect(imported.status).toBe(200);
      expect(imported.body).toMatchObject({ imported: true, tables: { tasks: 2 } });
      expect(targetApp.changed).toHaveLength(1);
      const again = await call(targetApp.app, "POST", "/api/admin/import", { body: text });
      expect(again.status).toBe(409);
      expect(again.body.error).toMatch(/^the database is not empty/);
      const mismatch = await call(createApp().app, "POST", "/api/admin/import", {
        body: text.replace(/"migration":"[^"]+"/, '"migration":"0000_init"'),
      });
      expect(mismatch.status).toBe(422);
      expect(mismatch.body.fields).toEqual([
        { path: "migration", message: expect.stringContaining("exported at migration 0000_init") },
      ]);
    } finally {
      await source.drop();
      await target.drop();
    }
  });
});

describe("best-of-N candidates in the task list", () => {
  it("lists candidates under their task, never as tasks of their own, both ways linked", async () => {
    const { app } = createApp();
    const seeded = await seedTask("queued");
    // First in line: the most urgent lane, queued long ago.
    await database.db.execute(sql`
      update tasks set best_of = 2, lane = 'urgent', enqueued_at = '2000-01-01T00:00:00Z'
      where task_id = ${seeded.taskId}`);
    const later = await seedTask("queued");
    const aging = 3_600_000;

    // Waiting for its round, the task is no job for a runner: not ahead of anyone, not queued.
    const before = await queuePosition(database.db, later.taskId, aging);
    expect((await oldestQueuedByLane(database.db)).urgent ?? 0).toBeLessThan(86_400);
    expect((await queueDepthByLane(database.db)).urgent ?? 0).toBe(0);
    const wanted = async () =>
      (await waitingWork(database.db)).reduce((sum, work) => sum + work.count, 0);
    const waiting = await wanted();
    await database.db.execute(sql`update tasks set best_of = 1 where task_id = ${seeded.taskId}`);
    expect(await queuePosition(database.db, later.taskId, aging)).toBe(before! + 1);
    expect(await wanted()).toBe(waiting + 1);
    await database.db.execute(sql`update tasks set best_of = 2 where task_id = ${seeded.taskId}`);

    expect(await startRound(database.db, (await getTask(database.db, seeded.taskId))!)).toBe(true);
    // Its two candidates are: both ahead (its lane and time), both waiting for a runner.
    expect(await queuePosition(database.db, later.taskId, aging)).toBe(before! + 2);
    expect((await queueDepthByLane(database.db)).urgent).toBe(2);

    const list = await call(app, "GET", `/api/tasks?issue=${seeded.issueNumber}`);
    expect(list.status).toBe(200);
    const tasks = list.body.tasks as TaskListItemJson[];
    expect(tasks.map((t) => [t.task_id, t.best_of, t.parent_task_id, t.candidate])).toEqual([
      [seeded.taskId, 2, null, null],
    ]);
    const candidates = tasks[0]!.candidates;
    expect(candidates.map((c) => [c.k, c.state, c.branch, c.picked, c.runner_id])).toEqual([
      [1, "queued", `conveyor/issue-${seeded.issueNumber}-1`, false, null],
      [2, "queued", `conveyor/issue-${seeded.issueNumber}-2`, false, null],
    ]);
    // A task that is not best of N carries an empty list; no candidate is listed on any page.
    const all = (await call(app, "GET", "/api/tasks?limit=200")).body.tasks as TaskListItemJson[];
    expect(all.filter((t) => t.parent_task_id !== null)).toEqual([]);
    expect(all.filter((t) => t.issue_number === seeded.issueNumber)).toHaveLength(1);
    expect(all.find((t) => t.best_of === 1)?.candidates).toEqual([]);

    // A candidate's own page names its task and its k; the task's page lists its candidates.
    const child = await call(app, "GET", `/api/tasks/${candidates[0]!.task_id}`);
    expect(child.body).toMatchObject({
      parent_task_id: seeded.taskId,
      candidate: 1,
      candidates: [],
    });
    const parent = await call(app, "GET", `/api/tasks/${seeded.taskId}`);
    expect((parent.body as unknown as TaskDetailsJson).candidates.map((c) => c.task_id)).toEqual(
      candidates.map((c) => c.task_id),
    );
    const page = await readTaskPageState(database.db, candidates[1]!.task_id);
    expect(page?.task).toMatchObject({ parent_task_id: seeded.taskId, candidate: 2 });
    const parentPage = await readTaskPageState(database.db, seeded.taskId);
    expect(parentPage?.candidates.map((c) => c.k)).toEqual([1, 2]);

    // Counted once: the gauge counts the task (running its round), not its candidates.
    const gauge = await countTasksByStateAndLane(database.db);
    const running = await database.rows<{ n: number }>(
      sql`select count(*)::int as n from tasks where state = 'running' and parent_task_id is null`,
    );
    expect(gauge.filter((g) => g.state === "running").reduce((a, g) => a + g.n, 0)).toBe(
      running[0]!.n,
    );
    expect(gauge.find((g) => g.state === "queued" && g.lane === "urgent")?.n ?? 0).toBe(0);
  });
});
