import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask, listTaskEvents } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

const run = promisify(execFile);
type AssignFrame = Extract<ServerMessage, { type: "assign" }>;

let h: Harness;
const runners: FakeRunner[] = [];
let runnerCount = 0;

beforeAll(async () => {
  h = await createHarness({ start: { publishPullRequests: false } });
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  for (const r of runners.splice(0)) r.close();
  // Leave no work behind: close every issue the way a person would, which cancels its task (a
  // task cancelled only in the database would be recreated by reconciliation, rightly).
  for (const issue of h.sim.listIssues(h.repo).filter((i) => i.state === "open")) {
    await h.sim.closeIssue(h.repo, issue.number, { sender: "octocat" });
  }
  await waitFor(async () => {
    const [row] = resultRows<{ n: number }>(
      await h.database.db.execute(
        sql`select count(*)::int as n from tasks where state in ('queued', 'assigned', 'running', 'retry_wait')`,
      ),
    );
    return row?.n === 0;
  });
  expect(h.sim.violations).toEqual([]);
});

async function registerRunner(
  capabilities: string[] = [],
  runnerClass: "light" | "normal" | "heavy" = "normal",
) {
  const { runner, token } = await createRunner(h.database.db, {
    name: `runner-${++runnerCount}`,
    capabilities,
    class: runnerClass,
  });
  return { runnerId: runner.runnerId, name: runner.name, token };
}

async function registered(runnerId: string) {
  const [row] = resultRows<{ name: string }>(
    await h.database.db.execute(sql`select name from runners where runner_id = ${runnerId}`),
  );
  return row;
}

async function connect(token: string, hello: Parameters<typeof connectRunner>[2] = {}) {
  const runner = await connectRunner(h.conveyor.url, token, hello);
  runners.push(runner);
  return runner;
}

async function queueIssue(title: string, labels: string[] = []) {
  const { issue } = await h.sim.openIssue(h.repo, {
    title,
    body: `Do: ${title}`,
    user: "octocat",
    labels,
  });
  await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
  // The webhook is answered once stored; the intake loop queues the task just after.
  await h.sim.idle();
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(sql`
      select task_id from tasks where issue_number = ${issue.number} and state not in ('merged', 'cancelled')`),
  );
  return { issueNumber: issue.number, taskId: row!.task_id };
}

