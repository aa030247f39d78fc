import { describe, expect, it } from "vitest";
import type { RunnerConnection, TaskProgress } from "../dispatch/dispatcher.ts";
import { createLogger } from "../logger.ts";
import {
  createLiveBoard,
  DASHBOARD_CHANNEL,
  type LiveBoard,
  SHARED_TAIL_CHARS,
} from "./live-board.ts";

const logger = createLogger({ level: "silent" });
const TIMINGS = { tickMs: 5, beaconMs: 40, tailEveryMs: 20 };

/** LISTEN/NOTIFY shared by the boards of several "instances", and a record of what went out. */
function createBus() {
  const listeners = new Set<(payload: string) => void>();
  const sent: { kind: string; instance: string }[] = [];
  return {
    sent,
    database: {
      async listen(channel: string, onNotify: (payload: string) => void) {
        expect(channel).toBe(DASHBOARD_CHANNEL);
        listeners.add(onNotify);
        return async () => {
          listeners.delete(onNotify);
        };
      },
      async notify(_channel: string, payload: string) {
        expect(Buffer.byteLength(payload)).toBeLessThan(8_000);
        try {
          sent.push(JSON.parse(payload));
        } catch {
          sent.push({ kind: "garbage", instance: "" });
        }
        for (const listener of listeners) listener(payload);
      },
    },
  };
}

function connection(runnerId: string, tasks: Record<string, number>) {
  const progress = new Map<string, TaskProgress>();
  const tails = new Map<string, string>();
  const c: RunnerConnection = {
    runnerId,
    name: `runner-${runnerId}`,
    capabilities: ["docker"],
    slots: 2,
    tasks: new Map(Object.entries(tasks)),
    connectedAt: "2025-01-01T00:00:00.000Z",
    lastAssignedAt: 0,
    draining: false,
    version: "0.1.0",
    logTail: (id) => tails.get(id),
    progress: (id) => progress.get(id),
    recentlyRateLimited: () => false,
    send() {},
    close() {},
  };
  return { c, progress, tails };
}

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 2_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

async function boards(bus: ReturnType<typeof createBus>, connections: RunnerConnection[][]) {
  const created: LiveBoard[] = [];
  for (const [i, held] of connections.entries()) {
    const board = createLiveBoard({
      database: bus.database,
      instanceId: `instance-${i}`,
      connections: () => held,
      logger,
      timings: TIMINGS,
    });
    await board.start();
    created.push(board);
  }
  return created;
}

describe("live board", () => {
  it("reads its own sockets: runners, the stage of each task and its output", async () => {
    const bus = createBus();
    const { c, progress, tails } = connection("r1", { t1: 3 });
    progress.set("t1", {
      generation: 3,
      stage: "agent",
      message: "thinking",
      at: "2025-01-01T00:00:01.000Z",
    });
    tails.set("t1", "x".repeat(SHARED_TAIL_CHARS + 10));
    const [board] = await boards(bus, [[c]]);
    board!.refresh();
    expect(board!.runners()).toEqual([
      expect.objectContaining({ runner_id: "r1", slots: 2, busy: 1, version: "0.1.0" }),
    ]);
    expect(board!.task("t1")).toMatchObject({ generation: 3, stage: "agent", message: "thinking" });
    expect(board!.task("t1")?.tail).toHaveLength(SHARED_TAIL_CHARS);
    await board!.stop();
  });

  it("keeps what it knew after the runner let go, until the task leaves flight", async () => {
    const bus = createBus();
    const { c, progress } = connection("r1", { t1: 1 });
    progress.set("t1", {
      generation: 1,
      stage: "uploading",
      message: undefined,
      at: "2025-01-01T00:00:01.000Z",
    });
    const [board] = await boards(bus, [[c]]);
    board!.refresh();
    c.tasks.delete("t1");
    board!.refresh();
    expect(board!.task("t1")?.stage).toBe("uploading");
    await board!.stop();
  });

  it("alone, sends nothing but its watch beacon while it has viewers, and nothing without", async () => {
    const bus = createBus();
    const { c } = connection("r1", { t1: 1 });
    const [board] = await boards(bus, [[c]]);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(bus.sent).toEqual([]);
    board!.setViewers(1);
    await until(() => bus.sent.length > 0, "a beacon");
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(new Set(bus.sent.map((m) => m.kind))).toEqual(new Set(["watch"]));
    await board!.stop();
  });

  it("shares runners, stages and output with an instance whose dashboard is open", async () => {
    const bus = createBus();
    const a = connection("r1", { t1: 2 });
    a.progress.set("t1", {
      generation: 2,
      stage: "cloning",
      message: undefined,
      at: "2025-01-01T00:00:01.000Z",
    });
    a.tails.set("t1", "cloning acme/widgets\n");
    const [holder, viewer] = await boards(bus, [[a.c], []]);
    viewer!.setViewers(1);
    await until(() => viewer!.task("t1")?.stage === "cloning", "the stage to arrive");
    expect(viewer!.runners()).toEqual([expect.objectContaining({ runner_id: "r1", busy: 1 })]);
    expect(viewer!.task("t1")?.tail).toBe("cloning acme/widgets\n");

    // Changes follow: a new stage at once, the output at most every tailEveryMs.
    a.progress.set("t1", {
      generation: 2,
      stage: "agent",
      message: "editing",
      at: "2025-01-01T00:00:02.000Z",
    });
    a.tails.set("t1", "cloning acme/widgets\nediting\n");
    await until(
      () =>
        viewer!.task("t1")?.stage === "agent" &&
        viewer!.task("t1")?.tail?.includes("editing") === true,
      "the new stage and output",
    );

    // Output that is long on the wire (escaped control characters) is cut to fit a notification.
    a.tails.set("t1", "\u0001".repeat(SHARED_TAIL_CHARS));
    await until(
      () => viewer!.task("t1")?.tail?.startsWith("\u0001") === true,
      "the escaped output",
    );
    expect(viewer!.task("t1")!.tail!.length).toBeLessThan(SHARED_TAIL_CHARS);
    await holder!.stop();
    await viewer!.stop();
  });

  it("forgets remote runners whose instance went quiet", async () => {
    const bus = createBus();
    const a = connection("r1", {});
    const [holder, viewer] = await boards(bus, [[a.c], []]);
    viewer!.setViewers(1);
    await until(() => viewer!.runners().length === 1, "the runner");
    await holder!.stop();
    await until(() => viewer!.runners().length === 0, "the runner to be forgotten");
    await viewer!.stop();
  });

  it("ignores a malformed message and news about an older generation", async () => {
    const bus = createBus();
    const [board] = await boards(bus, [[]]);
    await bus.database.notify(DASHBOARD_CHANNEL, "not json");
    await bus.database.notify(
      DASHBOARD_CHANNEL,
      JSON.stringify({
        kind: "task",
        instance: "other",
        task_id: "t1",
        generation: 5,
        runner_id: "r1",
        stage: "agent",
        message: null,
        at: null,
        tail: null,
      }),
    );
    await bus.database.notify(
      DASHBOARD_CHANNEL,
      JSON.stringify({
        kind: "task",
        instance: "other",
        task_id: "t1",
        generation: 4,
        runner_id: "r1",
        stage: "cloning",
        message: null,
        at: null,
        tail: null,
      }),
    );
    expect(board!.task("t1")).toMatchObject({ generation: 5, stage: "agent" });
    await board!.stop();
  });
});
