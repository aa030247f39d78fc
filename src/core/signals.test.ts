import { describe, expect, it } from "vitest";
import { createSignals } from "./signals.ts";

describe("signals", () => {
  it("calls every listener of the emitted signal, in the order they were added", () => {
    const signals = createSignals();
    const heard: string[] = [];
    signals.on("tasks-changed", () => heard.push("notifier"));
    signals.on("status-owed", () => heard.push("notifier (status)"));
    signals.on("tasks-changed", () => heard.push("dispatcher"));
    signals.emit("tasks-changed");
    expect(heard).toEqual(["notifier", "dispatcher"]);
    signals.emit("status-owed");
    signals.emit("status-owed");
    expect(heard).toEqual(["notifier", "dispatcher", "notifier (status)", "notifier (status)"]);
  });

  it("does nothing for a signal nobody listens to", () => {
    const signals = createSignals();
    expect(() => signals.emit("work-available")).not.toThrow();
  });
});
