import { createHmac, randomUUID } from "node:crypto";
import type { SimLogger } from "./sim-logger.ts";
import type { SimViolation } from "./sim-violation.ts";
import type { WebhookPayloadValidator } from "./webhook-payload-validator.ts";

export interface WebhookTarget {
  url: string;
  secret: string;
  /** How the payload is sent: `json` (the default) or `form` (`payload=<url-encoded JSON>`). */
  contentType?: "json" | "form";
}

/** The App's webhook configuration, as `GET /app/hook/config` shows it. */
export interface HookConfig {
  url: string;
  content_type: "json" | "form";
  insecure_ssl: "0" | "1";
  /** Masked, like GitHub's answer, when a secret is set. */
  secret?: string;
}

/** One webhook delivery, as GitHub's "Recent Deliveries" page would show it. */
export interface Delivery {
  /**
   * The `X-GitHub-Delivery` GUID (`guid` in GitHub's delivery log); a redelivery keeps it
   * (https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks#use-the-x-github-delivery-header).
   */
  id: string;
  /** GitHub's `id` of this attempt in the delivery log: a redelivery gets a new one. */
  hookDeliveryId: number;
  /**
   * Where it was sent; undefined when the App had no webhook URL, or when it was forged (signed
   * with another secret: an attacker's, not GitHub's): neither is in GitHub's delivery log.
   */
  url: string | undefined;
  /** The request's headers as sent (the signatures included). */
  requestHeaders: Record<string, string>;
  /** The app's answer's headers. */
  responseHeaders: Record<string, string>;
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
  /** `GET /app/hook/config`. */
  hookConfig(): HookConfig;
  /** `PATCH /app/hook/config`: changes what is given. */
  updateHookConfig(patch: {
    url?: string;
    content_type?: string;
    secret?: string;
    insecure_ssl?: string | number;
  }): HookConfig;
  /** A delivery by its attempt id (`hookDeliveryId`), if it is in the log. */
  logged(hookDeliveryId: number): Delivery | undefined;
  /** Queues a delivery; resolves once the app has answered (deliveries go out one at a time). */
  send(event: string, payload: Record<string, unknown>, options?: SendOptions): Promise<Delivery>;
  /** Sends a delivery again: the same GUID and body, a new attempt id, `redelivery: true`. */
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
  let insecureSsl: "0" | "1" = "0";
  let tail: Promise<unknown> = Promise.resolve();
  let inFlight = 0;
  const deliveries: Delivery[] = [];
  const hookId = 1;
  // GitHub's attempt ids are large integers that grow with time.
  let nextHookDeliveryId = 1_000_001;

  const deliver = async (delivery: Delivery, signatureSecret: string | undefined) => {
    if (!target) {
      delivery.error = "no webhook target configured";
      return;
    }
    if (signatureSecret === undefined) delivery.url = target.url;
    const secret = signatureSecret ?? target.secret;
    // A `form` webhook sends the JSON as the `payload` field, signed as sent.
    const form = target.contentType === "form";
    const body = form ? `payload=${encodeURIComponent(delivery.body)}` : delivery.body;
    const started = Date.now();
    try {
      delivery.requestHeaders = {
        accept: "*/*",
        "content-type": form ? "application/x-www-form-urlencoded" : "application/json",
        "user-agent": "GitHub-Hookshot/sim",
        "x-github-event": delivery.event,
        "x-github-delivery": delivery.id,
        "x-github-hook-id": String(hookId),
        "x-github-hook-installation-target-type": "integration",
        "x-github-hook-installation-target-id": String(options.appId),
        "x-hub-signature": signWebhook(secret, body, "sha1"),
        "x-hub-signature-256": signWebhook(secret, body),
      };
      const response = await fetch(target.url, {
        method: "POST",
        headers: delivery.requestHeaders,
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      delivery.status = response.status;
      delivery.responseHeaders = Object.fromEntries(response.headers);
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

  const hookConfig = (): HookConfig => ({
    url: target?.url ?? "",
    content_type: target?.contentType ?? "json",
    insecure_ssl: insecureSsl,
    ...(target?.secret ? { secret: "********" } : {}),
  });

  return {
    deliveries,
    setTarget(next) {
      target = next;
    },
    hookConfig,
    updateHookConfig(patch) {
      const contentType =
        patch.content_type === "form" ? "form" : patch.content_type === "json" ? "json" : undefined;
      target = {
        url: patch.url ?? target?.url ?? "",
        secret: patch.secret ?? target?.secret ?? "",
        contentType: contentType ?? target?.contentType ?? "json",
      };
      if (patch.insecure_ssl !== undefined)
        insecureSsl = String(patch.insecure_ssl) === "1" ? "1" : "0";
      return hookConfig();
    },
    logged(hookDeliveryId) {
      return deliveries.find((d) => d.hookDeliveryId === hookDeliveryId && d.url !== undefined);
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
        hookDeliveryId: nextHookDeliveryId++,
        url: undefined,
        requestHeaders: {},
        responseHeaders: {},
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
          hookDeliveryId: nextHookDeliveryId++,
          url: undefined,
          requestHeaders: {},
          responseHeaders: {},
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
