import postgres from "postgres";
import type { SecondaryLimit, SimRateLimitOptions } from "../../test/github-sim/rate-limits.ts";
import { connectFleet, registerRunners } from "../lib/bench-runner.ts";
import {
  type BenchContext,
  type Benchmark,
  type Outcome,
  pause,
  type Table,
} from "../lib/benchmark.ts";
import { startChild } from "../lib/child.ts";
import type { LifecycleSimulatorInfo, RequestCounts } from "../lib/lifecycle-simulator-process.ts";
import { round } from "../lib/stats.ts";
import { appPrivateKey, startConveyorServer, UNLIMITED_FRAMES } from "../lib/system.ts";
import { WEBHOOK_SECRET } from "../lib/webhooks.ts";

const RUNNERS = 4;
const SLOTS = 2;
/** The issue's absolute target (no off-the-shelf peer makes these requests). */
const TARGET_REQUESTS_PER_TASK = 15;

interface RunResult {
  issues: number;
  merged: number;
  /** Tasks that ended anywhere but merged, or never got there before the deadline. */
  lost: number;
  statesAtEnd: Record<string, number>;
  /** Tasks whose last status-comment version never went out. */
  statusOwed: number;
  seconds: number;
  commits: number;
  counts: RequestCounts;
  runnerProblems: string[];
}

/**
 * One run: a simulator seeded for `issues` issues, a server, `RUNNERS` scripted runners that
 * answer each assignment with a one-line edit of the issue's own note, then every issue labelled
 * and followed to its merge (and its status comment's last edit).
 */
async function runLifecycle(
  ctx: BenchContext,
  options: {
    name: string;
    issues: number;
    rateLimit: SimRateLimitOptions;
    /** Injected once a third of the tasks merged. */
    secondary?: SecondaryLimit;
    deadlineMs: number;
  },
): Promise<RunResult> {
  const dbName = options.name.replace(/-/g, "_");
  const databaseUrl = await ctx.postgres.createDatabase(dbName);
  ctx.progress(`${options.name}: starting the simulator (${options.issues} notes) and the server`);
  const sim = await startChild<LifecycleSimulatorInfo>({
    name: `${options.name}-github-sim`,
    script: new URL("../lib/lifecycle-simulator-process.ts", import.meta.url),
    logDir: ctx.logDir,
    env: {
      BENCH_PRIVATE_KEY: appPrivateKey(),
      BENCH_ISSUES: String(options.issues),
      BENCH_RATE_LIMIT: JSON.stringify(options.rateLimit),
    },
  });
  const server = await startConveyorServer(ctx, {
    name: options.name,
    databaseUrl,
    sim: sim.info,
    // The simulator plays GitHub's primary limit, not the 80-a-minute content-creation pacing a
    // real installation needs: at 80 writes a minute 200 tasks take an hour and measure the pacer.
    start: { rateLimits: UNLIMITED_FRAMES, githubWritesPerMinute: 100_000 },
  });
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const problems: string[] = [];
  try {
    await sim.call("setWebhook", {
      url: `${server.info.url}/api/github/webhooks`,
      secret: WEBHOOK_SECRET,
    });
    const numbers = await sim.call<number[]>("openIssues");
    const identities = await registerRunners(databaseUrl, RUNNERS, options.name);
    const runners = await connectFleet(server.info.url, identities, {
      slots: SLOTS,
      complete: true,
      changes: (assign) => [
        {
          path: `notes/issue-${assign.issue.number}.md`,
          action: "modify",
          content: `# Note ${assign.issue.number}\n\ndone\n`,
        },
      ],
      onProblem: (problem) => problems.push(problem),
    });
    const commitsBefore = await ctx.postgres.commits(dbName);
    const started = Date.now();
    ctx.progress(`${options.name}: labelling ${numbers.length} issues`);
    const labelling = sim.call("labelIssues", numbers);
    let injected = false;
    const deadline = started + options.deadlineMs;
    let merged = 0;
    let statusOwed = Number.POSITIVE_INFINITY;
    let lastReport = 0;
    for (;;) {
      const [row] = await sql<{ total: number; merged: number; open: number; owed: number }[]>`
        select count(*)::int as total,
               count(*) filter (where state = 'merged')::int as merged,
               count(*) filter (where finished_at is null)::int as open,
               count(*) filter (where status_synced_version < status_version)::int as owed
        from tasks`;
      merged = row?.merged ?? 0;
      statusOwed = row?.owed ?? 0;
      if (options.secondary && !injected && merged >= options.issues / 3) {
        injected = true;
        await sim.call("injectSecondaryLimit", options.secondary);
      }
      // Every issue has a task, every task finished, and every status comment says so.
      if (row?.total === options.issues && row.open === 0 && statusOwed === 0) break;
      if (Date.now() > deadline) break;
      if (Date.now() - lastReport > 5_000) {
        lastReport = Date.now();
        ctx.progress(`${options.name}: ${merged}/${options.issues} merged`);
      }
      await pause(100);
    }
    const seconds = (Date.now() - started) / 1000;
    await labelling;
    const commits = (await ctx.postgres.commits(dbName)) - commitsBefore;
    const counts = await sim.call<RequestCounts>("counts");
    const states = await sql<{ state: string; n: number }[]>`
      select state::text as state, count(*)::int as n from tasks group by state order by state`;
    for (const runner of runners) runner.close();
    return {
      issues: options.issues,
      merged,
      lost: options.issues - merged,
      statesAtEnd: Object.fromEntries(states.map((s) => [s.state, s.n])),
      statusOwed,
      seconds,
      commits,
      counts,
      runnerProblems: problems,
    };
  } finally {
    await sql.end();
    await server.stop();
    await sim.stop();
    await ctx.postgres.dropDatabase(dbName);
  }
}

