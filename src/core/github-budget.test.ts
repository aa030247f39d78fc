import { describe, expect, it } from "vitest";
import {
  classifyRateLimitAnswer,
  createGitHubBudget,
  parseRateLimitHeaders,
} from "./github-budget.ts";

const NOW = 1_700_000_000_000;
const headers = (remaining: number, extra: Record<string, string> = {}) => ({
  "x-ratelimit-limit": "5000",
  "x-ratelimit-remaining": String(remaining),
  "x-ratelimit-used": String(5000 - remaining),
  "x-ratelimit-reset": String(NOW / 1000 + 600),
  "x-ratelimit-resource": "core",
  ...extra,
});

describe("parseRateLimitHeaders", () => {
  it("reads GitHub's headers, reset in epoch seconds", () => {
    expect(parseRateLimitHeaders(headers(42))).toEqual({
      limit: 5000,
      remaining: 42,
      used: 4958,
      resetAt: NOW + 600_000,
      resource: "core",
    });
  });
  it.each([
    ["no headers", undefined],
    ["a missing reset", { "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "1" }],
    ["a malformed remaining", { ...headers(1), "x-ratelimit-remaining": "-1" }],
    ["a non-number", { ...headers(1), "x-ratelimit-limit": "lots" }],
  ])("ignores %s", (_name, value) => {
    expect(parseRateLimitHeaders(value)).toBeUndefined();
  });
});

describe("classifyRateLimitAnswer", () => {
  it.each([
    [
      "primary: 403 and remaining 0",
      403,
      headers(0),
      "API rate limit exceeded for installation ID 1.",
      { kind: "primary", until: NOW + 600_000 },
    ],
    [
      "primary on 429",
      429,
      headers(0),
      "API rate limit exceeded",
      { kind: "primary", until: NOW + 600_000 },
    ],
    [
      "secondary with retry-after",
      429,
      headers(10, { "retry-after": "7" }),
      "You have exceeded a secondary rate limit.",
      { kind: "secondary", until: NOW + 7_000 },
    ],
    [
      "secondary 403 without retry-after waits a minute",
      403,
      headers(10),
      "You have exceeded a secondary rate limit.",
      { kind: "secondary", until: NOW + 60_000 },
    ],
    [
      "secondary with an empty window waits for the reset",
      403,
      headers(0),
      "You have exceeded a secondary rate limit.",
      { kind: "secondary", until: NOW + 600_000 },
    ],
    ["a bare 429", 429, {}, "Too Many Requests", { kind: "secondary", until: NOW + 60_000 }],
    [
      "a permission 403 is no rate limit",
      403,
      headers(10),
      "Resource not accessible by integration",
      undefined,
    ],
    ["a 404 is no rate limit", 404, headers(0), "Not Found", undefined],
  ])("%s", (_name, status, h, message, expected) => {
    expect(classifyRateLimitAnswer(status, h, message, NOW)).toEqual(expected);
  });
});

describe("createGitHubBudget", () => {
  it("defers optional work under the reserve until the window resets", () => {
    let now = NOW;
    const budget = createGitHubBudget({ reservePercent: 10, now: () => now });
    expect(budget.shouldDefer("7")).toBe(false);
    budget.observe("7", headers(500));
    expect(budget.shouldDefer("7")).toBe(false);
    budget.observe("7", headers(499));
    expect(budget.shouldDefer(7)).toBe(true);
    expect(budget.deferredUntil(7)).toBe(NOW + 600_000);
    expect(budget.shouldDefer("8")).toBe(false);
    expect(budget.blockedUntil("7")).toBeUndefined();
    now = NOW + 600_000;
    expect(budget.shouldDefer("7")).toBe(false);
    expect(budget.snapshot()).toMatchObject([{ client: "7", remaining: 5000, deferring: false }]);
  });

  it("blocks every request while a limit holds, and an empty window until its reset", () => {
    let now = NOW;
    const budget = createGitHubBudget({ now: () => now });
    budget.limited("7", { kind: "secondary", until: NOW + 5_000 });
    expect(budget.blockedUntil("7")).toBe(NOW + 5_000);
    expect(budget.shouldDefer("7")).toBe(true);
    expect(budget.snapshot()[0]).toMatchObject({ limited_by: "secondary", deferring: true });
    now = NOW + 5_000;
    expect(budget.blockedUntil("7")).toBeUndefined();
    budget.observe("7", headers(0));
    expect(budget.blockedUntil("7")).toBe(NOW + 600_000);
  });

  it("ignores other resources and keeps the reserve proportional", () => {
    const budget = createGitHubBudget({ reservePercent: 20, now: () => NOW });
    budget.observe("7", headers(1, { "x-ratelimit-resource": "search" }));
    expect(budget.shouldDefer("7")).toBe(false);
    expect(budget.reserveFor(100)).toBe(20);
    expect(budget.reserveFor(5000)).toBe(1000);
  });
});
