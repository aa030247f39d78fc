import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { getTask } from "../src/store/tasks.ts";
import type { CiPush } from "./github-sim/ci-provider.ts";
import { createHarness, type Harness, WEBHOOK_SECRET } from "./helpers/conveyor-harness.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";
import { createWebhookRelay } from "./helpers/webhook-relay.ts";

/**
 * Merging through GitHub's merge queue (docs/merge-policy.md#merge-queue): the default branch's
 * ruleset requires the queue, so Conveyor enqueues a safe pull request instead of merging it, and
 * the queue's required check on the merge group decides. The CI provider passes every pull request
 * branch and fails a merge group whose commit carries `QUEUE_FAIL`.
 */
let h: Harness;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
let queueRuleset: { id: number };
const CI = "ci / test";

/** CI on a merge group whose commit carries `QUEUE_LOST` waits until the test opens this gate. */
let openGate: () => void = () => {};
const gate = new Promise<void>((resolve) => {
  openGate = resolve;
});

/** The same for `QUEUE_HOLD` (then green): the group waits while the repository is frozen. */
let openHoldGate: () => void = () => {};
const holdGate = new Promise<void>((resolve) => {
  openHoldGate = resolve;
});

/** And for `QUEUE_CANCEL` (then green): the group waits while the task is cancelled. */
let openCancelGate: () => void = () => {};
const cancelGate = new Promise<void>((resolve) => {
  openCancelGate = resolve;
});

async function conclude(push: CiPush) {
  if (!push.branch.startsWith("gh-readonly-queue/")) return "success" as const;
  const text = (await h.sim.readFile(push.repo, "src/queue.txt", push.sha)) ?? "";
  if (text.includes("QUEUE_LOST")) await gate;
  if (text.includes("QUEUE_HOLD")) await holdGate;
  if (text.includes("QUEUE_CANCEL")) await cancelGate;
  return /QUEUE_FAIL|QUEUE_LOST/.test(text) ? ("failure" as const) : ("success" as const);
}

