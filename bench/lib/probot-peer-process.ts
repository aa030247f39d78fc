/**
 * The webhook-ingest peer: a bare Probot app whose handlers do nothing, on Node's HTTP server, with
 * the same secret and path as Conveyor. What a GitHub App costs before it does any work.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { createNodeMiddleware, Probot } from "probot";
import { failStart, processStats, serveParent } from "./child.ts";

try {
  const probot = new Probot({
    appId: Number(process.env.APP_ID),
    privateKey: process.env.PRIVATE_KEY,
    secret: process.env.WEBHOOK_SECRET,
    log: pino({ level: "warn" }),
  });
  const middleware = await createNodeMiddleware(
    (app) => {
      app.onAny(async () => {});
    },
    { probot },
  );
  const server = createServer(async (request, response) => {
    if (!(await middleware(request, response))) response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  serveParent(
    {
      stats: () => processStats(),
      stop: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    },
    { url: `http://127.0.0.1:${port}`, pid: process.pid },
  );
} catch (error) {
  failStart(error);
}
