import { execFileSync } from "node:child_process";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { isStatusComment } from "../src/core/status-comment.ts";
import { getTask, listTaskEvents } from "../src/store/tasks.ts";
import { createHarness, type Harness, WEBHOOK_SECRET } from "./helpers/conveyor-harness.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

let h: Harness;
/** Above what the other tests need from one person, so only the rate-limit test meets it. */
const PER_MINUTE = 40;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;

beforeAll(async () => {
  h = await createHarness({
    files: { "src/app.txt": "v1\n" },
    start: { commandsPerMinute: PER_MINUTE },
  });
  h.sim.setPermission(h.repo, "triager", "triage");
  h.sim.createUser("helper-bot[bot]", { type: "Bot" });
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

/** Posts a comment as `user` and waits for Conveyor's final reaction on it. */
async function say(number: number, body: string, user: string) {
  const { comment, delivery } = await h.sim.comment(h.repo, number, body, { user });
  const reaction = await waitFor(
    () => {
      const contents = h.sim.listReactions(h.repo, { comment: comment.id }).map((r) => r.content);
      return contents.find((c) => c === "+1" || c === "-1");
    },
    { timeoutMs: 10_000, message: `a reaction on "${body}" by ${user}` },
  );
  const reactions = h.sim.listReactions(h.repo, { comment: comment.id }).map((r) => r.content);
  return { comment, delivery: delivery!, reaction, reactions };
}

/** Conveyor's reply that mentions `user` and contains `text`. */
const reply = (number: number, user: string, text: string) =>
  waitFor(
    () =>
      h.sim
        .listComments(h.repo, number)
        .find((c) => c.body?.startsWith(`@${user}`) && c.body.includes(text)),
    { timeoutMs: 10_000, message: `a reply to ${user} containing ${text}` },
  );

async function taskOf(issueNumber: number) {
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(
      sql`select task_id from tasks where issue_number = ${issueNumber} order by created_at desc limit 1`,
    ),
  );
  return row ? getTask(h.database.db, row.task_id) : undefined;
}

const lastEvent = async (taskId: string) => (await listTaskEvents(h.database.db, taskId)).at(-1);

async function openIssue(title: string) {
  const { issue } = await h.sim.openIssue(h.repo, { title, body: "Do it.", user: "octocat" });
  return issue.number;
}

describe("slash commands on issues (no runner: tasks stay queued)", () => {
  it("/queue by a write user queues the issue, labels it and reacts 👀 then 👍", async () => {
    const n = await openIssue("Queue me by command");
    const said = await say(n, "/queue", "octocat");
    expect(said.reaction).toBe("+1");
    expect(said.reactions).toContain("eyes");
    const task = await taskOf(n);
    expect(task).toMatchObject({ state: "queued", queuedBy: "octocat" });
    await waitFor(() =>
      h.sim
        .getIssue(h.repo, n)
        .labels.some((l) => (typeof l === "string" ? l : l.name) === "conveyor"),
    );
    // The label's own webhook (sent by Conveyor, a bot) changes nothing.
    expect((await taskOf(n))?.taskId).toBe(task!.taskId);
  });

  it("refuses /queue from a read user with 👎 and a reply saying who may", async () => {
    const n = await openIssue("Reader wants this");
    const said = await say(n, "/queue", "reader");
    expect(said.reaction).toBe("-1");
    await reply(n, "reader", "needs write access or more; @reader has read access");
    expect(await taskOf(n)).toBeUndefined();
  });

  it("ignores bots, including Conveyor itself", async () => {
    const n = await openIssue("Bot comment");
    const { comment } = await h.sim.comment(h.repo, n, "/queue", { user: "helper-bot[bot]" });
    await h.sim.idle();
    await h.conveyor.reconcile(); // a full pass, so the notifier had its chance too
    expect(h.sim.listReactions(h.repo, { comment: comment.id })).toEqual([]);
    expect(await taskOf(n)).toBeUndefined();
  });

  it("steers a queued task: priority, hold, unhold, status, cancel — each an event with the actor", async () => {
    const n = await openIssue("Steer me");
    await say(n, "/queue", "octocat");
    const id = (await taskOf(n))!.taskId;

    expect((await say(n, "/priority high", "octocat")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ lane: "high" });
    expect(await lastEvent(id)).toMatchObject({
      actor: "octocat",
      reason: "/priority high by @octocat",
    });

    // urgent needs maintain
    expect((await say(n, "/priority urgent", "octocat")).reaction).toBe("-1");
    await reply(n, "octocat", "needs maintain access");
    expect((await say(n, "/priority urgent", "maint")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ lane: "urgent" });

    // triage may hold, not unhold
    expect((await say(n, "/hold legal review", "triager")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ state: "held" });
    expect(await lastEvent(id)).toMatchObject({ actor: "triager", to_state: "held" });
    expect((await say(n, "/unhold", "triager")).reaction).toBe("-1");
    expect((await say(n, "/unhold", "octocat")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ state: "queued" });

    expect((await say(n, "/status", "reader")).reaction).toBe("+1");
    await reply(n, "reader", "**queued** in the urgent lane");

    expect((await say(n, "/cancel not needed", "octocat")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ state: "cancelled" });
    expect(await lastEvent(id)).toMatchObject({
      actor: "octocat",
      reason: "cancelled by octocat: not needed",
    });
  });

  it("/retry revives a dead task; /queue re-approves an edited snapshot", async () => {
    const n = await openIssue("Retry me");
    await say(n, "/queue", "octocat");
    const id = (await taskOf(n))!.taskId;
    await h.sim.editIssue(h.repo, n, { body: "Do it better." }, { sender: "octocat" });
    expect((await say(n, "/queue", "octocat")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ taskId: id, body: "Do it better." });

    await h.database.db.execute(
      sql`update tasks set state = 'dead', attempts = 3, last_error = 'boom' where task_id = ${id}`,
    );
    expect((await say(n, "/retry", "reader")).reaction).toBe("-1");
    expect((await say(n, "/retry", "octocat")).reaction).toBe("+1");
    expect(await taskOf(n)).toMatchObject({ taskId: id, state: "queued", attempts: 0 });
    expect(await lastEvent(id)).toMatchObject({ actor: "octocat", from_state: "dead" });
    await say(n, "/cancel", "octocat");
  });

  it("answers unknown verbs and bad arguments with what is valid, and /help with the table", async () => {
    const n = await openIssue("Confused");
    expect((await say(n, "/frobnicate\n/priority asap", "octocat")).reaction).toBe("-1");
    const r = await reply(n, "octocat", "unknown command `/frobnicate`");
    expect(r.body).toContain("valid on an issue: `/queue`");
    expect(r.body).toContain("`/priority` takes exactly one lane");
    expect((await say(n, "/help", "reader")).reaction).toBe("+1");
    await reply(n, "reader", "| `/priority <urgent|high|normal|low>` | write (urgent: maintain) |");
  });

  it("acts once on a redelivered event, and never on an edited comment (logged as tampering)", async () => {
    const n = await openIssue("Twice");
    const said = await say(n, "/queue", "octocat");
    const events = (await listTaskEvents(h.database.db, (await taskOf(n))!.taskId)).length;
    await h.sim.redeliver(said.delivery.id);
    await h.sim.idle();
    expect(await listTaskEvents(h.database.db, (await taskOf(n))!.taskId)).toHaveLength(events);
    // The status comment is written after the reaction; count from once it is there.
    await waitFor(() => h.sim.listComments(h.repo, n).some((c) => isStatusComment(c.body)), {
      message: "the status comment",
    });
    const replies = h.sim.listComments(h.repo, n).length;

    // Someone else edits a comment to carry /cancel: nothing happens.
    const { comment } = await h.sim.comment(h.repo, n, "nice idea", { user: "reader" });
    await h.sim.editComment(h.repo, comment.id, "/cancel", { user: "octocat" });
    await h.sim.idle();
    expect(await taskOf(n)).toMatchObject({ state: "queued" });
    const [row] = resultRows<{ outcome: string }>(
      await h.database.db.execute(
        sql`select outcome from webhook_deliveries where event = 'issue_comment' and action = 'edited' order by received_at desc limit 1`,
      ),
    );
    expect(row?.outcome).toBe("tampering: edited by octocat, not reader");
    expect(h.sim.listComments(h.repo, n)).toHaveLength(replies + 1);
    await say(n, "/cancel", "octocat");
  });

  it("freezes and unfreezes the repository for maintainers only", async () => {
    const n = await openIssue("Release week");
    expect((await say(n, "/freeze release week", "octocat")).reaction).toBe("-1");
    expect((await say(n, "/freeze release week", "maint")).reaction).toBe("+1");
    const frozen = async () =>
      resultRows<{ frozen: boolean; frozen_reason: string | null }>(
        await h.database.db.execute(
          sql`select frozen, frozen_reason from repositories where repository_id = ${h.repositoryId}`,
        ),
      )[0];
    expect(await frozen()).toEqual({ frozen: true, frozen_reason: "release week" });
    expect((await say(n, "/unfreeze", "maint")).reaction).toBe("+1");
    expect(await frozen()).toEqual({ frozen: false, frozen_reason: null });
  });

  it("rate-limits one person's command comments", async () => {
    const n = await openIssue("Chatty");
    await h.database.db.execute(sql`delete from commands where actor = 'chatty'`);
    h.sim.setPermission(h.repo, "chatty", "read");
    for (let i = 0; i < PER_MINUTE; i++) {
      expect((await say(n, `/status\n\n${i}`, "chatty")).reaction).toBe("+1");
    }
    expect((await say(n, "/status", "chatty")).reaction).toBe("-1");
    await reply(n, "chatty", "rate limited");
  });

  it("keeps a /queue'd task through reconciliation while its label may be on its way; a minute on, a missing label cancels it", async () => {
    const n = await openIssue("Label on its way");
    await say(n, "/queue", "octocat");
    const hasLabel = () =>
      h.sim
        .getIssue(h.repo, n)
        .labels.some((l) => (typeof l === "string" ? l : l.name) === "conveyor");
    await waitFor(hasLabel);
    // The issue without its label, unannounced: what a pass sees between the queueing and the
    // command's label write.
    const webhook = { url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET };
    h.sim.setWebhook(undefined);
    await h.sim.removeLabel(h.repo, n, "conveyor", { sender: "octocat" });
    h.sim.setWebhook(webhook);
    const task = (await taskOf(n))!;
    await h.conveyor.reconcile();
    expect((await taskOf(n))?.state).toBe("queued");
    await h.database.db.execute(
      sql`update task_events set at = at - interval '2 minutes' where task_id = ${task.taskId}`,
    );
    await h.conveyor.reconcile();
    expect(await lastEvent(task.taskId)).toMatchObject({
      to_state: "cancelled",
      actor: "reconciler",
      reason: "reconciliation: label conveyor removed",
    });
  });
});

describe("slash commands on pull requests", { timeout: 90_000 }, () => {
  beforeAll(async () => {
    scripted = await startScriptedRunner(h, "commands-runner");
  });

  async function openPr(title: string, script: string) {
    const { issueNumber, taskId } = await queueScriptedIssue(h, title, script);
    const pr = await waitFor(
      async () => {
        const [p] = resultRows<{ pr_number: number; head_sha: string }>(
          await h.database.db.execute(
            sql`select pr_number, head_sha from pull_requests where task_id = ${taskId}`,
          ),
        );
        const task = await getTask(h.database.db, taskId);
        return p && task?.publishedGeneration === task?.generation ? p : undefined;
      },
      { timeoutMs: 30_000, message: `a PR for "${title}"\n${scripted?.runner.output()}` },
    );
    return { issueNumber, taskId, ...pr };
  }
  const state = async (taskId: string) => (await getTask(h.database.db, taskId))?.state;
  const headOf = async (taskId: string) =>
    resultRows<{ head_sha: string }>(
      await h.database.db.execute(
        sql`select head_sha from pull_requests where task_id = ${taskId}`,
      ),
    )[0]!.head_sha;
  /** The head of the task's PR once an attempt after `previous` is published on it. */
  const publishedHeadAfter = (taskId: string, previous: string) =>
    waitFor(
      async () => {
        const head = await headOf(taskId);
        const task = await getTask(h.database.db, taskId);
        return head !== previous && task?.publishedGeneration === task?.generation
          ? head
          : undefined;
      },
      { timeoutMs: 30_000, message: `a head after ${previous.slice(0, 7)}` },
    );
  const greenCi = (sha: string) =>
    h.sim.createCheckRun(h.repo, {
      name: "ci",
      headSha: sha,
      status: "completed",
      conclusion: "success",
    });
  const safety = async (sha: string) =>
    (await h.sim.listCheckRuns(h.repo, sha)).find((c) => c.name === "Conveyor / safety");

  it("/approve binds to the head: a new push needs a new approval, a stale SHA is refused", async () => {
    const pr = await openPr(
      "Tier two",
      "copy-prompt PROMPT.md\nwrite src/helper.txt\n<<<\nhelp\n>>>",
    );
    expect((await say(pr.pr_number, "/approve", "reader")).reaction).toBe("-1");
    expect((await say(pr.pr_number, "/approve", "octocat")).reaction).toBe("+1");
    expect(await lastEvent(pr.taskId)).toMatchObject({
      actor: "octocat",
      reason: `/approve ${pr.head_sha.slice(0, 7)} by @octocat`,
    });
    // No CI yet, so no merge; a follow-up pushes a new head.
    await say(pr.pr_number, "/fix also add a newline", "octocat");
    const newHead = await publishedHeadAfter(pr.taskId, pr.head_sha);
    await greenCi(newHead);
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human", {
      timeoutMs: 40_000,
      message: "waiting for an approval of the new head",
    });
    const check = await waitFor(() => safety(newHead));
    expect(check.output.summary).toMatch(/tier 2 needs 1 approval on `[0-9a-f]{7}`, has 0/);

    const stale = await say(pr.pr_number, `/approve ${pr.head_sha.slice(0, 7)}`, "octocat");
    expect(stale.reaction).toBe("-1");
    await reply(pr.pr_number, "octocat", "is not the head");

    expect((await say(pr.pr_number, `/approve ${newHead.slice(0, 10)}`, "maint")).reaction).toBe(
      "+1",
    );
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 40_000,
      message: "merged after /approve",
    });
  });

  it("/hold keeps a PR from merging, /status explains, /unhold and /merge let it go", async () => {
    const pr = await openPr("Hold me", "write src/held.txt\n<<<\nheld\n>>>");
    expect((await say(pr.pr_number, "/hold", "triager")).reaction).toBe("+1");
    await say(pr.pr_number, "/approve", "maint");
    await greenCi(pr.head_sha);
    await waitFor(async () => (await safety(pr.head_sha))?.output.summary?.includes("/hold"), {
      timeoutMs: 40_000,
      message: "the verdict shows the hold",
    });
    expect(await state(pr.taskId)).toBe("held");
    expect((await say(pr.pr_number, "/status", "reader")).reaction).toBe("+1");
    await reply(pr.pr_number, "reader", "held by /hold");

    expect((await say(pr.pr_number, "/merge", "octocat")).reaction).toBe("-1");
    expect((await say(pr.pr_number, "/unhold\n/merge", "octocat")).reaction).toBe("+1");
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 40_000,
      message: "merged after /unhold",
    });
  });

  it("/freeze shows in the verdict and stops the merge until /unfreeze", async () => {
    const pr = await openPr("Frozen", "write src/frozen.txt\n<<<\nfrozen\n>>>");
    expect((await say(pr.pr_number, "/freeze release day", "maint")).reaction).toBe("+1");
    await say(pr.pr_number, "/approve", "maint");
    await greenCi(pr.head_sha);
    await waitFor(
      async () => (await safety(pr.head_sha))?.output.summary?.includes("release day"),
      { timeoutMs: 40_000, message: "the verdict shows the freeze" },
    ).catch(async (error: Error) => {
      const check = (await safety(pr.head_sha))?.output;
      throw new Error(`${error.message}; task ${await state(pr.taskId)}, check: ${check?.title}`);
    });
    expect(await state(pr.taskId)).not.toBe("merged");
    expect((await say(pr.pr_number, "/unfreeze", "maint")).reaction).toBe("+1");
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 40_000,
      message: "merged after /unfreeze",
    });
  });

  it("/unapprove withdraws, /refresh re-reads, /update rebuilds on the default branch, /retry runs again", async () => {
    const pr = await openPr("Rebuild me", "append src/rebuild.txt\n<<<\nonce more\n>>>");
    await say(pr.pr_number, "/approve", "maint");
    expect((await say(pr.pr_number, "/unapprove", "maint")).reaction).toBe("+1");
    expect(await lastEvent(pr.taskId)).toMatchObject({
      actor: "maint",
      reason: "/unapprove by @maint",
    });
    await greenCi(pr.head_sha);
    expect((await say(pr.pr_number, "/refresh", "reader")).reaction).toBe("+1");
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human", {
      timeoutMs: 40_000,
      message: "waiting for an approval again",
    });

    // The default branch moves on; /update rebuilds the change on its new head.
    const { sha: mainHead } = await h.sim.push(h.repo, {
      branch: "main",
      files: { "src/other.txt": "other\n" },
      user: "maint",
    });
    expect((await say(pr.pr_number, "/update", "reader")).reaction).toBe("-1");
    expect((await say(pr.pr_number, "/update", "octocat")).reaction).toBe("+1");
    const rebuilt = await publishedHeadAfter(pr.taskId, pr.head_sha);
    const parents = execFileSync(
      "git",
      ["--git-dir", h.sim.gitDir(h.repo), "rev-list", "--parents", "-n", "1", rebuilt],
      { encoding: "utf8" },
    ).trim();
    expect(parents).toBe(`${rebuilt} ${mainHead}`);
    expect((await getTask(h.database.db, pr.taskId))?.freshBase).toBe(false);

    await waitFor(async () => ["review", "waiting_human"].includes((await state(pr.taskId))!));
    const before = (await getTask(h.database.db, pr.taskId))!.generation;
    expect((await say(pr.pr_number, "/retry", "octocat")).reaction).toBe("+1");
    await waitFor(
      async () => {
        const task = await getTask(h.database.db, pr.taskId);
        return task && task.generation > before && task.publishedGeneration === task.generation;
      },
      { timeoutMs: 30_000, message: "another attempt published" },
    );
    await say(pr.pr_number, "/cancel", "octocat");
  });

  it("the PR author cannot approve, and issue-only verbs are refused on a PR", async () => {
    const pr = await openPr("Self", "write src/self.txt\n<<<\nself\n>>>");
    const author = (await h.sim.getPull(h.repo, pr.pr_number)).user.login;
    h.sim.setPermission(h.repo, author, "write");
    const { comment } = await h.sim.comment(h.repo, pr.pr_number, "/approve", { user: author });
    await h.sim.idle();
    // The author is Conveyor's bot: ignored outright, so no reaction at all.
    expect(h.sim.listReactions(h.repo, { comment: comment.id })).toEqual([]);
    expect((await say(pr.pr_number, "/queue", "octocat")).reaction).toBe("-1");
    await reply(pr.pr_number, "octocat", "works on an issue");
    await say(pr.pr_number, "/cancel", "octocat");
    expect(await state(pr.taskId)).toBe("cancelled");
  });
});
