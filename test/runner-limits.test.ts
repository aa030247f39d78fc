import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createRunner } from "../src/store/runners.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * Limits on runner connections (issue #20): sockets per token, the hello deadline, the slots one
 * connection gets, per-type frame sizes and failed logins. The probes' inputs are the ones the
 * security review used.
 */

let h: Harness;
let count = 0;
beforeAll(async () => {
  h = await createHarness({
    start: { publishPullRequests: false, dispatchTimings: { helloMs: 400 } },
  });
});
afterAll(async () => {
  await h?.close();
});

async function token(): Promise<string> {
  const created = await createRunner(h.database.db, {
    name: `limits-${++count}`,
    capabilities: [],
    tier: "normal",
  });
  return created.token;
}

/** The status, `Retry-After` and body of a refused upgrade. */
function refusal(
  runnerToken: string,
): Promise<{ status: number; retryAfter: string; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${h.conveyor.url.replace(/^http/, "ws")}/runners/v1`, {
      headers: { authorization: `Bearer ${runnerToken}` },
    });
    ws.once("open", () => {
      ws.close();
      reject(new Error("the upgrade was accepted"));
    });
    ws.once("error", () => undefined);
    ws.once("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          retryAfter: String(response.headers["retry-after"] ?? ""),
          body,
        }),
      );
    });
  });
}

describe("runner connections", () => {
  it("refuses a third socket for one token (429) and takes it once one closed", async () => {
    const t = await token();
    const first = await connectRunner(h.conveyor.url, t);
    const second = await connectRunner(h.conveyor.url, t);
    await expect(connectRunner(h.conveyor.url, t)).rejects.toMatchObject({ status: 429 });
    const refused = await refusal(t);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).error).toMatch(/already has 2 open connections/);
    first.close();
    await first.closed;
    const third = await waitFor(() => connectRunner(h.conveyor.url, t).catch(() => undefined), {
      message: "a socket once another closed",
    });
    second.close();
    third.close();
  });

  it("closes a socket that sends no hello in time with 1008", async () => {
    const silent = await connectRunner(h.conveyor.url, await token(), false);
    const closed = await silent.closed;
    expect(closed).toEqual({ code: 1008, reason: "no hello within 0.4 s" });
  });

  it("keeps a socket that said hello open past the hello deadline", async () => {
    const runner = await connectRunner(h.conveyor.url, await token());
    const started = Date.now();
    await waitFor(() => Date.now() - started > 800, { message: "past the deadline" });
    runner.send({ type: "ping", id: "still-here" });
    expect((await runner.next("pong")).id).toBe("still-here");
    runner.close();
  });

  it("fills at most 32 slots whatever hello asks for", async () => {
    const runner = await connectRunner(h.conveyor.url, await token(), { slots: 64 });
    const welcome = runner.received.find((f) => f.type === "welcome");
    const connection = h.conveyor.dispatcher
      ?.connections()
      .find((c) => welcome?.type === "welcome" && c.runnerId === welcome.runner_id);
    expect(connection?.slots).toBe(32);
    runner.close();
  });

  it("sizes the light tier to the heartbeats of the filled slots: a full minute of them passes, a burst beyond is refused", async () => {
    // 2 slots at the tests' 300 ms heartbeat: 2 × 200 a minute, twice that is the light tier (800).
    const runner = await connectRunner(h.conveyor.url, await token(), { slots: 2 });
    for (let i = 0; i < 800; i++) runner.send({ type: "ping", id: `p${i}` });
    await runner.next("pong", (f) => f.id === "p799", 10_000);
    expect(runner.received.filter((f) => f.type === "rate_limited")).toEqual([]);
    // The bucket refills 13 a second meanwhile: a burst of 100 more outruns it.
    for (let i = 0; i < 100; i++) runner.send({ type: "ping", id: `over${i}` });
    expect(
      await runner.next("rate_limited", (f) => f.id?.startsWith("over") === true),
    ).toMatchObject({ retry_after_ms: expect.any(Number) });
    runner.close();
  });

  it("counts valid frames padded past their type's size as invalid and closes the flood", async () => {
    const runner: FakeRunner = await connectRunner(h.conveyor.url, await token());
    // A valid ping, padded to 900 KiB: before, each was parsed and answered `pong`, forever.
    const padded = `{"type":"ping","id":"pad"}${" ".repeat(900 * 1024)}`;
    for (let i = 0; i < 10; i++) runner.sendRaw(padded);
    const closed = await runner.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/10 invalid frames/);
    const errors = runner.received.filter((f) => f.type === "error");
    expect(errors).toHaveLength(10);
    expect(errors[0]).toMatchObject({ code: "invalid_frame", message: /at most 1024 bytes/ });
    expect(runner.received.some((f) => f.type === "pong")).toBe(false);
  });

  // Last: it blocks this test's address for a minute.
  it("rate-limits failed logins per address: the 11th attempt is refused, even with a good token", async () => {
    for (let i = 0; i < 10; i++) {
      expect((await refusal(`cvr_guess${i}`)).status).toBe(401);
    }
    const good = await token();
    const limited = await refusal(good);
    expect(limited.status).toBe(429);
    expect(Number(limited.retryAfter)).toBeGreaterThan(0);
    expect(JSON.parse(limited.body).error).toMatch(/too many failed runner logins/);
  });
});
