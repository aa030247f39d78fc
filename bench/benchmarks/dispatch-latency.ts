import { connectFleet, registerRunners } from "../lib/bench-runner.ts";
import type { Benchmark, Outcome } from "../lib/benchmark.ts";
import { createDispatchHub, measureDispatch } from "../lib/dispatch.ts";
import { graphileLatency } from "../lib/graphile.ts";
import { ratio, round, summarize } from "../lib/stats.ts";
import { startConveyorServer, startSimulator, UNLIMITED_FRAMES } from "../lib/system.ts";

const RUNNERS = 4;

/**
 * Webhook in → `assign` out: signed `issues.labeled` webhooks, one at a time, to a server with
 * idle runners connected. Peer: graphile-worker's job added → task started on the same PostgreSQL.
 */
export const dispatchLatency: Benchmark = {
  name: "dispatch-latency",
  title: "issues.labeled webhook → assign frame at an idle runner (p50/p90/p99/max)",
  needsPostgres: true,
  async run(ctx): Promise<Outcome> {
    const count = ctx.smoke ? 5 : 1_000;
    const warmup = ctx.smoke ? 1 : 20;
    const databaseUrl = await ctx.postgres.createDatabase("bench_dispatch_latency");
    ctx.progress("starting the GitHub simulator and the server");
    const sim = await startSimulator(ctx, "dispatch-latency");
    const server = await startConveyorServer(ctx, {
      name: "dispatch-latency-conveyor",
      databaseUrl,
      sim: sim.info,
      start: { publishPullRequests: false, rateLimits: UNLIMITED_FRAMES },
    });
    const hub = createDispatchHub();
    let ours: Awaited<ReturnType<typeof measureDispatch>>;
    let apiCalls: number;
    try {
      const identities = await registerRunners(databaseUrl, RUNNERS);
      const runners = await connectFleet(server.info.url, identities, {
        ...hub.runnerOptions,
        complete: true,
      });
      ctx.progress(`${RUNNERS} runners connected; sending ${warmup} warm-up + ${count} webhooks`);
      const before = (await sim.stats()).requests;
      ours = await measureDispatch({
        serverUrl: server.info.url,
        sim,
        hub,
        count,
        warmup,
        onProgress: (done) => ctx.progress(`webhooks ${done}/${warmup + count}`),
      });
      apiCalls = (await sim.assertNoViolations()).requests - before;
      for (const runner of runners) runner.close();
    } finally {
      await server.stop();
      await sim.stop();
      await ctx.postgres.dropDatabase("bench_dispatch_latency");
    }

    ctx.progress(`peer: graphile-worker, ${warmup} warm-up + ${count} jobs one at a time`);
    const peer = await graphileLatency(ctx, { concurrency: RUNNERS, count, warmup });

    const dispatch = summarize(ours.dispatchMs);
    const response = summarize(ours.webhookResponseMs);
    const graphile = summarize(peer);
    const tasks = count + warmup;
    return {
      parameters: { tasks: count, warmupTasks: warmup, idleRunners: RUNNERS, slotsPerRunner: 1 },
      results: {
        dispatchMs: dispatch,
        webhookResponseMs: response,
        githubApiCallsPerTask: round(apiCalls / tasks, 2),
        runnerProblems: hub.problems,
        cancelsByReason: hub.cancels,
      },
      peer: {
        name: "graphile-worker",
        description: `job added (addJob) → task function called, one job at a time, concurrency ${RUNNERS}, same PostgreSQL`,
        results: { latencyMs: graphile },
      },
      ratios: {
        p50: {
          value: ratio(dispatch.p50, graphile.p50),
          meaning: "our p50 dispatch latency ÷ graphile-worker's p50 job start latency",
        },
        p99: {
          value: ratio(dispatch.p99, graphile.p99),
          meaning: "our p99 dispatch latency ÷ graphile-worker's p99 job start latency",
        },
      },
      targets: [
        {
          row: "p99: webhook → assign ÷ graphile-worker addJob → start",
          value: ratio(dispatch.p99, graphile.p99),
          op: "<=",
          target: 2,
        },
      ],
      samples: {
        dispatchMs: ours.dispatchMs.map((v) => round(v, 2)),
        webhookResponseMs: ours.webhookResponseMs.map((v) => round(v, 2)),
        graphileLatencyMs: peer.map((v) => round(v, 2)),
      },
      tables: [
        {
          title: `dispatch latency, ms (${count} tasks, ${RUNNERS} idle runners)`,
          columns: ["measure", "p50", "p90", "p99", "max", "mean"],
          rows: [
            [
              "webhook → assign (ours)",
              dispatch.p50,
              dispatch.p90,
              dispatch.p99,
              dispatch.max,
              dispatch.mean,
            ],
            [
              "webhook → 200 response",
              response.p50,
              response.p90,
              response.p99,
              response.max,
              response.mean,
            ],
            [
              "graphile-worker addJob → task",
              graphile.p50,
              graphile.p90,
              graphile.p99,
              graphile.max,
              graphile.mean,
            ],
            [
              "ratio ours ÷ graphile",
              ratio(dispatch.p50, graphile.p50),
              ratio(dispatch.p90, graphile.p90),
              ratio(dispatch.p99, graphile.p99),
              ratio(dispatch.max, graphile.max),
              ratio(dispatch.mean, graphile.mean),
            ],
          ],
        },
      ],
      notes: [
        `Each task costs ${round(apiCalls / tasks, 2)} GitHub API calls on the way: the instance that stored the label's delivery acts on it at once from its fresh payload (the issue is read from GitHub only when another event about it arrived around it, or the delivery is late), and the config, the sender's permission, the repository's head and its read-only token come from caches Postgres's marks keep current. What is left is PostgreSQL: the delivery's commit, the effect's, and the dispatch pass's read and claim.`,
        "The peer does less: no signature check, no GitHub, no WebSocket hop. The ratio says how much the whole path costs relative to the bare queue hop on the same machine and database.",
      ],
    };
  },
};
