import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign } from "@octokit/webhooks-methods";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { resultRows } from "../db/client.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import {
  ADMIN_TOKEN,
  createHarness,
  type Harness,
  WEBHOOK_SECRET,
} from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * The security test set: every way in that a stranger, a compromised runner or a hostile issue
 * could use, each refused with a clear error and nothing stored (or, for issue text, nothing run).
 * Each case records `securityCase` on itself; the count reporter prints the totals.
 */

type AssignFrame = Extract<ServerMessage, { type: "assign" }>;

let h: Harness;
const sockets: FakeRunner[] = [];
let runnerCount = 0;
/** Issues a group of cases shares; the others are closed after every case. */
const kept = new Set<number>();
beforeAll(async () => {
  h = await createHarness({ start: { publishPullRequests: false } });
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  // Leave no work behind for the next case: close every open issue, which cancels its task.
  const open = h.sim.listIssues(h.repo).filter((i) => i.state === "open" && !kept.has(i.number));
  for (const issue of open) {
    await h.sim.closeIssue(h.repo, issue.number, { sender: "octocat" });
  }
  expect(h.sim.violations).toEqual([]);
});

/** Rows of everything an attack could try to create. */
const TABLES = [
  "webhook_deliveries",
  "approvals",
  "tasks",
  "task_events",
  "change_sets",
  "pull_requests",
  "issue_notices",
  "runners",
] as const;

/** Waits until GitHub and Conveyor are quiet: no webhook in flight, no comment or reaction owed. */
async function quiet(): Promise<void> {
  await h.sim.idle();
  await waitFor(
    async () => {
      const [row] = resultRows<{ n: number }>(
        await h.database.db.execute(sql`
          select (select count(*)::int from tasks where status_version > status_synced_version)
               + (select count(*)::int from issue_notices where posted_at is null) as n`),
      );
      return row?.n === 0;
    },
    { message: "the notifier settled" },
  );
  await h.sim.idle();
}

/** Row counts once everything is quiet, so background work is not taken for the attack's. */
async function rowCounts(): Promise<Record<string, number>> {
  await quiet();
  const [row] = resultRows<Record<string, number>>(
    await h.database.db.execute(
      sql.raw(`select ${TABLES.map((t) => `(select count(*)::int from ${t}) as ${t}`).join(", ")}`),
    ),
  );
  return row!;
}

/** Rows added since `before`, per table (only tables that grew). */
async function storedSince(
  before: Record<string, number>,
  ignore: string[] = [],
): Promise<Record<string, number>> {
  const after = await rowCounts();
  return Object.fromEntries(
    Object.entries(after)
      .filter(([table, n]) => !ignore.includes(table) && n !== before[table])
      .map(([table, n]) => [table, n - (before[table] ?? 0)]),
  );
}

/** Records the case for the reporter: the defence held, and how many rows the attack stored. */
function securityCase(context: TestContext, stored: Record<string, number>, defended = true) {
  context.task.meta.securityCase = {
    defended,
    stored: Object.values(stored).reduce((sum, n) => sum + Math.max(0, n), 0),
  };
}

async function postWebhook(
  body: string,
  options: {
    event: string;
    deliveryId?: string;
    signature?: string | null;
    headers?: Record<string, string>;
  },
) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/test",
    "x-github-event": options.event,
    "x-github-delivery": options.deliveryId ?? randomUUID(),
    ...options.headers,
  };
  const signature =
    options.signature === undefined ? await sign(WEBHOOK_SECRET, body) : options.signature;
  if (signature !== null) headers["x-hub-signature-256"] = signature;
  const response = await fetch(`${h.conveyor.url}/api/github/webhooks`, {
    method: "POST",
    headers,
    body,
  });
  return { status: response.status, body: await response.text() };
}

