import { performance } from "node:perf_hooks";
import {
  type BenchRunner,
  connectFleet,
  type RunnerIdentity,
  registerRunners,
} from "../lib/bench-runner.ts";
import { type BenchContext, type Benchmark, type Outcome, pause, until } from "../lib/benchmark.ts";
import { type BenchChild, type ProcessStats, startChild } from "../lib/child.ts";
import { createDispatchHub, measureDispatch } from "../lib/dispatch.ts";
import { ratio, round, summarize } from "../lib/stats.ts";
import { startConveyorServer, startSimulator } from "../lib/system.ts";

/** The real runner's keepalive interval (`conveyor-runner`'s default). */
const PING_MS = 20_000;

const sizesFor = (smoke: boolean) => (smoke ? [10, 20] : [1_000, 5_000, 10_000]);

type Stats = ProcessStats & { connections?: number };

interface SizeResult {
  connections: number;
  connectSeconds: number;
  rssBytes: number;
  heapUsedBytes: number;
  rssPerConnectionKiB: number;
  heapPerConnectionKiB: number;
  /** Server CPU while idle, % of one core. */
  idleCpuPercent: number;
  /** PostgreSQL's CPU while idle, % of one core (NaN when the server is not ours). */
  idlePostgresCpuPercent: number;
  pingsPerSecond: number;
  dispatchMs?: ReturnType<typeof summarize>;
  dispatchSamples?: number[];
}

/**
 * Holds `sizes` idle runner connections (connecting the difference each step) and measures the
 * server at each: memory per connection after a full GC, CPU over an idle window in which the
 * runners ping as the real one does, and (with `dispatch`) the dispatch latency.
 */
async function hold(
  ctx: BenchContext,
  options: {
    label: string;
    server: BenchChild<{ url: string }>;
    identities: readonly RunnerIdentity[];
    sizes: readonly number[];
    idleSeconds: number;
    runnerOptions: Parameters<typeof connectFleet>[2];
    dispatch?: (size: number) => Promise<number[]>;
  },
): Promise<SizeResult[]> {
  const stats = () => options.server.call<Stats>("stats");
  await pause(ctx.smoke ? 200 : 2_000);
  const baseline = await stats();
  const runners: BenchRunner[] = [];
  const results: SizeResult[] = [];
  try {
    for (const size of options.sizes) {
      const from = runners.length;
      ctx.progress(`${options.label}: connecting runners ${from + 1}–${size}`);
      const started = performance.now();
      runners.push(
        ...(await connectFleet(options.server.info.url, options.identities.slice(from, size), {
          ...options.runnerOptions,
          onProgress: (n) => ctx.progress(`${options.label}: ${from + n}/${size} connected`),
          every: 2_500,
        })),
      );
      await until(
        async () => (await stats()).connections === size,
        `${size} connections registered`,
        300_000,
      );
      const connectSeconds = (performance.now() - started) / 1000;
      // Let the work that connecting caused finish before measuring idle.
      await pause(ctx.smoke ? 200 : 3_000);
      const memory = await stats();
      ctx.progress(
        `${options.label}: ${size} connected in ${round(connectSeconds, 1)} s; idle for ${options.idleSeconds} s`,
      );
      const pings = () => runners.reduce((sum, r) => sum + r.counters.pings, 0);
      const cpu0 = options.server.cpuSeconds();
      const pg0 = ctx.postgres.cpuSeconds();
      const pings0 = pings();
      const t0 = performance.now();
      await pause(options.idleSeconds * 1000);
      const wall = (performance.now() - t0) / 1000;
      const result: SizeResult = {
        connections: size,
        connectSeconds: round(connectSeconds, 2),
        rssBytes: memory.rssBytes,
        heapUsedBytes: memory.heapUsedBytes,
        rssPerConnectionKiB: round((memory.rssBytes - baseline.rssBytes) / size / 1024, 2),
        heapPerConnectionKiB: round(
          (memory.heapUsedBytes - baseline.heapUsedBytes) / size / 1024,
          2,
        ),
        idleCpuPercent: round(((options.server.cpuSeconds() - cpu0) / wall) * 100, 2),
        idlePostgresCpuPercent: round(((ctx.postgres.cpuSeconds() - pg0) / wall) * 100, 2),
        pingsPerSecond: round((pings() - pings0) / wall, 1),
      };
      if (options.dispatch) {
        const samples = await options.dispatch(size);
        result.dispatchMs = summarize(samples);
        result.dispatchSamples = samples.map((v) => round(v, 2));
      }
      results.push(result);
    }
  } finally {
    for (const runner of runners) runner.close();
  }
  return results;
}

/**
 * 1,000, 5,000 and 10,000 idle runner connections on one server: memory per connection, CPU while
 * idle (with the real runner's pings), dispatch latency p99 at each size. Peer: a bare `ws` server
 * holding the same connections.
 */
