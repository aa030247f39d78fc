import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { getTask } from "../src/store/tasks.ts";
import type { RecordedRequest } from "./github-sim/api-router.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import {
  queueScriptedIssue,
  type RunnerProcess,
  startScriptedRunner,
} from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * The GitHub budget against the simulator's rate limits: under the reserve the essential work
 * (check runs, the merge) goes on and the status comment waits for the window's reset; a
 * secondary limit is waited out for its retry-after and nothing is lost; the budget shows on
 * /metrics and /api/metrics.
 */

let h: Harness;
let runner: RunnerProcess;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
const COMMENT_EDIT = "/repos/{owner}/{repo}/issues/comments/{comment_id}";

beforeAll(async () => {
  h = await createHarness({
    files: {
      "src/app.txt": "line 1\nline 2\nline 3\n",
      ".github/conveyor.yml": "tasks:\n  max_running: 1\n",
    },
  });
  scripted = await startScriptedRunner(h, "budget-runner");
  runner = scripted.runner;
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const state = async (taskId: string) => (await getTask(h.database.db, taskId))?.state;

async function openPr(title: string, line: string) {
  const { issueNumber, taskId } = await queueScriptedIssue(
    h,
    title,
    `write src/app.txt\n<<<\nline 1\n${line}\nline 3\n>>>`,
  );
  const pr = await waitFor(
    async () => {
      const [p] = resultRows<{ pr_number: number; head_sha: string }>(
        await h.database.db.execute(
          sql`select pr_number, head_sha from pull_requests where task_id = ${taskId}`,
        ),
      );
      return p;
    },
    { timeoutMs: 30_000, message: `a PR for "${title}"\n${runner.output().slice(-1000)}` },
  );
  return { issueNumber, taskId, ...pr };
}

/** The task's status comment once every status version is written. */
async function syncedComment(taskId: string, issueNumber: number) {
  await waitFor(
    async () => {
      const [row] = resultRows<{ synced: boolean }>(
        await h.database.db.execute(
          sql`select status_synced_version >= status_version as synced from tasks where task_id = ${taskId}`,
        ),
      );
      return row?.synced;
    },
    { timeoutMs: 20_000, message: "the status comment in sync" },
  );
  const comments = h.sim.listComments(h.repo, issueNumber);
  return comments.find((c) => c.body?.includes(taskId))!;
}

const greenCi = (sha: string) =>
  h.sim.createCheckRun(h.repo, {
    name: "ci",
    headSha: sha,
    status: "completed",
    conclusion: "success",
  });

async function scrape(): Promise<string> {
  const response = await fetch(`${h.conveyor.url}/metrics`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(response.status).toBe(200);
  return response.text();
}

describe("the GitHub budget", () => {
  it("under the reserve merges and holds status edits until the window resets", async () => {
    const pr = await openPr("Tiny fix under a thin budget", "line two");
    const before = await syncedComment(pr.taskId, pr.issueNumber);
    // A fresh window of 1,000 a few seconds long, 905 of it spent elsewhere: 95 left, under the
    // 10 % reserve (100), yet enough for the merge's own requests.
    h.sim.setRateLimit({ limit: 1_000, windowMs: 5_000 });
    h.sim.spendRateLimit(h.installationId, 905);
    const thinFrom = Date.now();
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 20_000,
      message: "merged under the reserve",
    });
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(true);

    // The merge and its check run went out; the status comment did not move meanwhile.
    const inWindow = (r: RecordedRequest) => r.at >= thinFrom && r.installationId !== undefined;
    const edits = () =>
      h.sim.requests.filter(
        (r) =>
          inWindow(r) &&
          r.method === "PATCH" &&
          r.route === COMMENT_EDIT &&
          r.path.endsWith(`/comments/${before.id}`),
      );
    expect(h.sim.requests.some((r) => inWindow(r) && r.route?.endsWith("/merge"))).toBe(true);
    expect(edits()).toEqual([]);
    expect(h.sim.listComments(h.repo, pr.issueNumber).find((c) => c.id === before.id)?.body).toBe(
      before.body,
    );

    // The budget is visible while it holds the edit back: the notifier's pass after the merge
    // (woken by the state change, so it may follow the merged row by a moment) defers the edit.
    let text = "";
    await waitFor(
      async () => {
        text = await scrape();
        return /conveyor_github_deferred_total\{work="status_comment"\} [1-9]/.test(text);
      },
      { timeoutMs: 3_000, intervalMs: 50, message: "the status edit deferred" },
    );
    const resetAt = resetFrom(text);
    expect(resetAt).toBeGreaterThan(thinFrom);
    expect(text).toContain(`conveyor_github_budget_deferring{client="${h.installationId}"} 1`);
    expect(text).toContain(`conveyor_github_budget_reserve{client="${h.installationId}"} 100`);
    const api = await fetch(`${h.conveyor.url}/api/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const report = (await api.json()) as {
      github_budget: { clients: { client: string; limit: number; deferring: boolean }[] };
    };
    expect(report.github_budget.clients).toContainEqual(
      expect.objectContaining({ client: String(h.installationId), limit: 1_000, deferring: true }),
    );

    // After the reset the latest state goes out, in place.
    const after = await syncedComment(pr.taskId, pr.issueNumber);
    expect(after.id).toBe(before.id);
    expect(after.body).toContain("Merged");
    const [edit] = edits();
    expect(edit).toBeDefined();
    expect(edit!.at).toBeGreaterThanOrEqual(resetAt - 10);
    h.sim.setRateLimit({ limit: 5_000, windowMs: 3_600_000 });
  });

  it("waits out a secondary limit's retry-after and loses nothing", async () => {
    const firstRefusal = h.sim.requests.length;
    h.sim.injectSecondaryLimit({ times: 2, retryAfterSeconds: 1 });
    const pr = await openPr("Tiny fix through a secondary limit", "line 2 again");
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 25_000,
      message: "merged after the secondary limit",
    });
    expect(h.sim.rateLimited.secondary).toBe(2);
    const seen = h.sim.requests.slice(firstRefusal);
    const refused = seen.filter((r) => r.status === 429);
    expect(refused).toHaveLength(2);
    // Nothing more from that client until retry-after passed: no storm of refusals. Requests that
    // arrive within 50 ms were already on their way (other loops, such as the post-merge watch,
    // read concurrently) before the refusal reached the client.
    const client = (r: RecordedRequest) => `${r.auth}:${r.installationId ?? ""}`;
    for (const refusal of refused) {
      const next = seen.find(
        (r) => r.at >= refusal.at + 50 && r !== refusal && client(r) === client(refusal) && r.route,
      );
      if (next && next.status !== 429) expect(next.at - refusal.at).toBeGreaterThanOrEqual(900);
    }
    expect(await scrape()).toMatch(/conveyor_github_rate_limited_total\{kind="secondary"\} 2/);
    // The issue's status comment, the check run and the merge all happened.
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(true);
    expect((await syncedComment(pr.taskId, pr.issueNumber)).body).toContain("Merged");
  });

  it("leaves reconciliation of an installation under the reserve for a later pass", async () => {
    h.sim.setRateLimit({ limit: 1_000, windowMs: 60_000 });
    h.sim.spendRateLimit(h.installationId, 950);
    // The first pass reads with 50 left and so learns the budget is under the reserve (100),
    // unless another loop (the post-merge watch of the merge above) has already read since.
    const first = await h.conveyor.reconcile();
    expect(first).toMatchObject({ skipped: false });
    const before = h.sim.requests.length;
    expect(await h.conveyor.reconcile()).toMatchObject({ deferred: 1, repositories: 0 });
    // Only the App's own listing of installations went out: nothing of reconciliation's own reads
    // (the post-merge watch of the merges above may still read check runs).
    expect(
      h.sim.requests
        .slice(before)
        .filter(
          (r) =>
            r.installationId === h.installationId &&
            /\/installation\/repositories|\/issues/.test(r.route ?? r.path),
        ),
    ).toEqual([]);
    expect(await scrape()).toContain(
      `conveyor_github_deferred_total{work="reconciliation"} ${1 + (first?.deferred ?? 0)}`,
    );
    h.sim.setRateLimit({ limit: 5_000, windowMs: 3_600_000 });
  });

  it("carries the repository's tasks.max_running on its tasks", async () => {
    const [row] = resultRows<{ max_running: number }>(
      await h.database.db.execute(
        sql`select (limits->>'max_running')::int as max_running from tasks order by created_at limit 1`,
      ),
    );
    expect(row?.max_running).toBe(1);
  });
});

/** The installation's window reset as `/metrics` reports it, epoch ms. */
function resetFrom(text: string): number {
  const match = new RegExp(
    `conveyor_github_rate_limit_reset_timestamp_seconds\\{client="${h.installationId}"\\} ([0-9.e+]+)`,
  ).exec(text);
  return match ? Number(match[1]) * 1000 : Number.NaN;
}