/** A genuine `issues.labeled` delivery by a write user, captured on its way: not delivered yet. */
async function capturedLabelDelivery(title: string) {
  const { issue } = await h.sim.openIssue(h.repo, { title, user: "octocat" });
  // The opened event's effect is carried out before anything is counted.
  await h.sim.idle();
  h.sim.setWebhook(undefined);
  try {
    const { delivery } = await h.sim.addLabel(h.repo, issue.number, "conveyor", {
      sender: "octocat",
    });
    return { issueNumber: issue.number, id: delivery!.id, body: delivery!.body };
  } finally {
    h.sim.setWebhook({ url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
  }
}

async function tasksFor(issueNumber: number): Promise<{ task_id: string; state: string }[]> {
  return resultRows(
    await h.database.db.execute(
      sql`select task_id, state from tasks where issue_number = ${issueNumber} order by created_at`,
    ),
  );
}

describe("webhooks", () => {
  it("refuses a forged signature (400, names the signature) and stores nothing; the same bytes signed by GitHub queue work", async (context) => {
    const captured = await capturedLabelDelivery("Forged");
    const before = await rowCounts();
    const forged = await postWebhook(captured.body, {
      event: "issues",
      deliveryId: captured.id,
      signature: await sign("not-the-secret", captured.body),
    });
    expect(forged.status).toBe(400);
    expect(forged.body).toMatch(/signature does not match/i);
    // A body altered after signing is forged too.
    const altered = await postWebhook(captured.body.replace('"octocat"', '"mallory"'), {
      event: "issues",
      signature: await sign(WEBHOOK_SECRET, captured.body),
    });
    expect(altered.status).toBe(400);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    // Control: the genuine delivery is accepted, so the refusal was the signature's doing.
    expect(
      (await postWebhook(captured.body, { event: "issues", deliveryId: captured.id })).status,
    ).toBe(200);
    await h.sim.idle();
    expect(await tasksFor(captured.issueNumber)).toHaveLength(1);
  });

  it("refuses an unsigned webhook (400) and stores nothing", async (context) => {
    const captured = await capturedLabelDelivery("Unsigned");
    const before = await rowCounts();
    const unsigned = await postWebhook(captured.body, { event: "issues", signature: null });
    expect(unsigned.status).toBe(400);
    expect(unsigned.body).toMatch(/x-hub-signature-256/i);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });

  it("answers a replayed delivery (same X-GitHub-Delivery) without doing anything twice", async (context) => {
    const captured = await capturedLabelDelivery("Replayed");
    expect(
      (await postWebhook(captured.body, { event: "issues", deliveryId: captured.id })).status,
    ).toBe(200);
    await h.sim.idle();
    const before = await rowCounts();
    // GitHub's own redeliveries must look successful, so a replay is acknowledged, not acted on.
    for (let i = 0; i < 3; i++) {
      const replay = await postWebhook(captured.body, { event: "issues", deliveryId: captured.id });
      expect(replay.status).toBe(200);
    }
    await h.sim.idle();
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    expect(await tasksFor(captured.issueNumber)).toHaveLength(1);
  });

  it("does not act on a replayed delivery under a new id once the issue has moved on", async (context) => {
    // The signature covers the body, not the delivery id: an old `labeled` body can be sent again
    // as a "new" delivery. The issue is closed by now, so it must not queue anything.
    const captured = await capturedLabelDelivery("Replayed later");
    await postWebhook(captured.body, { event: "issues", deliveryId: captured.id });
    await h.sim.idle();
    await h.sim.closeIssue(h.repo, captured.issueNumber, { sender: "octocat" });
    await h.sim.idle();
    expect((await tasksFor(captured.issueNumber)).map((t) => t.state)).toEqual(["cancelled"]);
    const before = await rowCounts();
    const replayId = randomUUID();
    const replay = await postWebhook(captured.body, { event: "issues", deliveryId: replayId });
    expect(replay.status).toBe(200);
    await h.sim.idle();
    // The delivery is recorded as seen and why it changed nothing; nothing else is stored.
    const stored = await storedSince(before, ["webhook_deliveries"]);
    securityCase(context, stored);
    expect(stored).toEqual({});
    const [recorded] = resultRows<{ outcome: string }>(
      await h.database.db.execute(
        sql`select outcome from webhook_deliveries where delivery_id = ${replayId}`,
      ),
    );
    expect(recorded?.outcome).toMatch(/stale.*closed/);
  });

  it("refuses an oversized body (413) or one of unknown length (411) before reading it, and stores nothing", async (context) => {
    const before = await rowCounts();
    // GitHub caps deliveries at 25 MB: anything bigger is not GitHub.
    const huge = `{"action":"labeled","pad":"${"x".repeat(26 * 1024 * 1024)}"}`;
    const oversized = await postWebhook(huge, { event: "issues" });
    expect(oversized.status).toBe(413);
    expect(oversized.body).toMatch(/larger than 25 MiB/);
    const chunked = await fetch(`${h.conveyor.url}/api/github/webhooks`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": randomUUID(),
      },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"action":"labeled"}'));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(411);
    expect(await chunked.text()).toMatch(/Content-Length/);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    expect((await fetch(`${h.conveyor.url}/readyz`)).status).toBe(200);
  });
  it("refuses a body whose signature header is missing or malformed before reading it", async (context) => {
    const before = await rowCounts();
    // 20 MiB declared, nothing sent: an answer proves the body was never waited for.
    for (const signature of [undefined, "sha1=abc", `sha256=${"G".repeat(64)}`]) {
      const status = await new Promise<number>((resolve, reject) => {
        const request = httpRequest(`${h.conveyor.url}/api/github/webhooks`, {
          method: "POST",
          agent: false,
          headers: {
            "content-type": "application/json",
            "content-length": String(20 * 1024 * 1024),
            "x-github-event": "issues",
            "x-github-delivery": randomUUID(),
            ...(signature ? { "x-hub-signature-256": signature } : {}),
          },
        });
        request.on("response", (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
          request.destroy();
        });
        request.on("error", reject);
        request.flushHeaders();
      });
      expect(status).toBe(400);
    }
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });

  it("keeps memory flat under a flood of large unauthenticated bodies: a few are read, the rest get 429", async (context) => {
    const before = await rowCounts();
    const clients = 24;
    const length = 8 * 1024 * 1024;
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 5);
    const statuses = await Promise.all(
      Array.from({ length: clients }, () =>
        floodPost(length, {
          "x-github-event": "issues",
          "x-github-delivery": randomUUID(),
          // Well-formed, but not signed with the secret: only reading the body can tell.
          "x-hub-signature-256": `sha256=${"0".repeat(64)}`,
        }),
      ),
    ).finally(() => clearInterval(sampler));
    const count = (status: number) => statuses.filter((s) => s === status).length;
    // Beyond 50 MiB of bodies at once, the server answers 429 unread.
    expect(count(429)).toBeGreaterThan(0);
    expect(count(400) + count(429)).toBe(clients);
    expect(peak).toBeGreaterThan(baseline);
    // Unguarded, the server would hold 24 × 8 MiB = 192 MiB; the cap holds it to 6 × 8 MiB.
    expect(peak - baseline, `peak growth ${(peak - baseline) >> 20} MiB`).toBeLessThan(
      64 * 1024 * 1024,
    );
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    expect((await fetch(`${h.conveyor.url}/readyz`)).status).toBe(200);
  });
});

