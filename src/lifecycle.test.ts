import pino from "pino";
import { describe, expect, it } from "vitest";
import { type Lifecycle, type Stage, startStages } from "./lifecycle.ts";

const logger = pino({ level: "silent" });

/** Fake subsystems that write what happens to them into one journal. */
function fakes(names: string[], fail: { start?: string; stop?: string } = {}) {
  const journal: string[] = [];
  const stages: Stage[] = names.map((name): Stage => {
    const subsystem: Lifecycle = {
      async start() {
        journal.push(`start ${name}`);
        if (fail.start === name) throw new Error(`${name} would not start`);
      },
      async stop() {
        journal.push(`stop ${name}`);
        if (fail.stop === name) throw new Error(`${name} would not stop`);
      },
    };
    return [name, subsystem];
  });
  return { journal, stages };
}

describe("start-up and shutdown order", () => {
  it("starts in the listed order and stops in the reverse", async () => {
    const { journal, stages } = fakes(["store", "loops", "http"]);
    const started = await startStages(stages, logger);
    expect(journal).toEqual(["start store", "start loops", "start http"]);
    await started.stop();
    expect(journal.slice(3)).toEqual(["stop http", "stop loops", "stop store"]);
  });

  it("skips absent subsystems and those without a start or a stop", async () => {
    const journal: string[] = [];
    const stages: Stage[] = [
      ["store", { stop: () => void journal.push("stop store") }],
      ["dispatch", undefined],
      ["http", { start: () => void journal.push("start http") }],
    ];
    const started = await startStages(stages, logger);
    await started.stop();
    expect(journal).toEqual(["start http", "stop store"]);
  });

  it("stops once, however often it is asked", async () => {
    const { journal, stages } = fakes(["store", "http"]);
    const started = await startStages(stages, logger);
    await Promise.all([started.stop(), started.stop()]);
    await started.stop();
    expect(journal.filter((line) => line.startsWith("stop"))).toEqual(["stop http", "stop store"]);
  });

  it("after a failed start, stops what it reached (the failing stage too), last first", async () => {
    const { journal, stages } = fakes(["store", "loops", "http", "dashboard"], { start: "http" });
    await expect(startStages(stages, logger)).rejects.toThrow("http would not start");
    expect(journal).toEqual([
      "start store",
      "start loops",
      "start http",
      "stop http",
      "stop loops",
      "stop store",
    ]);
  });

  it("keeps stopping the others when one stop fails, then reports that failure", async () => {
    const { journal, stages } = fakes(["store", "loops", "http"], { stop: "loops" });
    const started = await startStages(stages, logger);
    await expect(started.stop()).rejects.toThrow("loops would not stop");
    expect(journal.slice(3)).toEqual(["stop http", "stop loops", "stop store"]);
  });

  it("throws the start's error, not a stop's, when both fail", async () => {
    const { stages } = fakes(["store", "http"], { start: "http", stop: "store" });
    await expect(startStages(stages, logger)).rejects.toThrow("http would not start");
  });
});
