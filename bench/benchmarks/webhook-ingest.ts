import autocannon from "autocannon";
import type { Benchmark, Outcome } from "../lib/benchmark.ts";
import { type BenchChild, startChild } from "../lib/child.ts";
import { histogram, ratio, round } from "../lib/stats.ts";
import { type Simulator, startConveyorServer, startSimulator } from "../lib/system.ts";
import {
  MIXED_EVENTS,
  mixedWebhooks,
  type SignedWebhook,
  WEBHOOK_SECRET,
  webhookHeaders,
} from "../lib/webhooks.ts";

const CONCURRENCIES = [10, 50];

interface LoadResult {
  connections: number;
  requestsPerSecond: number;
  requests: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Every response's time, ms, in the order they arrived. */
  samples: number[];
}

/** autocannon at `connections`, cycling through the signed webhooks, each with a new delivery id. */
async function load(
  url: string,
  webhooks: readonly SignedWebhook[],
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  let next = 0;
  const samples: number[] = [];
  const instance = autocannon({
    url: `${url}/api/github/webhooks`,
    connections,
    duration: seconds,
    requests: [
      {
        setupRequest(request) {
          const webhook = webhooks[next++ % webhooks.length]!;
          return {
            ...request,
            method: "POST",
            path: "/api/github/webhooks",
            headers: webhookHeaders(webhook),
            body: webhook.body,
          };
        },
      },
    ],
  });
  instance.on("response", (_client: unknown, _status: number, _bytes: number, time: number) =>
    samples.push(round(time, 2)),
  );
  const result = await instance;
  return {
    connections,
    requestsPerSecond: round(result.requests.average, 1),
    requests: result.requests.total,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: round(result.latency.mean, 2),
    },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    samples,
  };
}

/**
 * Sends every webhook once, in order, and fails on an answer that is not 2xx: a benchmark of
 * requests that fail would measure the error path.
 */
async function preflight(url: string, webhooks: readonly SignedWebhook[]): Promise<void> {
  const failed: string[] = [];
  for (const webhook of webhooks) {
    const response = await fetch(`${url}/api/github/webhooks`, {
      method: "POST",
      headers: webhookHeaders(webhook),
      body: webhook.body,
    });
    const text = await response.text();
    if (!response.ok) {
      failed.push(`${webhook.event}.${webhook.action}: ${response.status} ${text.slice(0, 200)}`);
    }
  }
  if (failed.length)
    throw new Error(`webhooks refused in the preflight:\n  ${failed.join("\n  ")}`);
}

/** Preflight, warm-up, then each concurrency; also says how many webhooks it sent in all. */
async function measure(
  target: BenchChild<{ url: string }>,
  webhooks: readonly SignedWebhook[],
  options: { seconds: number; warmupSeconds: number; progress: (message: string) => void },
): Promise<{ results: LoadResult[]; sent: number }> {
  await preflight(target.info.url, webhooks);
  options.progress(`warming up for ${options.warmupSeconds} s`);
  const warmup = await load(target.info.url, webhooks, CONCURRENCIES[0]!, options.warmupSeconds);
  const results: LoadResult[] = [];
  for (const connections of CONCURRENCIES) {
    options.progress(`concurrency ${connections} for ${options.seconds} s`);
    results.push(await load(target.info.url, webhooks, connections, options.seconds));
  }
  const sent =
    webhooks.length + warmup.samples.length + results.reduce((n, r) => n + r.samples.length, 0);
  return { results, sent };
}

/**
 * Signed webhooks (every example of a Conveyor installation's usual events) fired with autocannon
 * at the server. Peer: a bare Probot app with no-op handlers.
 */
