import { describe, expect, it } from "vitest";
import {
  commandsFor,
  estimateWait,
  isStatusComment,
  renderStatusComment,
  type StatusFacts,
  statusDigestText,
} from "./status-comment.ts";
import { TASK_STATES } from "./task-states.ts";

const base: StatusFacts = {
  taskId: "11111111-2222-3333-4444-555555555555",
  state: "queued",
  lane: "normal",
  attempts: 0,
  maxAttempts: 3,
  queuePosition: 4,
  createdAt: new Date("2026-01-01T12:00:00Z"),
  now: new Date("2026-01-01T12:02:30Z"),
  snapshotHash: "ab".repeat(32),
};

describe("status comment", () => {
  it("shows state, queue position, attempt, elapsed time and the commands that apply", () => {
    const body = renderStatusComment(base);
    expect(isStatusComment(body)).toBe(true);
    expect(body).toContain("task=11111111-2222-3333-4444-555555555555");
    expect(body).toContain("| Queue position | 4 (lane `normal`) |");
    expect(body).toContain("| Attempts used | 0/3 |");
    expect(body).toContain("| Elapsed | 2 min |");
    expect(body).toContain("`/cancel`");
  });

  it.each([
    [
      "repository",
      "| Paused | $10.42 of this repository's $10.00 daily budget spent today; the queue resumes at 00:00 UTC, or when a maintainer raises it with `/budget <usd>` or `tasks.daily_budget_usd` |",
    ],
    [
      "installation",
      "| Paused | $10.42 of this installation's $10.00 daily budget spent today; the queue resumes at 00:00 UTC, or when an operator raises `CONVEYOR_INSTALLATION_DAILY_BUDGET_USD` |",
    ],
  ] as const)("says a queued task waits for the %s's daily budget", (scope, row) => {
    const budgetPause = { scope, spentUsd: 10.4213, budgetUsd: 10 };
    expect(renderStatusComment({ ...base, budgetPause })).toContain(row);
    // Only while queued: a running task is not paused.
    expect(renderStatusComment({ ...base, state: "running", budgetPause })).not.toContain(
      "| Paused |",
    );
  });

  it("shows runner, attempts, PR link and the last error on one line", () => {
    const body = renderStatusComment({
      ...base,
      state: "running",
      attempts: 1,
      runnerName: "laptop-1",
      prUrl: "https://github.com/acme/widgets/pull/9",
      lastError: "agent exited 1\nstack | trace",
    });
    expect(body).toContain("| Runner | `laptop-1` |");
    expect(body).toContain("| Attempts used | 1/3 |");
    expect(body).toContain("| Pull request | https://github.com/acme/widgets/pull/9 |");
    expect(body).toContain("| Last error | `agent exited 1 stack \\| trace` |");
    expect(body).not.toContain("Queue position");
  });

  it("defuses runner and agent text: mentions, closing keywords, links, images, HTML, length", () => {
    const body = renderStatusComment({
      ...base,
      state: "retry_wait",
      attempts: 1,
      runnerName: "@octocat <img src=x>",
      lastError: `Fixes #1 ![x](https://evil.example/i.png) [y](https://evil.example) <!-- x --> \`\`\` @acme/team ${"z".repeat(500)}`,
    });
    const row = body.split("\n").find((line) => line.startsWith("| Last error |"))!;
    const cell = row.slice("| Last error | ".length, -" |".length);
    // One code span, fenced with more backticks than the text holds.
    expect(cell).toMatch(/^(`{4,}) .* \1$|^(`{4,}).*\2$/);
    expect(cell).not.toMatch(/@acme\/team|@octocat/);
    expect(cell).not.toMatch(/Fixes #1/);
    expect(cell).not.toContain("<!--");
    expect(cell.length).toBeLessThan(340);
    expect(body).toContain(`| Runner | \`@\u200Docto`);
  });

  it("says when a retry comes and stops the clock when finished", () => {
    const retry = renderStatusComment({
      ...base,
      state: "retry_wait",
      attempts: 1,
      availableAt: new Date("2026-01-01T12:04:30Z"),
    });
    expect(retry).toContain("| Next attempt | in 2 min |");
    const done = renderStatusComment({
      ...base,
      state: "merged",
      finishedAt: new Date("2026-01-01T12:00:45Z"),
      now: new Date("2026-01-02T00:00:00Z"),
    });
    expect(done).toContain("| Elapsed | 45 s |");
    expect(done).toContain("Nothing left to do here.");
  });

  it("says why a task waits for a person, on one line, and only while it waits", () => {
    const waiting = renderStatusComment({
      ...base,
      state: "waiting_human",
      waitingReason: "Blocked: tier 3: verification failed: `node --test`\n| more",
    });
    expect(waiting).toContain(
      "| Reason | Blocked: tier 3: verification failed: `node --test` \\| more |",
    );
    const merged = renderStatusComment({ ...base, state: "merged", waitingReason: "stale" });
    expect(merged).not.toContain("Reason");
  });

  it.each(TASK_STATES)("renders state %s without throwing and with a headline", (state) => {
    expect(renderStatusComment({ ...base, state })).toMatch(/### Conveyor: /);
    expect(Array.isArray(commandsFor(state))).toBe(true);
  });
});

describe("queue position and wait estimate", () => {
  const hour = 3_600_000;
  it.each([
    ["first in line, 12 started in the hour", 1, 12, 5 * 60_000],
    ["tenth, 12 started in the hour", 10, 12, 50 * 60_000],
    ["nothing started: no estimate", 3, 0, undefined],
    ["a position below 1 is no position", 0, 12, undefined],
  ])("%s", (_, position, started, expected) => {
    expect(estimateWait(position, { started, windowMs: hour })).toBe(expected);
  });

  it.each([
    [undefined, "| Estimated wait | no estimate yet (no task left the queue recently) |"],
    [20_400, "| Estimated wait | about 20 s |"],
    [50 * 60_000 + 20_000, "| Estimated wait | about 50 min |"],
    [2 * 3_600_000 + (65 * 60_000) / 2, "| Estimated wait | about 2 h 33 min |"],
  ])("renders an estimate of %s ms as a rough duration", (waitEstimateMs, row) => {
    expect(renderStatusComment({ ...base, waitEstimateMs })).toContain(row);
  });

  it("digests what a reader sees, not the clock", () => {
    const later = { ...base, now: new Date(base.now.getTime() + 600_000) };
    expect(renderStatusComment(later)).not.toBe(renderStatusComment(base));
    expect(statusDigestText(later)).toBe(statusDigestText(base));
    expect(statusDigestText({ ...base, queuePosition: 3 })).not.toBe(statusDigestText(base));
  });
});
