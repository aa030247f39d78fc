import type { HttpBindings } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AdminRoutesDeps, createAdminRoutes } from "../src/http/admin-routes.ts";
import type { RunnerJson } from "../src/http/runner-json.ts";
import { createLogger } from "../src/logger.ts";
import { findRunnerByToken, hashRunnerToken } from "../src/store/runners.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

const ADMIN_TOKEN = "admin-token-for-tests-0123456789";
const logger = createLogger({ level: "silent" });

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

type App = Hono<{ Bindings: HttpBindings }>;

/** The routes mounted the way the server mounts them, beside a sibling `/api` route. */
function createApp(over: Partial<AdminRoutesDeps> = {}): { app: App; revoked: string[] } {
  const revoked: string[] = [];
  const app: App = new Hono<{ Bindings: HttpBindings }>();
  app.route(
    "/api",
    createAdminRoutes({
      db: database.db,
      adminToken: ADMIN_TOKEN,
      logger,
      onRunnerRevoked: (runnerId) => revoked.push(runnerId),
      ...over,
    }),
  );
  app.post("/api/github/webhooks", (c) => c.json({ webhook: true }));
  return { app, revoked };
}

const auth = (token = ADMIN_TOKEN): Record<string, string> => ({
  authorization: `Bearer ${token}`,
});

function post(app: App, path: string, body: unknown, headers = auth()): Promise<Response> {
  return Promise.resolve(
    app.request(path, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      ...(body === undefined
        ? {}
        : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    }),
  );
}

const json = async <T>(response: Response | Promise<Response>) =>
  (await (await response).json()) as T;
type Created = { runner: RunnerJson; token: string };
type ErrorBody = { error: string; errors?: { field: string; message: string }[] };

const countNamed = async (name: string) => {
  const [row] = await database.rows<{ n: number }>(
    sql`select count(*)::int as n from runners where name = ${name}`,
  );
  return row?.n;
};

describe("admin API authentication", () => {
  let app: App;
  beforeAll(() => {
    ({ app } = createApp());
  });

  it.each([
    ["no Authorization header", {}],
    ["a wrong token", auth("admin-token-for-tests-WRONG")],
    ["the token with one character missing", auth(ADMIN_TOKEN.slice(0, -1))],
    ["the token with one character more", auth(`${ADMIN_TOKEN}x`)],
    ["another scheme", { authorization: `Basic ${ADMIN_TOKEN}` }],
    ["an empty bearer", { authorization: "Bearer " }],
  ])("answers 401 to %s, changing nothing", async (_, headers: Record<string, string>) => {
    for (const response of [
      await app.request("/api/runners", { headers }),
      await post(app, "/api/runners", { name: "sneaky" }, headers),
      await post(app, "/api/runners/anything/revoke", undefined, headers),
    ]) {
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(await json<ErrorBody>(response)).toEqual({
        error: expect.stringMatching(
          /^(missing|unknown) token: send Authorization: Bearer <token>, with an API token \(conveyor tokens add\) or CONVEYOR_ADMIN_TOKEN$/,
        ),
      });
    }
    expect(await countNamed("sneaky")).toBe(0);
  });

  it("accepts the scheme in any case", async () => {
    const response = await app.request("/api/runners", {
      headers: { authorization: `bearer ${ADMIN_TOKEN}` },
    });
    expect(response.status).toBe(200);
  });

  it("answers 503 naming CONVEYOR_ADMIN_TOKEN when no admin token is configured", async () => {
    const off = createApp({ adminToken: undefined }).app;
    for (const headers of [{}, auth()]) {
      const response = await off.request("/api/runners", { headers });
      expect(response.status).toBe(503);
      expect((await json<ErrorBody>(response)).error).toContain("set CONVEYOR_ADMIN_TOKEN");
    }
    const refused = await post(off, "/api/runners", { name: "while-off" });
    expect(refused.status).toBe(503);
    expect(await countNamed("while-off")).toBe(0);
  });

  it("leaves sibling /api routes (the GitHub webhook) alone", async () => {
    const response = await app.request("/api/github/webhooks", { method: "POST" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ webhook: true });
  });
});