beforeAll(async () => {
  h = await createHarness({
    files: { "src/queue.txt": "start\n", "src/other.txt": "other\n" },
    simulator: { ciProvider: { name: CI, conclude } },
    // The tests change the default branch's rules between pull requests: read them every time.
    start: { baseRulesTtlMs: 0 },
  });
  queueRuleset = h.sim.addRuleset(h.repo, {
    branches: ["~DEFAULT_BRANCH"],
    requiredChecks: [CI],
    mergeQueue: { merge_method: "SQUASH" },
  });
  scripted = await startScriptedRunner(h, "merge-queue-runner");
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const db = () => h.database.db;
const state = async (taskId: string) => (await getTask(db(), taskId))?.state;
const reasons = async (taskId: string) =>
  resultRows<{ reason: string; actor: string; to_state: string }>(
    await db().execute(
      sql`select reason, actor, to_state from task_events where task_id = ${taskId} order by event_id`,
    ),
  ).map((e) => e.reason);
const prOf = async (taskId: string) =>
  resultRows<{ pr_number: number; dequeue_reason: string | null; state: string }>(
    await db().execute(
      sql`select pr_number, dequeue_reason, state from pull_requests where task_id = ${taskId}`,
    ),
  )[0]!;
/** The task's pull request's entry in the simulator's merge queue, if it is there. */
const queued = async (taskId: string) => {
  const row = resultRows<{ pr_number: number }>(
    await db().execute(sql`select pr_number from pull_requests where task_id = ${taskId}`),
  )[0];
  return row && h.sim.mergeQueueOf(h.repo, "main").find((e) => e.number === row.pr_number);
};
const directMerges = () =>
  h.sim.requests.filter((r) => r.method === "PUT" && r.route?.endsWith("/merge"));

// Each case waits on a runner, CI on the merge group and the queue: up to a minute on a loaded machine.
describe("a repository that requires GitHub's merge queue", { timeout: 120_000 }, () => {
  it("merges a safe pull request through the queue, and watches the commit the queue made", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Queue tweak",
      "write src/queue.txt\n<<<\nqueued\n>>>",
    );
    await waitFor(async () => (await state(taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "the pull request merged through the queue",
    });
    const { pr_number: number } = await prOf(taskId);
    const pull = await h.sim.getPull(h.repo, number);
    expect(pull).toMatchObject({ merged: true, state: "closed" });
    expect(pull.merged_by?.login).toBe(h.sim.botLogin);
    const mergeSha = pull.merge_commit_sha!;
    expect(await h.sim.getBranchSha(h.repo, "main")).toBe(mergeSha);
    expect(await h.sim.readFile(h.repo, "src/queue.txt", "main")).toBe("queued\n");
    // Enqueued (GraphQL) with the head Conveyor wrote; never a direct merge.
    const enqueue = h.sim.requests.find(
      (r) => r.path === "/graphql" && JSON.stringify(r.body).includes("enqueuePullRequest"),
    );
    expect(enqueue?.body).toMatchObject({ variables: { expectedHeadOid: pull.head.sha } });
    expect(directMerges()).toEqual([]);
    const steps = await reasons(taskId);
    expect(steps).toEqual(
      expect.arrayContaining([
        expect.stringContaining("enqueuing"),
        expect.stringContaining("in GitHub's merge queue at position 1"),
        expect.stringContaining(`merged by the merge queue at ${mergeSha.slice(0, 7)}`),
      ]),
    );
    // The post-merge watch runs on the commit the queue produced.
    const [watch] = resultRows<{ merge_sha: string; checks: string[] }>(
      await db().execute(
        sql`select merge_sha, checks from merge_watches where task_id = ${taskId}`,
      ),
    );
    expect(watch).toMatchObject({ merge_sha: mergeSha, checks: [CI] });
  });

  it("records a queue merge that only the issue's closed event told of from the merger's read, with its watch", async () => {
    // GitHub sends `issues.closed` and the queue's own reports in no set order: here the reports
    // are lost, so the issue's close comes first and the merger's next read has to tell.
    const relay = await createWebhookRelay({
      kind: "pass",
      drop: (d) =>
        (d.event === "pull_request" && d.action === "closed") ||
        (d.event === "merge_group" && d.action === "destroyed"),
    });
    relay.setTarget(`${h.conveyor.url}/api/github/webhooks`);
    h.sim.setWebhook({ url: relay.url, secret: WEBHOOK_SECRET });
    try {
      const { taskId } = await queueScriptedIssue(
        h,
        "Queue with lost reports",
        "write src/other.txt\n<<<\nreports lost\n>>>",
      );
      await waitFor(async () => (await state(taskId)) === "merged", {
        timeoutMs: 60_000,
        message: "the task merged",
      });
      const { pr_number: number } = await prOf(taskId);
      const mergeSha = (await h.sim.getPull(h.repo, number)).merge_commit_sha!;
      expect(relay.dropped.map((d) => `${d.event}.${d.action}`)).toContain("pull_request.closed");
      expect(await reasons(taskId)).toEqual(
        expect.arrayContaining([
          expect.stringContaining(`merged by the merge queue at ${mergeSha.slice(0, 7)}`),
        ]),
      );
      const [watch] = resultRows<{ merge_sha: string }>(
        await db().execute(sql`select merge_sha from merge_watches where task_id = ${taskId}`),
      );
      expect(watch).toMatchObject({ merge_sha: mergeSha });
    } finally {
      h.sim.setWebhook({ url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
      await relay.close();
    }
  });

  it("leaves the pull request open with the reason on the task when the merge group fails", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Queue breaker",
      "write src/queue.txt\n<<<\nQUEUE_FAIL\n>>>",
    );
    await waitFor(async () => (await state(taskId)) === "waiting_human", {
      timeoutMs: 60_000,
      message: "the queue removed the pull request",
    });
    const row = await waitFor(
      async () => {
        const r = await prOf(taskId);
        return r.dequeue_reason?.includes("CI_FAILURE") ? r : undefined;
      },
      { timeoutMs: 20_000, message: "the dequeue reason recorded" },
    );
    expect(row.state).toBe("open");
    expect(await h.sim.getPull(h.repo, row.pr_number)).toMatchObject({
      state: "open",
      merged: false,
    });
    expect(await reasons(taskId)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/removed from the merge queue: a required check failed.*CI_FAILURE/),
      ]),
    );
    // Said on the pull request, and not enqueued again by the next passes.
    await waitFor(
      async () =>
        (await h.sim.listComments(h.repo, row.pr_number)).some((c) =>
          c.body?.includes("merge queue removed this pull request"),
        ),
      { timeoutMs: 20_000, message: "the dequeue comment" },
    );
    const enqueues = () =>
      h.sim.requests.filter(
        (r) => r.path === "/graphql" && JSON.stringify(r.body).includes("enqueuePullRequest"),
      ).length;
    const before = enqueues();
    // Two more merger passes read the pull request (it is waiting for a person) …
    // (the merger's one query for its facts, or its REST read of the pull request)
    const reads = () =>
      h.sim.requests.filter((r) => {
        if (r.method === "GET") return r.path.endsWith(`/pulls/${row.pr_number}`);
        const body = r.body as { query?: string; variables?: { number?: number } } | undefined;
        return (
          r.path === "/graphql" &&
          body?.variables?.number === row.pr_number &&
          Boolean(body.query?.includes("statusCheckRollup"))
        );
      }).length;
    const readsBefore = reads();
    await waitFor(async () => reads() >= readsBefore + 2, {
      timeoutMs: 20_000,
      message: "two more merger passes",
    });
    // … and neither enqueues the head the queue refused.
    expect(h.sim.mergeQueueOf(h.repo, "main")).toEqual([]);
    expect(enqueues()).toBe(before);
    expect(await state(taskId)).toBe("waiting_human");
  });

  it("catches a dequeue whose webhooks were lost on the merger's next read", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Queue lost",
      "write src/queue.txt\n<<<\nQUEUE_LOST\n>>>",
    );
    await waitFor(async () => (await queued(taskId))?.group !== undefined, {
      timeoutMs: 60_000,
      message: "the pull request is in the queue with a merge group",
    });
    expect(await state(taskId)).toBe("merging");
    // GitHub's webhooks stop reaching Conveyor while the queue removes the pull request.
    h.sim.setWebhook({ url: "http://127.0.0.1:9/lost", secret: WEBHOOK_SECRET });
    try {
      openGate();
      await waitFor(async () => (await queued(taskId)) === undefined, {
        timeoutMs: 20_000,
        message: "the queue removed it",
      });
      await waitFor(async () => (await state(taskId)) === "waiting_human", {
        timeoutMs: 20_000,
        message: "the merger noticed it left the queue",
      });
    } finally {
      h.sim.setWebhook({ url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    }
    expect(await reasons(taskId)).toEqual(
      expect.arrayContaining([expect.stringContaining("it is no longer in the queue")]),
    );
    expect(
      h.sim.requests.some((r) => JSON.stringify(r.body ?? "").includes("isInMergeQueue")),
    ).toBe(true);
    expect((await prOf(taskId)).state).toBe("open");
  });

  it("takes a queued pull request out of the queue while the repository is frozen, and enqueues it again after", async () => {
    const { taskId } = await queueScriptedIssue(
      h,
      "Queue hold",
      "write src/queue.txt\n<<<\nQUEUE_HOLD\n>>>",
    );
    await waitFor(async () => (await queued(taskId))?.group !== undefined, {
      timeoutMs: 60_000,
      message: "the pull request is in the queue with a merge group",
    });
    const freeze = (frozen: boolean) =>
      db().execute(
        sql`update repositories set frozen = ${frozen}, frozen_reason = ${frozen ? "a test freeze" : null}
            where repository_id = ${h.repositoryId}`,
      );
    await freeze(true);
    await waitFor(async () => (await queued(taskId)) === undefined, {
      timeoutMs: 20_000,
      message: "Conveyor took it out of the queue",
    });
    expect(await reasons(taskId)).toEqual(
      expect.arrayContaining([
        expect.stringContaining(
          "taken out of the merge queue: the repository is frozen (a test freeze)",
        ),
      ]),
    );
    expect((await prOf(taskId)).dequeue_reason).toBeNull();
    await freeze(false);
    openHoldGate();
    await waitFor(async () => (await state(taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "enqueued again and merged once unfrozen",
    });
  });

  it("takes a queued pull request out of the queue when its task is cancelled", async () => {
    const { taskId, issueNumber } = await queueScriptedIssue(
      h,
      "Queue cancel",
      "write src/queue.txt\n<<<\nQUEUE_CANCEL\n>>>",
    );
    await waitFor(async () => (await queued(taskId))?.group !== undefined, {
      timeoutMs: 60_000,
      message: "the pull request is in the queue with a merge group",
    });
    const { pr_number: number } = await prOf(taskId);
    await h.sim.comment(h.repo, issueNumber, "/cancel", { user: "maint" });
    await waitFor(async () => (await state(taskId)) === "cancelled", {
      timeoutMs: 20_000,
      message: "the task is cancelled",
    });
    await waitFor(async () => (await queued(taskId)) === undefined, {
      timeoutMs: 20_000,
      message: "Conveyor took it out of the queue",
    });
    openCancelGate();
    await h.sim.idle();
    expect(await h.sim.getPull(h.repo, number)).toMatchObject({ merged: false });
  });

  it("ignores a merge_group event about a pull request that is not Conveyor's", async () => {
    const require = createRequire(import.meta.url);
    const examples = JSON.parse(
      readFileSync(require.resolve("@octokit/webhooks-examples/api.github.com/index.json"), "utf8"),
    ) as { name: string; examples: Record<string, unknown>[] }[];
    const example = examples.find((e) => e.name === "merge_group")!.examples[0]!;
    const { pull } = await h.sim.openPullRequest(h.repo, {
      title: "Someone else's",
      head: await h.sim
        .push(h.repo, { branch: "theirs", files: { "x.txt": "x\n" }, user: "octocat" })
        .then(() => "theirs"),
      user: "octocat",
    });
    const group = example.merge_group as Record<string, unknown>;
    const payload = {
      ...example,
      action: "destroyed",
      reason: "merged",
      merge_group: {
        ...group,
        head_ref: `refs/heads/gh-readonly-queue/main/pr-${pull.number}-${"a".repeat(40)}`,
      },
      repository: { ...(example.repository as object), id: h.repositoryId, full_name: h.repo },
      installation: { id: h.installationId },
    };
    const delivery = await h.sim.sendWebhook("merge_group", payload);
    expect(delivery?.status).toBe(200);
    const outcome = await waitFor(
      async () =>
        resultRows<{ outcome: string }>(
          await db().execute(
            sql`select outcome from webhook_deliveries where delivery_id = ${delivery!.id}`,
          ),
        )[0]?.outcome.replace(/^owed$/, "") || undefined,
      { timeoutMs: 10_000, message: "the delivery was handled" },
    );
    expect(outcome).toMatch(/not a pull request Conveyor enqueued/);
    expect(await h.sim.getPull(h.repo, pull.number)).toMatchObject({ state: "open" });
  });
  it("enqueues when a direct merge is refused for a queue the rules do not list (branch protection)", async () => {
    h.sim.removeRuleset(h.repo, queueRuleset.id);
    h.sim.setBranchProtection(h.repo, "main", { contexts: [CI], mergeQueue: true });
    const mergesBefore = directMerges().length;
    const { taskId } = await queueScriptedIssue(
      h,
      "Protected queue",
      "write src/other.txt\n<<<\nprotected\n>>>",
    );
    await waitFor(async () => (await state(taskId)) === "merged", {
      timeoutMs: 60_000,
      message: "merged through the queue after the 405",
    });
    // GitHub refused the direct merge (usually once; a loaded run has seen a second refusal
    // before the enqueue), and the pull request then merged through the queue. Only this pull
    // request's refusals count: the earlier cases' pull requests conflict with the merges since,
    // and one retried on the new base may meet the same 405 meanwhile.
    const { pr_number: number } = await prOf(taskId);
    const refusals = directMerges()
      .slice(mergesBefore)
      .filter((r) => r.status === 405 && r.path.includes(`/pulls/${number}/merge`));
    expect(refusals.length).toBeGreaterThan(0);
    const pull = await h.sim.getPull(h.repo, number);
    expect(await reasons(taskId)).toEqual(
      expect.arrayContaining([
        expect.stringContaining("enqueuing"),
        expect.stringContaining(
          `merged by the merge queue at ${pull.merge_commit_sha!.slice(0, 7)}`,
        ),
      ]),
    );
  });
});
