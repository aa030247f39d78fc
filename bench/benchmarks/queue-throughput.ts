import { performance } from "node:perf_hooks";
import postgres from "postgres";
import { snapshotHash } from "../../src/store/tasks.ts";
import { connectFleet, registerRunners } from "../lib/bench-runner.ts";
import { type BenchContext, type Benchmark, type Outcome, pause, until } from "../lib/benchmark.ts";
import { createDispatchHub } from "../lib/dispatch.ts";
import { type DrainResult, graphileDrain, perSecond } from "../lib/graphile.ts";
import { ratio, round } from "../lib/stats.ts";
import {
  seedRepository,
  startConveyorServer,
  startSimulator,
  UNLIMITED_FRAMES,
} from "../lib/system.ts";

const SLOTS = 2;

/**
 * Queues `count` tasks for the repository in one transaction, as intake would have written them
 * (the row and its first event), and tells every instance there is work.
 */
async function queueTasks(
  databaseUrl: string,
  repositoryId: number,
  installationId: number,
  count: number,
): Promise<void> {
  const numbers = Array.from({ length: count }, (_, i) => i + 1);
  const titles = numbers.map((n) => `Benchmark task ${n}`);
  const body = "Make the benchmark pass.";
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      await tx`
        with created as (
          insert into tasks (repository_id, installation_id, issue_number, title, body,
                             snapshot_hash, queued_by, limits)
          select ${repositoryId}, ${installationId}, n, t, ${body}, h, 'octocat',
                 '{"deadline_minutes": 120, "verify": []}'::jsonb
          from unnest(${numbers}::int[], ${titles}::text[],
                      ${titles.map((t) => snapshotHash(t, body))}::text[]) as s(n, t, h)
          returning task_id, generation
        )
        insert into task_events (task_id, actor, from_state, to_state, generation, reason)
        select task_id, 'octocat', null, 'queued', generation, 'benchmark' from created`;
      await tx`select pg_notify('conveyor_dispatch', '{"kind":"work"}')`;
    });
  } finally {
    await sql.end();
  }
}

interface OurDrain extends DrainResult {
  githubApiCalls: number;
  problems: string[];
}

async function drainConveyor(
  ctx: BenchContext,
  options: { runners: number; tasks: number },
): Promise<OurDrain> {
  const database = `bench_queue_m${options.runners}`;
  const databaseUrl = await ctx.postgres.createDatabase(database);
  const sim = await startSimulator(ctx, `queue-throughput-m${options.runners}`);
  const repositoryId = await seedRepository(databaseUrl, sim.info);
  const identities = await registerRunners(databaseUrl, options.runners);
  const server = await startConveyorServer(ctx, {
    name: `queue-throughput-m${options.runners}-conveyor`,
    databaseUrl,
    sim: sim.info,
    start: {
      publishPullRequests: false,
      rateLimits: UNLIMITED_FRAMES,
      // The tasks are seeded in the database, not opened on the simulated GitHub, so
      // reconciliation would cancel them: it does not run during the drain.
      reconcileOnStart: false,
    },
    env: { CONVEYOR_RECONCILE_MINUTES: "600" },
  });
  const hub = createDispatchHub();
  const finishedAt: number[] = [];
  let stopped = false;
  try {
    const runners = await connectFleet(server.info.url, identities, {
      ...hub.runnerOptions,
      onCompleted: (taskId, at) => {
        finishedAt.push(at);
        hub.runnerOptions.onCompleted?.(taskId, at);
      },
      complete: true,
      slots: SLOTS,
    });
    await pause(1_500);
    const before = await ctx.postgres.commits(database);
    const apiBefore = (await sim.stats()).requests;
    ctx.progress(`M=${options.runners}: queueing ${options.tasks} tasks`);
    await queueTasks(databaseUrl, repositoryId, sim.info.installationId, options.tasks);
    const start = performance.now();
    let reported = 0;
    await until(
      () => {
        const done = hub.completions();
        if (done - reported >= options.tasks / 5 && done < options.tasks) {
          reported = done;
          ctx.progress(`M=${options.runners}: ${done}/${options.tasks} tasks done`);
        }
        if (hub.problems.length) throw new Error(`runner problems: ${hub.problems.join("; ")}`);
        return done >= options.tasks;
      },
      `${options.tasks} tasks to complete`,
      900_000,
    );
    const seconds = (performance.now() - start) / 1000;
    const apiCalls = (await sim.stats()).requests - apiBefore;
    for (const runner of runners) runner.close();
    await server.stop();
    stopped = true;
    await ctx.postgres.waitForNoBackends(database);
    const commits = (await ctx.postgres.commits(database)) - before;
    return {
      seconds,
      perSecond: options.tasks / seconds,
      commits,
      timeline: perSecond(finishedAt, start),
      githubApiCalls: apiCalls,
      problems: hub.problems,
    };
  } finally {
    if (!stopped) await server.stop();
    await sim.stop();
    await ctx.postgres.dropDatabase(database);
  }
}

/**
 * Drains N queued tasks through M simulated runners whose slots accept, heartbeat once, upload
 * and complete at once. Peer: graphile-worker draining N no-op jobs with the same concurrency on
 * the same PostgreSQL.
 */
