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
  cancels: Record<string, number>;
}

async function drainConveyor(
  ctx: BenchContext,
  options: { runners: number; tasks: number; windowSeconds: number },
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
    await pause(1_100);
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
        return done >= options.tasks || performance.now() - start > options.windowSeconds * 1000;
      },
      `${options.tasks} tasks to complete`,
      (options.windowSeconds + 60) * 1000,
    );
    const seconds = (performance.now() - start) / 1000;
    const done = hub.completions();
    const apiCalls = (await sim.assertNoViolations()).requests - apiBefore;
    for (const runner of runners) runner.close();
    await server.stop();
    stopped = true;
    await ctx.postgres.waitForNoBackends(database);
    const commits = (await ctx.postgres.commits(database)) - before;
    return {
      done,
      seconds,
      perSecond: done / seconds,
      drained: done >= options.tasks,
      commits,
      timeline: perSecond(finishedAt, start),
      githubApiCalls: apiCalls,
      problems: hub.problems,
      cancels: hub.cancels,
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
 * the same PostgreSQL. Each side gets the same window; a side that has not drained the queue when
 * it closes is measured over the window.
 */
export const queueThroughput: Benchmark = {
  name: "queue-throughput",
  title: "tasks/s to drain a queue through M runners, vs graphile-worker with the same concurrency",
  needsPostgres: true,
  async run(ctx): Promise<Outcome> {
    const tasks = ctx.smoke ? 20 : 10_000;
    const sizes = ctx.smoke ? [2] : [8, 32];
    const windowSeconds = ctx.smoke ? 60 : 45;
    const rows = [];
    const samples: Record<string, unknown> = {};
    for (const runners of sizes) {
      const concurrency = runners * SLOTS;
      ctx.progress(`M=${runners} runners × ${SLOTS} slots: starting`);
      const ours = await drainConveyor(ctx, { runners, tasks, windowSeconds });
      ctx.progress(
        `M=${runners}: ${round(ours.perSecond, 1)} tasks/s (${ours.done} done); peer graphile-worker with concurrency ${concurrency}`,
      );
      const peer = await graphileDrain(ctx, { concurrency, jobs: tasks, windowSeconds });
      ctx.progress(
        `concurrency ${concurrency}: graphile-worker ${round(peer.perSecond, 1)} jobs/s`,
      );
      rows.push({ runners, concurrency, ours, peer });
      samples[`m${runners}`] = {
        tasksDonePerSecond: ours.timeline,
        graphileJobsDonePerSecond: peer.timeline,
      };
    }
    const summary = (d: DrainResult) => ({
      done: d.done,
      drained: d.drained,
      seconds: round(d.seconds, 2),
      perSecond: round(d.perSecond, 1),
      commitsPerItem: round(d.commits / Math.max(1, d.done), 2),
      postgresCommitsPerSecond: round(d.commits / d.seconds, 1),
    });
    const notes: string[] = [];
    const ceiling = ctx.commitCeiling?.tpsByClients;
    if (ceiling) {
      notes.push(
        `pgbench on the same server: ${Object.entries(ceiling)
          .map(([clients, tps]) => `${tps} one-row insert commits/s with ${clients} client(s)`)
          .join(", ")}.`,
      );
    }
    notes.push(
      "A dispatch pass fills every free slot at once: one read of the head of each lane of the queue (an index scan, however long the queue), every assignment prepared concurrently (the repository's head and read-only token from caches), one statement that claims the batch with its assignment bases.",
      "A task's own commits are about four: its share of the batch's read and claim, accept, the upload (the change set), complete (the move and the attempt's end in one statement); heartbeats are renewed for many tasks per statement. The rest of commits/item is the loops a runner's frames wake (notifier, merger, Actions launcher: each at most a few runs a second) and the safety-net sweep (every 10 s). A graphile-worker job is two or three.",
    );
    const undrained = rows.filter((r) => !r.ours.drained);
    if (undrained.length) {
      notes.push(
        `The ${windowSeconds} s window closed before the queue was empty (M=${undrained.map((r) => r.runners).join(", ")}); the rate is over the window, with ${tasks} tasks queued throughout.`,
      );
    }
    return {
      parameters: { tasks, runners: sizes, slotsPerRunner: SLOTS, windowSeconds },
      results: {
        byRunners: rows.map((r) => ({
          runners: r.runners,
          concurrency: r.concurrency,
          ...summary(r.ours),
          githubApiCallsPerTask: round(r.ours.githubApiCalls / Math.max(1, r.ours.done), 2),
          cancelsByReason: r.ours.cancels,
        })),
      },
      peer: {
        name: "graphile-worker",
        description: `graphile-worker draining ${tasks} no-op jobs (added with addJobs while idle) with concurrency = runners × ${SLOTS} slots, same PostgreSQL, same window`,
        results: {
          byConcurrency: rows.map((r) => ({ concurrency: r.concurrency, ...summary(r.peer) })),
        },
      },
      ratios: Object.fromEntries(
        rows.map((r) => [
          `m${r.runners}`,
          {
            value: ratio(r.ours.perSecond, r.peer.perSecond),
            meaning: `our tasks/s with ${r.runners} runners ÷ graphile-worker's jobs/s with concurrency ${r.concurrency}`,
          },
        ]),
      ),
      targets: rows.flatMap((r) => [
        {
          row: `M = ${r.runners}: tasks/s ÷ graphile-worker jobs/s`,
          value: ratio(r.ours.perSecond, r.peer.perSecond),
          op: ">=" as const,
          target: 0.25,
        },
        {
          row: `M = ${r.runners}: commits per task`,
          value: round(r.ours.commits / Math.max(1, r.ours.done), 2),
          op: "<=" as const,
          target: 4,
        },
      ]),
      samples,
      tables: [
        {
          title: `queue drain, ${tasks} queued (runners have ${SLOTS} slots; window ${windowSeconds} s)`,
          columns: [
            "queue",
            "concurrency",
            "done",
            "per s",
            "commits/item",
            "commits/s",
            "API calls/task",
            "ratio",
          ],
          rows: rows.flatMap((r) => [
            [
              `conveyor M=${r.runners}`,
              r.concurrency,
              r.ours.done,
              round(r.ours.perSecond, 1),
              round(r.ours.commits / Math.max(1, r.ours.done), 2),
              round(r.ours.commits / r.ours.seconds, 1),
              round(r.ours.githubApiCalls / Math.max(1, r.ours.done), 2),
              ratio(r.ours.perSecond, r.peer.perSecond),
            ],
            [
              "graphile-worker",
              r.concurrency,
              r.peer.done,
              round(r.peer.perSecond, 1),
              round(r.peer.commits / Math.max(1, r.peer.done), 2),
              round(r.peer.commits / r.peer.seconds, 1),
              undefined,
              undefined,
            ],
          ]),
        },
      ],
      notes,
    };
  },
};