/**
 * Posts a body of `length` bytes made of one shared chunk (so the sender holds almost nothing),
 * without waiting to be read; resolves with the status once the server answers.
 */
function floodPost(length: number, headers: Record<string, string>): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${h.conveyor.url}/api/github/webhooks`, {
      method: "POST",
      agent: false,
      headers: { "content-length": String(length), "content-type": "application/json", ...headers },
    });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      response.resume();
      resolve(response.statusCode ?? 0);
      request.destroy();
    });
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    let sent = 0;
    const pump = () => {
      while (!answered && sent < length) {
        const part = chunk.subarray(0, Math.min(chunk.length, length - sent));
        sent += part.length;
        if (!request.write(part)) return void request.once("drain", pump);
      }
      if (!answered) request.end();
    };
    pump();
  });
}

async function registerRunner(name = `sec-${++runnerCount}`) {
  const { runner, token } = await createRunner(h.database.db, {
    name,
    capabilities: [],
    tier: "normal",
  });
  return { runnerId: runner.runnerId, name, token };
}

async function connect(token: string) {
  const runner = await connectRunner(h.conveyor.url, token);
  sockets.push(runner);
  return runner;
}

async function upload(
  token: string,
  assign: Pick<AssignFrame, "task_id" | "generation" | "repo">,
  files: unknown[] = [{ path: "hello.txt", action: "add", content: "hi\n" }],
) {
  const response = await fetch(
    `${h.conveyor.url}/runners/v1/tasks/${assign.task_id}/changes?generation=${assign.generation}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ base_sha: assign.repo.base_sha, message: "change", files }),
    },
  );
  return {
    status: response.status,
    body: (await response.json()) as {
      digest?: string;
      error?: string;
      errors?: { field: string; detail: string }[];
    },
  };
}

/** A task assigned to a fresh runner, accepted and running. */
async function runningTask(title: string, owned: FakeRunner[] = sockets) {
  const owner = await registerRunner();
  const socket = await connectRunner(h.conveyor.url, owner.token);
  owned.push(socket);
  const { issue } = await h.sim.openIssue(h.repo, { title, user: "octocat" });
  await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
  const assign = await socket.next("assign");
  socket.send({
    type: "accept",
    id: "acc",
    task_id: assign.task_id,
    generation: assign.generation,
  });
  await socket.next("ack", (f) => f.id === "acc");
  return { owner, socket, assign, issueNumber: issue.number };
}