export const webhookIngest: Benchmark = {
  name: "webhook-ingest",
  title: "signed mixed webhooks/s and latency under autocannon, vs a bare Probot app",
  needsPostgres: true,
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.smoke ? 0.5 : 10;
    const warmupSeconds = ctx.smoke ? 0.5 : 3;
    const database = "bench_webhook_ingest";
    const databaseUrl = await ctx.postgres.createDatabase(database);
    ctx.progress("starting the GitHub simulator and the server");
    let sim: Simulator | undefined;
    let ours: LoadResult[];
    let webhooks: SignedWebhook[];
    let apiCallsPerWebhook: number;
    try {
      sim = await startSimulator(ctx, "webhook-ingest");
      webhooks = await mixedWebhooks(sim.info);
      const server = await startConveyorServer(ctx, {
        name: "webhook-ingest-conveyor",
        databaseUrl,
        sim: sim.info,
      });
      try {
        const before = (await sim.stats()).requests;
        const measured = await measure(server, webhooks, {
          seconds,
          warmupSeconds,
          progress: ctx.progress,
        });
        ours = measured.results;
        const stats = await sim.assertNoViolations();
        apiCallsPerWebhook = round((stats.requests - before) / measured.sent, 3);
      } finally {
        await server.stop();
      }
    } finally {
      await sim?.stop();
      await ctx.postgres.dropDatabase(database);
    }

    ctx.progress("peer: a bare Probot app");
    const probot = await startChild<{ url: string }>({
      name: "webhook-ingest-probot",
      script: new URL("../lib/probot-peer-process.ts", import.meta.url),
      logDir: ctx.logDir,
      env: { APP_ID: "4242", PRIVATE_KEY: "unused-by-a-webhook-only-app", WEBHOOK_SECRET },
    });
    let peer: LoadResult[];
    try {
      peer = (await measure(probot, webhooks, { seconds, warmupSeconds, progress: ctx.progress }))
        .results;
    } finally {
      await probot.stop();
    }

    const byEvent = Object.fromEntries(
      MIXED_EVENTS.map((event) => [event, webhooks.filter((w) => w.event === event).length]),
    );
    const rows = CONCURRENCIES.map((connections, i) => ({
      connections,
      ours: ours[i]!,
      peer: peer[i]!,
    }));
    return {
      parameters: {
        concurrency: CONCURRENCIES,
        secondsEach: seconds,
        warmupSeconds,
        payloads: webhooks.length,
        payloadsByEvent: byEvent,
      },
      results: {
        byConcurrency: ours.map(({ samples: _, ...rest }) => rest),
        githubApiCallsPerWebhook: apiCallsPerWebhook,
      },
      peer: {
        name: "probot (bare)",
        description:
          "a Probot app with one no-op onAny handler on node:http, same payloads, same secret",
        results: { byConcurrency: peer.map(({ samples: _, ...rest }) => rest) },
      },
      ratios: Object.fromEntries(
        rows.map((r) => [
          `c${r.connections}`,
          {
            value: ratio(r.ours.requestsPerSecond, r.peer.requestsPerSecond),
            meaning: `our requests/s ÷ bare Probot's at concurrency ${r.connections}`,
          },
        ]),
      ),
      targets: rows.map((r) => ({
        row: `c = ${r.connections}: requests/s ÷ bare Probot's`,
        value: ratio(r.ours.requestsPerSecond, r.peer.requestsPerSecond),
        op: ">=" as const,
        target: 0.5,
      })),
      // Every response time, as [ms, count] pairs at 0.1 ms (tens of thousands of them).
      samples: Object.fromEntries(
        rows.flatMap((r) => [
          [`oursC${r.connections}LatencyHistogramMs`, histogram(r.ours.samples)],
          [`probotC${r.connections}LatencyHistogramMs`, histogram(r.peer.samples)],
        ]),
      ),
      tables: [
        {
          title: `webhook ingest (${webhooks.length} example payloads of ${MIXED_EVENTS.length} events, ${seconds} s each)`,
          columns: ["server", "concurrency", "req/s", "p50 ms", "p99 ms", "non-2xx", "errors"],
          rows: rows.flatMap((r) => [
            [
              "conveyor",
              r.connections,
              r.ours.requestsPerSecond,
              r.ours.latencyMs.p50,
              r.ours.latencyMs.p99,
              r.ours.non2xx,
              r.ours.errors,
            ],
            [
              "probot (bare)",
              r.connections,
              r.peer.requestsPerSecond,
              r.peer.latencyMs.p50,
              r.peer.latencyMs.p99,
              r.peer.non2xx,
              r.peer.errors,
            ],
            [
              "ratio",
              r.connections,
              ratio(r.ours.requestsPerSecond, r.peer.requestsPerSecond),
              ratio(r.ours.latencyMs.p50, r.peer.latencyMs.p50),
              ratio(r.ours.latencyMs.p99, r.peer.latencyMs.p99),
              undefined,
              undefined,
            ],
          ]),
        },
      ],
      notes: [
        `A delivery with an effect is answered once it is stored with its intent (deliveries arriving together share one commit); one without an effect is answered at once and recorded in the next batch. GitHub is read by the intake loop after the answer (${apiCallsPerWebhook} API calls per webhook during the measurement). The commit's round trip to PostgreSQL bounds ingest at low concurrency; the bare Probot app stores nothing.`,
      ],
    };
  },
};
