import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * What a minimal third-party runner may rely on: `complete` with nothing but the digest and `fail`
 * with nothing but a reason are whole results (the pull request, the status comment and the
 * database cope), and after a reconnect `continue` brings the assignment back with a fresh token
 * that clones the commit the attempt started from, even when the default branch moved meanwhile.
 */

type Assign = Extract<ServerMessage, { type: "assign" }>;
const run = promisify(execFile);

let h: Harness;
let count = 0;
const sockets: FakeRunner[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  h = await createHarness({ files: { "src/app.txt": "v1\n" } });
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await h?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  expect(h.sim.violations).toEqual([]);
});

async function runner() {
  const { token } = await createRunner(h.database.db, { name: `minimal-${++count}` });
  const socket = await connectRunner(h.conveyor.url, token);
  sockets.push(socket);
  return { token, socket };
}

async function queue(title: string) {
  const { issue } = await h.sim.openIssue(h.repo, { title, body: `Do: ${title}`, user: "octocat" });
  await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
  return issue.number;
}

async function upload(token: string, assign: Assign) {
  const response = await fetch(
    `${h.conveyor.url}/runners/v1/tasks/${assign.task_id}/changes?generation=${assign.generation}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        base_sha: assign.repo.base_sha,
        message: assign.issue.title,
        files: [{ path: "src/app.txt", action: "modify", content: "v2\n" }],
      }),
    },
  );
  expect(response.status, await response.clone().text()).toBe(201);
  return ((await response.json()) as { digest: string }).digest;
}

async function accept(socket: FakeRunner, assign: Assign) {
  socket.send({ type: "accept", id: "a", task_id: assign.task_id, generation: assign.generation });
  await socket.next("ack", (f) => f.id === "a");
}

describe("a minimal runner", () => {
  it("completes with only the digest: the PR says there was no summary, the database keeps defaults", async () => {
    const { token, socket } = await runner();
    const issueNumber = await queue("Bump the app");
    const assign = await socket.next("assign");
    await accept(socket, assign);
    const digest = await upload(token, assign);
    socket.send({
      type: "complete",
      id: "c",
      task_id: assign.task_id,
      generation: assign.generation,
      changes_digest: digest,
    });
    await socket.next("ack", (f) => f.id === "c");
    expect((await getTask(h.database.db, assign.task_id))?.result).toEqual({
      summary: "",
      stats: {},
      digest,
    });
    const pr = await waitFor(
      async () =>
        (await h.sim.listPulls(h.repo)).find((p) => p.body?.includes(`Closes #${issueNumber}`)),
      { timeoutMs: 20_000, message: "the pull request" },
    );
    expect(pr.body).toContain("_The runner gave no summary._");
    expect(pr.body).not.toMatch(/Files changed|Duration|Tokens|Cost|Verification/);
    expect(pr.body).toContain("| Attempt | 1/3 |");
  });

  it("fails with only a reason: the status comment shows it", async () => {
    const { socket } = await runner();
    const issueNumber = await queue("Impossible");
    const assign = await socket.next("assign");
    await accept(socket, assign);
    socket.send({
      type: "fail",
      id: "f",
      task_id: assign.task_id,
      generation: assign.generation,
      reason: "the repository does not build",
      retryable: false,
    });
    await socket.next("ack", (f) => f.id === "f");
    const task = await getTask(h.database.db, assign.task_id);
    expect(task).toMatchObject({ state: "dead", lastError: "the repository does not build" });
    await waitFor(
      () =>
        h.sim
          .listComments(h.repo, issueNumber)
          .find(
            (c) =>
              c.body?.includes("Last error") && c.body.includes("the repository does not build"),
          ),
      { message: "the status comment with the reason" },
    );
  });
});

describe("continue after a reconnect", () => {
  it("re-sends the assignment: same generation and base commit, a read token that still clones it", async () => {
    const { token, socket } = await runner();
    await queue("Resume me");
    const first = await socket.next("assign");
    await accept(socket, first);
    socket.close();
    await socket.closed;
    // The default branch moves on while the runner is away: the attempt keeps its commit.
    const dir = mkdtempSync(join(tmpdir(), "conveyor-resume-"));
    dirs.push(dir);
    await h.sim.push(h.repo, {
      branch: "main",
      files: { "src/other.txt": "moved\n" },
      message: "Move main",
      user: "octocat",
    });
    expect(await h.sim.getBranchSha(h.repo, "main")).not.toBe(first.repo.base_sha);

    const again = await connectRunner(h.conveyor.url, token, {
      running: [{ task_id: first.task_id, generation: first.generation }],
    });
    sockets.push(again);
    const welcome = again.received.find((f) => f.type === "welcome");
    expect(welcome).toMatchObject({ reconcile: [{ task_id: first.task_id, action: "continue" }] });
    const resent = await again.next("assign");
    expect(resent).toEqual({ ...first, read_token: resent.read_token });
    // The repository's read token is shared until near its expiry, so it may be the same one;
    // either way it must still be good for a while.
    expect(Date.parse(resent.read_token.expires_at)).toBeGreaterThan(Date.now() + 5 * 60_000);

    // The token clones, and the base commit is there to check out.
    const url = new URL(resent.repo.clone_url);
    url.username = "x-access-token";
    url.password = resent.read_token.value;
    // Not execFileSync: the simulated GitHub answers from this very process.
    const env = { ...process.env, GIT_TERMINAL_PROMPT: "0" };
    await run("git", ["clone", "--quiet", url.toString(), join(dir, "clone")], { env });
    await run("git", ["-C", join(dir, "clone"), "checkout", "--quiet", resent.repo.base_sha], {
      env,
    });
    expect(readFileSync(join(dir, "clone", "src/app.txt"), "utf8")).toBe("v1\n");

    // It is the same attempt: accepting again is acknowledged, and the result is taken.
    await accept(again, resent);
    const digest = await upload(token, resent);
    again.send({
      type: "complete",
      id: "c",
      task_id: resent.task_id,
      generation: resent.generation,
      changes_digest: digest,
      summary: "resumed",
    });
    await again.next("ack", (f) => f.id === "c");
    const events = resultRows<{ to_state: string; generation: number }>(
      await h.database.db.execute(
        sql`select to_state, generation from task_events where task_id = ${first.task_id} order by event_id`,
      ),
    );
    expect(events.filter((e) => e.to_state === "assigned")).toHaveLength(1);
    expect(events.find((e) => e.to_state === "pushed")?.generation).toBe(first.generation);
  });

  it("does not re-send anything for a task it answers cancel", async () => {
    const { token } = await runner();
    const socket = await connectRunner(h.conveyor.url, token, {
      running: [{ task_id: "14688b2f-6b38-45e5-b039-70e04291ee39", generation: 1 }],
    });
    sockets.push(socket);
    expect(socket.received.find((f) => f.type === "welcome")).toMatchObject({
      reconcile: [{ task_id: "14688b2f-6b38-45e5-b039-70e04291ee39", action: "cancel" }],
    });
    socket.send({ type: "ping", id: "p" });
    await socket.next("pong", (f) => f.id === "p");
    expect(socket.received.filter((f) => f.type === "assign")).toEqual([]);
  });
});
