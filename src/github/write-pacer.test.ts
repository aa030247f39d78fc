import { describe, expect, it } from "vitest";
import { GitHubWritesClosed } from "../core/ports.ts";
import { createWritePacer } from "./write-pacer.ts";

describe("write pacer", () => {
  it("lets 80 writes through at once and makes the 81st wait for the window", async () => {
    let clock = 0;
    const slept: number[] = [];
    const pacer = createWritePacer({
      now: () => clock,
      sleep: async (ms) => {
        slept.push(ms);
        clock += ms;
      },
    });
    for (let i = 0; i < 80; i++) await pacer.take();
    expect(slept).toEqual([]);
    clock = 1_000;
    await pacer.take();
    expect(slept).toEqual([59_000]);
    expect(clock).toBe(60_000);
  });

  it("never delays reads", async () => {
    let waited = false;
    const pacer = createWritePacer({
      perMinute: 1,
      now: () => 0,
      sleep: async () => {
        waited = true;
      },
    });
    await pacer.hook({ method: "POST" });
    for (let i = 0; i < 5; i++) await pacer.hook({ method: "GET" });
    expect(waited).toBe(false);
  });

  it("refuses waiting and later writes once closed, releasing the caller at once", async () => {
    const pacer = createWritePacer({
      perMinute: 1,
      now: () => 0,
      sleep: () => new Promise(() => {}),
    });
    await pacer.take();
    const waiting = [pacer.take(), pacer.hook({ method: "PATCH" })];
    pacer.close();
    for (const write of waiting) await expect(write).rejects.toBeInstanceOf(GitHubWritesClosed);
    await expect(pacer.take()).rejects.toBeInstanceOf(GitHubWritesClosed);
    // Reads still pass: a stopping server may look things up.
    await pacer.hook({ method: "GET" });
  });
});
