import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness, WEBHOOK_SECRET } from "./helpers/conveyor-harness.ts";
import { waitFor } from "./helpers/wait-for.ts";

let h: Harness;

beforeAll(async () => {
  // Passes every 300 ms: the loop itself, not the test, brings lost deliveries back.
  h = await createHarness({ start: { redeliveryIntervalMs: 300 } });
});
afterAll(async () => {
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

async function taskOf(issueNumber: number) {
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(
      sql`select task_id from tasks where issue_number = ${issueNumber} order by created_at desc limit 1`,
    ),
  );
  return row ? getTask(h.database.db, row.task_id) : undefined;
}

const reactionsOn = (commentId: number) =>
  h.sim.listReactions(h.repo, { comment: commentId }).map((r) => r.content);

describe("lost webhook deliveries come back", () => {
  it("redelivers a dropped issue_comment with /retry, and Conveyor acts on it", async () => {
    const { issue } = await h.sim.openIssue(h.repo, {
      title: "Retry me",
      body: "Do it.",
      user: "octocat",
    });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    const task = await waitFor(() => taskOf(issue.number), { message: "the task" });
    await h.database.db.execute(
      sql`update tasks set state = 'dead', attempts = 3, last_error = 'boom' where task_id = ${task.taskId}`,
    );

    // Conveyor is unreachable while the maintainer comments: GitHub records a failed delivery and
    // never retries it by itself.
    const url = `${h.conveyor.url}/api/github/webhooks`;
    h.sim.setWebhook({ url: "http://127.0.0.1:1/unreachable", secret: WEBHOOK_SECRET });
    const { comment, delivery } = await h.sim.comment(h.repo, issue.number, "/retry", {
      user: "octocat",
    });
    h.sim.setWebhook({ url, secret: WEBHOOK_SECRET });
    expect(delivery!.status).toBeUndefined();
    expect(await taskOf(issue.number)).toMatchObject({ state: "dead" });

    // The redelivery loop finds it in the App's delivery log and asks GitHub to send it again.
    const revived = await waitFor(
      async () => {
        const now = await taskOf(issue.number);
        return now?.state === "queued" && now;
      },
      { timeoutMs: 15_000, message: "the task revived by the redelivered /retry" },
    );
    expect(revived).toMatchObject({ taskId: task.taskId, attempts: 0 });
    await waitFor(() => reactionsOn(comment.id).includes("+1"), { message: "👍 on the comment" });

    // GitHub's way: the same X-GitHub-Delivery, a new attempt id, marked as a redelivery.
    await h.sim.idle();
    const attempts = h.sim.deliveries.filter((d) => d.id === delivery!.id);
    expect(attempts[0]).toMatchObject({ redelivery: false, status: undefined });
    const redelivered = attempts.find((d) => d.redelivery && d.status === 200);
    expect(redelivered).toBeDefined();
    expect(redelivered!.hookDeliveryId).not.toBe(delivery!.hookDeliveryId);
    expect(
      h.sim.requests.some(
        (r) => r.route === "/app/hook/deliveries/{delivery_id}/attempts" && r.auth === "app",
      ),
    ).toBe(true);

    // Delivered now: later passes leave it alone, and it acted once.
    const report = await h.conveyor.redeliver();
    expect(report).toMatchObject({ redelivered: 0 });
    await h.sim.idle();
    expect(h.sim.deliveries.filter((d) => d.id === delivery!.id && d.status === 200)).toHaveLength(
      1,
    );
    const [{ n }] = resultRows<{ n: number }>(
      await h.database.db.execute(
        sql`select count(*)::int as n from task_events where task_id = ${task.taskId} and from_state = 'dead'`,
      ),
    ) as [{ n: number }];
    expect(n).toBe(1);

    const metrics = await (await fetch(`${h.conveyor.url}/metrics`)).text();
    expect(metrics).toMatch(/^conveyor_webhook_redeliveries_total\{outcome="requested"\} [1-9]/m);
  });
});
