import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DashboardSnapshot } from "../src/dashboard/dashboard-snapshot.ts";
import type { RunningConveyor } from "../src/main.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * The live stream without a browser: `/dashboard/events` as server-sent events, and what only a
 * runner's own instance knows (its socket, heartbeat stage, output) reaching a dashboard served by
 * another instance on the same database.
 */

let h: Harness;
let other: RunningConveyor;
let runner: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;

beforeAll(async () => {
  h = await createHarness({
    files: { "src/app.txt": "one\n" },
    start: {
      dashboardTimings: {
        board: { tickMs: 100, beaconMs: 500, tailEveryMs: 200 },
        hub: { tickMs: 200 },
      },
    },
  });
  other = await h.startAnother();
  runner = await startScriptedRunner(h, "far-runner");
});
afterAll(async () => {
  runner?.stop();
  await h?.close();
});

interface Stream {
  events: { event: string; data: unknown }[];
  /** The agents' output by task (sent apart from the tasks). */
  logs: Map<string, string>;
  ended: boolean;
  state: Partial<DashboardSnapshot>;
  close(): void;
}

/** Follows `/dashboard/events` like a browser would, applying snapshots and patches. */
async function follow(url: string, headers: Record<string, string>): Promise<Stream> {
  const abort = new AbortController();
  const response = await fetch(`${url}/dashboard/events`, { headers, signal: abort.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const stream: Stream = {
    events: [],
    logs: new Map(),
    ended: false,
    state: {},
    close: () => abort.abort(),
  };
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data: "))
          .map((line) => line.slice(6))
          .join("\n");
        if (!data) continue;
        const parsed = JSON.parse(data) as Partial<DashboardSnapshot> & {
          logs?: Record<string, string | null>;
        };
        stream.events.push({ event, data: parsed });
        const { logs, ...sections } = parsed;
        if (event === "snapshot") {
          stream.state = sections;
          stream.logs.clear();
        }
        if (event === "patch") Object.assign(stream.state, sections);
        for (const [taskId, tail] of Object.entries(logs ?? {})) {
          if (tail === null) stream.logs.delete(taskId);
          else stream.logs.set(taskId, tail);
        }
      }
    }
  })()
    .catch(() => {})
    .finally(() => {
      stream.ended = true;
    });
  return stream;
}

describe("dashboard live stream", () => {
  it("refuses a stream without credentials, and says how to authenticate", async () => {
    const response = await fetch(`${h.conveyor.url}/dashboard/events`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: string }).error).toContain("Bearer");
  });

  it("shows on another instance the stage and output of a runner connected elsewhere", async () => {
    const stream = await follow(other.url, { authorization: `Bearer ${ADMIN_TOKEN}` });
    try {
      await waitFor(() => stream.events.some((e) => e.event === "snapshot"), {
        message: "the first snapshot",
      });
      expect(stream.events[0]).toEqual({
        event: "hello",
        data: {
          viewer: { name: "CONVEYOR_ADMIN_TOKEN", role: "admin", actor: "CONVEYOR_ADMIN_TOKEN" },
        },
      });
      const { taskId } = await queueScriptedIssue(
        h,
        "Far away",
        'print "hello from the other instance"\nsleep 2500\nwrite src/app.txt\n<<<\ntwo\n>>>',
      );
      const inFlight = await waitFor(
        () => {
          const task = stream.state.in_flight?.find((t) => t.task_id === taskId);
          return task?.stage === "agent" &&
            stream.logs.get(taskId)?.includes("hello from the other")
            ? task
            : undefined;
        },
        { timeoutMs: 15_000, message: "the stage and output on the other instance" },
      );
      expect(inFlight).toMatchObject({ state: "running", runner_name: "far-runner" });
      const far = stream.state.runners?.find((r) => r.name === "far-runner");
      expect(far).toMatchObject({ state: "busy", slots: 2, busy: 1 });
      expect(far?.last_heartbeat?.stage).toBe("agent");
      // Only what changed travels after the first snapshot.
      const patches = stream.events.filter((e) => e.event === "patch");
      expect(patches.length).toBeGreaterThan(0);
      expect(patches.every((p) => Object.keys(p.data as object).length < 8)).toBe(true);

      // The same state as JSON, from the instance that holds the socket.
      const state = (await (
        await fetch(`${h.conveyor.url}/dashboard/state`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        })
      ).json()) as DashboardSnapshot & { viewer: unknown };
      expect(state.viewer).toMatchObject({ name: "CONVEYOR_ADMIN_TOKEN", role: "admin" });
      expect(state.in_flight.find((t) => t.task_id === taskId)?.runner_name).toBe("far-runner");
      expect(state.charts.t).toHaveLength(60);
    } finally {
      stream.close();
    }
  });

  it("serves its pages and assets itself, uPlot included, with a strict content policy", async () => {
    const page = await fetch(`${h.conveyor.url}/dashboard/sign-in`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(await page.text()).toContain('action="/dashboard/sign-in"');
    // Not signed in: the dashboard sends people to the sign-in page.
    const dashboard = await fetch(`${h.conveyor.url}/dashboard`, { redirect: "manual" });
    expect(dashboard.status).toBe(303);
    expect(dashboard.headers.get("location")).toBe("/dashboard/sign-in");

    const uplot = await fetch(`${h.conveyor.url}/dashboard/assets/uPlot.iife.min.js`);
    expect(uplot.status).toBe(200);
    expect(uplot.headers.get("content-type")).toContain("text/javascript");
    expect(uplot.headers.get("content-encoding")).toBe("gzip");
    expect(await uplot.text()).toContain("uPlot");
    const etag = uplot.headers.get("etag")!;
    const again = await fetch(`${h.conveyor.url}/dashboard/assets/uPlot.iife.min.js`, {
      headers: { "if-none-match": etag },
    });
    expect(again.status).toBe(304);
    const missing = await fetch(`${h.conveyor.url}/dashboard/assets/..%2Fdashboard-routes.ts`);
    expect(missing.status).toBe(404);
  });

  it("refuses sign-ins from other sites, and slows down guessing", async () => {
    const signIn = (token: string, headers: Record<string, string> = {}) =>
      fetch(`${other.url}/dashboard/sign-in`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ token }).toString(),
      });
    const forged = await signIn(ADMIN_TOKEN, { origin: "https://evil.example" });
    expect(forged.status).toBe(403);
    expect(forged.headers.get("set-cookie")).toBeNull();
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) statuses.push((await signIn(`cva_guess-${i}`)).status);
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses[30]).toBe(429);
    // Even the right token waits now: the limit is on the address, not on the guess.
    expect((await signIn(ADMIN_TOKEN)).status).toBe(429);
  });

  it("ends open streams on shutdown instead of waiting for them", async () => {
    const third = await h.startAnother();
    const stream = await follow(third.url, { authorization: `Bearer ${ADMIN_TOKEN}` });
    await waitFor(() => stream.events.some((e) => e.event === "snapshot"));
    await third.stop();
    await waitFor(() => stream.ended, { message: "the stream to end" });
  });
});