describe("POST /api/runners", () => {
  let app: App;
  beforeAll(() => {
    ({ app } = createApp());
  });

  it("registers a runner and shows its token once", async () => {
    const response = await post(app, "/api/runners", {
      name: "api-1",
      capabilities: ["gpu", "docker"],
      class: "heavy",
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = await json<Created>(response);
    expect(body).toEqual({
      runner: {
        runner_id: expect.any(String),
        name: "api-1",
        capabilities: ["docker", "gpu"],
        class: "heavy",
        // The deprecated name of class, with the same value.
        tier: "heavy",
        repos: [],
        one_time: false,
        expires_at: null,
        used_at: null,
        status: "active",
        created_at: expect.any(String),
        revoked_at: null,
        last_seen_at: null,
        last_assigned_at: null,
      },
      token: expect.stringMatching(/^cvr_/),
    });
    expect((await findRunnerByToken(database.db, body.token))?.runnerId).toBe(
      body.runner.runner_id,
    );
    // Nothing afterwards shows the token or its hash again.
    const list = await (await app.request("/api/runners", { headers: auth() })).text();
    expect(list).toContain("api-1");
    expect(list).not.toContain(body.token);
    expect(list).not.toContain(hashRunnerToken(body.token));
  });

  it("defaults to no capabilities and the normal class", async () => {
    const response = await post(app, "/api/runners", { name: "api-defaults" });
    expect(response.status).toBe(201);
    expect((await json<Created>(response)).runner).toMatchObject({
      capabilities: [],
      class: "normal",
    });
  });

  it("still takes tier, the deprecated name of class", async () => {
    const response = await post(app, "/api/runners", { name: "api-old", tier: "light" });
    expect(response.status).toBe(201);
    expect((await json<Created>(response)).runner).toMatchObject({ class: "light", tier: "light" });
  });

  it.each([
    ["an upper-case name", { name: "API" }, [{ field: "name", message: expect.any(String) }]],
    ["no name", {}, [{ field: "name", message: "expected a runner name" }]],
    [
      "a bad capability",
      { name: "api-x", capabilities: ["ok", "no way"] },
      [{ field: "capabilities.1", message: expect.stringContaining("lower-case") }],
    ],
    [
      "an unknown class",
      { name: "api-x", class: "huge" },
      [{ field: "class", message: "expected one of light, normal, heavy" }],
    ],
    [
      "an unknown tier",
      { name: "api-x", tier: "huge" },
      [{ field: "tier", message: "expected one of light, normal, heavy" }],
    ],
    [
      "a class and a tier that disagree",
      { name: "api-x", class: "light", tier: "heavy" },
      [
        {
          field: "tier",
          message: "contradicts class (tier is the old name of class): give class only",
        },
      ],
    ],
    [
      "a misspelt key",
      { name: "api-x", capabilites: ["gpu"] },
      [{ field: "capabilites", message: "unknown field" }],
    ],
    ["an array", ["api-x"], [{ field: "body", message: expect.any(String) }]],
    ["broken JSON", "{name:", [{ field: "body", message: "expected a JSON object" }]],
  ])("answers 422 with field errors to %s", async (_, body, errors) => {
    const response = await post(app, "/api/runners", body);
    expect(response.status).toBe(422);
    expect(await json<ErrorBody>(response)).toEqual({
      error: expect.stringMatching(/^invalid request: /),
      fields: errors.map((e) => ({ path: e.field, message: e.message })),
      errors,
    });
    expect(await countNamed("api-x")).toBe(0);
  });

  it("answers 413 to a body over 64 KiB", async () => {
    const response = await post(app, "/api/runners", { name: "big", pad: "x".repeat(70_000) });
    expect(response.status).toBe(413);
    expect(await countNamed("big")).toBe(0);
  });

  it("answers 409 to a name in use, keeping the first runner and its token", async () => {
    const first = await json<Created>(post(app, "/api/runners", { name: "api-dup" }));
    const response = await post(app, "/api/runners", { name: "api-dup", tier: "light" });
    expect(response.status).toBe(409);
    expect(await json<ErrorBody>(response)).toEqual({
      error: "a runner named api-dup exists; revoke it or pick another name",
    });
    expect(await findRunnerByToken(database.db, first.token)).toMatchObject({ tier: "normal" });
  });
});

describe("POST /api/runners/:name/revoke", () => {
  let app: App;
  let revoked: string[];
  beforeEach(() => {
    ({ app, revoked } = createApp());
  });

  it("revokes, tells the socket server, and is idempotent", async () => {
    const created = await json<Created>(post(app, "/api/runners", { name: "api-gone" }));
    const response = await post(app, "/api/runners/api-gone/revoke", undefined);
    expect(response.status).toBe(200);
    const body = await json<RunnerJson>(response);
    expect(body).toMatchObject({
      runner_id: created.runner.runner_id,
      name: "api-gone",
      status: "revoked",
      revoked_at: expect.any(String),
    });
    expect(revoked).toEqual([created.runner.runner_id]);
    expect(await findRunnerByToken(database.db, created.token)).toBeUndefined();

    const again = await post(app, "/api/runners/api-gone/revoke", undefined);
    expect(again.status).toBe(200);
    expect((await json<RunnerJson>(again)).revoked_at).toBe(body.revoked_at);
  });

  it("answers 404 for an unknown runner and closes nothing", async () => {
    const response = await post(app, "/api/runners/nobody/revoke", undefined);
    expect(response.status).toBe(404);
    expect(await json<ErrorBody>(response)).toEqual({ error: "no runner named nobody" });
    expect(revoked).toEqual([]);
  });

  it("still answers 200 (the revocation is committed) when closing the sockets throws", async () => {
    const created = await json<Created>(post(app, "/api/runners", { name: "api-throws" }));
    const throwing = createApp({
      onRunnerRevoked: () => {
        throw new Error("socket server down");
      },
    }).app;
    const response = await post(throwing, "/api/runners/api-throws/revoke", undefined);
    expect(response.status).toBe(200);
    expect(await findRunnerByToken(database.db, created.token)).toBeUndefined();
  });
});

describe("GET /api/runners", () => {
  it("says who is connected when the socket server can tell", async () => {
    const plain = createApp().app;
    const online = (await json<Created>(post(plain, "/api/runners", { name: "api-online" }))).runner
      .runner_id;
    await post(plain, "/api/runners", { name: "api-offline" });
    const { app } = createApp({
      listConnectedRunners: () => [
        { runnerId: online, connectedAt: "2025-01-01T00:00:00.000Z", busySlots: 2 },
      ],
    });
    const { runners } = await json<{ runners: RunnerJson[] }>(
      app.request("/api/runners", { headers: auth() }),
    );
    const byName = new Map(runners.map((r) => [r.name, r]));
    expect(byName.get("api-online")).toMatchObject({
      connected: { connected_at: "2025-01-01T00:00:00.000Z", busy_slots: 2 },
    });
    expect(byName.get("api-offline")).toMatchObject({ connected: null });
    // Without the socket server's view, the list makes no claim either way.
    const unknown = await json<{ runners: RunnerJson[] }>(
      plain.request("/api/runners", { headers: auth() }),
    );
    expect(unknown.runners.length).toBeGreaterThan(1);
    for (const runner of unknown.runners) expect(runner).not.toHaveProperty("connected");
  });
});
