import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { SETUP_REFUSED } from "../src/github/setup-app.ts";
import { SETUP_MODE_ERROR } from "../src/http/create-http-app.ts";
import { htmlProblems } from "./helpers/html-problems.ts";
import { type ConveyorProcess, spawnConveyor } from "./helpers/spawn-conveyor.ts";
import { waitFor } from "./helpers/wait-for.ts";
import { testPrivateKey } from "./helpers/webhooks.ts";

/** What `.env` holds before anything may write it. */
const SENTINEL =
  "# written by the test; nothing may change it without the setup code\nLOG_LEVEL=info\n";

/**
 * This machine's first address that is not loopback: a request to it arrives from it, so the
 * server sees a peer on the network. Without one (an isolated sandbox), a request through a
 * "reverse proxy" on this machine (loopback, with `X-Forwarded-For`) stands in for it.
 */
function outsideAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

describe("setup mode (a real process without App credentials, listening on every interface)", () => {
  let dir: string;
  let conveyor: ConveyorProcess;
  let local: string;
  /** How a request from another machine reaches the server, and the headers it carries. */
  let remote: { base: string; headers: Record<string, string> };
  let code: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "conveyor-setup-"));
    writeFileSync(join(dir, ".env"), SENTINEL);
    conveyor = spawnConveyor(
      ["start"],
      { HOST: "0.0.0.0", PORT: "0", CONVEYOR_DATA_DIR: join(dir, "data"), LOG_FORMAT: "json" },
      { cwd: dir },
    );
    local = (await conveyor.listening).replace("localhost", "127.0.0.1");
    const port = new URL(local).port;
    const outside = outsideAddress();
    remote = outside
      ? { base: `http://${outside}:${port}`, headers: {} }
      : { base: local, headers: { "x-forwarded-for": "203.0.113.9" } };
    code = await waitFor(() => /setup_code=([0-9a-f]{32})/.exec(conveyor.output())?.[1], {
      message: "the setup code in the log",
    });
  });
  afterAll(() => {
    conveyor?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  const envFile = () => readFileSync(join(dir, ".env"), "utf8");
  const importBody = JSON.stringify({
    appId: "4242",
    pem: testPrivateKey(),
    webhook_secret: "imported-secret",
  });
  const postImport = (base: string, headers: Record<string, string>) =>
    fetch(`${base}/probot/import`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: importBody,
    });

  it("answers the runner socket and routes 503 with the reason, and /readyz says setup", async () => {
    for (const [method, path] of [
      ["GET", "/runners/v1"],
      ["PUT", "/runners/v1/tasks/t-1/changes?generation=1"],
    ] as const) {
      const response = await fetch(`${local}${path}`, { method });
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ error: SETUP_MODE_ERROR });
    }
    expect(SETUP_MODE_ERROR).toBe("GitHub App not configured: open /probot");
    // A runner's WebSocket upgrade gets the same answer.
    const socket = new WebSocket(`${local.replace("http", "ws")}/runners/v1`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      socket.on("unexpected-response", (_req, res) => resolve(res.statusCode));
      socket.on("open", () => reject(new Error("the socket opened in setup mode")));
      socket.on("error", reject);
    });
    socket.terminate();
    expect(status).toBe(503);
    const ready = await fetch(`${local}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "setup", github: "setup" });
  });

  it("refuses POST /probot/import from another machine without the setup code; .env is untouched", async () => {
    const cases: Record<string, string>[] = [
      {},
      { "x-conveyor-setup-code": "not-the-code" },
      { cookie: "conveyor_setup_code=0000" },
    ];
    for (const headers of cases) {
      const response = await postImport(remote.base, { ...remote.headers, ...headers });
      expect(response.status).toBe(403);
      expect(await response.json()).toEqual({ error: SETUP_REFUSED });
    }
    // The manifest callback writes credentials too.
    const callback = await fetch(`${remote.base}/probot/setup?code=from-github`, {
      headers: remote.headers,
    });
    expect(callback.status).toBe(403);
    // A proxy on this machine forwarding a stranger's request does not make it local.
    const proxied = await postImport(local, { "x-forwarded-for": "203.0.113.9" });
    expect(proxied.status).toBe(403);
    expect(envFile()).toBe(SENTINEL);
    expect(conveyor.output()).toContain(
      "setup: refused a credential write from another machine without the setup code",
    );
  });

  it("asks a browser elsewhere for the code, then lets it through with a cookie", async () => {
    const asked = await fetch(`${remote.base}/probot`, { headers: remote.headers });
    expect(asked.status).toBe(403);
    const page = await asked.text();
    expect(htmlProblems(page)).toEqual([]);
    expect(page).toContain("Setup code needed");

    const entered = await fetch(`${remote.base}/probot?setup_code=${code}`, {
      headers: remote.headers,
      redirect: "manual",
    });
    expect(entered.status).toBe(303);
    expect(entered.headers.get("location")).toBe("/probot");
    const cookie = entered.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(
      /^conveyor_setup_code=[0-9a-f]{32}; Path=\/probot; HttpOnly; SameSite=Lax/,
    );
    const setup = await fetch(`${remote.base}/probot`, {
      headers: { ...remote.headers, cookie: cookie.split(";")[0]! },
    });
    expect(setup.status).toBe(200);
    expect(await setup.text()).toContain("Register GitHub App");
  });

  it("writes credentials with the code once; afterwards only this machine may", async () => {
    const withCode = await postImport(remote.base, {
      ...remote.headers,
      "x-conveyor-setup-code": code,
    });
    expect(withCode.status).toBe(200);
    expect(envFile()).toContain("APP_ID=4242");
    expect(envFile()).toContain("WEBHOOK_SECRET=imported-secret");
    writeFileSync(join(dir, ".env"), SENTINEL);

    const again = await postImport(remote.base, {
      ...remote.headers,
      "x-conveyor-setup-code": code,
    });
    expect(again.status).toBe(403);
    expect(envFile()).toBe(SENTINEL);
    const fromHere = await postImport(local, {});
    expect(fromHere.status).toBe(200);
    expect(envFile()).toContain("APP_ID=4242");
  });
});
