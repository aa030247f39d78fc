import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase } from "../db/client.ts";
import { loadMigrations } from "../db/migrate.ts";
import { loadConfig } from "../src/config.ts";
import { createHttpApp } from "../src/http/create-http-app.ts";
import { createLogger } from "../src/logger.ts";
import { type RunningConveyor, startConveyor } from "../src/main.ts";
import { countDeliveries } from "../src/store/webhook-deliveries.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { examplePayload, sendWebhook, testPrivateKey } from "./helpers/webhooks.ts";

const SECRET = "test-webhook-secret";
const logger = createLogger({ level: "silent" });

describe("the app server", () => {
  let database: TestDatabase;
  let conveyor: RunningConveyor;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url,
      APP_ID: "1",
      PRIVATE_KEY: testPrivateKey(),
      WEBHOOK_SECRET: SECRET,
      GITHUB_API_URL: "http://127.0.0.1:9",
    });
    conveyor = await startConveyor(config, {
      logger,
      octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } },
    });
  });
  afterAll(async () => {
    await conveyor?.stop();
    await database?.drop();
  });

  it("answers /healthz and /readyz", async () => {
    const health = await fetch(`${conveyor.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${conveyor.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", database: "postgres" });
  });

  it("answers an unknown route with 404 and the route it did not find", async () => {
    const response = await fetch(`${conveyor.url}/nope`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "No route for GET /nope" });
  });

  it("records a signed webhook once, however often it is delivered", async () => {
    const payload = examplePayload("label", "created");
    const first = await sendWebhook(conveyor.url, { event: "label", payload, secret: SECRET });
    expect(first.status).toBe(200);
    const again = await sendWebhook(conveyor.url, {
      event: "label",
      payload,
      secret: SECRET,
      deliveryId: first.deliveryId,
    });
    expect(again.status).toBe(200);
    expect(await countDeliveries(database.db, "label")).toBe(1);
  });
  // Forged, unsigned, replayed and oversized deliveries: test/security.test.ts.
});

describe("/readyz", () => {
  it("is 503 naming the pending migrations when the schema is behind", async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const app = createHttpApp({ database: empty, logger });
      const response = await app.request("/readyz");
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        status: "unavailable",
        reason: `migrations pending: ${loadMigrations()
          .map((m) => m.tag)
          .join(", ")}`,
      });
    } finally {
      await empty.drop();
    }
  });

  it("is 503 when the database is unreachable", async () => {
    const unreachable = await createDatabase({ url: "postgres://nobody@127.0.0.1:9/none", max: 1 });
    try {
      const app = createHttpApp({ database: unreachable, logger });
      const response = await app.request("/readyz");
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        status: "unavailable",
        reason: "database unreachable",
      });
    } finally {
      await unreachable.close();
    }
  });
});
