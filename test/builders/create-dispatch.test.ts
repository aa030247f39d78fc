import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import type { Signal } from "../../src/core/ports.ts";
import { createSignals } from "../../src/core/signals.ts";
import { createDispatch, type Dispatch } from "../../src/dispatch/create-dispatch.ts";
import { DEFAULT_TIMINGS, DISPATCH_CHANNEL } from "../../src/dispatch/dispatcher.ts";
import { handleWebSocketUpgrades } from "../../src/dispatch/websocket-upgrades.ts";
import { createRunner } from "../../src/store/runners.ts";
import { connectRunner } from "../helpers/fake-runner.ts";
import { seedQueuedTask } from "../helpers/seed-task.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { waitFor } from "../helpers/wait-for.ts";

const HEAD = "b".repeat(40);

describe("the dispatch subsystem, built alone", () => {
  let database: TestDatabase;
  let dispatch: Dispatch;
  let server: Server;
  let url: string;
  const signals = createSignals();
  const heard: Signal[] = [];
  const sent: string[] = [];
  const asked: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    signals.on("status-owed", () => heard.push("status-owed"));
    signals.on("runner-reported", () => heard.push("runner-reported"));
    dispatch = createDispatch({
      database,
      logger: pino({ level: "silent" }),
      // A fake GitHub: where to clone from and with which token.
      gateway: {
        async repositoryHead(ref) {
          asked.push(`head ${ref.owner}/${ref.repo}`);
          return {
            cloneUrl: "https://git.example/acme/widgets.git",
            defaultBranch: "main",
            headSha: HEAD,
            htmlUrl: "https://github.example/acme/widgets",
          };
        },
        async readOnlyToken(ref) {
          asked.push(`token ${ref.owner}/${ref.repo}`);
          return { value: "ghs_read_only", expiresAt: "2999-01-01T00:00:00Z" };
        },
      },
      config: { agingMs: 30 * 60_000 },
      timings: DEFAULT_TIMINGS,
      options: {},
      metrics: {
        dispatchSent: (lane) => sent.push(lane),
        frameRateLimited: () => {},
        frameInvalid: () => {},
        violationDisconnect: () => {},
      },
      recordError: () => {},
      signals,
    });
    const app = new Hono();
    app.route("/", dispatch.routes);
    const wss = new WebSocketServer({ noServer: true });
    server = createAdaptorServer({ fetch: app.fetch }) as Server;
    handleWebSocketUpgrades({ server, wss, fetch: app.fetch });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await dispatch.start();
  });
  afterAll(async () => {
    await dispatch?.stop();
    await new Promise((resolve) => server?.close(resolve));
    await database?.drop();
  });

  it("refuses a runner whose token the store does not know", async () => {
    await expect(connectRunner(url, "rnr_unknown")).rejects.toMatchObject({ status: 401 });
  });

  it("tells every instance about work when tasks change", async () => {
    const notices: string[] = [];
    const unlisten = await database.listen(DISPATCH_CHANNEL, (payload) => notices.push(payload));
    signals.emit("tasks-changed");
    await waitFor(() => notices.find((n) => JSON.parse(n).kind === "work"), {
      message: "a work notice",
    });
    await unlisten();
  });

  it("offers a queued task to a connected runner, from where the gateway says, and closes its socket at stop", async () => {
    const { token } = await createRunner(database.db, {
      name: "solo",
      capabilities: [],
      tier: "normal",
    });
    const runner = await connectRunner(url, token);
    await seedQueuedTask(database.db, {
      repositoryId: 77,
      installationId: 5,
      issueNumber: 12,
      title: "Add a widget",
    });
    signals.emit("work-available");
    const assign = await runner.next("assign");
    expect(assign.repo).toMatchObject({
      full_name: "acme/widgets",
      clone_url: "https://git.example/acme/widgets.git",
      base_sha: HEAD,
    });
    expect(assign.read_token.value).toBe("ghs_read_only");
    expect(assign.issue.url).toBe("https://github.example/acme/widgets/issues/12");
    expect(asked.sort()).toEqual(["head acme/widgets", "token acme/widgets"]);
    await waitFor(() => sent.length > 0 && heard.length > 0, { message: "metrics and signal" });
    expect(sent).toEqual(["normal"]);
    expect(heard[0]).toBe("status-owed");

    // The runner's accept is news for the loops of this instance, not work for any other: no
    // NOTIFY (a commit per frame when a fleet finishes a task every few milliseconds).
    const notices: string[] = [];
    const unlisten = await database.listen(DISPATCH_CHANNEL, (payload) => notices.push(payload));
    runner.send({
      type: "accept",
      id: "a-1",
      task_id: assign.task_id,
      generation: assign.generation,
    });
    await runner.next("ack");
    await waitFor(() => heard.includes("runner-reported"), { message: "runner-reported" });
    // A notice sent after the accept's: it arrives after any the accept would have caused.
    await database.notify(DISPATCH_CHANNEL, JSON.stringify({ kind: "marker" }));
    await waitFor(() => notices.length > 0, { message: "the marker notice" });
    expect(notices.map((n) => JSON.parse(n).kind)).toEqual(["marker"]);
    await unlisten();

    await dispatch.stop();
    expect((await runner.closed).code).toBe(1001);
  });
});