export const runnerScale: Benchmark = {
  name: "runner-scale",
  title: "idle runner connections on one server: memory/connection, idle CPU, dispatch p99",
  needsPostgres: true,
  openFiles: (smoke) => Math.max(...sizesFor(smoke)) + 4_096,
  async run(ctx): Promise<Outcome> {
    const sizes = sizesFor(ctx.smoke);
    const max = Math.max(...sizes);
    const idleSeconds = ctx.smoke ? 0.5 : 15;
    const dispatches = ctx.smoke ? 3 : 100;
    const warmup = ctx.smoke ? 1 : 5;
    const nofile = max + 4_096;
    const database = "bench_runner_scale";
    const databaseUrl = await ctx.postgres.createDatabase(database);
    ctx.progress(`registering ${max} runners`);
    const identities = await registerRunners(databaseUrl, max);
    const sim = await startSimulator(ctx, "runner-scale");
    let ours: SizeResult[];
    const hub = createDispatchHub();
    try {
      const server = await startConveyorServer(ctx, {
        name: "runner-scale-conveyor",
        databaseUrl,
        sim: sim.info,
        start: { publishPullRequests: false },
        nofile,
      });
      try {
        ours = await hold(ctx, {
          label: "conveyor",
          server,
          identities,
          sizes,
          idleSeconds,
          runnerOptions: { ...hub.runnerOptions, complete: true, pingMs: PING_MS },
          dispatch: (size) => {
            ctx.progress(
              `conveyor: ${size} connected; ${warmup} + ${dispatches} webhooks one at a time`,
            );
            return measureDispatch({
              serverUrl: server.info.url,
              sim,
              hub,
              count: dispatches,
              warmup,
            }).then((s) => s.dispatchMs);
          },
        });
        await sim.assertNoViolations();
      } finally {
        await server.stop();
      }
    } finally {
      await sim.stop();
      await ctx.postgres.dropDatabase(database);
    }

    ctx.progress("peer: a bare ws server holding the same connections");
    const bare = await startChild<{ url: string }>({
      name: "runner-scale-ws",
      script: new URL("../lib/ws-peer-process.ts", import.meta.url),
      logDir: ctx.logDir,
      nofile,
    });
    let peer: SizeResult[];
    try {
      peer = await hold(ctx, {
        label: "bare ws",
        server: bare,
        identities,
        sizes,
        idleSeconds,
        runnerOptions: { pingMs: PING_MS },
      });
    } finally {
      await bare.stop();
    }

    const rows = sizes.map((size, i) => ({ size, ours: ours[i]!, peer: peer[i]! }));
    return {
      parameters: {
        connections: sizes,
        idleSeconds,
        pingMs: PING_MS,
        dispatchesPerSize: dispatches,
        warmupDispatches: warmup,
        openFileLimit: nofile,
      },
      results: {
        bySize: ours.map(({ dispatchSamples: _samples, ...rest }) => rest),
        runnerProblems: hub.problems,
        cancelsByReason: hub.cancels,
      },
      peer: {
        name: "ws (bare)",
        description:
          "a ws WebSocketServer on node:http answering ping with pong; the same simulated runners and pings",
        results: {
          bySize: peer.map(({ dispatchSamples: _samples, dispatchMs: _d, ...rest }) => rest),
        },
      },
      ratios: Object.fromEntries(
        rows.flatMap((r) => [
          [
            `heapPerConnection${r.size}`,
            {
              value: ratio(r.ours.heapPerConnectionKiB, r.peer.heapPerConnectionKiB),
              meaning: `our V8 heap per idle connection ÷ a bare ws server's, at ${r.size} connections`,
            },
          ],
          [
            `rssPerConnection${r.size}`,
            {
              value: ratio(r.ours.rssPerConnectionKiB, r.peer.rssPerConnectionKiB),
              meaning: `our RSS per connection ÷ a bare ws server's, at ${r.size} connections`,
            },
          ],
          [
            `idleCpu${r.size}`,
            {
              value: ratio(r.ours.idleCpuPercent, r.peer.idleCpuPercent),
              meaning: `our CPU while idle ÷ a bare ws server's, at ${r.size} connections`,
            },
          ],
        ]),
      ),
      // The target is for the largest size (10,000): smaller ones carry the fixed cost of
      // the first sockets.
      targets: rows.slice(-1).map((r) => ({
        row: `${r.size} connections: heap per idle connection ÷ bare ws`,
        value: ratio(r.ours.heapPerConnectionKiB, r.peer.heapPerConnectionKiB),
        op: "<=" as const,
        target: 2,
      })),
      samples: Object.fromEntries(
        ours.map((r) => [`dispatchMsAt${r.connections}`, r.dispatchSamples]),
      ),
      tables: [
        {
          title: `idle runner connections (ping every ${PING_MS / 1000} s; idle window ${idleSeconds} s)`,
          columns: [
            "server",
            "connections",
            "connect s",
            "RSS MiB",
            "KiB/conn (RSS)",
            "KiB/conn (heap)",
            "idle CPU %",
            "PG CPU %",
            "dispatch p50 ms",
            "dispatch p99 ms",
          ],
          rows: rows.flatMap((r) => [
            [
              "conveyor",
              r.size,
              r.ours.connectSeconds,
              round(r.ours.rssBytes / 2 ** 20, 1),
              r.ours.rssPerConnectionKiB,
              r.ours.heapPerConnectionKiB,
              r.ours.idleCpuPercent,
              r.ours.idlePostgresCpuPercent,
              r.ours.dispatchMs?.p50,
              r.ours.dispatchMs?.p99,
            ],
            [
              "ws (bare)",
              r.size,
              r.peer.connectSeconds,
              round(r.peer.rssBytes / 2 ** 20, 1),
              r.peer.rssPerConnectionKiB,
              r.peer.heapPerConnectionKiB,
              r.peer.idleCpuPercent,
              r.peer.idlePostgresCpuPercent,
              undefined,
              undefined,
            ],
          ]),
        },
      ],
      notes: [
        "Memory is measured after a full garbage collection, relative to the same process before any runner connected.",
        "CPU is user + system time of the server process over the idle window, as a % of one core; PostgreSQL's is the sum over its processes.",
      ],
    };
  },
};
