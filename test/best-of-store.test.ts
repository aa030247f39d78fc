import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { DEFAULT_REPO_CONFIG, parseRepoConfig } from "../src/core/repo-config.ts";
import { queueIssue } from "../src/intake/queue-issue.ts";
import {
  cancelStrayCandidates,
  decideRound,
  expireUnclaimedCandidates,
  findOpenRounds,
  findRoundsToStart,
  startRound,
} from "../src/store/best-of.ts";
import { findClaimable } from "../src/store/dispatch.ts";
import {
  claimDirtyStatuses,
  createTask,
  findActiveTask,
  getTask,
  transitionTask,
  upsertRepository,
} from "../src/store/tasks.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

/**
 * Best of N's steps against a real database (docs/merge-policy.md#best-of-n): a round starts once
 * however many passes race for it, its candidates are dispatchable (the issue's task is not), they
 * carry their share of the budget and their adapter as a needed capability, stay out of what
 * belongs to the issue's task, a round is decided once, and candidates of a cancelled task are
 * cancelled.
 */
let database: TestDatabase;
const db = () => database.db;
let issue = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  await upsertRepository(db(), { repositoryId: 7, installationId: 1, fullName: "acme/widgets" });
});
afterAll(async () => {
  await database?.drop();
});

async function queueBestOf(limits: Record<string, unknown> = {}, adapters = ["claude", "codex"]) {
  const { task } = await createTask(
    db(),
    {
      repositoryId: 7,
      installationId: 1,
      issueNumber: ++issue,
      title: "Do it",
      body: "please",
      lane: "normal",
      capabilities: ["linux"],
      maxAttempts: 3,
      limits: { max_running: 1, ...limits },
      queuedBy: "octocat",
      bestOf: 2,
      bestOfAdapters: adapters,
    },
    "label added",
  );
  return task;
}

const children = async (taskId: string) =>
  resultRows<{
    task_id: string;
    candidate: number;
    state: string;
    capabilities: string[];
    max_attempts: number;
    limits: Record<string, unknown>;
  }>(
    await db().execute(sql`
      select task_id, candidate, state, capabilities, max_attempts, limits from tasks
      where parent_task_id = ${taskId} order by candidate`),
  );

const claimable = (sets: string[][]) =>
  findClaimable(db(), { capabilitySets: sets, limit: 10, agingMs: 60_000 });

