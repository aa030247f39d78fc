import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { getTask, transitionTask } from "../src/store/tasks.ts";
import type { CiPush } from "./github-sim/ci-provider.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/**
 * After the merge, and before it (docs/merge-policy.md): the post-merge watch re-requests a check
 * that failed on the merge commit once, reverts what stays red, freezes the repository and queues
 * the issue again once the revert merged; a pull request that conflicts because another merge
 * landed first is retried on the new base. The CI provider scripts each commit's outcome.
 */
let h: Harness;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
const CI = "ci / test";
const pushes: CiPush[] = [];
/** CI on these branches waits for their condition (to order merges across two pull requests). */
let gates: { branch: string; until: () => Promise<boolean> }[] = [];

async function conclude(push: CiPush) {
  pushes.push(push);
  for (const gate of gates.filter((g) => g.branch === push.branch)) {
    await waitFor(gate.until, { timeoutMs: 60_000, message: `the gate on ${push.branch} opened` });
  }
  if (push.branch !== "main") return "success" as const;
  const app = (await h.sim.readFile(push.repo, "src/app.txt", push.sha)) ?? "";
  const flaky = (await h.sim.readFile(push.repo, "src/flaky.txt", push.sha)) ?? "";
  // Breaks the default branch only: green on the pull request, red after the merge.
  if (app.includes("BREAK")) return "failure" as const;
  // Flaky only on the commit that brings it: fails once, passes when re-requested.
  if (flaky.includes("FLAKY") && push.files.includes("src/flaky.txt") && push.attempt === 1) {
    return "failure" as const;
  }
  return "success" as const;
}