async function upload(
  token: string,
  assign: AssignFrame,
  files = [{ path: "hello.txt", action: "add", content: "hi\n" }],
) {
  const response = await fetch(
    `${h.conveyor.url}/runners/v1/tasks/${assign.task_id}/changes?generation=${assign.generation}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ base_sha: assign.repo.base_sha, message: "Add hello", files }),
    },
  );
  return {
    status: response.status,
    body: (await response.json()) as { digest?: string; error?: string },
  };
}

/** accept → heartbeat → upload → complete, as a well-behaved runner does. */
async function finish(runner: FakeRunner, token: string, assign: AssignFrame) {
  runner.send({
    type: "accept",
    id: `a-${assign.task_id}`,
    task_id: assign.task_id,
    generation: assign.generation,
  });
  await runner.next("ack", (f) => f.id === `a-${assign.task_id}`);
  const uploaded = await upload(token, assign);
  expect(uploaded.status).toBe(201);
  runner.send({
    type: "complete",
    id: `c-${assign.task_id}`,
    task_id: assign.task_id,
    generation: assign.generation,
    changes_digest: uploaded.body.digest!,
    summary: "Added hello.txt",
    stats: { files_changed: 1 },
  });
  await runner.next("ack", (f) => f.id === `c-${assign.task_id}`);
}

describe("runner socket", () => {
  it("assigns a queued task with a read-only token, and takes the result", async () => {
    const { token, runnerId } = await registerRunner();
    const runner = await connect(token);
    const queued = await queueIssue("First task");
    const assign = await runner.next("assign");
    expect(assign).toMatchObject({
      task_id: queued.taskId,
      generation: 1,
      branch: `conveyor/issue-${queued.issueNumber}`,
      issue: { number: queued.issueNumber, title: "First task", body: "Do: First task" },
      repo: { full_name: h.repo, default_branch: "main" },
    });
    expect(assign.repo.base_sha).toBe(await h.sim.getBranchSha(h.repo, "main"));
    // Accepted at once (the tests' accept window is 1.5 s and their lease 2 s); git is tried last.
    runner.send({
      type: "accept",
      id: "acc",
      task_id: assign.task_id,
      generation: assign.generation,
    });
    await runner.next("ack", (f) => f.id === "acc");

    // While it runs, the issue's status comment names the runner.
    const { name } = await waitFor(() => registered(runnerId));
    await waitFor(() =>
      h.sim
        .listComments(h.repo, queued.issueNumber)
        .some((c) => c.body?.includes(`| Runner | \`${name}\` |`)),
    );
    await finish(runner, token, assign);
    const task = await getTask(h.database.db, queued.taskId);
    expect(task).toMatchObject({ state: "pushed", runnerId: null });
    expect(task?.result).toMatchObject({ summary: "Added hello.txt" });
    const events = await listTaskEvents(h.database.db, queued.taskId);
    expect(events.map((e) => e.to_state)).toEqual(["queued", "assigned", "running", "pushed"]);
    expect(events[1]?.actor).toBe("dispatcher");
    const [row] = resultRows<{ last_assigned_at: string | null }>(
      await h.database.db.execute(
        sql`select last_assigned_at::text from runners where runner_id = ${runnerId}`,
      ),
    );
    expect(row?.last_assigned_at).not.toBeNull();
    // The read token clones (it outlives the task: an installation token lasts an hour).
    const url = new URL(assign.repo.clone_url);
    url.username = "x-access-token";
    url.password = assign.read_token.value;
    const { stdout } = await run("git", ["ls-remote", url.toString(), "refs/heads/main"]);
    expect(stdout).toContain(assign.repo.base_sha);
  });

  it("gives two runners ten tasks, each completed exactly once", async () => {
    const a = await registerRunner();
    const b = await registerRunner();
    const queued = [];
    for (let i = 0; i < 10; i++) queued.push(await queueIssue(`Batch ${i}`));
    // Connected once the work is queued, so every assign is answered within the accept window
    // however slowly the issues were filed.
    const ra = await connect(a.token, { slots: 1 });
    const rb = await connect(b.token, { slots: 1 });
    const work = async (runner: FakeRunner, token: string, count: { n: number }) => {
      for (;;) {
        const assign = await runner.next("assign", undefined, 3_000).catch(() => undefined);
        if (!assign) return;
        await finish(runner, token, assign);
        count.n++;
      }
    };
    const ca = { n: 0 };
    const cb = { n: 0 };
    await Promise.all([work(ra, a.token, ca), work(rb, b.token, cb)]);
    expect(ca.n + cb.n).toBe(10);
    expect(ca.n).toBeGreaterThan(0);
    expect(cb.n).toBeGreaterThan(0);
    const [counts] = resultRows<{ pushed: number; completions: number }>(
      await h.database.db.execute(sql`
        select (select count(*)::int from tasks where state = 'pushed' and task_id in ${queued.map((q) => q.taskId)}) as pushed,
               (select count(*)::int from task_events where to_state = 'pushed'
                  and task_id in ${queued.map((q) => q.taskId)}) as completions`),
    );
    expect(counts).toEqual({ pushed: 10, completions: 10 });
  });

  it("requeues the task of a runner that vanished, and the other runner completes it once", async () => {
    const a = await registerRunner();
    const b = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Survive a crash");
    const assign = await ra.next("assign");
    ra.send({ type: "accept", task_id: assign.task_id, generation: assign.generation });
    await ra.next("ack");
    ra.ws.terminate();
    const rb = await connect(b.token);
    const second = await rb.next("assign", (f) => f.task_id === queued.taskId, 10_000);
    expect(second.generation).toBe(assign.generation + 1);
    await finish(rb, b.token, second);
    const task = await getTask(h.database.db, queued.taskId);
    expect(task).toMatchObject({ state: "pushed", attempts: 1 });
    const events = await listTaskEvents(h.database.db, queued.taskId);
    expect(events.filter((e) => e.to_state === "pushed")).toHaveLength(1);
    expect(
      events.some((e) => e.to_state === "retry_wait" && e.reason.startsWith("lease expired")),
    ).toBe(true);
  });

  it("answers stale to a late complete after a reclaim, and changes nothing", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Too slow");
    const assign = await ra.next("assign");
    // Never accepts: the accept window passes, the task goes back and the runner is told to stop.
    const cancel = await ra.next("cancel", (f) => f.task_id === queued.taskId, 5_000);
    expect(cancel.reason).toBe("accept timeout");
    ra.send({
      type: "complete",
      id: "late",
      task_id: assign.task_id,
      generation: assign.generation,
      changes_digest: `sha256:${"0".repeat(64)}`,
      summary: "late",
      stats: {},
    });
    const stale = await ra.next("stale", (f) => f.id === "late");
    expect(stale.task_id).toBe(queued.taskId);
    const task = await getTask(h.database.db, queued.taskId);
    expect(task?.state).not.toBe("pushed");
  });

  it("puts a rejected task back without counting an attempt", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Not for me");
    const assign = await ra.next("assign");
    // Draining first, so the task is not simply offered to this runner again.
    ra.send({ type: "drain", id: "d" });
    await ra.next("ack", (f) => f.id === "d");
    ra.send({
      type: "reject",
      id: "r",
      task_id: assign.task_id,
      generation: assign.generation,
      reason: "disk full",
    });
    await ra.next("ack", (f) => f.id === "r");
    await waitFor(async () => (await getTask(h.database.db, queued.taskId))?.state === "queued");
    expect((await getTask(h.database.db, queued.taskId))?.attempts).toBe(0);
  });

  it("only offers a task to a runner with every capability it needs", async () => {
    const plain = await registerRunner();
    const gpu = await registerRunner(["gpu"]);
    const rp = await connect(plain.token, { capabilities: [] });
    const queued = await queueIssue("Needs a GPU", ["needs:gpu"]);
    await expect(rp.next("assign", undefined, 800)).rejects.toThrow();
    // Claiming a capability it was not registered with gets a runner nothing.
    const pretender = await connect(plain.token, { capabilities: ["gpu"] });
    await expect(pretender.next("assign", undefined, 800)).rejects.toThrow();
    const rg = await connect(gpu.token, { capabilities: ["gpu"] });
    expect((await rg.next("assign")).task_id).toBe(queued.taskId);
  });

  it("offers a task to a light runner before a heavy one that connected first", async () => {
    const heavy = await registerRunner([], "heavy");
    const light = await registerRunner([], "light");
    const rh = await connect(heavy.token);
    const rl = await connect(light.token);
    const queued = await queueIssue("Light work");
    expect((await rl.next("assign")).task_id).toBe(queued.taskId);
    // First offer included: a task the heavy runner got and never accepted is offered again.
    expect(rh.received.filter((f) => f.type === "assign")).toEqual([]);
  });

  it("acknowledges an accept sent twice, and a heartbeat before the accept", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Twice accepted");
    const assign = await ra.next("assign");
    const fence = { task_id: assign.task_id, generation: assign.generation };
    ra.send({ type: "heartbeat", id: "early", ...fence, stage: "cloning" });
    expect((await ra.next("ack", (f) => f.id === "early")).type).toBe("ack");
    ra.send({ type: "accept", id: "one", ...fence });
    await ra.next("ack", (f) => f.id === "one");
    ra.send({ type: "accept", id: "two", ...fence });
    await ra.next("ack", (f) => f.id === "two");
    expect((await getTask(h.database.db, queued.taskId))?.state).toBe("running");
  });

  it("keeps a reconnecting runner's task (continue) and cancels what it no longer holds", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Reconnect");
    const assign = await ra.next("assign");
    ra.send({ type: "accept", task_id: assign.task_id, generation: assign.generation });
    await ra.next("ack");
    ra.close();
    const again = await connect(a.token, false);
    const bogus = "00000000-0000-4000-8000-000000000000";
    again.send({
      type: "hello",
      protocol: 1,
      name: "test-runner",
      version: "0.0.0",
      capabilities: [],
      slots: 2,
      running: [
        { task_id: assign.task_id, generation: assign.generation },
        { task_id: bogus, generation: 3 },
      ],
    });
    const welcome = await again.next("welcome");
    expect(welcome.reconcile).toEqual([
      { task_id: assign.task_id, action: "continue" },
      { task_id: bogus, action: "cancel" },
    ]);
    await finish2(again, a.token, assign);
    expect((await getTask(h.database.db, queued.taskId))?.state).toBe("pushed");
  });

  it("sends a reconnecting runner the assignment it never accepted, costing no attempt", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Assign lost before the accept");
    const assign = await ra.next("assign");
    const acceptBy = async () => {
      const [row] = resultRows<{ at: string }>(
        await h.database.db.execute(
          sql`select lease_expires_at::text as at from tasks where task_id = ${assign.task_id}`,
        ),
      );
      return new Date(row!.at).getTime();
    };
    const firstWindow = await acceptBy();
    // The runner dies before it could accept (or journal) the task; its successor names nothing.
    ra.close();
    await ra.closed;
    const again = await connect(a.token, { running: [] });
    const resent = await again.next("assign");
    expect(resent).toMatchObject({
      task_id: assign.task_id,
      generation: assign.generation,
      repo: { base_sha: assign.repo.base_sha },
    });
    // A fresh accept window, and still the first attempt.
    expect(await acceptBy()).toBeGreaterThan(firstWindow);
    expect(await getTask(h.database.db, queued.taskId)).toMatchObject({
      state: "assigned",
      attempts: 0,
    });
    // The same change set uploaded twice (a retry after a lost answer) is stored once, same digest.
    again.send({
      type: "accept",
      id: "acc",
      task_id: assign.task_id,
      generation: assign.generation,
    });
    await again.next("ack", (f) => f.id === "acc");
    const first = await upload(a.token, assign);
    const second = await upload(a.token, assign);
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.body.digest).toBe(first.body.digest);
    await finish2(again, a.token, assign);
    expect(await getTask(h.database.db, queued.taskId)).toMatchObject({
      state: "pushed",
      generation: 1,
      attempts: 0,
    });
  });

  it("lets a runner keep its task across a server restart, with no accept-timeout reclaim", async () => {
    const a = await registerRunner();
    // The runner talks to its own instance, which then shuts down; a new one takes over.
    const before = await h.startAnother();
    const ra = await connectRunner(before.url, a.token);
    runners.push(ra);
    const queued = await queueIssue("Across a restart");
    const assign = await ra.next("assign");
    ra.send({ type: "accept", task_id: assign.task_id, generation: assign.generation });
    await ra.next("ack");
    await before.stop();
    expect((await ra.closed).code).toBe(1001);
    const replacement = await h.startAnother();
    const again = await connectRunner(replacement.url, a.token, {
      running: [{ task_id: assign.task_id, generation: assign.generation }],
    });
    runners.push(again);
    expect(again.received.find((f) => f.type === "welcome")).toMatchObject({
      reconcile: [{ task_id: assign.task_id, action: "continue" }],
    });
    // Well past the accept window and a lease: heartbeats keep it, nothing reclaims it.
    for (let i = 0; i < 6; i++) {
      again.send({
        type: "heartbeat",
        id: `hb${i}`,
        task_id: assign.task_id,
        generation: assign.generation,
        stage: "agent",
      });
      await again.next("ack", (f) => f.id === `hb${i}`);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    const task = await getTask(h.database.db, queued.taskId);
    expect(task).toMatchObject({ state: "running", generation: assign.generation, attempts: 0 });
    await finish2(again, a.token, assign);
    expect((await getTask(h.database.db, queued.taskId))?.state).toBe("pushed");
  });

  it("tells the runner to stop when the issue is closed, and refuses its late result", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    const queued = await queueIssue("Closed while running");
    const assign = await ra.next("assign");
    ra.send({ type: "accept", task_id: assign.task_id, generation: assign.generation });
    await ra.next("ack");
    await h.sim.closeIssue(h.repo, queued.issueNumber, { sender: "octocat" });
    const cancel = await ra.next("cancel", (f) => f.task_id === queued.taskId);
    expect(cancel).toMatchObject({ generation: assign.generation, reason: "task cancelled" });
    ra.send({
      type: "heartbeat",
      id: "late-hb",
      task_id: assign.task_id,
      generation: assign.generation,
      stage: "agent",
    });
    expect((await ra.next("stale", (f) => f.id === "late-hb")).task_id).toBe(queued.taskId);
    expect((await getTask(h.database.db, queued.taskId))?.state).toBe("cancelled");
  });

  it("answers invalid frames with field errors and closes after ten (1008), then makes it wait", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    ra.send({ type: "heartbeat", id: "h1", task_id: "nope", generation: 0, stage: "dancing" });
    const error = await ra.next("error");
    expect(error).toMatchObject({ id: "h1", code: "invalid_frame" });
    expect(error.errors.map((e) => e.field).sort()).toEqual(["generation", "stage", "task_id"]);
    ra.sendRaw("{not json");
    expect((await ra.next("error")).code).toBe("invalid_json");
    for (let i = 0; i < 8; i++) ra.send({ type: "bogus" });
    expect((await ra.closed).code).toBe(1008);
    await expect(connectRunner(h.conveyor.url, a.token)).rejects.toMatchObject({ status: 429 });
  });

  // Hostile paths, foreign and revoked tokens, oversized frames: test/security.test.ts.
  it("refuses a change set for another generation (409) and stores nothing", async () => {
    const a = await registerRunner();
    const ra = await connect(a.token);
    await queueIssue("Wrong generation");
    const assign = await ra.next("assign");
    ra.send({ type: "accept", task_id: assign.task_id, generation: assign.generation });
    await ra.next("ack");
    const wrong = await upload(a.token, { ...assign, generation: assign.generation + 1 });
    expect(wrong.status).toBe(409);
    const [stored] = resultRows<{ n: number }>(
      await h.database.db.execute(
        sql`select count(*)::int as n from change_sets where task_id = ${assign.task_id}`,
      ),
    );
    expect(stored?.n).toBe(0);
  });
});

/** finish() for a task the runner already accepted. */
async function finish2(runner: FakeRunner, token: string, assign: AssignFrame) {
  const uploaded = await upload(token, assign);
  expect(uploaded.status).toBe(201);
  runner.send({
    type: "complete",
    id: "done",
    task_id: assign.task_id,
    generation: assign.generation,
    changes_digest: uploaded.body.digest!,
    summary: "done",
    stats: {},
  });
  await runner.next("ack", (f) => f.id === "done");
}
