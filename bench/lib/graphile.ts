import { EventEmitter, once } from "node:events";
import { performance } from "node:perf_hooks";
import { Logger, makeWorkerUtils, run, type WorkerEvents } from "graphile-worker";
import { type BenchContext, pause, until } from "./benchmark.ts";

/** graphile-worker logs through this; the benchmark has nothing to say about its jobs. */
const silent = new Logger(() => () => {});

/**
 * The peer queue: graphile-worker on the same PostgreSQL, in a database of its own, with a no-op
 * task. Started idle; the caller adds jobs.
 */
async function startWorker(
  ctx: BenchContext,
  database: string,
  concurrency: number,
  onJob: () => void,
) {
  const url = await ctx.postgres.createDatabase(database, { migrated: false });
  const utils = await makeWorkerUtils({ connectionString: url, logger: silent });
  await utils.migrate();
  const events: WorkerEvents = new EventEmitter();
  const runner = await run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    // New jobs arrive by LISTEN/NOTIFY; polling is only the safety net (as Conveyor's sweep is).
    pollInterval: 2_000,
    logger: silent,
    events,
    taskList: {
      noop: async () => {
        onJob();
      },
    },
  });
  return {
    utils,
    events,
    async stop() {
      await runner.stop();
      await utils.release();
      await ctx.postgres.waitForNoBackends(database);
    },
  };
}

/** Job added → its task function called, ms, one job at a time on an idle worker. */
export async function graphileLatency(
  ctx: BenchContext,
  options: { concurrency: number; count: number; warmup: number },
): Promise<number[]> {
  let started: ((at: number) => void) | undefined;
  const database = "bench_graphile_latency";
  const worker = await startWorker(ctx, database, options.concurrency, () =>
    started?.(performance.now()),
  );
  const samples: number[] = [];
  try {
    for (let i = 0; i < options.warmup + options.count; i++) {
      const start = new Promise<number>((resolve) => {
        started = resolve;
      });
      const done = once(worker.events, "job:success");
      const added = performance.now();
      await worker.utils.addJob("noop", { i });
      const at = await start;
      await done;
      if (i >= options.warmup) samples.push(at - added);
    }
  } finally {
    await worker.stop();
    await ctx.postgres.dropDatabase(database);
  }
  return samples;
}

export interface DrainResult {
  /** Jobs (tasks) finished: all of them, unless the window closed first. */
  done: number;
  seconds: number;
  perSecond: number;
  /** Whether the queue was empty before the window closed. */
  drained: boolean;
  commits: number;
  /** Jobs finished in each second of the drain. */
  timeline: number[];
}

/**
 * graphile-worker draining `jobs` no-op jobs with `concurrency`: jobs added in one call while the
 * worker is idle; timed from that call's return to the last job's success, or to the end of the
 * window. Commits counted from pg_stat_database around it.
 */
export async function graphileDrain(
  ctx: BenchContext,
  options: { concurrency: number; jobs: number; windowSeconds: number },
): Promise<DrainResult> {
  const database = `bench_graphile_c${options.concurrency}`;
  let done = 0;
  const finishedAt: number[] = [];
  const worker = await startWorker(ctx, database, options.concurrency, () => {});
  worker.events.on("job:success", () => {
    done++;
    finishedAt.push(performance.now());
  });
  let stopped = false;
  try {
    // Backends publish their statistics at most once a second: let start-up's settle first.
    await pause(1_100);
    const before = await ctx.postgres.commits(database);
    const specs = Array.from({ length: options.jobs }, (_, i) => ({
      identifier: "noop",
      payload: { i },
    }));
    await worker.utils.addJobs(specs);
    const start = performance.now();
    await until(
      () => done >= options.jobs || performance.now() - start > options.windowSeconds * 1000,
      "graphile-worker to drain its jobs",
      (options.windowSeconds + 60) * 1000,
    );
    const seconds = (performance.now() - start) / 1000;
    const finished = done;
    await worker.stop();
    stopped = true;
    const commits = (await ctx.postgres.commits(database)) - before;
    return {
      done: finished,
      seconds,
      perSecond: finished / seconds,
      drained: finished >= options.jobs,
      commits,
      timeline: perSecond(finishedAt, start),
    };
  } finally {
    if (!stopped) await worker.stop();
    await ctx.postgres.dropDatabase(database);
  }
}

/** How many of the moments fall in each second after `start`. */
export function perSecond(moments: readonly number[], start: number): number[] {
  const buckets: number[] = [];
  for (const at of moments) {
    const second = Math.max(0, Math.floor((at - start) / 1000));
    while (buckets.length <= second) buckets.push(0);
    buckets[second]!++;
  }
  return buckets;
}