beforeAll(async () => {
  h = await createHarness({
    files: {
      "src/app.txt": "line 1\nline 2\nline 3\n",
      "src/flaky.txt": "steady\n",
      "src/shared.txt": "first\nsecond\nthird\n",
      "src/plain.txt": "plain\n",
    },
    simulator: { ciProvider: { name: CI, conclude } },
  });
  // A green run on the default branch: the parent of the first merge.
  await h.sim.push(h.repo, { branch: "main", files: { "docs/a.md": "a\n" }, user: "octocat" });
  await h.sim.idle();
  scripted = await startScriptedRunner(h, "after-merge-runner");
});
afterAll(async () => {
  gates = [];
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const db = () => h.database.db;
const state = async (taskId: string) => (await getTask(db(), taskId))?.state;
async function watchOf(taskId: string) {
  const [w] = resultRows<{
    state: string;
    merge_sha: string;
    revert_pr_number: number | null;
    requeued_task_id: string | null;
    rerequested: { name: string }[];
    failing: { name: string; result: string }[];
    checks: string[];
    note: string;
  }>(await db().execute(sql`select * from merge_watches where task_id = ${taskId}`));
  return w;
}
const prOf = async (taskId: string) =>
  resultRows<{ pr_number: number }>(
    await db().execute(sql`select pr_number from pull_requests where task_id = ${taskId}`),
  )[0]?.pr_number;
const repoRow = async () =>
  resultRows<{ frozen: boolean; frozen_reason: string | null }>(
    await db().execute(
      sql`select frozen, frozen_reason from repositories where repository_id = ${h.repositoryId}`,
    ),
  )[0]!;
const reasons = async (taskId: string) =>
  resultRows<{ reason: string; actor: string }>(
    await db().execute(
      sql`select reason, actor from task_events where task_id = ${taskId} order by event_id`,
    ),
  );
const rerequests = () =>
  h.sim.requests.filter(
    (r) => r.method === "POST" && r.route?.endsWith("/check-suites/{check_suite_id}/rerequest"),
  );

const watchParent = async (taskId: string) =>
  resultRows<{ parent_sha: string | null }>(
    await db().execute(sql`select parent_sha from merge_watches where task_id = ${taskId}`),
  )[0]?.parent_sha;
/** The requests that read a commit: its check runs, its combined status, the commit itself. */
/** The commit a request reads checks, statuses or the commit object of (REST or the watch's query). */
const commitRead = (r: (typeof h.sim.requests)[number]): string | undefined => {
  if (r.method === "POST" && r.route === "/graphql") {
    const oid = (r.body as { variables?: { oid?: unknown } } | undefined)?.variables?.oid;
    return typeof oid === "string" ? oid : undefined;
  }
  if (
    r.method === "GET" &&
    (r.route?.startsWith("/repos/{owner}/{repo}/commits/{ref}/") ||
      r.route?.endsWith("/git/commits/{commit_sha}"))
  ) {
    return r.path.split("/").find((part) => /^[0-9a-f]{40}$/.test(part));
  }
  return undefined;
};
const checkReadsOn = (sha: string) => h.sim.requests.filter((r) => commitRead(r) === sha);

describe("the post-merge watch", () => {
  it("a merge whose watched checks pass on the merge commit never reads the parent commit", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Plain tweak",
      "write src/plain.txt\n<<<\nplainer\n>>>",
    );
    const watch = await waitFor(
      async () => {
        const w = await watchOf(taskId);
        if (w?.state === "green") return w;
        throw new Error(`task ${await state(taskId)}, watch ${w?.state}`);
      },
      { timeoutMs: 60_000, message: "the watch ended green" },
    );
    expect(watch.checks).toContain(CI);
    expect(await watchParent(taskId)).toBeNull();
    // One GraphQL query per look at the merge commit: its check runs and statuses together.
    const reads = checkReadsOn(watch.merge_sha);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.map((r) => `${r.method} ${r.route}`)).toEqual(reads.map(() => "POST /graphql"));
    // After the merge call, checks were read on the merge commit only: not the parent commit
    // object, nor the checks or statuses on it.
    const mergedAt = h.sim.requests.find(
      (r) => r.method === "PUT" && r.route?.endsWith("/pulls/{pull_number}/merge"),
    )?.at;
    expect(mergedAt).toBeDefined();
    const afterMerge = h.sim.requests.filter((r) => r.at >= mergedAt! && commitRead(r));
    expect(afterMerge.length).toBeGreaterThan(0);
    expect(afterMerge.filter((r) => commitRead(r) !== watch.merge_sha)).toEqual([]);
  }, 90_000);

  it("re-requests a check that fails once on the merge commit, and does nothing when it passes", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Flaky tweak",
      "write src/flaky.txt\n<<<\nFLAKY\n>>>",
    );
    await waitFor(async () => (await state(taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "the flaky change merged",
    });
    const watch = await waitFor(
      async () => {
        const w = await watchOf(taskId);
        return w?.state === "green" ? w : undefined;
      },
      { timeoutMs: 30_000, message: "the watch ended green" },
    );
    expect(watch.checks).toContain(CI);
    expect(watch.rerequested.map((r) => r.name)).toEqual([CI]);
    expect(rerequests()).toHaveLength(1);
    expect(pushes.filter((p) => p.sha === watch.merge_sha).map((p) => p.attempt)).toEqual([1, 2]);
    expect(watch.revert_pr_number).toBeNull();
    // The failure on the merge commit is what makes the parent worth reading.
    const parent = await watchParent(taskId);
    expect(parent).toMatch(/^[0-9a-f]{40}$/);
    expect(checkReadsOn(parent!).length).toBeGreaterThan(0);
    expect((await repoRow()).frozen).toBe(false);
    const pulls = await h.sim.listPulls(h.repo);
    expect(pulls.some((p) => p.title.startsWith("Revert"))).toBe(false);
    const steps = (await reasons(taskId)).filter((e) => e.actor === "watcher");
    expect(steps.map((e) => e.reason)).toEqual([
      expect.stringContaining("re-requested once"),
      expect.stringContaining("checks green"),
    ]);
  });

  it("reverts a merge that turns a check red, freezes the repository, and re-queues the issue once the revert merged", async () => {
    const { taskId, issueNumber } = await queueScriptedIssue(
      h,
      "Risky tweak",
      "write src/app.txt\n<<<\nline 1\nBREAK\nline 3\n>>>",
    );
    await waitFor(async () => (await state(taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "the breaking change merged",
    });
    const prNumber = (await prOf(taskId))!;
    const watch = await waitFor(
      async () => {
        const w = await watchOf(taskId);
        return w?.state === "reverting" ? w : undefined;
      },
      { timeoutMs: 30_000, message: "a revert was opened" },
    );
    // Re-requested once first; it failed again.
    expect(watch.rerequested.map((r) => r.name)).toEqual([CI]);
    expect(pushes.filter((p) => p.sha === watch.merge_sha).map((p) => p.attempt)).toEqual([1, 2]);
    expect(watch.failing).toEqual([expect.objectContaining({ name: CI, result: "failure" })]);

    const revert = await h.sim.getPull(h.repo, watch.revert_pr_number!);
    expect(revert.title).toBe('Revert "Risky tweak"');
    expect(revert.body?.split("\n")[0]).toBe(`Reverts #${prNumber}`);
    expect(revert.base.ref).toBe("main");
    expect(await h.sim.readFile(h.repo, "src/app.txt", revert.head.sha)).toBe(
      "line 1\nline 2\nline 3\n",
    );
    // The revert was written with the Git Data API, on top of the branch's tip.
    const created = h.sim.requests.filter(
      (r) => r.method === "POST" && r.route === "/repos/{owner}/{repo}/git/commits",
    );
    expect(created.at(-1)?.body).toMatchObject({
      message: expect.stringContaining(`This reverts commit ${watch.merge_sha}.`),
    });

    const frozen = await repoRow();
    expect(frozen.frozen).toBe(true);
    expect(frozen.frozen_reason).toContain(`#${prNumber}`);
    expect(frozen.frozen_reason).toContain(CI);
    expect(h.sim.getIssue(h.repo, issueNumber).labels).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "conveyor:reverted" })]),
    );
    const comment = await waitFor(
      () =>
        h.sim
          .listComments(h.repo, prNumber)
          .find((c) => c.body?.includes("failed on its merge commit")),
      { timeoutMs: 10_000, message: "the comment on the merged PR" },
    );
    expect(comment.body).toContain(`\`${CI}\`: failure`);
    expect(comment.body).toContain(`#${watch.revert_pr_number}`);
    const status = await waitFor(
      () =>
        h.sim
          .listComments(h.repo, issueNumber)
          .find((c) => c.body?.includes("After merge") && c.body.includes("revert")),
      { timeoutMs: 10_000, message: "the status comment shows the watch" },
    );
    expect(status.body).toContain(`#${watch.revert_pr_number}`);
    // The dashboard's recent results show the step too.
    const board = (await (
      await fetch(`${h.conveyor.url}/dashboard/state`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { recent: { task_id: string; after_merge: { state: string; note: string } }[] };
    expect(board.recent.find((t) => t.task_id === taskId)?.after_merge).toMatchObject({
      state: "reverting",
      note: expect.stringContaining(`revert #${watch.revert_pr_number} opened`),
    });

    // merge.revert: pr (the default): a person merges the revert.
    await h.sim.mergePullRequest(h.repo, watch.revert_pr_number!, {
      user: "octocat",
      method: "squash",
    });
    const done = await waitFor(
      async () => {
        const w = await watchOf(taskId);
        return w?.state === "reverted" ? w : undefined;
      },
      { timeoutMs: 30_000, message: "the issue re-queued" },
    );
    const again = (await getTask(db(), done.requeued_task_id!))!;
    // Stop the new attempt before the scripted agent breaks the branch again.
    await transitionTask(db(), {
      taskId: again.taskId,
      to: "cancelled",
      actor: "test",
      reason: "the test stops here",
    });
    expect(again.issueNumber).toBe(issueNumber);
    expect(again.feedback).toContain(`#${watch.revert_pr_number}`);
    expect(again.feedback).toContain(CI);
    expect((await repoRow()).frozen).toBe(false);
    expect(h.sim.getIssue(h.repo, issueNumber).state).toBe("open");
    const steps = (await reasons(taskId)).filter((e) => e.actor === "watcher");
    expect(steps.map((e) => e.reason)).toEqual([
      expect.stringContaining("re-requested once"),
      expect.stringMatching(/revert #\d+ opened; repository frozen/),
      expect.stringContaining("queued again"),
    ]);
  });

  it("merge.revert: auto merges the revert of a tier-1 change by itself once its checks pass", async () => {
    await h.sim.push(h.repo, {
      branch: "main",
      files: { ".github/conveyor.yml": "version: 1\nmerge:\n  revert: auto\n" },
      user: "octocat",
    });
    await h.sim.idle();
    const { taskId } = await queueScriptedIssue(
      h,
      "Auto tweak",
      "write src/app.txt\n<<<\nline 1\nline 2\nBREAK\n>>>",
    );
    const done = await waitFor(
      async () => {
        const w = await watchOf(taskId);
        return w?.state === "reverted" ? w : undefined;
      },
      {
        timeoutMs: 50_000,
        message: "the revert merged by itself and the issue re-queued",
      },
    );
    await transitionTask(db(), {
      taskId: done.requeued_task_id!,
      to: "cancelled",
      actor: "test",
      reason: "the test stops here",
    });
    const revert = await h.sim.getPull(h.repo, done.revert_pr_number!);
    expect(revert.merged).toBe(true);
    expect(revert.merged_by?.login).toBe(h.sim.botLogin);
    const merge = h.sim.requests.find(
      (r) => r.method === "PUT" && r.path.endsWith(`/pulls/${done.revert_pr_number}/merge`),
    );
    expect(merge?.body).toMatchObject({ sha: revert.head.sha, merge_method: "squash" });
    expect(await h.sim.readFile(h.repo, "src/app.txt")).toBe("line 1\nline 2\nline 3\n");
    expect((await repoRow()).frozen).toBe(false);
  }, 60_000);
});

