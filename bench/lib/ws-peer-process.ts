/**
 * The runner-scale peer: a bare `ws` server on node:http that answers `ping` frames with `pong`
 * and does nothing else. What holding a WebSocket costs in Node before any application state.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { failStart, processStats, serveParent } from "./child.ts";

try {
  const server = createServer((_request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: "/runners/v1" });
  wss.on("connection", (ws) => {
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type?: string; id?: string };
      if (frame.type === "ping") ws.send(JSON.stringify({ type: "pong", id: frame.id }));
      // The protocol's handshake, so the same simulated runners can connect.
      else if (frame.type === "hello") {
        ws.send(
          JSON.stringify({
            type: "welcome",
            runner_id: "00000000-0000-4000-8000-000000000000",
            heartbeat_ms: 15_000,
            lease_ms: 60_000,
            accept_ms: 30_000,
            reconcile: [],
          }),
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  serveParent(
    {
      stats: () => ({ ...processStats(), connections: wss.clients.size }),
      stop: () =>
        new Promise<void>((resolve) => {
          for (const client of wss.clients) client.terminate();
          wss.close();
          server.close(() => resolve());
        }),
    },
    { url: `http://127.0.0.1:${port}`, pid: process.pid },
  );
} catch (error) {
  failStart(error);
}
