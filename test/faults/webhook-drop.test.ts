import { sql } from "drizzle-orm";
import { afterEach, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import { getTask, listTaskEvents } from "../../src/store/tasks.ts";
import { startCiBot } from "../helpers/ci-bot.ts";
import { createHarness, type Harness } from "../helpers/conveyor-harness.ts";
import {
  expectNothingLostOrDuplicated,
  openScriptedIssue,
  openScriptedIssues,
  seededTasks,
  seedFiles,
} from "../helpers/fault-ledger.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import { waitFor } from "../helpers/wait-for.ts";
import { createWebhookRelay, prng, type WebhookRelay } from "../helpers/webhook-relay.ts";

/** Tier-1 tasks Conveyor merges by itself, and tier-2 ones (a new file) a maintainer merges. */
const AUTO = 2;
const BY_HAND = 2;
let h: Harness | undefined;
let relay: WebhookRelay | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await relay?.close();
  await h?.close();
  relay = undefined;
  h = undefined;
});

it("dropped webhooks (labels, checks, merges, a quarter of the rest): reconciliation and resync recover every task, merged once", async (context) => {
  // Reconciliation every ~2 s: the periodic safety net, not a test calling it.
  h = await createHarness({
    files: seedFiles(AUTO),
    env: { CONVEYOR_RECONCILE_MINUTES: "0.03" },
  });
  const harness = h;
  const rand = prng(424242);
  // Issues are told apart by their titles (`Fault task k`, `By hand k`): the label events of the
  // odd ones are lost; so are GitHub's `pull_request.closed` for the hand merges, and for the last
  // one the issue's `closed` too, so only the merger's resync can find out.
  const numberIn = (title: string | undefined) => Number(/ (\d+)$/.exec(title ?? "")?.[1] ?? 0);
  const last = AUTO + BY_HAND;
  const mergesToDrop = new Set<number>();
  relay = await createWebhookRelay({
    kind: "pass",
    drop(delivery) {
      const payload = JSON.parse(delivery.body) as {
        issue?: { title: string };
        pull_request?: { number: number };
      };
      const k = numberIn(payload.issue?.title);
      const byHand = payload.issue?.title.startsWith("By hand") ?? false;
      if (delivery.event === "issues" && delivery.action === "labeled") return k % 2 === 1;
      if (delivery.event === "pull_request" && delivery.action === "closed") {
        return mergesToDrop.has(payload.pull_request?.number ?? 0);
      }
      if (delivery.event === "issues" && delivery.action === "closed" && byHand) return k === last;
      return !byHand && rand() < 0.25;
    },
  });
  relay.setTarget(`${harness.conveyor.url}/api/github/webhooks`);
  harness.sim.setWebhook({ url: relay.url, secret: "harness-webhook-secret" });
  const ci = startCiBot(harness.sim, harness.repo);
  cleanups.push(() => ci.stop());
  for (const name of ["drop-a", "drop-b"]) {
    const runner = await startScriptedRunner(harness, name);
    cleanups.push(() => runner.stop());
  }

  const issues = await openScriptedIssues(harness.sim, harness.repo, [
    ...seededTasks(1, AUTO),
    ...Array.from({ length: BY_HAND }, (_, i) => AUTO + 1 + i).map((k) => ({
      title: `By hand ${k}`,
      script: `write work/new-${k}.txt\n<<<\nnew\n>>>`,
      file: `work/new-${k}.txt`,
    })),
  ]);
  const labelsDropped = issues.filter((_, i) => (i + 1) % 2 === 1).map((i) => i.issueNumber);

  // A maintainer merges the tier-2 pull requests by hand, and GitHub's `closed` event is lost.
  for (const { issueNumber } of issues.slice(AUTO)) {
    const pr = await waitFor(
      async () => {
        const [row] = resultRows<{ pr_number: number; state: string }>(
          await harness.database.db.execute(sql`
            select p.pr_number, t.state from pull_requests p join tasks t using (task_id)
            where t.issue_number = ${issueNumber}`),
        );
        return row?.state === "waiting_human" ? row : undefined;
      },
      { timeoutMs: 30_000, message: `a tier-2 PR for #${issueNumber} waiting for a human` },
    );
    mergesToDrop.add(pr.pr_number);
    await harness.sim.mergePullRequest(harness.repo, pr.pr_number, {
      user: "maint",
      method: "squash",
    });
  }

  const dropping = relay;
  await expectNothingLostOrDuplicated(harness, issues, {
    context,
    faults: () => dropping.dropped.length,
    timeoutMs: 45_000,
  });
  // What was dropped: the labels of half the issues (only reconciliation could find those), the
  // hand merges, and others at random.
  const dropped = relay.dropped.map((d) => `${d.event}.${d.action}`);
  // Each once, however often the redelivery loop had GitHub send it again (dropped again).
  const labeledIds = relay.dropped.filter((d) => d.event === "issues" && d.action === "labeled");
  expect(new Set(labeledIds.map((d) => d.id)).size).toBe(labelsDropped.length);
  expect(dropped.filter((d) => d === "pull_request.closed").length).toBeGreaterThanOrEqual(BY_HAND);
  const reasons = resultRows<{
    issue_number: number;
    to_state: string;
    actor: string;
    reason: string;
  }>(
    await harness.database.db.execute(sql`
      select t.issue_number, e.to_state, e.actor, e.reason from task_events e join tasks t using (task_id)
      where (e.from_state is null and e.reason like 'reconciliation:%') or e.to_state = 'merged'
      order by e.event_id`),
  );
  // Every issue whose label event was lost got its task from reconciliation (others may have
  // too, when a pass ran between the label and its webhook).
  const reconciled = new Set(
    reasons.filter((r) => r.reason.startsWith("reconciliation:")).map((r) => r.issue_number),
  );
  expect(labelsDropped.filter((n) => !reconciled.has(n))).toEqual([]);
  // Both hand merges were recorded, the second (both events lost) by the merger's resync; the
  // first by the issue's `closed` event or the resync, whichever came first (the next test pins
  // the former down).
  const second = issues.at(-1)!.issueNumber;
  expect(reasons.find((r) => r.issue_number === second && r.to_state === "merged")).toMatchObject({
    actor: "merger",
  });
}, 90_000);