export const queueThroughput: Benchmark = {
  name: "queue-throughput",
  title: "tasks/s to drain a queue through M runners, vs graphile-worker with the same concurrency",
  needsPostgres: true,
  async run(ctx): Promise<Outcome> {
    const tasks = ctx.smoke ? 200 : 10_000;
    const sizes = ctx.smoke ? [2, 4] : [8, 32];
    const rows: Record<string, unknown>[] = [];
    const samples: Record<string, unknown> = {};
    const notes = new Set<string>();
    for (const runners of sizes) {
      const concurrency = runners * SLOTS;
      ctx.progress(`M=${runners} runners × ${SLOTS} slots: starting`);
      const ours = await drainConveyor(ctx, { runners, tasks });
      ctx.progress(
        `M=${runners}: ${round(ours.perSecond, 1)} tasks/s; peer graphile-worker with concurrency ${concurrency}`,
      );
      const peer = await graphileDrain(ctx, { concurrency, jobs: tasks });
      ctx.progress(
        `concurrency ${concurrency}: graphile-worker ${round(peer.perSecond, 1)} jobs/s`,
      );
      rows.push({
        runners,
        concurrency,
        tasksPerSecond: round(ours.perSecond, 1),
        drainSeconds: round(ours.seconds, 2),
        commitsPerTask: round(ours.commits / tasks, 2),
        commitsPerSecond: round(ours.commits / ours.seconds, 1),
        githubApiCallsPerTask: round(ours.githubApiCalls / tasks, 2),
        graphileJobsPerSecond: round(peer.perSecond, 1),
        graphileDrainSeconds: round(peer.seconds, 2),
        graphileCommitsPerJob: round(peer.commits / tasks, 2),
        graphileCommitsPerSecond: round(peer.commits / peer.seconds, 1),
        ratio: ratio(ours.perSecond, peer.perSecond),
      });
      samples[`m${runners}`] = {
        tasksDonePerSecond: ours.timeline,
        graphileJobsDonePerSecond: peer.timeline,
      };
    }
    const ceiling = ctx.commitCeiling?.tpsByClients;
    if (ceiling) {
      notes.add(
        `pgbench on the same server: ${Object.entries(ceiling)
          .map(([clients, tps]) => `${tps} one-row insert commits/s with ${clients} client(s)`)
          .join(", ")}.`,
      );
    }
    notes.add(
      "Every task is about a dozen statements, each its own transaction (claim, assignment base, accept, heartbeat, change set, complete, plus the sweeps and the notifier); a graphile-worker job is two. Compare commits/s with the pgbench ceiling in the `postgres` section: when they are close, the disk's commit rate is the limit.",
    );
    notes.add(
      "Every assignment also asks GitHub (the simulator here) for the repository, its head and a read-only token: three HTTP round trips that a no-op job does not make.",
    );
    return {
      parameters: { tasks, runners: sizes, slotsPerRunner: SLOTS },
      results: {
        byRunners: rows.map((r) => ({
          runners: r.runners,
          concurrency: r.concurrency,
          tasksPerSecond: r.tasksPerSecond,
          drainSeconds: r.drainSeconds,
          commitsPerTask: r.commitsPerTask,
          postgresCommitsPerSecond: r.commitsPerSecond,
          githubApiCallsPerTask: r.githubApiCallsPerTask,
        })),
      },
      peer: {
        name: "graphile-worker",
        description: `graphile-worker draining ${tasks} no-op jobs (added with addJobs while idle) with concurrency = runners × ${SLOTS} slots, same PostgreSQL`,
        results: {
          byConcurrency: rows.map((r) => ({
            concurrency: r.concurrency,
            jobsPerSecond: r.graphileJobsPerSecond,
            drainSeconds: r.graphileDrainSeconds,
            commitsPerJob: r.graphileCommitsPerJob,
            postgresCommitsPerSecond: r.graphileCommitsPerSecond,
          })),
        },
      },
      ratios: Object.fromEntries(
        rows.map((r) => [
          `m${r.runners}`,
          {
            value: r.ratio as number | undefined,
            meaning: `our tasks/s with ${r.runners} runners ÷ graphile-worker's jobs/s with concurrency ${r.concurrency}`,
          },
        ]),
      ),
      samples,
      tables: [
        {
          title: `queue drain, ${tasks} tasks (each runner has ${SLOTS} slots)`,
          columns: [
            "runners",
            "tasks/s",
            "commits/task",
            "commits/s",
            "API calls/task",
            "graphile jobs/s",
            "its commits/job",
            "its commits/s",
            "ratio",
          ],
          rows: rows.map((r) => [
            `M=${r.runners}`,
            r.tasksPerSecond as number,
            r.commitsPerTask as number,
            r.commitsPerSecond as number,
            r.githubApiCallsPerTask as number,
            r.graphileJobsPerSecond as number,
            r.graphileCommitsPerJob as number,
            r.graphileCommitsPerSecond as number,
            r.ratio as number | undefined,
          ]),
        },
      ],
      notes: [...notes],
    };
  },
};
