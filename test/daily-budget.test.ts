import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { findClaimable } from "../src/store/dispatch.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/**
 * The daily cost budget of `tasks.daily_budget_usd`: once a repository's attempts cost it today,
 * its queue pauses (the status comment says so) until a maintainer's `/budget <usd>` raises it.
 */

let h: Harness;
let runner: FakeRunner | undefined;

beforeAll(async () => {
  h = await createHarness({
    files: { ".github/conveyor.yml": "version: 1\ntasks:\n  daily_budget_usd: 1\n" },
  });
});
afterAll(async () => {
  runner?.close();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const statusComment = (issueNumber: number, text: string) =>
  waitFor(
    () =>
      h.sim
        .listComments(h.repo, issueNumber)
        .find((c) => c.body?.includes("conveyor:status") && c.body.includes(text)),
    { timeoutMs: 10_000, message: `a status comment saying ${text}` },
  );

describe("daily budget", () => {
  it("pauses the repository's queue once spent, says so, and /budget resumes it", async () => {
    const { issue } = await h.sim.openIssue(h.repo, {
      title: "Costly",
      body: "Do it.",
      user: "octocat",
    });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    // The webhook is answered once stored; the intake loop queues the task just after.
    await h.sim.idle();
    const [row] = resultRows<{ task_id: string }>(
      await h.database.db.execute(
        sql`select task_id from tasks where issue_number = ${issue.number}`,
      ),
    );
    const taskId = row!.task_id;
    const { token } = await createRunner(h.database.db, {
      name: "budget-runner",
      capabilities: [],
      tier: "normal",
    });
    runner = await connectRunner(h.conveyor.url, token);
    const first = await runner.next("assign", (f) => f.task_id === taskId);
    runner.send({ type: "accept", task_id: taskId, generation: first.generation });
    await runner.next("ack");
    // The attempt fails having cost $1.25 of the $1.00 budget; it may be retried, but not today.
    runner.send({
      type: "fail",
      task_id: taskId,
      generation: first.generation,
      reason: "agent_failed",
      retryable: true,
      stats: { cost_usd: 1.25, tokens: 900 },
      agent: { adapter: "claude", model: "claude-sonnet-4-5" },
    });
    await runner.next("ack");
    await waitFor(async () => (await getTask(h.database.db, taskId))?.state === "queued", {
      message: "the task back in the queue after its backoff",
    });
    const paused = await statusComment(issue.number, "| Paused |");
    expect(paused.body).toContain(
      "| Paused | $1.25 of this repository's $1.00 daily budget spent today; the queue resumes at 00:00 UTC, or when a maintainer raises it with `/budget <usd>` or `tasks.daily_budget_usd` |",
    );
    // The claim passes it over once it is due (the free runner got nothing more either).
    await waitFor(
      async () =>
        resultRows<{ due: boolean }>(
          await h.database.db.execute(
            sql`select available_at <= now() as due from tasks where task_id = ${taskId}`,
          ),
        )[0]?.due || undefined,
      { message: "the task due again after its backoff" },
    );
    const claimable = await findClaimable(h.database.db, {
      capabilitySets: [[]],
      limit: 100,
      agingMs: 60_000,
    });
    expect(claimable.map((t) => t.task_id)).not.toContain(taskId);
    expect(runner.received.filter((f) => f.type === "assign")).toHaveLength(1);
    expect((await getTask(h.database.db, taskId))?.state).toBe("queued");

    // Someone with write access may not raise it; a maintainer may.
    await h.sim.comment(h.repo, issue.number, "/budget 5", { user: "octocat" });
    await waitFor(
      () =>
        h.sim
          .listComments(h.repo, issue.number)
          .find((c) => c.body?.includes("`/budget` needs maintain access or more")),
      { message: "the refusal for octocat" },
    );
    await h.sim.comment(h.repo, issue.number, "/budget $5", { user: "maint" });
    const second = await runner.next("assign", (f) => f.task_id === taskId, 10_000);
    expect(second.generation).toBe(first.generation + 1);

    const [attempt] = resultRows<Record<string, unknown>>(
      await h.database.db.execute(
        sql`select outcome, fail_reason, adapter, model, cost_usd, tokens::int
            from attempts where task_id = ${taskId}`,
      ),
    );
    expect(attempt).toEqual({
      outcome: "failed",
      fail_reason: "agent_failed",
      adapter: "claude",
      model: "claude-sonnet-4-5",
      cost_usd: 1.25,
      tokens: 900,
    });
  });
});
