import { randomUUID } from "node:crypto";
import { createServer, get, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sign } from "@octokit/webhooks-methods";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase } from "../db/client.ts";
import { loadMigrations } from "../db/migrate.ts";
import { loadConfig } from "../src/config.ts";
import { createSetupGuard } from "../src/github/setup-access.ts";
import { createSetupHandler } from "../src/github/setup-app.ts";
import { createHttpApp } from "../src/http/create-http-app.ts";
import { createLogger } from "../src/logger.ts";
import { type RunningConveyor, startConveyor } from "../src/main.ts";
import { countDeliveries, recordedDeliveryIds } from "../src/store/webhook-deliveries.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { waitFor } from "./helpers/wait-for.ts";
import { examplePayload, sendWebhook, testPrivateKey } from "./helpers/webhooks.ts";

const SECRET = "test-webhook-secret";
const logger = createLogger({ level: "silent" });

/**
 * A webhook proxy channel as smee.io serves it: server-sent events, each one delivery's headers
 * and `body` as JSON. `send` pushes one to every connected client.
 */
async function fakeProxyChannel() {
  const clients: ServerResponse[] = [];
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(": ready\n\n");
    clients.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel-abc`,
    clients,
    send(event: Record<string, unknown>) {
      for (const client of clients) client.write(`data: ${JSON.stringify(event)}\n\n`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The manifest the setup page at `base` would send GitHub, as a browser with `host` sees it. */
async function setupManifest(base: string, host: string) {
  const page = await new Promise<string>((resolve, reject) => {
    get(`${base}/probot`, { headers: { host } }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      res.on("end", () => resolve(text));
    }).on("error", reject);
  });
  const attribute = /value='([^']*)'/.exec(page)?.[1] ?? "";
  const decoded = attribute.replace(
    /&(#39|quot|lt|gt|amp);/g,
    (_, e: string) => ({ "#39": "'", quot: '"', lt: "<", gt: ">", amp: "&" })[e] ?? "",
  );
  return JSON.parse(decoded) as { hook_attributes: { url: string }; redirect_url: string };
}

describe("the app server", () => {
  let database: TestDatabase;
  let conveyor: RunningConveyor;
  let channel: Awaited<ReturnType<typeof fakeProxyChannel>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    channel = await fakeProxyChannel();
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url,
      APP_ID: "1",
      PRIVATE_KEY: testPrivateKey(),
      WEBHOOK_SECRET: SECRET,
      GITHUB_API_URL: "http://127.0.0.1:9",
      WEBHOOK_PROXY_URL: channel.url,
    });
    conveyor = await startConveyor(config, {
      logger,
      octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } },
      // No GitHub here to ask for its delivery log.
      redeliverOnStart: false,
    });
  });
  afterAll(async () => {
    await conveyor?.stop();
    await channel?.close();
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
  it("registers, in the setup manifest, a webhook URL it serves; a delivery posted there is handled", async () => {
    // The setup page of a server not configured yet, reached at this server's address, and
    // behind CONVEYOR_PUBLIC_URL (here also this server).
    const { host } = new URL(conveyor.url);
    const setupServer = async (publicUrl: string | undefined) => {
      const handler = await createSetupHandler({
        host: "127.0.0.1",
        port: 0,
        log: logger,
        publicUrl,
        webhookProxyUrl: undefined,
        guard: createSetupGuard(),
      });
      const server = createServer(async (req, res) => {
        if (!(await handler(req, res))) res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return server;
    };
    for (const publicUrl of [undefined, conveyor.url]) {
      const server = await setupServer(publicUrl);
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const manifest = await setupManifest(base, host);
      server.close();
      expect(manifest.hook_attributes.url).toBe(`${conveyor.url}/api/github/webhooks`);
      expect(manifest.redirect_url).toBe(`http://${host}/probot/setup`);

      const payload = examplePayload("label", "created");
      const body = JSON.stringify(payload);
      const deliveryId = randomUUID();
      const response = await fetch(manifest.hook_attributes.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "label",
          "x-github-delivery": deliveryId,
          "x-hub-signature-256": await sign(SECRET, body),
        },
        body,
      });
      expect(response.status).toBe(200);
      // A delivery without an effect is answered at once; its record follows in the next batch.
      await waitFor(async () => (await recordedDeliveryIds(database.db, [deliveryId])).size === 1, {
        message: "the label delivery recorded",
      });
    }
  });

  it("handles deliveries at Probot's old default path (POST /) with the same signature check", async () => {
    const payload = examplePayload("label", "deleted");
    const handled = await sendWebhook(conveyor.url, {
      event: "label",
      payload,
      secret: SECRET,
      path: "/",
    });
    expect(handled.status).toBe(200);
    const forged = await sendWebhook(conveyor.url, {
      event: "label",
      payload,
      secret: "not-the-secret",
      path: "/",
    });
    expect(forged.status).toBe(400);
    // Without an effect it is answered at once; its record follows in the next batch.
    await waitFor(
      async () => (await recordedDeliveryIds(database.db, [handled.deliveryId])).size === 1,
      { message: "the delivery at / recorded" },
    );
    expect(await recordedDeliveryIds(database.db, [handled.deliveryId, forged.deliveryId])).toEqual(
      new Set([handled.deliveryId]),
    );
    // Only POST: anything else at / is no webhook.
    expect((await fetch(`${conveyor.url}/`)).status).toBe(404);
  });

  it("forwards deliveries from WEBHOOK_PROXY_URL (a smee channel) to its webhook route", async () => {
    await waitFor(() => channel.clients.length > 0, { message: "the proxy client connected" });
    const payload = examplePayload("label", "edited");
    const deliveryId = randomUUID();
    const signed = async (secret: string, id: string) => ({
      host: "smee.io",
      "x-github-event": "label",
      "x-github-delivery": id,
      "x-hub-signature-256": await sign(secret, JSON.stringify(payload)),
      "content-type": "application/json",
      body: payload,
      query: {},
      timestamp: Date.now(),
    });
    const forgedId = randomUUID();
    channel.send(await signed("not-the-secret", forgedId));
    channel.send(await signed(SECRET, deliveryId));
    await waitFor(
      async () => (await recordedDeliveryIds(database.db, [deliveryId])).has(deliveryId),
      { message: "the proxied delivery recorded" },
    );
    // The signature is checked as for any delivery: the forged one was refused.
    expect(await recordedDeliveryIds(database.db, [forgedId])).toEqual(new Set());
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
