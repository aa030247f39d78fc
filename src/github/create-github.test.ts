import { generateKeyPairSync } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sign } from "@octokit/webhooks-methods";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import type { Database } from "../../db/client.ts";
import { createGitHubBudget } from "../core/github-budget.ts";
import type { Signal } from "../core/ports.ts";
import { createSignals } from "../core/signals.ts";
import type { NodeHandler } from "../http/node-handler.ts";
import { createGitHub } from "./create-github.ts";

const logger = pino({ level: "silent" });
const SECRET = "webhook-secret";
const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
/** Handlers that reach the database fail loudly: these tests must not need it. */
const noDatabase = {
  db: new Proxy(
    {},
    {
      get: () => {
        throw new Error("the database was used");
      },
    },
  ),
} as unknown as Database;
const OCTOKIT = { retry: { enabled: false }, throttle: { enabled: false } };

/** A fake GitHub API: installation tokens and one issue; remembers what it was asked. */
function fakeGitHub() {
  const seen: { method: string; url: string; authorization: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      authorization: String(req.headers.authorization ?? ""),
    });
    res.setHeader("content-type", "application/json");
    if (req.method === "POST" && req.url === "/app/installations/7/access_tokens") {
      res.statusCode = 201;
      res.end(JSON.stringify({ token: "ghs_fake", expires_at: "2999-01-01T00:00:00Z" }));
    } else if (req.method === "GET" && req.url === "/repos/acme/widgets/issues/5") {
      res.end(
        JSON.stringify({
          number: 5,
          title: "Add a widget",
          body: null,
          state: "open",
          labels: [{ name: "conveyor" }],
          html_url: "https://github.com/acme/widgets/issues/5",
        }),
      );
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ message: "Not Found" }));
    }
  });
  return { server, seen };
}

/** Serves one Node handler on a loopback port. */
async function serve(handler: NodeHandler): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    if (!(await handler(req, res))) {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("the GitHub subsystem", () => {
  const github = fakeGitHub();
  let apiUrl: string;
  const servers: Server[] = [github.server];
  beforeAll(async () => {
    await new Promise<void>((resolve) => github.server.listen(0, "127.0.0.1", resolve));
    apiUrl = `http://127.0.0.1:${(github.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  function build() {
    const counted: string[] = [];
    const heard: Signal[] = [];
    const signals = createSignals();
    for (const signal of ["tasks-changed", "pull-request-activity"] as const) {
      signals.on(signal, () => heard.push(signal));
    }
    const built = createGitHub({
      config: {
        github: { appId: 42, privateKey, webhookSecret: SECRET },
        githubApiUrl: apiUrl,
        host: "127.0.0.1",
        port: 0,
        publicUrl: undefined,
        webhookProxyUrl: undefined,
      },
      database: noDatabase,
      logger,
      metrics: {
        githubRequest: (method, route, status) => counted.push(`${method} ${route} ${status}`),
        githubRateLimit: () => {},
        githubRateLimited: () => {},
        webhook: (event, status) => counted.push(`webhook ${event} ${status}`),
      },
      githubBudget: createGitHubBudget(),
      recordError: () => {},
      signals,
      options: { octokitOptions: OCTOKIT },
    });
    return { built, counted, heard };
  }

  it("reads GitHub through the gateway port with the installation's token, counting each call", async () => {
    const { built, counted } = build();
    const { app, setup } = await built;
    expect(setup).toBeUndefined();
    expect(app?.appId).toBe(42);
    const issue = await app?.gateway.getIssue(
      { installationId: 7, owner: "acme", repo: "widgets" },
      5,
    );
    expect(issue).toMatchObject({ number: 5, title: "Add a widget", labels: ["conveyor"] });
    const issueRequest = github.seen.find((r) => r.url === "/repos/acme/widgets/issues/5");
    expect(issueRequest?.authorization).toBe("token ghs_fake");
    // The App authenticated itself with a JWT to get that token.
    const tokenRequest = github.seen.find((r) => r.url.endsWith("/access_tokens"));
    expect(tokenRequest?.authorization).toMatch(/^bearer [\w-]+\.[\w-]+\.[\w-]+$/i);
    expect(counted).toContain("GET /repos/{owner}/{repo}/issues/{issue_number} 200");
  });

  it("turns a signed webhook into a signal, and refuses one with a bad signature", async () => {
    const { built, counted, heard } = build();
    const { webhooks } = await built;
    if (!webhooks) throw new Error("no webhook handler");
    const { url, server } = await serve(webhooks);
    servers.push(server);
    const post = async (body: string, signature: string) =>
      fetch(`${url}/api/github/webhooks`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "status",
          "x-github-delivery": "d-1",
          "x-hub-signature-256": signature,
        },
        body,
      });
    // A status without an installation: only the merger is woken, nothing is recorded.
    const body = JSON.stringify({ state: "success", sha: "a".repeat(40), context: "ci" });
    expect((await post(body, "sha256=0000")).status).toBe(400);
    expect(heard).toEqual([]);
    expect((await post(body, await sign(SECRET, body))).status).toBe(200);
    expect(heard).toEqual(["pull-request-activity"]);
    expect(counted).toEqual(["webhook status 400", "webhook status 200"]);
  });

  it("without credentials serves the setup flow and offers no App", async () => {
    // Probot's setup would otherwise ask smee.io for a webhook proxy channel.
    vi.stubEnv("NO_SMEE_SETUP", "true");
    onTestFinished(() => {
      vi.unstubAllEnvs();
    });
    const built = await createGitHub({
      config: {
        github: undefined,
        githubApiUrl: apiUrl,
        host: "0.0.0.0",
        port: 3000,
        publicUrl: undefined,
        webhookProxyUrl: undefined,
      },
      database: noDatabase,
      logger,
      metrics: {
        githubRequest: () => {},
        githubRateLimit: () => {},
        githubRateLimited: () => {},
        webhook: () => {},
      },
      githubBudget: createGitHubBudget(),
      recordError: () => {},
      signals: createSignals(),
      options: {},
    });
    expect(built.app).toBeUndefined();
    expect(built.webhooks).toBeUndefined();
    expect(typeof built.setup).toBe("function");
    // A fresh one-time code for browsers on other machines, 128 bits of hex.
    expect(built.setupCode).toMatch(/^[0-9a-f]{32}$/);
  });
});
