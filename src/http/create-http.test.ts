import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import { ConfigError } from "../config.ts";
import { readServerInfo } from "../server-info.ts";
import { createHttp } from "./create-http.ts";

const logger = pino({ level: "silent" });
/** Health checks and the routes below never reach the database. */
const database = { kind: "pglite" } as Database;

describe("the HTTP subsystem, built alone", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "create-http-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  let endStream: (() => void) | undefined;

  const root = new Hono();
  root.get("/hello", (c) => c.text("hello"));
  // A response that stays open until the test ends it, like a dashboard stream.
  root.get("/stream", () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("first\n"));
        endStream = () => controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  });
  const api = new Hono();
  api.get("/things", (c) => c.json({ things: [] }));

  const build = (port = 0) =>
    createHttp({
      config: { port, host: "127.0.0.1", dataDir, publicUrl: undefined, github: undefined },
      database,
      logger,
      recordError: () => {},
      mounts: [
        ["/", root],
        ["/api", api],
        ["/", undefined],
      ],
    });

  it("serves health, the mounted groups and a 503 webhook until the App exists", async () => {
    const http = build();
    expect(() => http.address()).toThrow("not listening");
    await http.listener.start?.();
    const { url } = http.address();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: "ok" });
    expect(await (await fetch(`${url}/hello`)).text()).toBe("hello");
    expect(await (await fetch(`${url}/api/things`)).json()).toEqual({ things: [] });
    expect((await fetch(`${url}/api/github/webhooks`, { method: "POST" })).status).toBe(503);
    expect((await fetch(`${url}/nowhere`)).status).toBe(404);
    // The embedded database's single process is found by the CLI here.
    expect(readServerInfo(dataDir)).toEqual({ pid: process.pid, url });
    await http.listener.stop?.();
    await http.connections.stop?.();
    expect(readServerInfo(dataDir)).toBeUndefined();
  });

  it("stops accepting at once, and its connections stop waits for an open response", async () => {
    const http = build();
    await http.listener.start?.();
    const { port, url } = http.address();
    const streamed = new Promise<string>((resolve, reject) => {
      request({ host: "127.0.0.1", port, path: "/stream" }, (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += String(chunk);
        });
        res.on("end", () => resolve(text));
      })
        .on("error", reject)
        .end();
    });
    await expect.poll(() => endStream !== undefined).toBe(true);

    await http.listener.stop?.();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    let drained = false;
    const draining = Promise.resolve(http.connections.stop?.()).then(() => {
      drained = true;
    });
    // Still waiting: the stream is open.
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    endStream?.();
    await draining;
    expect(await streamed).toBe("first\n");
  });

  it("names PORT when the port is taken", async () => {
    const first = build();
    await first.listener.start?.();
    const second = build(first.address().port);
    const failed = second.listener.start?.();
    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    await expect(failed).rejects.toThrow(`PORT: ${first.address().port} is already in use`);
    await second.listener.stop?.();
    await second.connections.stop?.();
    await first.listener.stop?.();
    await first.connections.stop?.();
  });
});
