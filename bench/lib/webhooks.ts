import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { sign } from "@octokit/webhooks-methods";
import type { SimulatorInfo } from "./simulator-process.ts";

const require = createRequire(import.meta.url);

/** The secret every benchmark server verifies webhooks with. */
export const WEBHOOK_SECRET = "bench-webhook-secret";

/** The events of a Conveyor installation's traffic, all their examples included. */
export const MIXED_EVENTS = [
  "issues",
  "issue_comment",
  "pull_request",
  "pull_request_review",
  "check_run",
  "check_suite",
  "status",
  "push",
] as const;

interface ExampleGroup {
  name: string;
  examples: Record<string, unknown>[];
}

/** One webhook, ready to send: the body and the signature are computed once. */
export interface SignedWebhook {
  event: string;
  action: string | undefined;
  body: string;
  signature: string;
}

/** Signs a payload with `X-Hub-Signature-256`, as GitHub does. */
export async function signWebhook(event: string, payload: unknown): Promise<SignedWebhook> {
  const body = JSON.stringify(payload);
  return {
    event,
    action: (payload as { action?: string }).action,
    body,
    signature: await sign(WEBHOOK_SECRET, body),
  };
}

/** The headers GitHub sends with a delivery; every delivery gets a new id. */
export function webhookHeaders(webhook: SignedWebhook): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/bench",
    "x-github-event": webhook.event,
    "x-github-delivery": randomUUID(),
    "x-hub-signature-256": webhook.signature,
  };
}

/**
 * Every example payload of `MIXED_EVENTS` from `@octokit/webhooks-examples`, pointed at the
 * simulator's installation and repository so handlers that call GitHub (an `issues` event loads
 * the repository's config) reach a GitHub that answers.
 */
export async function mixedWebhooks(sim: SimulatorInfo): Promise<SignedWebhook[]> {
  const groups = require("@octokit/webhooks-examples/api.github.com/index.json") as ExampleGroup[];
  const webhooks: SignedWebhook[] = [];
  for (const event of MIXED_EVENTS) {
    const group = groups.find((g) => g.name === event);
    if (!group) throw new Error(`@octokit/webhooks-examples has no "${event}" examples`);
    for (const example of group.examples) {
      const payload = {
        ...structuredClone(example),
        installation: { id: sim.installationId, node_id: `MDIz${sim.installationId}` },
        repository: sim.repository,
      };
      webhooks.push(await signWebhook(event, payload));
    }
  }
  return webhooks;
}

/**
 * `issues.labeled` for an issue opened in the simulator with the intake label, sent by `octocat`
 * (write access): exactly what queues a task.
 */
export function labeledPayload(
  sim: SimulatorInfo,
  issue: Record<string, unknown>,
): Record<string, unknown> {
  return {
    action: "labeled",
    issue,
    label: sim.label,
    repository: sim.repository,
    sender: sim.sender,
    installation: { id: sim.installationId, node_id: `MDIz${sim.installationId}` },
  };
}
