import { createConnection, createServer, type Socket } from "node:net";

export interface TcpBalancer {
  /** `http://127.0.0.1:<port>`: give it to runners as their server. */
  url: string;
  /** The `http://host:port` addresses connections go to, in turn. */
  setTargets(urls: string[]): void;
  /** How many connections each target took (by its URL). */
  connections: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A TCP load balancer in front of several app instances, as runners meet them in production:
 * each new connection (HTTP or WebSocket) goes to the next target in turn, and to the one after
 * when a target refuses it, so clients of a stopped instance reconnect to the others.
 */
export async function createTcpBalancer(): Promise<TcpBalancer> {
  let targets: URL[] = [];
  let next = 0;
  const connections = new Map<string, number>();
  const open = new Set<Socket>();

  function connect(client: Socket, tried: number): void {
    if (tried >= targets.length) {
      client.destroy();
      return;
    }
    const target = targets[next++ % targets.length]!;
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    open.add(upstream);
    upstream.once("error", () => {
      open.delete(upstream);
      if (!upstream.readableEnded && upstream.bytesRead === 0 && upstream.bytesWritten === 0) {
        connect(client, tried + 1);
      } else client.destroy();
    });
    upstream.once("connect", () => {
      connections.set(target.origin, (connections.get(target.origin) ?? 0) + 1);
      upstream.removeAllListeners("error");
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => {
        open.delete(upstream);
        client.destroy();
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  const server = createServer({ pauseOnConnect: true }, (client) => {
    open.add(client);
    client.on("close", () => open.delete(client));
    connect(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    setTargets(urls) {
      targets = urls.map((u) => new URL(u));
    },
    connections,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