describe("best-of rounds in the database", () => {
  it("starts a round once, with dispatchable candidates and the issue's task held back", async () => {
    const task = await queueBestOf({ max_cost_usd: 3, max_tokens: 1000, max_turns: 20 });
    // The issue's task itself is never offered to a runner.
    expect((await claimable([["linux", "claude", "codex"]])).map((t) => t.task_id)).not.toContain(
      task.taskId,
    );
    const [due] = (await findRoundsToStart(db(), 10)).filter((t) => t.taskId === task.taskId);
    // Two passes racing for the same round: one wins.
    const started = await Promise.all([startRound(db(), due!), startRound(db(), due!)]);
    expect(started.filter(Boolean)).toHaveLength(1);
    const parent = (await getTask(db(), task.taskId))!;
    expect([parent.state, parent.generation, parent.runnerId]).toEqual(["running", 1, null]);

    const kids = await children(task.taskId);
    expect(kids.map((k) => [k.candidate, k.state, k.capabilities, k.max_attempts])).toEqual([
      [1, "queued", ["claude", "linux"], 1],
      [2, "queued", ["codex", "linux"], 1],
    ]);
    // Budgets apply to the sum: cost and tokens split, turns kept.
    expect(kids[0]!.limits).toMatchObject({ max_cost_usd: 1.5, max_tokens: 500, max_turns: 20 });

    // Each candidate goes only to a runner offering its adapter; the parent's `running` (no
    // runner) takes no place under `max_running: 1`.
    expect((await claimable([["linux", "claude"]])).map((t) => t.task_id)).toEqual([
      kids[0]!.task_id,
    ]);
    expect((await claimable([["linux", "codex"]])).map((t) => t.task_id)).toEqual([
      kids[1]!.task_id,
    ]);
    expect((await claimable([["claude", "codex"]])).map((t) => t.task_id)).toEqual([]);

    // The issue still has one active task, and only it gets a status comment.
    expect((await findActiveTask(db(), 7, task.issueNumber))?.taskId).toBe(task.taskId);
    await db().execute(sql`update tasks set status_version = status_version + 5
                           where parent_task_id = ${task.taskId}`);
    const dirty = (await claimDirtyStatuses(db(), 50)).map((d) => d.task_id);
    for (const k of kids) expect(dirty).not.toContain(k.task_id);
  });

  it("decides a round once: no change anywhere makes the task dead with the reason", async () => {
    const task = await queueBestOf();
    await startRound(db(), (await getTask(db(), task.taskId))!);
    const kids = await children(task.taskId);
    for (const k of kids) {
      await db().execute(sql`update tasks set state = 'dead', last_error = 'agent_failed'
                             where task_id = ${k.task_id}`);
    }
    const [round] = (await findOpenRounds(db(), 50)).filter((r) => r.task_id === task.taskId);
    expect(round?.candidates.map((c) => [c.k, c.state, c.last_error])).toEqual([
      [1, "dead", "agent_failed"],
      [2, "dead", "agent_failed"],
    ]);
    const decision = {
      taskId: task.taskId,
      round: round!.round,
      figures: [1, 2].map((k) => ({
        k,
        verificationPassed: null,
        tier: null,
        checks: null,
        changedLines: null,
        costUsd: null,
        failure: "agent_failed",
        rank: null,
      })),
      winner: undefined,
      reason: "no candidate produced a change",
    };
    expect(await decideRound(db(), decision)).toBe(true);
    expect(await decideRound(db(), decision)).toBe(false);
    const dead = (await getTask(db(), task.taskId))!;
    expect([dead.state, dead.lastError]).toEqual(["dead", "no candidate produced a change"]);
    expect((await findOpenRounds(db(), 50)).map((r) => r.task_id)).not.toContain(task.taskId);
  });

  it("cancels a candidate no runner took within the deadline, so the round is decided", async () => {
    const task = await queueBestOf({ deadline_minutes: 30 });
    await startRound(db(), (await getTask(db(), task.taskId))!);
    const [first, second] = await children(task.taskId);
    expect(await expireUnclaimedCandidates(db())).toBe(0);
    // Candidate 1 finished long ago; candidate 2 waited 31 minutes for a runner offering `codex`.
    await db().execute(sql`update tasks set state = 'dead' where task_id = ${first!.task_id}`);
    await db().execute(sql`update candidates set created_at = now() - interval '31 minutes'
                           where task_id = ${task.taskId}`);
    expect(await expireUnclaimedCandidates(db())).toBe(1);
    const late = (await getTask(db(), second!.task_id))!;
    expect([late.state, late.lastError]).toEqual([
      "cancelled",
      "no runner took it within 30 minutes",
    ]);
    const [round] = (await findOpenRounds(db(), 50)).filter((r) => r.task_id === task.taskId);
    expect(round?.candidates.map((c) => c.state)).toEqual(["dead", "cancelled"]);
  });

  it.each<[string, string[], number, boolean]>([
    ["a valid label", ["conveyor", "conveyor:best-of-3"], 3, false],
    [
      "n over 4: told on the issue, the config's count used",
      ["conveyor", "conveyor:best-of-7"],
      2,
      true,
    ],
    ["malformed: told on the issue", ["conveyor", "conveyor:best-of-two"], 2, true],
  ])("queues %s", async (_name, labels, n, told) => {
    const number = ++issue;
    const config = parseRepoConfig({ version: 1, tasks: { best_of: 2 } });
    const outcome = await queueIssue(db(), {
      repositoryId: 7,
      installationId: 1,
      issue: { number, title: "Do it", body: "", labels },
      sender: { login: "octocat" },
      permission: "write",
      config: config.ok ? config.config : DEFAULT_REPO_CONFIG,
      reason: "label added",
    });
    expect(outcome.task?.bestOf).toBe(n);
    const notices = resultRows<{ body: string }>(
      await db().execute(
        sql`select body from issue_notices where repository_id = 7 and issue_number = ${number}`,
      ),
    );
    if (told) {
      expect(notices).toHaveLength(1);
      expect(notices[0]!.body).toContain("names no candidate count");
      expect(notices[0]!.body).toContain("n from 1 to 4");
    } else expect(notices).toEqual([]);
  });

  it("cancels the candidates of a task that was cancelled", async () => {
    const task = await queueBestOf();
    await startRound(db(), (await getTask(db(), task.taskId))!);
    await transitionTask(db(), {
      taskId: task.taskId,
      from: ["running"],
      to: "cancelled",
      actor: "octocat",
      reason: "label conveyor removed",
      set: { finished: true },
    });
    // Two candidates cancelled, and their two rows closed.
    expect(await cancelStrayCandidates(db())).toBe(4);
    expect((await children(task.taskId)).map((k) => k.state)).toEqual(["cancelled", "cancelled"]);
    expect(await cancelStrayCandidates(db())).toBe(0);
    const open = resultRows(
      await db().execute(
        sql`select k from candidates where task_id = ${task.taskId} and decided_at is null`,
      ),
    );
    expect(open).toEqual([]);
  });
});
