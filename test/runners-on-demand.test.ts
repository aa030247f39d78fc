import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { resultRows } from "../db/client.ts";
import type { RunnerJson } from "../src/http/runner-json.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { queueScriptedIssue, SCRIPTED_AGENT, spawnRunnerProcess } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * Runners on demand: one-time credentials (`conveyor runners jit`, `POST /api/runners/jit`), the
 * ephemeral runner that spends one, and runners scoped to repositories or owners.
 */

let h: Harness;
let otherRepo: string;
const sockets: FakeRunner[] = [];

beforeAll(async () => {
  h = await createHarness({ start: { publishPullRequests: false } });
  // A second owner, so that scopes have someone else's task to refuse.
  const installation = await h.sim.createInstallation({
    account: "globex",
    accountType: "Organization",
  });
  await h.sim.createRepository({
    owner: "globex",
    name: "gadgets",
    installationId: installation.id,
    files: { "README.md": "# gadgets\n" },
  });
  otherRepo = "globex/gadgets";
  h.sim.setPermission(otherRepo, "octocat", "write");
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const repo of [h.repo, otherRepo]) {
    for (const issue of h.sim.listIssues(repo).filter((i) => i.state === "open")) {
      await h.sim.closeIssue(repo, issue.number, { sender: "octocat" });
    }
  }
  await waitFor(
    async () => {
      const [row] = resultRows<{ n: number }>(
        await h.database.db.execute(
          sql`select count(*)::int as n from tasks where state in ('queued', 'assigned', 'running')`,
        ),
      );
      return row?.n === 0;
    },
    { message: "no task left waiting" },
  );
  expect(h.sim.violations).toEqual([]);
});

async function mint(body: Record<string, unknown> = {}) {
  const response = await fetch(`${h.conveyor.url}/api/runners/jit`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  expect(response.headers.get("cache-control")).toBe("no-store");
  return (await response.json()) as { runner: RunnerJson; token: string };
}

/** The refusal of a WebSocket upgrade: its status and JSON body. */
async function refusedUpgrade(token: string): Promise<{ status: number; body: unknown }> {
  const ws = new WebSocket(`${h.conveyor.url.replace(/^http/, "ws")}/runners/v1`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.close();
      reject(new Error("the upgrade was accepted"));
    });
    ws.once("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    ws.once("error", () => {});
  });
}

async function queue(repo: string, title: string): Promise<string> {
  const { issue } = await h.sim.openIssue(repo, { title, user: "octocat" });
  await h.sim.addLabel(repo, issue.number, "conveyor", { sender: "octocat" });
  // The webhook is answered once stored; the intake loop queues the task just after.
  await h.sim.idle();
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(sql`
      select t.task_id from tasks t join repositories r using (repository_id)
      where r.full_name = ${repo} and t.issue_number = ${issue.number}
        and t.state not in ('merged', 'cancelled')`),
  );
  if (!row) throw new Error(`no task for ${repo}#${issue.number}`);
  return row.task_id;
}

