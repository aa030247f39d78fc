import { afterEach, describe, expect, it } from "vitest";
import { createHelloDeadlines, type HelloDeadlines, type RunnerSession } from "./runner-session.ts";

/** A session as the deadlines see it: something that can miss its hello. */
function fakeSession(missed: { name: string; at: number }[], name: string) {
  return {
    helloMissed: () => missed.push({ name, at: Date.now() }),
  } as unknown as RunnerSession;
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met within the deadline");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("hello deadlines (one timer for every socket)", () => {
  let deadlines: HelloDeadlines | undefined;
  afterEach(() => deadlines?.clear());

  it("closes each silent socket once its own wait is over, in the order they opened", async () => {
    const helloMs = 60;
    deadlines = createHelloDeadlines(helloMs);
    const missed: { name: string; at: number }[] = [];
    const opened = new Map<string, number>();
    for (const name of ["first", "second", "third"]) {
      opened.set(name, Date.now());
      deadlines.add(fakeSession(missed, name));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await until(() => missed.length === 3);
    expect(missed.map((m) => m.name)).toEqual(["first", "second", "third"]);
    for (const m of missed) expect(m.at - opened.get(m.name)!).toBeGreaterThanOrEqual(helloMs - 1);
  });

  it("leaves alone a socket that said hello (or closed) in time", async () => {
    deadlines = createHelloDeadlines(40);
    const missed: { name: string; at: number }[] = [];
    const early = fakeSession(missed, "said hello");
    const late = fakeSession(missed, "silent");
    deadlines.add(early);
    deadlines.add(late);
    deadlines.remove(early);
    // Due after the other two: once it is closed, the one that said hello would have been too.
    await new Promise((resolve) => setTimeout(resolve, 10));
    deadlines.add(fakeSession(missed, "sentinel"));
    await until(() => missed.length === 2);
    expect(missed.map((m) => m.name)).toEqual(["silent", "sentinel"]);
  });
});
