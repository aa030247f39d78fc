import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Reads whose answer cannot change while a benchmark runs: the repository, its config file and its
 * branch head (nothing pushes to the repository during a benchmark). The simulator answers these
 * by running git, which on a small machine costs more CPU than the server under test spends on
 * the whole request; GitHub answers them from its own caches, on its own machines.
 */
const CACHEABLE = [
  /^\/repos\/[^/]+\/[^/]+$/,
  /^\/repos\/[^/]+\/[^/]+\/contents\//,
  /^\/repos\/[^/]+\/[^/]+\/git\/ref\//,
];

interface Stored {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface GitHubCache {
  url: string;
  counts(): { forwarded: number; cached: number };
  close(): Promise<void>;
}

/**
 * A caching HTTP proxy in front of the GitHub simulator. Every request still makes an HTTP round
 * trip from the server; the repeatable reads above are answered from memory after the first,
 * per URL and per credential (a request with another token is asked again), so the simulator still
 * authenticates each token once. Everything else (writes, tokens, issues) goes through.
 */
export async function startGitHubCache(target: string): Promise<GitHubCache> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const store = new Map<string, Stored>();
  let forwarded = 0;
  let cached = 0;
  const server = createServer((request, response) => {
    const path = request.url ?? "/";
    const pathname = path.split("?")[0]!;
    const cacheable = request.method === "GET" && CACHEABLE.some((re) => re.test(pathname));
    const key = `${path}\n${request.headers.authorization ?? ""}`;
    const hit = cacheable ? store.get(key) : undefined;
    if (hit) {
      cached++;
      response.writeHead(hit.status, hit.headers).end(hit.body);
      return;
    }
    forwarded++;
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const outgoing = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path,
          headers: { ...request.headers, host: upstream.host },
          agent,
        },
        (answer) => {
          const body: Buffer[] = [];
          answer.on("data", (chunk: Buffer) => body.push(chunk));
          answer.on("end", () => {
            const stored: Stored = {
              status: answer.statusCode ?? 502,
              headers: { ...answer.headers },
              body: Buffer.concat(body),
            };
            // Connection handling is per hop; the length is recomputed for the buffered body.
            delete stored.headers.connection;
            delete stored.headers["keep-alive"];
            delete stored.headers["transfer-encoding"];
            stored.headers["content-length"] = String(stored.body.length);
            if (cacheable && stored.status < 500) store.set(key, stored);
            response.writeHead(stored.status, stored.headers).end(stored.body);
          });
        },
      );
      outgoing.on("error", (error) => {
        response.writeHead(502, { "content-type": "application/json" });
        response.end(JSON.stringify({ message: `github cache: ${error.message}` }));
      });
      outgoing.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => ({ forwarded, cached }),
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
