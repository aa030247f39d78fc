import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { sign } from "@octokit/webhooks-methods";

const require = createRequire(import.meta.url);

interface ExampleGroup {
  name: string;
  examples: Record<string, unknown>[];
}

/** GitHub's published example payloads, from `@octokit/webhooks-examples`. */
export function webhookExamples(event: string): Record<string, unknown>[] {
  const all = require("@octokit/webhooks-examples/api.github.com/index.json") as ExampleGroup[];
  const group = all.find((g) => g.name === event);
  if (!group) throw new Error(`@octokit/webhooks-examples has no "${event}" examples`);
  return group.examples.map((e) => structuredClone(e));
}

/** An example payload with the `installation` most examples lack. */
export function examplePayload(
  event: string,
  action: string,
  installationId = 1,
): Record<string, unknown> {
  const example = webhookExamples(event).find((e) => e.action === action);
  if (!example) throw new Error(`no ${event}.${action} example`);
  return { ...example, installation: { id: installationId, node_id: `MDIz${installationId}` } };
}

/** Posts a webhook the way GitHub does, signed with `secret`. */
export async function sendWebhook(
  url: string,
  options: {
    event: string;
    payload: unknown;
    secret: string;
    deliveryId?: string;
    /** Where on the server (default Conveyor's webhook route). */
    path?: string;
  },
): Promise<{ status: number; body: string; deliveryId: string }> {
  const body = JSON.stringify(options.payload);
  const deliveryId = options.deliveryId ?? randomUUID();
  const response = await fetch(`${url}${options.path ?? "/api/github/webhooks"}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/test",
      "x-github-event": options.event,
      "x-github-delivery": deliveryId,
      "x-hub-signature-256": await sign(options.secret, body),
    },
    body,
  });
  return { status: response.status, body: await response.text(), deliveryId };
}

let cachedKey: string | undefined;
/** An RSA key for a test GitHub App (generated once per test file: it takes ~100 ms). */
export function testPrivateKey(): string {
  cachedKey ??= generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;
  return cachedKey;
}
