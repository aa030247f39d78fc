import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIMINGS } from "../src/dispatch/dispatcher.ts";
import { RunnerMessage, type ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { exchanges, fencedBlocks, type HttpMessage } from "./helpers/doc-examples.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * Every example of docs/protocol.md, sent to a real server, which must answer exactly as the page
 * shows: each runner frame (its answer is the server frame shown with the same `id`, else the
 * `ack` the frame table promises), each HTTP request (the answer block after it: status, the
 * headers shown, the JSON body), and the frames the server sends unasked (`welcome`, the `assign`
 * after a `continue`, `cancel`). The page's own values are used as they are: the test registers
 * the runner the examples speak for (its id and token) and the task they are about (its id,
 * generation 3, base commit), and arranges each situation the page describes before sending its
 * example. The last test fails if any example of the page was not sent or not checked.
 */

const page = readFileSync(new URL("../docs/protocol.md", import.meta.url), "utf8");
const blocks = fencedBlocks(page);
const pageExchanges = exchanges(blocks);
/** Blocks of the page no test has sent or checked yet. */
const unchecked = new Set(
  blocks.filter((b) => b.lang === "json" || b.lang === "http").map((b) => b.index),
);

type Frame = Record<string, unknown> & { type: string; id?: string };
const jsonExamples = blocks
  .filter((b) => b.lang === "json")
  .map((block) => ({ block, frame: JSON.parse(block.text) as Frame }));
const RUNNER_TYPES = new Set<string>(RunnerMessage.options.map((o) => o.shape.type.value));

/** The runner frame example with this id (an `invalid-frame` one included). */
function runnerExample(id: string): Frame {
  const found = jsonExamples.filter(
    ({ block, frame }) =>
      RUNNER_TYPES.has(frame.type) && frame.id === id && block.marker !== "change-set",
  );
  expect(found, `one runner example with id ${id}`).toHaveLength(1);
  unchecked.delete(found[0]!.block.index);
  return found[0]!.frame;
}

/** The server frame example of this type (and id, when given). */
function serverExample(type: string, id?: string): Frame {
  const found = jsonExamples.filter(
    ({ frame }) =>
      frame.type === type && !RUNNER_TYPES.has(type) && (id === undefined || frame.id === id),
  );
  expect(found, `one ${type} example${id ? ` with id ${id}` : ""}`).toHaveLength(1);
  unchecked.delete(found[0]!.block.index);
  return found[0]!.frame;
}

/** What the page says a runner frame is answered: the server example with its id, else `ack`. */
function answerFor(frame: Frame): Frame {
  const shown = jsonExamples.filter(
    ({ frame: f }) => !RUNNER_TYPES.has(f.type) && f.id !== undefined && f.id === frame.id,
  );
  if (shown.length === 0) return { type: "ack", id: frame.id };
  expect(shown, `one answer shown for ${frame.id}`).toHaveLength(1);
  unchecked.delete(shown[0]!.block.index);
  return shown[0]!.frame;
}

// The identities the examples speak for.
const hello = runnerExample("h-1") as Frame & {
  running: { task_id: string; generation: number }[];
};
const TASK_ID = hello.running[0]!.task_id;
const GENERATION = hello.running[0]!.generation;
const RUNNER_ID = serverExample("welcome").runner_id as string;
const TOKEN = /Bearer (cvr_\S+)/.exec(
  pageExchanges
    .find((e) => e.name === "upgrade")!
    .request.headers.find(([n]) => n === "Authorization")![1],
)![1]!;
const changeSet = JSON.parse(blocks.find((b) => b.marker === "change-set")!.text) as {
  base_sha: string;
};
const assignExample = serverExample("assign") as Frame & {
  issue: { number: number; title: string; body: string };
  limits: Record<string, number>;
  verify: string[][];
  feedback: string;
};

let h: Harness;
let session: FakeRunner | undefined;

beforeAll(async () => {
  // The page's timings are the real ones (welcome shows them).
  h = await createHarness({
    // No reconciliation: it would cancel the task of the examples, whose issue GitHub lacks.
    start: {
      publishPullRequests: false,
      dispatchTimings: DEFAULT_TIMINGS,
      reconcileOnStart: false,
    },
  });
  await h.database.db.execute(sql`
    insert into repositories (repository_id, installation_id, full_name, default_branch)
    values (${h.repositoryId}, ${h.installationId}, ${h.repo}, 'main')
    on conflict (repository_id) do nothing`);
  await h.database.db.execute(sql`
    insert into runners (runner_id, name, capabilities, tier, token_hash)
    values (${RUNNER_ID}, ${hello.name as string}, ${`{${(hello.capabilities as string[]).join(",")}}`}::text[],
            'normal', ${createHash("sha256").update(TOKEN).digest("hex")})`);
});
afterAll(async () => {
  session?.close();
  await h?.close();
});

/**
 * The task of the examples, held by the examples' runner at their generation, in `state`. It needs
 * a capability nobody offers, so the dispatcher never hands it out by itself, and its status
 * comment counts as written (its issue exists only in the examples).
 */
async function seedTask(state: "assigned" | "running") {
  const e = assignExample;
  const limits = { ...e.limits, verify: e.verify };
  const lastError = /: (.*)$/.exec(e.feedback)![1]!;
  await h.database.db.execute(sql`delete from change_sets where task_id = ${TASK_ID}`);
  await h.database.db.execute(sql`
    insert into tasks (task_id, repository_id, installation_id, issue_number, state, capabilities,
                       generation, title, body, snapshot_hash, queued_by, runner_id,
                       lease_expires_at, limits, last_error, base_sha, status_version,
                       status_synced_version)
    values (${TASK_ID}, ${h.repositoryId}, ${h.installationId}, ${e.issue.number}, ${state},
            '{docker}', ${GENERATION}, ${e.issue.title}, ${e.issue.body}, 'examples', 'octocat',
            ${RUNNER_ID}, now() + interval '60 seconds', ${JSON.stringify(limits)}::jsonb,
            ${lastError}, ${changeSet.base_sha}, 1, 1000000000)
    on conflict (task_id) do update set
      state = excluded.state, generation = excluded.generation, runner_id = excluded.runner_id,
      lease_expires_at = excluded.lease_expires_at, deadline_at = null, attempts = 0,
      available_at = now(), last_error = excluded.last_error, base_sha = excluded.base_sha,
      result = null, status_version = 1, status_synced_version = 1000000000`);
}

const stateOf = async () => (await getTask(h.database.db, TASK_ID))?.state;

/** A fresh connection of the examples' runner that sends the `hello` example; returns its welcome. */
async function connectWithHello(): Promise<Frame> {
  // Wait for the old socket to close: a runner token may hold only two at once.
  if (session) {
    session.close();
    await session.closed;
  }
  session = await connectRunner(h.conveyor.url, TOKEN, false);
  session.send(hello);
  return (await session.next("welcome")) as Frame;
}

/** The task held in `state` by a fresh connection, as after a reconnect (`continue`). */
async function holdTask(state: "assigned" | "running"): Promise<FakeRunner> {
  await seedTask(state);
  await connectWithHello();
  await session!.next("assign", (f) => f.task_id === TASK_ID);
  return session!;
}

/** Sends a runner frame example and checks the answer the page shows for it. */
async function sendAndCheck(runner: FakeRunner, id: string): Promise<void> {
  const frame = runnerExample(id);
  const expected = answerFor(frame);
  runner.send(frame);
  const answer = await runner.next(
    expected.type as ServerMessage["type"],
    (f) => "id" in f && f.id === id,
  );
  expect(answer).toEqual(expected);
}

interface HttpAnswer {
  status: number;
  reason: string;
  headers: Map<string, string>;
  body: string;
}

/** Sends a request as the page writes it (Host made ours), over a plain TCP connection. */
function send(request: HttpMessage): Promise<HttpAnswer> {
  const { hostname, port } = new URL(h.conveyor.url);
  const upgrade = request.headers.some(([n]) => n.toLowerCase() === "upgrade");
  const headers = request.headers.map(([n, v]) =>
    n.toLowerCase() === "host" ? `Host: ${hostname}:${port}` : `${n}: ${v}`,
  );
  if (!upgrade) headers.push("Connection: close");
  if (
    request.body !== undefined &&
    !request.headers.some(([n]) => n.toLowerCase() === "content-length")
  ) {
    headers.push(`Content-Length: ${Buffer.byteLength(request.body)}`);
  }
  const wire = `${request.startLine}\r\n${headers.join("\r\n")}\r\n\r\n${request.body ?? ""}`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer to ${request.startLine}: ${data.toString()}`));
    }, 10_000);
    const finish = () => {
      clearTimeout(timer);
      const text = data.toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
      const status = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(statusLine);
      resolve({
        status: Number(status?.[1]),
        reason: status?.[2] ?? "",
        headers: new Map(
          lines.map((l) => [
            l.slice(0, l.indexOf(":")).trim().toLowerCase(),
            l.slice(l.indexOf(":") + 1).trim(),
          ]),
        ),
        body: text.slice(end + 4),
      });
    };
    socket.on("data", (chunk) => {
      data = Buffer.concat([data, chunk]);
      // A switched protocol has no body to wait for: the WebSocket starts here.
      if (/^HTTP\/1\.1 101 /.test(data.toString()) && data.includes("\r\n\r\n")) {
        socket.destroy();
        finish();
      }
    });
    socket.on("end", finish);
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(wire);
  });
}

/** Sends the exchange of that name and checks the answer the page shows. */
async function exchange(name: string): Promise<HttpAnswer> {
  const found = pageExchanges.filter((e) => e.name === name);
  expect(found, `one exchange named ${name}`).toHaveLength(1);
  const { request, response, blocks: parts } = found[0]!;
  const answer = await send(request);
  const [, status, reason] = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(response.startLine)!;
  expect({ status: answer.status, reason: answer.reason }, `${name}: ${answer.body}`).toEqual({
    status: Number(status),
    reason,
  });
  for (const [header, value] of response.headers) {
    expect(answer.headers.get(header.toLowerCase()), `${name}: ${header}`).toBe(value);
  }
  if (response.body !== undefined) {
    expect(JSON.parse(answer.body), name).toEqual(JSON.parse(response.body));
  }
  for (const part of parts) unchecked.delete(part.index);
  return answer;
}

describe("docs/protocol.md against a real server: connecting", () => {
  it("upgrades with the token, and refuses an unknown token, another path and a plain GET with JSON", async () => {
    await exchange("upgrade");
    await exchange("upgrade-unknown-token");
    await exchange("upgrade-wrong-path");
    await exchange("upgrade-missing");
  });

  it("publishes protocol.schema.json at GET /api/schemas", async () => {
    const answer = await exchange("schemas");
    const file = readFileSync(new URL("../docs/protocol.schema.json", import.meta.url), "utf8");
    expect(JSON.parse(answer.body)).toEqual(JSON.parse(file));
  });
});

describe("docs/protocol.md against a real server: a task's frames", () => {
  it("answers hello with the welcome shown, then sends the assign shown again (continue)", async () => {
    await seedTask("running");
    const welcome = await connectWithHello();
    expect(welcome).toEqual(serverExample("welcome"));
    const assign = (await session!.next("assign", undefined, 20_000)) as Frame & {
      repo: { clone_url: string };
      issue: { url: string };
      read_token: { value: string; expires_at: string };
    };
    // A fresh installation token from (simulated) GitHub, whose address stands in for github.com.
    expect(assign.read_token.value).toMatch(/^ghs_[A-Za-z0-9]{36}$/);
    expect(Date.parse(assign.read_token.expires_at)).toBeGreaterThan(Date.now());
    const github = (url: string) => url.replace(h.sim.url, "https://github.com");
    expect({
      ...assign,
      repo: { ...assign.repo, clone_url: github(assign.repo.clone_url) },
      issue: { ...assign.issue, url: github(assign.issue.url) },
      read_token: assignExample.read_token,
    }).toEqual(assignExample);
  });

  it("acknowledges accept, heartbeat and log; refuses complete before the upload", async () => {
    const runner = await holdTask("assigned");
    await sendAndCheck(runner, "a-1");
    expect(await stateOf()).toBe("running");
    await sendAndCheck(runner, "hb-17");
    await sendAndCheck(runner, "l-42");
    await sendAndCheck(runner, "c-2");
    expect(await stateOf()).toBe("running");
  });

  it("answers every upload request as shown", async () => {
    expect(await stateOf()).toBe("running");
    await exchange("upload-stored");
    for (const name of [
      "upload-unknown-token",
      "upload-too-large",
      "upload-bad-url",
      "upload-not-json",
      "upload-schema",
      "upload-forbidden-path",
      "upload-wrong-base",
      "upload-not-held",
    ]) {
      await exchange(name);
    }
  });

  it("acknowledges complete, then answers a heartbeat for the finished task stale", async () => {
    await sendAndCheck(session!, "c-1");
    const task = await getTask(h.database.db, TASK_ID);
    expect(task?.state).toBe("pushed");
    expect(task?.result).toMatchObject({ summary: expect.stringMatching(/^Pages are now/) });
    await sendAndCheck(session!, "hb-18");
  });

  it("acknowledges reject (no attempt counted) and fail (attempt counted, detail kept)", async () => {
    await sendAndCheck(await holdTask("assigned"), "r-1");
    expect(await getTask(h.database.db, TASK_ID)).toMatchObject({ state: "queued", attempts: 0 });
    await sendAndCheck(await holdTask("running"), "f-1");
    const failed = await getTask(h.database.db, TASK_ID);
    expect(failed?.attempts).toBe(1);
    expect(failed?.lastError).toMatch(/^agent exited with status 1 after 3 min: error: model API/);
  });

  it("acknowledges drain and answers ping with the pong shown", async () => {
    await sendAndCheck(session!, "d-1");
    await sendAndCheck(session!, "p-9");
  });

  it("sends the cancel shown when the lease runs out", async () => {
    const runner = await holdTask("running");
    await h.database.db.execute(
      sql`update tasks set lease_expires_at = now() - interval '1 second' where task_id = ${TASK_ID}`,
    );
    await h.conveyor.dispatcher!.sweepOnce();
    expect(await runner.next("cancel")).toEqual(serverExample("cancel"));
  });
});

describe("docs/protocol.md against a real server: refusals", () => {
  it("answers the invalid heartbeat with the error shown", async () => {
    await connectWithHello();
    await sendAndCheck(session!, "hb-19");
  });

  it("answers the second log refused in a row with the rate_limited shown", async () => {
    const example = runnerExample("l-43");
    const expected = answerFor(example);
    // The normal bucket refills a token a second, so one may come between the first refusal and
    // l-43 (sooner the fuller the bucket was left): then l-43 passes, and the streak is spoiled
    // for that runner. A fresh runner (buckets are per runner) tries again.
    for (let round = 0; round < 3; round++) {
      const { token } = await createRunner(h.database.db, {
        name: `refusals-${round}`,
        capabilities: [],
        tier: "normal",
      });
      const runner = await connectRunner(h.conveyor.url, token);
      // Empty the runner's normal bucket: each log takes a token until the first refusal.
      for (let n = 0; ; n++) {
        expect(n, "the normal bucket never ran dry").toBeLessThan(100);
        runner.send({ ...example, id: `fill-${n}` });
        const reply = await waitFor(() =>
          runner.received.find((f) => "id" in f && f.id === `fill-${n}`),
        );
        if (reply.type === "rate_limited") break;
        expect(reply.type).toBe("stale");
      }
      runner.send(example);
      const answer = await waitFor(() => runner.received.find((f) => "id" in f && f.id === "l-43"));
      runner.close();
      if (answer.type === "stale") continue;
      expect(answer).toEqual(expected);
      return;
    }
    throw new Error("a token refilled before l-43 in every round");
  });

  it("closes after ten invalid frames and refuses the next connection with 429, as shown", async () => {
    const runner = await connectRunner(h.conveyor.url, TOKEN, false);
    runner.send(hello);
    await runner.next("welcome");
    for (let n = 0; n < 10; n++) runner.sendRaw("{");
    expect((await runner.closed).code).toBe(1008);
    await exchange("upgrade-too-many-invalid-frames");
  });
});

describe("docs/protocol.md", () => {
  it("had every example sent to the server or checked against its answer", () => {
    const left = blocks
      .filter((b) => unchecked.has(b.index))
      .map((b) => `line ${b.line}: ${b.text.split("\n")[0]}`);
    expect(left).toEqual([]);
  });
});