describe("runner tokens", () => {
  it("refuses an unknown, malformed or missing token before the WebSocket upgrade (401)", async (context) => {
    const before = await rowCounts();
    for (const token of ["cvr_not-a-token", "", "Bearer", `cvr_${"A".repeat(43)}`]) {
      await expect(connectRunner(h.conveyor.url, token)).rejects.toMatchObject({ status: 401 });
    }
    const plain = await fetch(`${h.conveyor.url}/runners/v1`);
    expect(plain.status).toBe(401);
    expect(((await plain.json()) as { error: string }).error).toMatch(
      /unknown or revoked runner token/,
    );
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });

  it("does not let a runner act on another runner's task with its own token: stale frames, 409 uploads, nothing stored", async (context) => {
    const { owner, assign } = await runningTask("Someone else's task");
    const intruder = await registerRunner();
    const socket = await connect(intruder.token);
    const before = await rowCounts();
    const fence = { task_id: assign.task_id, generation: assign.generation };
    socket.send({ type: "accept", id: "i-acc", ...fence });
    socket.send({ type: "heartbeat", id: "i-hb", ...fence, stage: "agent" });
    socket.send({
      type: "fail",
      id: "i-fail",
      ...fence,
      reason: "not mine",
      retryable: false,
      detail: "",
    });
    socket.send({
      type: "complete",
      id: "i-done",
      ...fence,
      changes_digest: `sha256:${"0".repeat(64)}`,
      summary: "not mine",
      stats: {},
    });
    for (const id of ["i-acc", "i-hb", "i-fail", "i-done"]) {
      expect((await socket.next("stale", (f) => f.id === id)).task_id).toBe(assign.task_id);
    }
    const foreign = await upload(intruder.token, assign);
    expect(foreign.status).toBe(409);
    expect(foreign.body.error).toMatch(/you do not hold this task/);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    const task = await getTask(h.database.db, assign.task_id);
    expect(task).toMatchObject({ state: "running", generation: assign.generation });
    expect(task?.runnerId).not.toBe(intruder.runnerId);
    // The owner's own upload still works: the task was untouched.
    expect((await upload(owner.token, assign)).status).toBe(201);
  });

  it("refuses an upload sent right after the revoke, while the revoked socket is still closing", async (context) => {
    const { owner, socket, assign } = await runningTask("Revoked, upload racing the close");
    // While the socket is open, its uploads are authenticated by it (no token lookup)…
    expect((await upload(owner.token, assign)).status).toBe(201);
    const revoked = await fetch(`${h.conveyor.url}/api/runners/${owner.name}/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(revoked.status).toBe(200);
    // …and not a moment after the revoke, before the close handshake finished.
    const before = await rowCounts();
    const late = await upload(owner.token, assign);
    expect(late.status).toBe(401);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
    expect((await socket.closed).code).toBe(1008);
  });

  it("cuts a revoked runner off at once: socket closed (1008), reconnect and uploads 401, nothing stored", async (context) => {
    const { owner, socket, assign } = await runningTask("Revoked midway");
    const revoked = await fetch(`${h.conveyor.url}/api/runners/${owner.name}/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(revoked.status).toBe(200);
    const started = Date.now();
    expect((await socket.closed).code).toBe(1008);
    expect(Date.now() - started).toBeLessThan(1_000);
    const before = await rowCounts();
    await expect(connectRunner(h.conveyor.url, owner.token)).rejects.toMatchObject({ status: 401 });
    const late = await upload(owner.token, assign);
    expect(late.status).toBe(401);
    expect(late.body.error).toMatch(/unknown or revoked runner token/);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });
});

describe("oversized input", () => {
  it("closes a socket that sends a frame over 1 MiB with 1009", async (context) => {
    const { token } = await registerRunner();
    const socket = await connect(token);
    // Earlier tests' webhooks (status comments) are recorded before anything is counted.
    await h.sim.idle();
    const before = await rowCounts();
    socket.sendRaw(JSON.stringify({ type: "ping", pad: "x".repeat(1024 * 1024) }));
    expect((await socket.closed).code).toBe(1009);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });

  it("refuses a change set over 25 MiB (413) and an admin body over 64 KiB (413), storing nothing", async (context) => {
    const { owner, assign } = await runningTask("Too big");
    const before = await rowCounts();
    const big = await upload(owner.token, assign, [
      { path: "big.txt", action: "add", content: "x".repeat(26 * 1024 * 1024) },
    ]);
    expect(big.status).toBe(413);
    expect(big.body.error).toMatch(/change set larger than 26214400 bytes/);
    const admin = await fetch(`${h.conveyor.url}/api/runners`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "huge", pad: "x".repeat(65 * 1024) }),
    });
    expect(admin.status).toBe(413);
    expect(((await admin.json()) as { error: string }).error).toMatch(/over 64 KiB/);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });
});

