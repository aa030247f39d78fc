import type { MiddlewareHandler } from "hono";

/** GitHub caps webhook payloads at 25 MB (https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap). */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

/**
 * Refuses a webhook body GitHub would never send before a byte of it is read: Probot buffers the
 * whole body in memory before it checks the signature, so without this anyone could make the
 * server hold any amount. GitHub always sends `Content-Length`, and Node reads no more than it says.
 */
export function limitWebhookBody(): MiddlewareHandler {
  return async (c, next) => {
    const length = c.req.header("content-length");
    if (length === undefined) {
      return c.json(
        { error: "a webhook delivery needs a Content-Length header (GitHub always sends one)" },
        411,
      );
    }
    if (!/^\d+$/.test(length) || Number(length) > MAX_WEBHOOK_BYTES) {
      return c.json(
        { error: "webhook payload larger than 25 MiB; GitHub never sends one, so it was not read" },
        413,
      );
    }
    await next();
  };
}
