import { sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import { startCiBot } from "../helpers/ci-bot.ts";
import { createHarness, type Harness, WEBHOOK_SECRET } from "../helpers/conveyor-harness.ts";
import {
  expectNothingLostOrDuplicated,
  openScriptedIssues,
  seededTasks,
  seedFiles,
} from "../helpers/fault-ledger.ts";
import { startScriptedRunner } from "../helpers/spawn-runner.ts";
import { waitFor } from "../helpers/wait-for.ts";
import { createWebhookRelay, type WebhookRelay } from "../helpers/webhook-relay.ts";

/** Tier-1 tasks Conveyor merges by itself, and tier-2 ones (a new file) a maintainer merges. */
const AUTO = 2;
const BY_HAND = 2;
let h: Harness | undefined;
let relay: WebhookRelay | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await relay?.close();
  await h?.close();
});

it("every webhook delivered twice and out of order: every task is merged once", async (context) => {
  h = await createHarness({ files: seedFiles(AUTO) });
  const harness = h;
  relay = await createWebhookRelay({
    kind: "duplicate-and-shuffle",
    seed: 20260101,
    // Wide enough that a batch holds several deliveries to shuffle: Conveyor makes few writes (so
    // GitHub sends few webhooks) per task.
    windowMs: 300,
  });
  relay.setTarget(`${harness.conveyor.url}/api/github/webhooks`);
  harness.sim.setWebhook({ url: relay.url, secret: WEBHOOK_SECRET });
  const ci = startCiBot(harness.sim, harness.repo);
  cleanups.push(() => ci.stop());
  for (const name of ["twice-a", "twice-b"]) {
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
  // A maintainer merges the tier-2 pull requests: GitHub then sends the PR's and the issue's
  // `closed` events, which arrive twice each, in any order.
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
    await harness.sim.mergePullRequest(harness.repo, pr.pr_number, {
      user: "maint",
      method: "squash",
    });
  }

  const relayed = relay;
  await expectNothingLostOrDuplicated(harness, issues, {
    context,
    faults: () => relayed.stats().duplicates + relayed.stats().reordered,
    timeoutMs: 45_000,
    beforeAudit: async () => {
      await harness.sim.idle();
      await relayed.flush();
    },
  });
  // A loop may still make GitHub send one more webhook after the audit (a status comment edited,
  // a merge commit watched): pass those on too, then every delivery has gone twice.
  await waitFor(
    async () => {
      await harness.sim.idle();
      await relayed.flush();
      return relayed.stats().duplicates === relayed.received.length;
    },
    { timeoutMs: 15_000, message: "every delivery relayed twice" },
  );
  const { duplicates, reordered } = relayed.stats();
  // Every delivery really went twice, several out of order (how many depends on how many share
  // a relay window, fewer on a loaded machine), and each copy was answered without an error (a
  // copy racing its twin included).
  expect(duplicates).toBe(relay.received.length);
  expect(reordered).toBeGreaterThanOrEqual(5);
  const failed = relay.forwarded.filter((f) => !f.status || f.status >= 300);
  expect(failed).toEqual([]);
  // Every delivery is accounted for: recorded (once: the delivery id is the key). A delivery
  // without an effect is answered at once and its record joins the next batch, so the last ones
  // may still be on their way.
  const unrecorded = async () => {
    const recorded = new Set(
      resultRows<{ delivery_id: string }>(
        await harness.database.db.execute(sql`select delivery_id from webhook_deliveries`),
      ).map((r) => r.delivery_id),
    );
    return relayed.received.filter((d) => !recorded.has(d.id)).map((d) => `${d.event}.${d.action}`);
  };
  await waitFor(async () => (await unrecorded()).length === 0, {
    timeoutMs: 5_000,
    message: "every delivery recorded",
  }).catch(() => {});
  expect(await unrecorded()).toEqual([]);
}, 90_000);
