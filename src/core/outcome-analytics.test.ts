import { describe, expect, it } from "vitest";
import { adapterLabel, median, parseWindow } from "./outcome-analytics.ts";

describe("parseWindow", () => {
  it.each([
    ["30m", { ms: 30 * 60_000 }],
    ["24h", { ms: 24 * 3_600_000 }],
    [" 7d ", { ms: 7 * 86_400_000 }],
    ["2w", { ms: 14 * 86_400_000 }],
    ["366d", { ms: 366 * 86_400_000 }],
    ["367d", { error: "the window can be at most a year (366d)" }],
    ["0d", { error: "the window must be longer than 0" }],
    ["7", { error: "expected a window such as 30m, 24h, 7d or 2w" }],
    ["-7d", { error: "expected a window such as 30m, 24h, 7d or 2w" }],
    ["1.5d", { error: "expected a window such as 30m, 24h, 7d or 2w" }],
    ["7d; drop table tasks", { error: "expected a window such as 30m, 24h, 7d or 2w" }],
  ])("%j", (text, expected) => {
    expect(parseWindow(text)).toEqual(expected);
  });
});

describe("median", () => {
  it.each([
    [[], null],
    [[5], 5],
    [[9, 1, 5], 5],
    [[4, 1, 3, 2], 2.5],
  ])("%j → %j", (values, expected) => {
    expect(median(values)).toBe(expected);
  });
});

describe("adapterLabel", () => {
  it.each([
    ["claude", "claude"],
    ["command", "command"],
    ["my-fork", "other"],
    [null, "other"],
  ])("%j → %s", (adapter, label) => {
    expect(adapterLabel(adapter)).toBe(label);
  });
});
