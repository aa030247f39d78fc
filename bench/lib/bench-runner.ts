import { createHash, randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import postgres from "postgres";
import { WebSocket } from "ws";
import type { RunnerMessage, ServerMessage } from "../../src/protocol/messages.ts";
import { hashRunnerToken, RUNNER_TOKEN_PREFIX } from "../../src/store/runners.ts";

type Assign = Extract<ServerMessage, { type: "assign" }>;

/** Kept-alive connections for every simulated runner's uploads. */
const uploads = new Agent({ keepAlive: true, maxSockets: 256 });

/**
 * `PUT`s a change set with `node:http` rather than `fetch`: the simulated runners share the
 * machine with the server they measure, and `fetch` (a WHATWG Request, Response and streams per
 * call) cost the driver more CPU than the rest of a runner's round.
 */
function put(url: string, token: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "PUT",
        agent: uploads,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Registered runner identities (name and token), as `conveyor runners add` makes them. */
export interface RunnerIdentity {
  name: string;
  token: string;
}

/**
 * Registers `count` runners straight in the `runners` table (the same columns and token format as
 * `createRunner`, in one statement per thousand: registering 10,000 one by one is not what is
 * being measured).
 */
export async function registerRunners(
  databaseUrl: string,
  count: number,
  prefix = "bench",
): Promise<RunnerIdentity[]> {
  const identities = Array.from({ length: count }, (_, i) => ({
    name: `${prefix}-${String(i + 1).padStart(5, "0")}`,
    token: `${RUNNER_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`,
  }));
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (let start = 0; start < count; start += 1_000) {
      const batch = identities.slice(start, start + 1_000);
      await sql`
        insert into runners (name, token_hash)
        select * from unnest(${batch.map((b) => b.name)}::text[],
                             ${batch.map((b) => hashRunnerToken(b.token))}::text[])`;
    }
  } finally {
    await sql.end();
  }
  return identities;
}

export interface BenchRunnerOptions {
  name: string;
  slots?: number;
  /**
   * Take every assignment and finish it at once: `accept` and one `heartbeat`, upload a one-file
   * change set, `complete`. Off: the runner only holds its connection (and pings).
   */
  complete?: boolean;
  /** The change set's files (default: one line of `BENCH.md`, which every task edits). */
  changes?: (assign: Assign) => { path: string; action: "modify" | "create"; content: string }[];
  /** Keepalive `ping` interval; the real runner's default is 20 s. Off when undefined. */
  pingMs?: number;
  /** Called with each `assign` and the moment (performance.now()) it arrived. */
  onAssign?: (assign: Assign, at: number) => void;
  /** Called when the server acknowledged the task's `complete`. */
  onCompleted?: (taskId: string, at: number) => void;
  /** Called when the server answered `error`, `stale` or `rate_limited`: the run is not clean. */
  onProblem?: (problem: string) => void;
  /** Called with each `cancel` the server sent. */
  onCancel?: (cancel: Extract<ServerMessage, { type: "cancel" }>) => void;
}

export interface BenchRunner {
  readonly name: string;
  /** Pings sent and pongs received. */
  readonly counters: { pings: number; pongs: number };
  close(): void;
}

/**
 * A simulated runner speaking protocol 1 over a real WebSocket, and uploading change sets over
 * HTTP like `conveyor-runner` does, with no agent behind it.
 */
export async function connectBenchRunner(
  serverUrl: string,
  identity: RunnerIdentity,
  options: BenchRunnerOptions,
): Promise<BenchRunner> {
  const ws = new WebSocket(`${serverUrl.replace(/^http/, "ws")}/runners/v1`, {
    headers: { authorization: `Bearer ${identity.token}` },
  });
  const counters = { pings: 0, pongs: 0 };
  const waiting = new Map<string, (frame: ServerMessage) => void>();
  let frameIds = 0;
  let pingTimer: NodeJS.Timeout | undefined;
  const send = (frame: RunnerMessage) => ws.send(JSON.stringify(frame));
  /** Sends a frame with an id and resolves with the server's answer to it. */
  const request = (frame: RunnerMessage) =>
    new Promise<ServerMessage>((resolve) => {
      const id = String(++frameIds);
      waiting.set(id, resolve);
      send({ ...frame, id } as RunnerMessage);
    });
  const problem = (what: string, frame: ServerMessage) =>
    options.onProblem?.(`${options.name}: ${what}: ${JSON.stringify(frame).slice(0, 300)}`);

  async function finish(assign: Assign): Promise<void> {
    const fence = { task_id: assign.task_id, generation: assign.generation };
    // Frames of one connection are handled in order: the heartbeat's ack means the accept is in.
    request({ type: "accept", ...fence }).then((answer) => {
      if (answer.type !== "ack") problem("accept refused", answer);
    });
    const beat = await request({ type: "heartbeat", ...fence, stage: "agent" });
    if (beat.type !== "ack") return problem("heartbeat refused", beat);
    const body = JSON.stringify({
      base_sha: assign.repo.base_sha,
      message: `Benchmark change for #${assign.issue.number}`,
      files: options.changes?.(assign) ?? [
        { path: "BENCH.md", action: "modify", content: `task ${assign.task_id}\n` },
      ],
    });
    const upload = await put(
      `${serverUrl}/runners/v1/tasks/${assign.task_id}/changes?generation=${assign.generation}`,
      identity.token,
      body,
    );
    if (upload.status !== 201) {
      options.onProblem?.(`${options.name}: upload answered ${upload.status}: ${upload.body}`);
      return;
    }
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    const done = await request({
      type: "complete",
      ...fence,
      changes_digest: digest,
      summary: "Benchmark: no agent ran.",
      stats: { files_changed: 1, lines_added: 1, lines_removed: 0 },
    });
    if (done.type !== "ack") return problem("complete refused", done);
    options.onCompleted?.(assign.task_id, performance.now());
  }

  ws.on("message", (data) => {
    const at = performance.now();
    const frame = JSON.parse(String(data)) as ServerMessage;
    if (frame.type === "assign") {
      options.onAssign?.(frame, at);
      if (options.complete) {
        finish(frame).catch((error: Error) =>
          options.onProblem?.(`${options.name}: ${error.message}`),
        );
      }
      return;
    }
    if (frame.type === "pong") counters.pongs++;
    // `welcome` answers `hello` without echoing its id.
    const id = frame.type === "welcome" ? "hello" : "id" in frame ? frame.id : undefined;
    const waiter = id === undefined ? undefined : waiting.get(id);
    if (waiter) {
      waiting.delete(id!);
      waiter(frame);
    } else if (frame.type === "error" || frame.type === "stale" || frame.type === "rate_limited") {
      problem("unexpected answer", frame);
    } else if (frame.type === "cancel") {
      options.onCancel?.(frame);
    }
  });
  ws.on("close", () => clearTimeout(pingTimer));

  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_request, response) =>
      reject(new Error(`${options.name}: the server refused the upgrade (${response.statusCode})`)),
    );
  });
  const welcome = await new Promise<ServerMessage>((resolve) => {
    waiting.set("hello", resolve);
    send({
      type: "hello",
      id: "hello",
      protocol: 1,
      name: options.name,
      version: "bench",
      capabilities: [],
      slots: options.slots ?? 1,
      running: [],
    });
  });
  if (welcome.type !== "welcome") {
    ws.terminate();
    throw new Error(`${options.name}: hello answered with ${JSON.stringify(welcome)}`);
  }
  if (options.pingMs) {
    const pingMs = options.pingMs;
    const ping = () => {
      counters.pings++;
      send({ type: "ping" });
      pingTimer = setTimeout(ping, pingMs);
    };
    // A random phase: a fleet of runners that started together does not ping in lockstep.
    pingTimer = setTimeout(ping, Math.random() * pingMs);
  }
  return {
    name: options.name,
    counters,
    close() {
      clearTimeout(pingTimer);
      ws.terminate();
    },
  };
}

/**
 * Connects many runners, `parallel` handshakes at a time (a fleet coming online, not one burst
 * of 10,000 upgrades). Reports progress every `every` connections.
 */
export async function connectFleet(
  serverUrl: string,
  identities: readonly RunnerIdentity[],
  options: Omit<BenchRunnerOptions, "name"> & {
    parallel?: number;
    onProgress?: (connected: number) => void;
    every?: number;
  },
): Promise<BenchRunner[]> {
  const runners: BenchRunner[] = new Array(identities.length);
  let next = 0;
  let connected = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= identities.length) return;
      const identity = identities[index]!;
      runners[index] = await connectBenchRunner(serverUrl, identity, {
        ...options,
        name: identity.name,
      });
      connected++;
      if (options.onProgress && connected % (options.every ?? 1_000) === 0) {
        options.onProgress(connected);
      }
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 50 }, worker));
  return runners;
}