it("a hand merge whose pull_request.closed is lost is recorded from the issue's closed event", async () => {
  // No periodic resync here: only the issue's `closed` event can tell Conveyor.
  h = await createHarness({ start: { mergerIntervalMs: 600_000 } });
  const harness = h;
  relay = await createWebhookRelay({
    kind: "pass",
    drop: (d) => d.event === "pull_request" && d.action === "closed",
  });
  relay.setTarget(`${harness.conveyor.url}/api/github/webhooks`);
  harness.sim.setWebhook({ url: relay.url, secret: "harness-webhook-secret" });
  const runner = await startScriptedRunner(harness, "hand-merge");
  cleanups.push(() => runner.stop());
  const issueNumber = await openScriptedIssue(
    harness.sim,
    harness.repo,
    "Merged by hand",
    "write work/by-hand.txt\n<<<\nnew\n>>>",
  );
  const pr = await waitFor(
    async () => {
      const [row] = resultRows<{ pr_number: number; task_id: string }>(
        await harness.database.db.execute(sql`
          select p.pr_number, t.task_id from pull_requests p join tasks t using (task_id)
          where t.issue_number = ${issueNumber}`),
      );
      return row;
    },
    { timeoutMs: 30_000, message: "a pull request" },
  );
  await harness.sim.mergePullRequest(harness.repo, pr.pr_number, {
    user: "maint",
    method: "squash",
  });
  await waitFor(async () => (await getTask(harness.database.db, pr.task_id))?.state === "merged", {
    timeoutMs: 10_000,
    message: "the task merged",
  });
  const events = await listTaskEvents(harness.database.db, pr.task_id);
  expect(events.at(-1)).toMatchObject({
    actor: "maint",
    reason: `pull request #${pr.pr_number} merged (the issue was closed by the merge)`,
  });
  expect(relay.dropped.map((d) => `${d.event}.${d.action}`)).toEqual(["pull_request.closed"]);
  expect(harness.sim.violations).toEqual([]);
});
