import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { loadConfig } from "../src/config.ts";
import { createGitHubBudget } from "../src/core/github-budget.ts";
import type { GitHubGateway } from "../src/core/ports.ts";
import { createSignals } from "../src/core/signals.ts";
import { createGitHub } from "../src/github/create-github.ts";
import { createNotifier } from "../src/loops/notifier.ts";
import { transitionTask } from "../src/store/tasks.ts";
import { createWorld, type World } from "./helpers/conveyor-harness.ts";
import { seedQueuedTask } from "./helpers/seed-task.ts";
import { waitFor } from "./helpers/wait-for.ts";

const QUEUED = 200;
const PER_MINUTE = 20;

let world: World;
let notifier: ReturnType<typeof createNotifier>;
let gateway: GitHubGateway;
/** The notifier's clock: each pass is a notifier tick two seconds after the last. */
let clock = Date.now();
const tasks: { taskId: string; issueNumber: number }[] = [];

beforeAll(async () => {
  world = await createWorld();
  const github = await createGitHub({
    config: loadConfig(world.env),
    database: world.database,
    logger: pino({ level: "silent" }),
    metrics: { githubRequest() {}, githubRateLimit() {}, githubRateLimited() {}, webhook() {} },
    githubBudget: createGitHubBudget(),
    recordError() {},
    signals: createSignals(),
    options: {
      octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } },
      // The simulator has no secondary rate limit: the notifier's own budget is under test.
      githubWritesPerMinute: 100_000,
    },
  });
  gateway = github.app!.gateway;
  notifier = createNotifier({
    db: world.database.db,
    gateway,
    logger: pino({ level: "silent" }),
    agingMs: 30 * 60_000,
    now: () => new Date(clock),
    pacing: {
      debounceMs: 0,
      maxDelayMs: 0,
      // Positions as often as the budget allows: the budget alone must keep edits bounded.
      positionMinIntervalMs: 0,
      positionEditsPerMinute: PER_MINUTE,
    },
  });
  for (let i = 0; i < QUEUED; i++) {
    const { issue } = await world.sim.openIssue(world.repo, {
      title: `Idea ${i}`,
      user: "octocat",
    });
    const task = await seedQueuedTask(world.database.db, {
      repositoryId: world.repositoryId,
      installationId: world.installationId,
      issueNumber: issue.number,
      title: `Idea ${i}`,
    });
    tasks.push({ taskId: task.taskId, issueNumber: issue.number });
  }
}, 120_000);
afterAll(async () => {
  await world?.close();
});
afterEach(() => {
  expect(world.sim.violations).toEqual([]);
});

const edits = () =>
  world.sim.requests.filter(
    (r) => r.method === "PATCH" && r.route === "/repos/{owner}/{repo}/issues/comments/{comment_id}",
  ).length;
const statusOf = (issueNumber: number) =>
  world.sim.listComments(world.repo, issueNumber).find((c) => c.body?.includes("conveyor:status"))
    ?.body ?? "";

/** One notifier tick, two seconds after the previous one. */
async function tick() {
  clock += 2_000;
  await notifier.runOnce();
}

async function owed(): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await world.database.db.execute(
      sql`select count(*)::int as n from tasks where status_version > status_synced_version`,
    ),
  );
  return row?.n ?? 0;
}

describe("status comments of a queue of 200", () => {
  it("posts one comment per task with its position and, once tasks start, a wait estimate", async () => {
    while ((await owed()) > 0) await tick();
    expect(world.sim.requests.filter((r) => r.method === "PATCH").length).toBe(0);
    expect(statusOf(tasks[0]!.issueNumber)).toContain("| Queue position | 1 (lane `normal`) |");
    expect(statusOf(tasks[QUEUED - 1]!.issueNumber)).toContain(
      `| Queue position | ${QUEUED} (lane \`normal\`) |`,
    );
    expect(statusOf(tasks[0]!.issueNumber)).toContain("| Estimated wait | no estimate yet");
  }, 120_000);

  it("keeps the head of the queue fresh as it drains, with edits bounded by the budget", async () => {
    const before = edits();
    let minutes = 0;
    // Ten tasks leave the queue each minute (one per six seconds), for twenty minutes.
    for (let started = 0; started < QUEUED; minutes++) {
      for (let tickOfMinute = 0; tickOfMinute < 30; tickOfMinute++) {
        if (tickOfMinute % 3 === 0 && started < QUEUED) {
          const next = tasks[started++]!;
          await transitionTask(world.database.db, {
            taskId: next.taskId,
            from: ["queued"],
            to: "assigned",
            actor: "dispatcher",
            reason: "assigned to a runner",
          });
        }
        await tick();
      }
      // The task now first in line says so, with an estimate from the throughput seen.
      const head = tasks[Math.min(started, QUEUED - 1)]!;
      if (started < QUEUED) {
        expect(statusOf(head.issueNumber)).toContain("| Queue position | 1 (lane `normal`) |");
        expect(statusOf(head.issueNumber)).toMatch(/\| Estimated wait \| about \d+ (s|min) \|/);
      }
    }
    while ((await owed()) > 0) await tick();
    // Every task's move to `assigned` is one edit; positions take at most the budget each
    // minute. Rewriting every waiting comment on every start would be about 20,000 edits.
    expect(minutes).toBe(QUEUED / 10);
    const made = edits() - before;
    expect(made).toBeGreaterThan(QUEUED);
    expect(made).toBeLessThanOrEqual(QUEUED + Math.ceil(PER_MINUTE * (minutes + 1)));
    expect(statusOf(tasks[QUEUED - 1]!.issueNumber)).toContain("| State | `assigned` |");
  }, 240_000);

  it("coalesces a burst of moves into one edit, once the task kept still", async () => {
    const { issue } = await world.sim.openIssue(world.repo, { title: "Burst", user: "octocat" });
    const task = await seedQueuedTask(world.database.db, {
      repositoryId: world.repositoryId,
      installationId: world.installationId,
      issueNumber: issue.number,
      title: "Burst",
    });
    while ((await owed()) > 0) await tick();
    const debounced = createNotifier({
      db: world.database.db,
      gateway,
      logger: pino({ level: "silent" }),
      agingMs: 30 * 60_000,
      pacing: { debounceMs: 1_500, maxDelayMs: 60_000 },
    });
    const before = edits();
    const move = (from: "queued" | "assigned", to: "assigned" | "running") =>
      transitionTask(world.database.db, {
        taskId: task.taskId,
        from: [from],
        to,
        actor: "dispatcher",
        reason: to,
      });
    await move("queued", "assigned");
    expect(await debounced.runOnce()).toBe(0);
    await move("assigned", "running");
    expect(await debounced.runOnce()).toBe(0);
    expect(edits()).toBe(before);
    await waitFor(async () => (await debounced.runOnce()) === 1, { message: "the settled edit" });
    expect(edits()).toBe(before + 1);
    expect(statusOf(issue.number)).toContain("| State | `running` |");
  });
});
