import { createHmac, timingSafeEqual } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";

/** GitHub caps webhook payloads at 25 MB (https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap). */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

/** How many unauthenticated webhook bodies may be read at once unless configured. */
export const DEFAULT_WEBHOOK_CONCURRENCY = 32;

/**
 * Most declared bytes of unauthenticated bodies read at once: two of GitHub's largest. A single
 * delivery always fits; beyond that, bytes as well as bodies are capped, so many small deliveries
 * (a burst from GitHub) pass while a flood of large ones is refused.
 */
export const MAX_PENDING_WEBHOOK_BYTES = 2 * MAX_WEBHOOK_BYTES;

/** GitHub gives up on a delivery after 10 s, so a body still arriving after that is not GitHub's. */
export const WEBHOOK_READ_TIMEOUT_MS = 10_000;

/** `sha256=` and 64 lowercase hex digits: the only form GitHub sends. */
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

export interface WebhookGateOptions {
  /** The App's webhook secret; the body is verified against it while it streams in. */
  secret: string;
  /** Unauthenticated bodies read at once; the next one gets 429 before a byte of it is read. */
  concurrency?: number;
  /** A body not complete by then is dropped (408). */
  readTimeoutMs?: number;
}

/** The gate's state, for tests and metrics: bodies being read right now. */
export interface WebhookGate {
  middleware: MiddlewareHandler<{ Bindings: HttpBindings }>;
  pending(): number;
}

/**
 * Stands in front of Probot's webhook middleware, which buffers the whole body before it checks
 * the signature. A delivery is refused before a byte of its body is read when its
 * `Content-Length` is missing or over 25 MiB, its `X-Hub-Signature-256` is missing or malformed,
 * or {@link WebhookGateOptions.concurrency} bodies, or {@link MAX_PENDING_WEBHOOK_BYTES}, are
 * already being read (429). Otherwise the
 * body is hashed while it streams in, never beyond its declared length nor past a deadline, and
 * handed on only when the signature matches; so at most 50 MiB of unauthenticated bytes are ever
 * held, however many requests arrive.
 */
export function createWebhookGate(options: WebhookGateOptions): WebhookGate {
  const concurrency = options.concurrency ?? DEFAULT_WEBHOOK_CONCURRENCY;
  const readTimeoutMs = options.readTimeoutMs ?? WEBHOOK_READ_TIMEOUT_MS;
  let pending = 0;
  let pendingBytes = 0;
  // Every early answer closes the connection, so Node does not read the rest of the body.
  const refuse = (c: Context, status: 400 | 408 | 411 | 413 | 429, error: string) =>
    c.json({ error }, status, { connection: "close" });

  const middleware: MiddlewareHandler<{ Bindings: HttpBindings }> = async (c, next) => {
    const length = c.req.header("content-length");
    if (length === undefined) {
      return refuse(
        c,
        411,
        "a webhook delivery needs a Content-Length header (GitHub always sends one)",
      );
    }
    if (!/^\d+$/.test(length) || Number(length) > MAX_WEBHOOK_BYTES) {
      return refuse(
        c,
        413,
        "webhook payload larger than 25 MiB; GitHub never sends one, so it was not read",
      );
    }
    const signature = c.req.header("x-hub-signature-256");
    if (signature === undefined || !SIGNATURE.test(signature)) {
      return refuse(
        c,
        400,
        signature === undefined
          ? "Required headers missing: x-hub-signature-256"
          : "x-hub-signature-256 is not sha256= and 64 hex digits, so the body was not read",
      );
    }
    const declared = Number(length);
    const overBytes = pendingBytes > 0 && pendingBytes + declared > MAX_PENDING_WEBHOOK_BYTES;
    if (pending >= concurrency || overBytes) {
      c.header("retry-after", "1");
      return refuse(c, 429, "too many webhook bodies being read at once; try again");
    }
    pending += 1;
    pendingBytes += declared;
    let body: Buffer;
    try {
      const read = await readSigned(c.env.incoming, declared, options.secret, readTimeoutMs);
      if (read.kind !== "ok") {
        c.env.incoming.resume();
        return refuse(c, read.status, read.error);
      }
      body = read.body;
    } finally {
      pending -= 1;
      pendingBytes -= declared;
    }
    // Probot reads a string body instead of the stream, and verifies it once more (cheaply).
    (c.env.incoming as unknown as { body: string }).body = body.toString("utf8");
    await next();
  };
  return { middleware, pending: () => pending };
}

type ReadResult =
  | { kind: "ok"; body: Buffer }
  | { kind: "refused"; status: 400 | 408 | 413; error: string };

/** Reads at most `declared` bytes within the deadline, hashing them as they arrive. */
function readSigned(
  incoming: HttpBindings["incoming"],
  declared: number,
  secret: string,
  timeoutMs: number,
): Promise<ReadResult> {
  const signature = incoming.headers["x-hub-signature-256"] as string;
  return new Promise((resolve) => {
    const hmac = createHmac("sha256", secret);
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (result: ReadResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      chunks.length = 0;
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ kind: "refused", status: 408, error: "webhook body not received in time" }),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > declared) {
        finish({
          kind: "refused",
          status: 413,
          error: "webhook body longer than its Content-Length",
        });
        return;
      }
      hmac.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (received !== declared) {
        finish({
          kind: "refused",
          status: 400,
          error: "webhook body shorter than its Content-Length",
        });
        return;
      }
      const expected = Buffer.from(`sha256=${hmac.digest("hex")}`);
      if (!timingSafeEqual(expected, Buffer.from(signature))) {
        finish({
          kind: "refused",
          status: 400,
          error: "signature does not match event payload and secret",
        });
        return;
      }
      const body = Buffer.concat(chunks);
      finish({ kind: "ok", body });
    };
    const onError = () =>
      finish({ kind: "refused", status: 400, error: "webhook body could not be read" });
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
  });
}