describe("conflicts retried on the new base", () => {
  it("two tasks touching one file: the first merges, the second is retried on the new base and merges without a person", async () => {
    const first = await queueScriptedIssue(
      h,
      "Shared one",
      "write src/shared.txt\n<<<\nfirst ONE\nsecond\nthird\n>>>",
    );
    const second = await queueScriptedIssue(
      h,
      "Shared two",
      "write src/shared.txt\n<<<\nfirst TWO\nsecond\nthird\n>>>",
    );
    gates = [
      // The first merges only once the second PR exists, so both started from the old base; the
      // second's checks finish only once the first merged, so it cannot overtake it.
      {
        branch: `conveyor/issue-${first.issueNumber}`,
        until: async () => (await prOf(second.taskId)) !== undefined,
      },
      {
        branch: `conveyor/issue-${second.issueNumber}`,
        until: async () => (await state(first.taskId)) === "merged",
      },
    ];
    await waitFor(async () => (await state(first.taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "the first merged",
    });
    await waitFor(async () => (await state(second.taskId)) === "merged", {
      timeoutMs: 90_000,
      message: "the second merged after a retry on the new base",
    });
    gates = [];
    const events = await reasons(second.taskId);
    const retry = events.find((e) => e.reason.includes("retry on the new base"));
    expect(retry?.actor).toBe("merger");
    // Queued by octocat; no person acted after that.
    const people = ["octocat", "maint", "reader"];
    expect(events.slice(1).filter((e) => people.includes(e.actor))).toEqual([]);
    expect(events.slice(1).some((e) => e.actor === "merger")).toBe(true);
    expect((await getTask(db(), second.taskId))?.conflictRetries).toBe(1);
    expect(await h.sim.readFile(h.repo, "src/shared.txt")).toBe("first TWO\nsecond\nthird\n");
  });
});