describe("paths in a change set", () => {
  const hostile: [string, RegExp][] = [
    ["../outside", /contains \. or \.\. segments/],
    ["src/../../outside", /contains \. or \.\. segments/],
    ["./README.md", /contains \. or \.\. segments/],
    ["/etc/passwd", /is absolute/],
    ["C:/Windows/win.ini", /is absolute/],
    [".git/config", /is inside \.git/],
    [".GIT/hooks/pre-commit", /is inside \.git/],
    ["vendor/lib/.git/hooks/post-checkout", /is inside \.git/],
    ["..\\outside", /contains a backslash/],
    ["a//b", /empty segment/],
    ["evil\u0000.txt", /NUL byte/],
    ["line\nbreak.txt", /control characters/],
    // Disguised: git, Windows or macOS read each of these as `.git`.
    [".git./config", /reads as \.git/],
    ["GIT~1/config", /reads as \.git/],
    [".g\u200Dit/hooks/post-checkout", /reads as \.git/],
    [".gitmodules", /submodules/],
  ];

  // One running task takes every hostile upload; its runner's socket stays open throughout.
  let task: Awaited<ReturnType<typeof runningTask>>;
  const own: FakeRunner[] = [];
  beforeAll(async () => {
    task = await runningTask("Hostile paths", own);
    kept.add(task.issueNumber);
  });
  afterAll(async () => {
    for (const s of own) s.close();
    kept.delete(task.issueNumber);
    await h.sim.closeIssue(h.repo, task.issueNumber, { sender: "octocat" });
  });

  it.for(hostile)(
    "refuses %j with a field error naming it (422), storing nothing",
    async ([path, reason], context) => {
      const before = await rowCounts();
      const refused = await upload(task.owner.token, task.assign, [
        { path: "fine.txt", action: "add", content: "ok\n" },
        { path, action: "add", content: "x" },
      ]);
      expect(refused.status).toBe(422);
      expect(refused.body.error).toBe("change set touches paths it may not");
      // Named by its index in `files`, as the protocol's field errors are.
      expect(refused.body.errors).toEqual([
        { field: "files.1.path", error: "forbidden_path", detail: expect.stringMatching(reason) },
      ]);
      expect(refused.body.errors?.[0]?.detail.startsWith(`${path}: `)).toBe(true);
      const stored = await storedSince(before);
      securityCase(context, stored);
      expect(stored).toEqual({});
    },
  );

  it.for([
    [{ path: "evil", action: "add", mode: "120000", content: "/etc/passwd" }, /absolute/],
    [{ path: "a/evil", action: "add", mode: "120000", content: "../../outside" }, /outside/],
    [{ path: "evil", action: "add", mode: "120000", content: ".git/config" }, /into \.git/],
  ] as const)("refuses the symlink %j (422), storing nothing", async ([file, reason], context) => {
    const before = await rowCounts();
    const refused = await upload(task.owner.token, task.assign, [{ ...file }]);
    expect(refused.status).toBe(422);
    expect(refused.body.errors).toEqual([
      { field: "files.0.path", error: "forbidden_path", detail: expect.stringMatching(reason) },
    ]);
    const stored = await storedSince(before);
    securityCase(context, stored);
    expect(stored).toEqual({});
  });

  it("takes the same upload without the hostile path (the refusals were about the path)", async () => {
    const fine = await upload(task.owner.token, task.assign, [
      { path: "fine.txt", action: "add", content: "ok\n" },
    ]);
    expect(fine.status).toBe(201);
  });
});

