import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createRunnerClient } from "./runner-client.ts";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that refuses every WebSocket upgrade the way Conveyor does: JSON, then close. */
async function refusing(status: number, headers: Record<string, string>, body: string) {
  server = createServer();
  server.on("upgrade", (_request, socket) => {
    const lines = [
      `HTTP/1.1 ${status} Refused`,
      "Content-Type: application/json",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Connection: close",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

function client(serverUrl: string) {
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const c = createRunnerClient({
    serverUrl,
    token: "cvr_test",
    name: "t",
    version: "0",
    capabilities: [],
    slots: 1,
    running: () => [],
    onWelcome: () => {},
    onAssign: () => {},
    onCancel: () => {},
    logger: {
      info: () => {},
      error: () => {},
      warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
    },
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  return { c, warnings };
}

describe("the runner client, refused", () => {
  it("logs the error a refused upgrade carries, with the status", async () => {
    const url = await refusing(
      401,
      {},
      JSON.stringify({ error: "unknown or revoked runner token" }),
    );
    const { c, warnings } = client(url);
    c.start();
    await expect
      .poll(() => warnings.find((w) => w.msg.startsWith("server refused")))
      .toEqual({
        obj: { status: 401, retryAfterMs: undefined, error: "unknown or revoked runner token" },
        msg: "server refused the runner token (unknown or revoked)",
      });
    await c.stop();
  });

  it("waits out Retry-After, and copes with a body that is not JSON", async () => {
    const url = await refusing(429, { "Retry-After": "30" }, "slow down");
    const { c, warnings } = client(url);
    c.start();
    await expect
      .poll(() => warnings.find((w) => w.msg.startsWith("server refused")))
      .toEqual({
        obj: { status: 429, retryAfterMs: 30_000, error: undefined },
        msg: "server refused the connection",
      });
    await c.stop();
  });
});