const perTask = (value: number, r: RunResult) => round(value / Math.max(1, r.merged), 2);

function routeTable(title: string, r: RunResult): Table {
  const rows = Object.entries(r.counts.byRoute)
    .sort((a, b) => b[1] - a[1])
    .map(([route, n]) => [route, n, perTask(n, r)] as (string | number)[]);
  return {
    title,
    columns: ["route", "requests", "per merged task"],
    rows: [...rows, ["all REST requests", r.counts.total, perTask(r.counts.total, r)]],
  };
}

/**
 * `lifecycle-cost`: what one task costs GitHub and Postgres from label to merge, and whether a
 * budget GitHub enforces is spent without a storm of refusals or a lost task.
 */
export const lifecycleCost: Benchmark = {
  name: "lifecycle-cost",
  title:
    "N issues label → merge: GitHub requests per task by route, commits/task, wall time; rate-limited run",
  needsPostgres: true,
  async run(ctx): Promise<Outcome> {
    const configured = Number(process.env.CONVEYOR_BENCH_LIFECYCLE_ISSUES ?? "200");
    if (!Number.isInteger(configured) || configured < 1 || configured > 5_000) {
      throw new Error("CONVEYOR_BENCH_LIFECYCLE_ISSUES must be a whole number from 1 to 5000");
    }
    const issues = ctx.smoke ? 2 : configured;
    const limitedIssues = ctx.smoke ? 2 : Math.max(10, Math.round(issues / 5));
    // GitHub's 5,000 requests an hour at the same rate, in 20-second windows: 28 each. A whole
    // task needs more than that, so the run empties the window again and again.
    const rateLimit = { limit: 28, windowMs: 20_000, enforce: true };
    const secondary = { times: 3, retryAfterSeconds: 1, status: 429 as const };

    const open = await runLifecycle(ctx, {
      name: "lifecycle-cost",
      issues,
      rateLimit: {},
      deadlineMs: ctx.smoke ? 60_000 : 30 * 60_000,
    });
    const limited = await runLifecycle(ctx, {
      name: "lifecycle-cost-limited",
      issues: limitedIssues,
      rateLimit,
      secondary,
      deadlineMs: ctx.smoke ? 60_000 : 30 * 60_000,
    });
    const requestsPerTask = perTask(open.counts.total, open);
    const refusals = (r: RunResult) =>
      r.counts.rateLimited.primary + r.counts.rateLimited.secondary;
    const summary = (r: RunResult) => ({
      issues: r.issues,
      merged: r.merged,
      lost: r.lost,
      statusCommentsOwedAtEnd: r.statusOwed,
      statesAtEnd: r.statesAtEnd,
      seconds: round(r.seconds, 2),
      mergedPerMinute: round((r.merged / r.seconds) * 60, 2),
      githubRequests: r.counts.total,
      githubRequestsPerMergedTask: perTask(r.counts.total, r),
      commits: r.commits,
      commitsPerMergedTask: perTask(r.commits, r),
      answersByStatus: r.counts.byStatus,
      errorAnswersByRoute: r.counts.errorsByRoute,
      rateLimitRefusals: r.counts.rateLimited,
      runnerProblems: r.runnerProblems,
      violations: r.counts.violations,
    });
    return {
      parameters: {
        issues,
        rateLimitedIssues: limitedIssues,
        runners: RUNNERS,
        slotsPerRunner: SLOTS,
        rateLimitedRun: { ...rateLimit, secondaryLimit: secondary, reservePercent: 10 },
      },
      results: { open: summary(open), rateLimited: summary(limited) },
      peer: {
        name: "the issue's target",
        description: `no off-the-shelf peer makes these requests: the target is absolute, at most ${TARGET_REQUESTS_PER_TASK} GitHub requests per merged tier-1 task`,
        results: { githubRequestsPerMergedTask: TARGET_REQUESTS_PER_TASK },
      },
      ratios: {
        requestsPerTask: {
          value: round(requestsPerTask / TARGET_REQUESTS_PER_TASK, 2),
          meaning: `GitHub requests per merged task ÷ the target (${TARGET_REQUESTS_PER_TASK}); at most 1 meets it`,
        },
        rateLimitedRefusals: {
          value: round(refusals(limited) / Math.max(1, limited.merged), 3),
          meaning:
            "requests refused for a rate limit (primary 403s and the scripted secondary 429s) per merged task in the rate-limited run; a storm is many per task",
        },
      },
      targets: [
        {
          row: "GitHub requests per merged tier-1 task",
          value: round(requestsPerTask, 2),
          op: "<=",
          target: TARGET_REQUESTS_PER_TASK,
        },
      ],
      samples: {
        openByRoute: open.counts.byRoute,
        rateLimitedByRoute: limited.counts.byRoute,
      },
      tables: [
        {
          title: `life cycle, ${issues} issues (${RUNNERS} runners × ${SLOTS} slots) and ${limitedIssues} under a budget of ${rateLimit.limit} / ${rateLimit.windowMs / 1000} s`,
          columns: [
            "run",
            "merged",
            "lost",
            "seconds",
            "GitHub req/task",
            "commits/task",
            "refused: primary",
            "refused: secondary",
          ],
          rows: [open, limited].map((r, i) => [
            i === 0 ? "open budget" : "rate-limited",
            r.merged,
            r.lost,
            round(r.seconds, 1),
            perTask(r.counts.total, r),
            perTask(r.commits, r),
            r.counts.rateLimited.primary,
            r.counts.rateLimited.secondary,
          ]),
        },
        routeTable(
          `GitHub requests by route, open budget (target ≤ ${TARGET_REQUESTS_PER_TASK} per task)`,
          open,
        ),
      ],
      notes: [
        `Every REST request the server made from the first label to the last merge and status edit, counted by the simulator (no cache in front). Target: ≤ ${TARGET_REQUESTS_PER_TASK} per merged tier-1 task; today ${requestsPerTask}.`,
        "Commits are PostgreSQL's xact_commit for the run's database over the same span: the tasks' own transactions plus the loops' passes (dispatch, notifier, merger, sampler).",
        `The rate-limited run: the simulator refuses every request past ${rateLimit.limit} per installation (and per App) in a ${rateLimit.windowMs / 1000}-second window with GitHub's 403 (GitHub's 5,000 an hour at the same rate), and ${secondary.times} requests with a secondary-limit 429 (retry-after ${secondary.retryAfterSeconds} s) once a third of the tasks merged. Conveyor holds an installation's requests while its window is empty or a retry-after runs, so refusals stay at the few requests already in flight when the window ran out.`,
        "Error answers that are not rate limits (a 404 for the absent .github/conveyor.yml, and whatever else errorAnswersByRoute lists) are part of the count: GitHub counts them too. Only the refusals counted as primary or secondary are rate limits.",
        "Octokit's throttling plugin is on (production settings); the write pacer is raised, since the simulator does not play the content-creation limit it exists for.",
      ],
    };
  },
};
