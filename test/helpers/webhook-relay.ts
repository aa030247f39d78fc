import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

/** One webhook as GitHub sent it: the exact bytes and the headers that sign and name it. */
export interface HeldDelivery {
  /** `X-GitHub-Delivery`. */
  id: string;
  event: string;
  action: string | undefined;
  headers: Record<string, string>;
  body: string;
  /** Position in the order GitHub sent them (0-based). */
  seq: number;
}

/** One attempt to hand a delivery to the app, and its answer. */
export interface Forwarded {
  id: string;
  event: string;
  action: string | undefined;
  seq: number;
  /** The app's HTTP status, or undefined when it could not be reached. */
  status: number | undefined;
  error?: string;
}

export type RelayMode =
  /** Hand each delivery on at once and answer GitHub with the app's answer, except those `drop` picks. */
  | { kind: "pass"; drop?: (delivery: HeldDelivery) => boolean }
  /**
   * Answer GitHub at once, hold deliveries, and every `windowMs` hand the batch on: every delivery
   * twice, the batch shuffled (seeded), a second copy sometimes held back to a later batch, two at
   * a time so a copy can race its twin.
   */
  | { kind: "duplicate-and-shuffle"; seed: number; windowMs: number };

export interface WebhookRelay {
  /** Give this to `sim.setWebhook`. */
  url: string;
  /** Where deliveries go (the app's `/api/github/webhooks`); undefined: nowhere, as if it were down. */
  setTarget(url: string | undefined): void;
  /**
   * Several instances behind a load balancer: deliveries go round robin, and one that cannot reach
   * its instance (connection refused) goes to the next.
   */
  setTargets(urls: string[]): void;
  received: HeldDelivery[];
  dropped: HeldDelivery[];
  forwarded: Forwarded[];
  /** Hands on everything held (shuffle mode) and resolves when every forward was answered. */
  flush(): Promise<void>;
  /**
   * Counts in shuffle mode: `duplicates` extra copies handed on, `reordered` deliveries that reached
   * the app before one GitHub had sent earlier.
   */
  stats(): { duplicates: number; reordered: number; dropped: number };
  close(): Promise<void>;
}

/** A small deterministic PRNG (mulberry32), so a failing order can be replayed from its seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEADERS = [
  "content-type",
  "user-agent",
  "x-github-event",
  "x-github-delivery",
  "x-github-hook-id",
  "x-github-hook-installation-target-type",
  "x-github-hook-installation-target-id",
  "x-hub-signature",
  "x-hub-signature-256",
];

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A man in the middle between the GitHub simulator and Conveyor's webhook endpoint, for fault
 * tests: it drops deliveries, or delivers every one twice and out of order, byte for byte (the
 * signatures stay valid, as with GitHub's own redeliveries).
 */
export async function createWebhookRelay(mode: RelayMode): Promise<WebhookRelay> {
  let targets: string[] = [];
  let turn = 0;
  const received: HeldDelivery[] = [];
  const dropped: HeldDelivery[] = [];
  const forwarded: Forwarded[] = [];
  const rand = mode.kind === "duplicate-and-shuffle" ? prng(mode.seed) : Math.random;
  const held: HeldDelivery[] = [];
  let carried: HeldDelivery[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let duplicates = 0;
  const arrivedFirst: number[] = [];
  const arrived = new Set<string>();

  async function forward(delivery: HeldDelivery): Promise<Forwarded> {
    const record: Forwarded = {
      id: delivery.id,
      event: delivery.event,
      action: delivery.action,
      seq: delivery.seq,
      status: undefined,
    };
    forwarded.push(record);
    if (!arrived.has(delivery.id)) {
      arrived.add(delivery.id);
      arrivedFirst.push(delivery.seq);
    } else {
      duplicates++;
    }
    if (targets.length === 0) {
      record.error = "no target";
      return record;
    }
    const first = turn++;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(first + i) % targets.length]!;
      try {
        const response = await fetch(target, {
          method: "POST",
          headers: delivery.headers,
          body: delivery.body,
          signal: AbortSignal.timeout(10_000),
        });
        record.status = response.status;
        record.error = undefined;
        await response.arrayBuffer();
        break;
      } catch (error) {
        // Only a refused connection is safe to send elsewhere: the instance never saw it.
        record.error = (error as Error).message;
        const code = ((error as Error).cause as { code?: string } | undefined)?.code;
        if (code !== "ECONNREFUSED") break;
      }
    }
    return record;
  }

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    promise.finally(() => inFlight.delete(promise)).catch(() => {});
    return promise;
  };

  /** Sends one shuffled batch, two deliveries at a time. */
  async function sendBatch(): Promise<void> {
    if (mode.kind !== "duplicate-and-shuffle") return;
    const batch: HeldDelivery[] = [...carried];
    carried = [];
    for (const delivery of held.splice(0)) {
      batch.push(delivery);
      // The twin goes in this batch or, a third of the time, in the next one (much later).
      if (rand() < 1 / 3) carried.push(delivery);
      else batch.push(delivery);
    }
    for (let i = batch.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [batch[i], batch[j]] = [batch[j]!, batch[i]!];
    }
    for (let i = 0; i < batch.length; i += 2) {
      await Promise.all(batch.slice(i, i + 2).map((d) => forward(d)));
    }
  }

  let pumping: Promise<void> = Promise.resolve();
  const pump =
    mode.kind === "duplicate-and-shuffle"
      ? setInterval(() => {
          pumping = track(pumping.then(sendBatch));
        }, mode.windowMs)
      : undefined;
  pump?.unref();

  const server = createServer(async (request, response) => {
    const body = await readBody(request);
    const headers: Record<string, string> = {};
    for (const name of HEADERS) {
      const value = request.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    let action: string | undefined;
    try {
      action = (JSON.parse(body) as { action?: string }).action;
    } catch {
      action = undefined;
    }
    const delivery: HeldDelivery = {
      id: headers["x-github-delivery"] ?? "",
      event: headers["x-github-event"] ?? "",
      action,
      headers,
      body,
      seq: received.length,
    };
    received.push(delivery);
    if (mode.kind === "duplicate-and-shuffle") {
      held.push(delivery);
      response.writeHead(202).end();
      return;
    }
    if (mode.drop?.(delivery)) {
      dropped.push(delivery);
      response.writeHead(503, { "content-type": "text/plain" }).end("dropped by the fault relay");
      return;
    }
    const answer = await track(forward(delivery));
    response.writeHead(answer.status ?? 502).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/`,
    setTarget(url) {
      targets = url ? [url] : [];
    },
    setTargets(urls) {
      targets = [...urls];
    },
    received,
    dropped,
    forwarded,
    async flush() {
      // Twice: the first batch may carry twins over to the next.
      for (let i = 0; i < 2; i++) {
        pumping = track(pumping.then(sendBatch));
        await pumping;
      }
      while (inFlight.size) await Promise.all([...inFlight]);
    },
    stats() {
      let reordered = 0;
      let highest = -1;
      for (const seq of arrivedFirst) {
        if (seq < highest) reordered++;
        highest = Math.max(highest, seq);
      }
      return { duplicates, reordered, dropped: dropped.length };
    },
    async close() {
      clearInterval(pump);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