async function listed(name: string): Promise<RunnerJson | undefined> {
  const response = await fetch(`${h.conveyor.url}/api/runners`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const { runners } = (await response.json()) as { runners: RunnerJson[] };
  return runners.find((r) => r.name === name);
}

describe("one-time runner credentials", () => {
  it("work for one connection and at most one task, then are refused with 401 and the reason", async () => {
    const { runner, token } = await mint({ capabilities: [], ttl_seconds: 600 });
    expect(runner).toMatchObject({ one_time: true, status: "unused", used_at: null });
    expect(runner.name).toMatch(/^jit-[0-9a-f]{12}$/);
    // Stored hashed: the token itself is nowhere in the table.
    const [stored] = resultRows<{ token_hash: string }>(
      await h.database.db.execute(
        sql`select token_hash from runners where runner_id = ${runner.runner_id}`,
      ),
    );
    expect(stored?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored?.token_hash).not.toContain(token.slice(4));

    const first = await queue(h.repo, "One-time first");
    const second = await queue(h.repo, "One-time second");
    // Asks for two slots; a one-time credential still gets one task.
    const socket = await connectRunner(h.conveyor.url, token, { slots: 2 });
    sockets.push(socket);
    const assign = await socket.next("assign");
    expect([first, second]).toContain(assign.task_id);
    expect((await listed(runner.name))?.status).toBe("active");
    // A second connection while the first is open: refused, with the reason.
    expect(await refusedUpgrade(token)).toEqual({
      status: 401,
      body: { error: "one-time runner credential already used (it is good for one connection)" },
    });
    // A free slot and a waiting task, yet nothing more is offered.
    await h.conveyor.dispatcher?.dispatchOnce();
    const other = assign.task_id === first ? second : first;
    expect((await getTask(h.database.db, other))?.state).toBe("queued");
    expect(socket.received.filter((f) => f.type === "assign")).toHaveLength(1);

    socket.close();
    await socket.closed;
    // The connection closed: the credential is spent for good.
    await waitFor(async () => (await listed(runner.name))?.status === "revoked", {
      message: "the one-time credential revoked after its connection",
    });
    expect(await refusedUpgrade(token)).toEqual({
      status: 401,
      body: { error: "one-time runner credential already used (it is good for one connection)" },
    });
  });

  it("expires unused", async () => {
    const { runner, token } = await mint({ ttl_seconds: 60 });
    // Sixty seconds on: the same row as time passing would leave it.
    await h.database.db.execute(
      sql`update runners set expires_at = now() - interval '1 second' where runner_id = ${runner.runner_id}`,
    );
    expect(await refusedUpgrade(token)).toEqual({
      status: 401,
      body: { error: "one-time runner credential expired unused" },
    });
    expect((await listed(runner.name))?.status).toBe("expired");
  });

  it("refuses a bad request with field errors", async () => {
    const response = await fetch(`${h.conveyor.url}/api/runners/jit`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ ttl_seconds: 5, repos: ["not a repo"], capabilites: ["gpu"] }),
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { fields: { path: string }[] };
    expect(body.fields.map((f) => f.path).sort()).toEqual([
      "capabilites",
      "repos.0",
      "ttl_seconds",
    ]);
  });

  it("an ephemeral runner takes one task, finishes it and exits 0", async () => {
    const { token, runner } = await mint({ ttl_seconds: 600 });
    const { taskId } = await queueScriptedIssue(
      h,
      "Ephemeral",
      "write EPHEMERAL.md\n<<<\nfrom a one-time runner\n>>>",
    );
    const second = await queue(h.repo, "Left for another runner");
    const workDir = mkdtempSync(join(tmpdir(), "conveyor-ephemeral-"));
    const process = spawnRunnerProcess(
      [
        "start",
        "--ephemeral",
        ...["--server", h.conveyor.url, "--name", runner.name, "--unsandboxed"],
        ...["--work-dir", join(workDir, "work"), "--journal", join(workDir, "journal.json")],
        ...["--agent", "--", ...SCRIPTED_AGENT],
      ],
      { CONVEYOR_RUNNER_TOKEN: token },
    );
    try {
      const code = await Promise.race([
        process.exited,
        new Promise((resolve) => setTimeout(() => resolve("still running"), 60_000)),
      ]);
      expect(code, process.output()).toBe(0);
      const done = await getTask(h.database.db, taskId);
      const left = await getTask(h.database.db, second);
      // Queue order decides which one it took; the other still waits.
      expect([done?.state, left?.state].sort()).toEqual(["pushed", "queued"]);
      await waitFor(async () => (await listed(runner.name))?.status === "revoked", {
        message: "the credential spent",
      });
    } finally {
      process.child.kill("SIGKILL");
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});

describe("scoped runners", () => {
  it("never offer a runner another owner's task", async () => {
    const ours = await queue(h.repo, "Scoped: acme's task");
    const theirs = await queue(otherRepo, "Scoped: globex's task");
    const globexOnly = await createRunner(h.database.db, {
      name: "globex-fleet",
      repos: ["Globex/*"],
    });
    expect(globexOnly.runner.repos).toEqual(["globex/*"]);
    const socket = await connectRunner(h.conveyor.url, globexOnly.token, { slots: 4 });
    sockets.push(socket);
    const assign = await socket.next("assign");
    expect(assign.task_id).toBe(theirs);
    expect(assign.repo.full_name).toBe(otherRepo);
    await h.conveyor.dispatcher?.dispatchOnce();
    expect(socket.received.filter((f) => f.type === "assign")).toHaveLength(1);
    expect((await getTask(h.database.db, ours))?.state).toBe("queued");

    // One-time credentials carry a scope too; a repository scope, not only an owner's.
    const { token } = await mint({ repos: ["acme/widgets"] });
    const acme = await connectRunner(h.conveyor.url, token);
    sockets.push(acme);
    expect((await acme.next("assign")).task_id).toBe(ours);
  });
});
