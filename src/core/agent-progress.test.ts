import { describe, expect, it } from "vitest";
import { redactSecrets } from "./redact-secrets.ts";
import { formatUsd, renderAgentProgress, renderStatusComment } from "./status-comment.ts";

describe("the status comment's agent line", () => {
  it.each([
    [
      "running",
      { turns: 14, costUsd: 0.42, tool: "Edit src/sizes.ts" },
      "running · 14 turns · $0.42 · `Edit src/sizes.ts`",
    ],
    ["assigned", { turns: 1 }, "assigned · 1 turn"],
    // After the attempt: the figures alone, no stale tool.
    [
      "pushed",
      { turns: 3, tokens: 26252, costUsd: 0.0421, tool: "Edit x" },
      "3 turns · 26,252 tokens · $0.04",
    ],
    ["failed", { costUsd: 0.0031 }, "$0.0031"],
    // Hostile tool text stays inside a code span, whatever backticks and markup it carries.
    [
      "running",
      { tool: "Bash echo ``` <img src=x onerror=alert(1)> @octocat" },
      "running · ````Bash echo ``` <img src=x onerror=alert(1)> @\u200doctocat````",
    ],
    ["running", {}, undefined],
    ["running", { tool: null, turns: null }, undefined],
  ] as const)("in %s with %j", (state, progress, expected) => {
    expect(renderAgentProgress(state, progress)).toBe(expected);
  });

  it("is a row of the comment, with the task page when the server knows its address", () => {
    const body = renderStatusComment({
      taskId: "11111111-2222-3333-4444-555555555555",
      state: "running",
      lane: "normal",
      attempts: 1,
      maxAttempts: 3,
      createdAt: new Date("2026-01-01T12:00:00Z"),
      now: new Date("2026-01-01T12:02:30Z"),
      snapshotHash: "ab".repeat(32),
      agent: { turns: 14, costUsd: 0.42, tool: "Edit src/a|b.ts" },
      taskPageUrl: "https://conveyor.example/dashboard/tasks/11111111-2222-3333-4444-555555555555",
    });
    expect(body).toContain("| Agent | running · 14 turns · $0.42 · `Edit src/a\\|b.ts` |");
    expect(body).toContain(
      "| Task page | https://conveyor.example/dashboard/tasks/11111111-2222-3333-4444-555555555555 |",
    );
  });

  it("formats amounts", () => {
    expect([0, 0.004, 0.42, 12.345].map(formatUsd)).toEqual([
      "$0.00",
      "$0.0040",
      "$0.42",
      "$12.35",
    ]);
  });
});

describe("redactSecrets", () => {
  it.each([
    [
      "cloning https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz@github.com/a/b",
      "cloning https://[redacted]@github.com/a/b",
    ],
    ["export GH_TOKEN=ghp_ABCDEFGHIJKLMNOPQRSTUV123", "export GH_TOKEN=[redacted]"],
    ["token: github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "token: [redacted]"],
    [
      "runner cvr_0123456789abcdefghij and api cva_zyxwvutsrqponm",
      "runner [redacted] and api [redacted]",
    ],
    ["Authorization: Bearer abc.def-ghi_jkl012345", "Authorization: Bearer [redacted]"],
    ["ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuv", "ANTHROPIC_API_KEY=[redacted]"],
    ["jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJl end", "jwt [redacted] end"],
    [
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nafter",
      "[redacted]\nafter",
    ],
    ["Edit src/sizes.ts", "Edit src/sizes.ts"],
    ["a token of appreciation", "a token of appreciation"],
  ])("%s", (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it("removes the server's own secrets, long enough to be one", () => {
    expect(
      redactSecrets("secret=webhook-secret-value; short=abc", ["webhook-secret-value", "abc"]),
    ).toBe("secret=[redacted]; short=abc");
  });
});
