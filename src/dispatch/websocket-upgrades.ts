import type { IncomingMessage, Server } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { HttpBindings } from "@hono/node-server";
import type { WebSocket, WebSocketServer } from "ws";
import { markUpgradeAccepted } from "./refused-upgrades.ts";

/** What a route that accepts a WebSocket upgrade does with the socket. */
export interface UpgradeHandlers {
  /** The handshake is done: the socket is the route's. */
  open(ws: WebSocket): void;
  /** The client went away (or sent a bad handshake) before the socket opened. */
  aborted(): void;
}

/** Upgrade requests a route accepted, with what to do with their sockets. */
const acceptedUpgrades = new WeakMap<IncomingMessage, UpgradeHandlers>();

/**
 * Called by a route (after its checks) to take this WebSocket upgrade request: once the route
 * returns, the handshake is made and `handlers.open` gets the socket. Returns false when the
 * request is not a WebSocket upgrade.
 */
export function acceptWebSocket(env: HttpBindings, handlers: UpgradeHandlers): boolean {
  const incoming = env.incoming;
  if (incoming.headers.upgrade?.toLowerCase() !== "websocket" || env.outgoing !== undefined) {
    return false;
  }
  acceptedUpgrades.set(incoming, handlers);
  markUpgradeAccepted(incoming);
  return true;
}

/**
 * Routes WebSocket upgrade requests through the Hono app like any request (`fetch`, with the raw
 * request as `env.incoming` and no response object), and makes the handshake for the ones a
 * route accepted with `acceptWebSocket`. Instead of @hono/node-server's `upgradeWebSocket`,
 * whose per-socket closures keep the request, its `Request` copy, the Hono context and two URLs
 * alive for as long as the socket is open (about 10 KiB a socket): with 10,000 idle runners,
 * that was most of the server's memory. Here nothing of the request outlives the handshake.
 * A refusal the app did not write itself (see `refusedUpgradesWithJson`) is answered with its
 * status and no body.
 */
export function handleWebSocketUpgrades(options: {
  server: Server;
  wss: WebSocketServer;
  fetch: (request: Request, env: HttpBindings) => Response | Promise<Response>;
}): void {
  const { server, wss } = options;
  const ignoreError = () => {};
  server.on("upgrade", async (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (request.headers.upgrade?.toLowerCase() !== "websocket") return;
    socket.on("error", ignoreError);
    // 400 stands when the request target or Host header makes no URL.
    let status = 400;
    let fetchRequest: Request | undefined;
    try {
      fetchRequest = toFetchRequest(request);
    } catch {}
    if (fetchRequest) {
      try {
        const env = { incoming: request, outgoing: undefined } as unknown as HttpBindings;
        status = (await options.fetch(fetchRequest, env)).status;
      } catch {
        status = 500;
      }
    }
    const handlers = acceptedUpgrades.get(request);
    acceptedUpgrades.delete(request);
    if (socket.destroyed) {
      handlers?.aborted();
      return;
    }
    if (!handlers) {
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    const abortedEarly = () => handlers.aborted();
    socket.once("close", abortedEarly);
    wss.handleUpgrade(request, socket, head, (ws) => {
      // Nothing of the request stays attached to the open socket.
      socket.off("close", abortedEarly);
      socket.off("error", ignoreError);
      handlers.open(ws);
    });
  });
  server.on("close", () => wss.close());
}

/** The upgrade request as a fetch `Request` for the app (headers only: an upgrade has no body). */
function toFetchRequest(request: IncomingMessage): Request {
  const protocol = (request.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  const url = new URL(request.url ?? "/", `${protocol}://${request.headers.host ?? "localhost"}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    headers.append(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return new Request(url, { headers });
}
