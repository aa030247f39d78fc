import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { Probot, ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import {
  createGitHubSimulator,
  type GitHubSimulator,
  type GitHubSimulatorOptions,
} from "./create-github-simulator.ts";

export const WEBHOOK_SECRET = "sim-test-secret";

let cachedKey: string | undefined;

/** An RSA key for the test app (generated once per test file; 2048 bits like GitHub's). */
export function testPrivateKey(): string {
  cachedKey ??= generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs1",
    format: "pem",
  }) as string;
  return cachedKey;
}

export interface TestSimulator {
  sim: GitHubSimulator;
  dataDir: string;
  privateKey: string;
  close(): Promise<void>;
}

/** A simulator in a fresh temporary directory with signature-checked app JWTs. */
export async function startTestSimulator(
  options: Partial<GitHubSimulatorOptions> = {},
): Promise<TestSimulator> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "github-sim-"));
  const privateKey = testPrivateKey();
  const sim = await createGitHubSimulator({ dataDir, privateKeyPem: privateKey, ...options });
  return {
    sim,
    dataDir,
    privateKey,
    async close() {
      await sim.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Octokit without retries or throttling. It must be a function default: Probot merges its own
 * throttle options over plain object defaults, and the throttling plugin then spaces write
 * requests a second apart.
 */
export const UnthrottledOctokit = ProbotOctokit.defaults((options: Record<string, unknown>) => ({
  ...options,
  retry: { enabled: false },
  throttle: { enabled: false },
}));

/** Probot wired to the simulator the way Conveyor wires it. */
export function createTestProbot(sim: GitHubSimulator, privateKey: string): Probot {
  return new Probot({
    appId: sim.appId,
    privateKey,
    secret: WEBHOOK_SECRET,
    baseUrl: sim.url,
    log: pino({ level: "silent" }),
    Octokit: UnthrottledOctokit,
  });
}

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** The status the receiver answers with (default 200). */
  status: number;
  close(): Promise<void>;
}

/** A bare HTTP endpoint that records webhooks, standing in for the app. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const receiver: WebhookReceiver = {
    url: "",
    received,
    status: 200,
    close: async () => {},
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
      response.writeHead(receiver.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("receiver has no port");
  receiver.url = `http://127.0.0.1:${address.port}/webhooks`;
  receiver.close = () =>
    new Promise((resolve, reject) => {
      server.closeAllConnections();
      server.close((error) => (error ? reject(error) : resolve()));
    });
  return receiver;
}

/** What {@link useInstalledSimulator} starts; filled in before the first case runs. */
export interface InstalledSimulator {
  kit: TestSimulator;
  sim: GitHubSimulator;
  receiver: WebhookReceiver;
  /** The installation's Octokit (a Probot client with retries and throttling off). */
  octokit: ProbotOctokit;
  installationId: number;
}

/**
 * For the enclosing `describe`: a simulator that sends its webhooks to a receiver, with one
 * installation on `owner` and its Octokit. Each case ends with the simulator idle and no violation
 * recorded; everything stops after the last case.
 */
export function useInstalledSimulator(owner: string): InstalledSimulator {
  const env = {} as InstalledSimulator;
  beforeAll(async () => {
    env.receiver = await startWebhookReceiver();
    env.kit = await startTestSimulator({
      webhook: { url: env.receiver.url, secret: WEBHOOK_SECRET },
    });
    env.sim = env.kit.sim;
    env.installationId = (await env.sim.createInstallation({ account: owner })).id;
    env.octokit = await createTestProbot(env.sim, env.kit.privateKey).auth(env.installationId);
  });
  afterEach(async () => {
    await env.sim.idle();
    expect(env.sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await env.kit?.close();
    await env.receiver?.close();
  });
  return env;
}