describe("slash commands", () => {
  it("refuses every command from someone who is not a collaborator (👎, a reply saying who may) and changes nothing", async (context) => {
    const { issue: queued } = await h.sim.openIssue(h.repo, { title: "Queued", user: "octocat" });
    await h.sim.addLabel(h.repo, queued.number, "conveyor", { sender: "octocat" });
    const { issue: idle } = await h.sim.openIssue(h.repo, { title: "Not queued", user: "octocat" });
    await h.sim.idle();
    const [task] = await tasksFor(queued.number);
    const before = await rowCounts();
    const attempts = [
      { number: queued.number, body: "/cancel\n/priority urgent\n/hold\n/freeze nobody home" },
      { number: idle.number, body: "/queue\n/conveyor retry" },
    ];
    const comments = [];
    for (const attempt of attempts) {
      const { comment } = await h.sim.comment(h.repo, attempt.number, attempt.body, {
        user: "mallory",
      });
      comments.push(comment);
    }
    for (const [i, comment] of comments.entries()) {
      await waitFor(
        () => h.sim.listReactions(h.repo, { comment: comment.id }).some((r) => r.content === "-1"),
        { timeoutMs: 10_000, message: "👎 on the stranger's comment" },
      );
      const answer = await waitFor(
        () =>
          h.sim
            .listComments(h.repo, attempts[i]!.number)
            .find((c) => c.body?.startsWith("@mallory")),
        { timeoutMs: 10_000, message: "a reply to the stranger" },
      );
      expect(answer.body).toContain("@mallory is not a collaborator");
    }
    // What stays is the record of the refusal: the deliveries and each comment's refused results.
    const stored = await storedSince(before, ["webhook_deliveries"]);
    const refusals = resultRows<{ results: { outcome: string }[] }>(
      await h.database.db.execute(sql`select results from commands where actor = 'mallory'`),
    );
    expect(refusals.flatMap((r) => r.results.map((x) => x.outcome))).toEqual(
      Array(6).fill("refused"),
    );
    securityCase(context, stored);
    expect(stored).toEqual({});
    expect(await getTask(h.database.db, task!.task_id)).toMatchObject({
      state: "queued",
      lane: "normal",
    });
    expect(await tasksFor(idle.number)).toEqual([]);
    const [repository] = resultRows<{ frozen: boolean }>(
      await h.database.db.execute(
        sql`select frozen from repositories where repository_id = ${h.repositoryId}`,
      ),
    );
    expect(repository?.frozen).toBe(false);
  });
});

describe("issue text", () => {
  it("runs nothing from shell metacharacters or $(…) in an issue: the agent gets the text verbatim", async (context) => {
    const dir = mkdtempSync(join(tmpdir(), "conveyor-sec-"));
    const canary = (n: number) => join(dir, `pwned-${n}`);
    const hostileTitle = `Fix $(touch ${canary(1)}) and \`touch ${canary(2)}\``;
    const hostileBody = [
      `; touch ${canary(3)}`,
      `&& touch ${canary(4)} || touch ${canary(5)} | tee ${canary(6)}`,
      `$(touch ${canary(7)}) \${IFS} $HOME > ${canary(8)} < /etc/passwd`,
      `'; touch ${canary(9)}; echo '`,
      `"; touch ${canary(10)}; echo "`,
      `\`\`\`conveyor-script`,
      "copy-prompt PROMPT.md",
      "```",
    ].join("\n");
    const runner = await startScriptedRunner(h, "sec-agent");
    try {
      const { issue } = await h.sim.openIssue(h.repo, {
        title: hostileTitle,
        body: hostileBody,
        user: "octocat",
      });
      await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
      await h.sim.idle();
      const [task] = await tasksFor(issue.number);
      await waitFor(async () => (await getTask(h.database.db, task!.task_id))?.state === "pushed", {
        timeoutMs: 30_000,
        message: `the task pushed\n${runner.runner.output().slice(-2_000)}`,
      });
      // What the agent was given, as it wrote it into the workspace: the text, byte for byte.
      const [change] = resultRows<{ files: { path: string; content: string }[]; message: string }>(
        await h.database.db.execute(
          sql`select files, message from change_sets where task_id = ${task!.task_id}`,
        ),
      );
      const prompt = change!.files.find((f) => f.path === "PROMPT.md")!.content;
      expect(prompt).toContain(`# ${hostileTitle}`);
      expect(prompt).toContain(hostileBody);
      expect(change!.message).toContain(hostileTitle);
      const ran = Array.from({ length: 10 }, (_, i) => canary(i + 1)).filter((f) => existsSync(f));
      securityCase(context, { executed: ran.length }, ran.length === 0);
      expect(ran).toEqual([]);
    } finally {
      runner.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
