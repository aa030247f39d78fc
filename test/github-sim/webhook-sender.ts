import { createHmac, randomUUID } from "node:crypto";
import type { SimLogger } from "./sim-logger.ts";
import type { SimViolation } from "./sim-violation.ts";
import type { WebhookPayloadValidator } from "./webhook-payload-validator.ts";

export interface WebhookTarget {
  url: string;
  secret: string;
}

/** One webhook delivery, as GitHub's "Recent Deliveries" page would show it. */
export interface Delivery {
  /** The `X-GitHub-Delivery` GUID; a redelivery keeps it. */
  id: string;
  event: string;
  action: string | undefined;
  payload: Record<string, unknown>;
  /** The exact JSON that was (or will be) signed and sent. */
  body: string;
  redelivery: boolean;
  /** The app's HTTP status; undefined while pending, when nothing listens or on a network error. */
  status: number | undefined;
  /** Why the delivery did not get an HTTP answer. */
  error: string | undefined;
  responseBody: string | undefined;
  deliveredAt: string | undefined;
  durationMs: number | undefined;
}

export interface SendOptions {
  /** Sign with this secret instead of the target's (to forge a bad signature). */
  signatureSecret?: string;
  /** Skip schema validation (for deliberately odd payloads). */
  validate?: boolean;
}

export interface WebhookSender {
  readonly deliveries: Delivery[];
  setTarget(target: WebhookTarget | undefined): void;
  /** Queues a delivery; resolves once the app has answered (deliveries go out one at a time). */
  send(event: string, payload: Record<string, unknown>, options?: SendOptions): Promise<Delivery>;
  redeliver(deliveryId: string): Promise<Delivery>;
  /** Resolves when no delivery is queued or in flight. */
  idle(): Promise<void>;
}

export interface WebhookSenderOptions {
  target: WebhookTarget | undefined;
  appId: number;
  validator: WebhookPayloadValidator;
  onViolation(violation: SimViolation): void;
  logger: SimLogger;
  now(): string;
  /** GitHub gives up on a delivery after 10 s. */
  timeoutMs?: number;
}

export function signWebhook(secret: string, body: string, algorithm: "sha256" | "sha1" = "sha256") {
  return `${algorithm}=${createHmac(algorithm, secret).update(body).digest("hex")}`;
}

/**
 * Sends webhooks the way GitHub does (signed JSON POSTs with the `X-GitHub-*` headers), one at a
 * time in order, so tests see a deterministic sequence.
 */
export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  let target = options.target;
  let tail: Promise<unknown> = Promise.resolve();
  let inFlight = 0;
  const deliveries: Delivery[] = [];
  const hookId = 1;

  const deliver = async (delivery: Delivery, signatureSecret: string | undefined) => {
    if (!target) {
      delivery.error = "no webhook target configured";
      return;
    }
    const secret = signatureSecret ?? target.secret;
    const started = Date.now();
    try {
      const response = await fetch(target.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "GitHub-Hookshot/sim",
          "x-github-event": delivery.event,
          "x-github-delivery": delivery.id,
          "x-github-hook-id": String(hookId),
          "x-github-hook-installation-target-type": "integration",
          "x-github-hook-installation-target-id": String(options.appId),
          "x-hub-signature": signWebhook(secret, delivery.body, "sha1"),
          "x-hub-signature-256": signWebhook(secret, delivery.body),
        },
        body: delivery.body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      delivery.status = response.status;
      delivery.responseBody = await response.text();
    } catch (error) {
      delivery.error = error instanceof Error ? error.message : String(error);
      options.logger.warn(
        { deliveryId: delivery.id, event: delivery.event, err: error },
        "webhook delivery failed",
      );
    } finally {
      delivery.deliveredAt = options.now();
      delivery.durationMs = Date.now() - started;
    }
  };

  const enqueue = (delivery: Delivery, signatureSecret: string | undefined) => {
    deliveries.push(delivery);
    inFlight += 1;
    const sent = tail.then(() => deliver(delivery, signatureSecret));
    tail = sent.finally(() => {
      inFlight -= 1;
    });
    return sent.then(() => delivery);
  };

  return {
    deliveries,
    setTarget(next) {
      target = next;
    },
    send(event, payload, sendOptions = {}) {
      const action = typeof payload.action === "string" ? payload.action : undefined;
      if (sendOptions.validate !== false) {
        for (const problem of options.validator.validate(event, action, payload)) {
          options.onViolation({
            kind: "webhook",
            method: "WEBHOOK",
            path: action ? `${event}.${action}` : event,
            message: problem,
          });
        }
      }
      const delivery: Delivery = {
        id: randomUUID(),
        event,
        action,
        payload,
        body: JSON.stringify(payload),
        redelivery: false,
        status: undefined,
        error: undefined,
        responseBody: undefined,
        deliveredAt: undefined,
        durationMs: undefined,
      };
      return enqueue(delivery, sendOptions.signatureSecret);
    },
    redeliver(deliveryId) {
      const original = deliveries.find((delivery) => delivery.id === deliveryId);
      if (!original) return Promise.reject(new Error(`no delivery ${deliveryId}`));
      return enqueue(
        {
          ...original,
          redelivery: true,
          status: undefined,
          error: undefined,
          responseBody: undefined,
          deliveredAt: undefined,
          durationMs: undefined,
        },
        undefined,
      );
    },
    async idle() {
      while (inFlight > 0) await tail;
    },
  };
}
