import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner } from "./helpers/fake-runner.ts";

let h: Harness;
beforeAll(async () => {
  h = await createHarness({
    start: { rateLimits: { light: 100_000, normal: 100_000, heavy: 100_000 } },
  });
});
afterAll(async () => {
  await h?.close();
});

/** A small deterministic PRNG, so a failure can be replayed from its seed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TYPES = [
  "hello",
  "accept",
  "reject",
  "heartbeat",
  "log",
  "complete",
  "fail",
  "drain",
  "ping",
  "assign",
  "",
  "HELLO",
  "__proto__",
  "constructor",
];

function randomFrame(rand: () => number): string {
  const pick = <T>(items: T[]) => items[Math.floor(rand() * items.length)]!;
  const junk = () =>
    pick<unknown>([
      null,
      true,
      -1,
      0,
      1e308,
      Number.MAX_SAFE_INTEGER + 2,
      "",
      "x".repeat(rand() * 200),
      [],
      {},
      [1, [2, [3]]],
      { a: { b: { c: 1 } } },
    ]);
  switch (Math.floor(rand() * 6)) {
    case 0:
      return Array.from({ length: Math.floor(rand() * 40) }, () =>
        String.fromCharCode(Math.floor(rand() * 0xffff)),
      ).join("");
    case 1:
      return JSON.stringify(junk());
    case 2:
      return `{"type":"${pick(TYPES)}"`; // truncated
    case 3: {
      const frame: Record<string, unknown> = { type: pick(TYPES) };
      for (const key of [
        "task_id",
        "generation",
        "stage",
        "reason",
        "retryable",
        "chunk",
        "protocol",
        "slots",
        "running",
        "id",
        "__proto__",
      ]) {
        if (rand() < 0.5) frame[key] = junk();
      }
      return JSON.stringify(frame);
    }
    case 4:
      return JSON.stringify({
        type: "heartbeat",
        task_id: "00000000-0000-4000-8000-000000000000",
        generation: Math.floor(rand() * 5) - 1,
        stage: pick(["agent", "nap"]),
      });
    default:
      return JSON.stringify({ type: "ping", id: String(rand()) });
  }
}

describe("runner socket under fuzzing", () => {
  it("survives thousands of random and malformed frames: errors as specified, closes abusers", async () => {
    const rand = prng(20261125);
    let sent = 0;
    let errors = 0;
    let closedForViolations = 0;
    for (let r = 0; r < 100; r++) {
      const { token } = await createRunner(h.database.db, {
        name: `fuzz-${r}`,
        capabilities: [],
        tier: "normal",
      });
      const runner = await connectRunner(h.conveyor.url, token);
      const frames = Array.from({ length: 25 }, () => randomFrame(rand));
      for (const frame of frames) {
        if (runner.ws.readyState !== runner.ws.OPEN) break;
        runner.sendRaw(frame);
        sent++;
      }
      // Whatever arrives, the connection either stays usable or is closed for policy reasons.
      runner.send({ type: "ping", id: "probe" });
      const outcome = await Promise.race([
        runner.next("pong", (f) => f.id === "probe", 5_000).then(() => ({ code: 0 })),
        runner.closed,
      ]);
      const received = runner.received as ServerMessage[];
      for (const frame of received.filter((f) => f.type === "error")) {
        expect(["invalid_frame", "invalid_json", "protocol"]).toContain(frame.code);
        errors++;
      }
      expect([0, 1008]).toContain(outcome.code);
      if (outcome.code === 1008) closedForViolations++;
      runner.close();
    }
    expect(sent).toBeGreaterThan(2_000);
    // Each connection is answered frame by frame and closed at its tenth invalid one.
    expect(errors).toBeGreaterThanOrEqual(1_000);
    expect(closedForViolations).toBeGreaterThan(10);
    // The server is still healthy and a well-behaved runner still gets work.
    expect((await fetch(`${h.conveyor.url}/readyz`)).status).toBe(200);
    const { token } = await createRunner(h.database.db, {
      name: "after-fuzz",
      capabilities: [],
      tier: "normal",
    });
    const good = await connectRunner(h.conveyor.url, token);
    const { issue } = await h.sim.openIssue(h.repo, { title: "After the storm", user: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    expect((await good.next("assign")).issue.number).toBe(issue.number);
    good.close();
    expect(h.sim.violations).toEqual([]);
  }, 120_000);
});
