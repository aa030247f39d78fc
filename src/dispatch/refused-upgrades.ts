import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { HttpBindings } from "@hono/node-server";
import type { MiddlewareHandler } from "hono";

/** Upgrade requests a route handed to the WebSocket server: everything else was refused. */
const accepted = new WeakSet<IncomingMessage>();

/** Records that this request's WebSocket upgrade goes ahead (the route returned its handshake). */
export function markUpgradeAccepted(incoming: IncomingMessage): void {
  accepted.add(incoming);
}

// Not copied into a refusal: they describe the connection or the body, which we write ourselves.
const SKIPPED_HEADERS = new Set([
  "connection",
  "content-length",
  "content-type",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Gives every refused WebSocket upgrade its JSON body. @hono/node-server answers a refused upgrade
 * itself, from the status and headers of the route's response but always with `Content-Length: 0`,
 * so a runner would see a bare `401` or `429` where the protocol documents `{"error": "…"}`. This
 * middleware (the outermost one) writes the refusal to the socket with its body, JSON even when the
 * route answered in another form, and then destroys the socket, which tells the adapter the
 * request is settled. Ordinary requests pass through untouched.
 */
export function refusedUpgradesWithJson(): MiddlewareHandler<{ Bindings: HttpBindings }> {
  return async (c, next) => {
    await next();
    const env = c.env as Partial<HttpBindings> | undefined;
    const incoming = env?.incoming;
    // Only an upgrade request comes without a response object (the adapter keeps the raw socket).
    if (!incoming || env.outgoing !== undefined) return;
    if (incoming.headers.upgrade?.toLowerCase() !== "websocket" || accepted.has(incoming)) return;
    const socket = incoming.socket;
    if (socket.destroyed) return;
    const response = c.res;
    const status = response.status;
    const body = jsonBody(status, response.headers.get("content-type"), await response.text());
    const lines = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
      "Content-Type: application/json",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Connection: close",
    ];
    response.headers.forEach((value, name) => {
      if (!SKIPPED_HEADERS.has(name.toLowerCase())) lines.push(`${name}: ${value}`);
    });
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.once("error", () => resolve());
      socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`, () => resolve());
    });
    socket.destroy();
  };
}

/** The route's JSON as it is; anything else (text, nothing) as `{"error": …}`. */
function jsonBody(status: number, contentType: string | null, text: string): string {
  if (contentType?.toLowerCase().startsWith("application/json") && text) {
    try {
      JSON.parse(text);
      return text;
    } catch {
      // not JSON after all: wrap it like any other text
    }
  }
  return JSON.stringify({ error: text.trim() || STATUS_CODES[status] || `HTTP ${status}` });
}
