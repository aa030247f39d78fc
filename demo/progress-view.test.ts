import { describe, expect, it } from "vitest";
import {
  createProgressView,
  issueRow,
  renderAddresses,
  renderSummary,
  renderTable,
  verdictText,
} from "./progress-view.ts";
import type { IssueView } from "./story.ts";

function view(overrides: Partial<IssueView> = {}): IssueView {
  return {
    key: "tier1",
    number: 3,
    title: "Add a lint script",
    issueState: "open",
    task: "queued",
    runner: undefined,
    pr: undefined,
    prState: undefined,
    headSha: undefined,
    tier: undefined,
    safety: undefined,
    ci: undefined,
    approval: undefined,
    reason: undefined,
    failureReported: false,
    comments: [],
    ...overrides,
  };
}

const open = (safety: IssueView["safety"], tier?: 1 | 2 | 3) =>
  view({ pr: 9, prState: "open", safety, tier });

/** The cursor moves up over the last table (header, two rows, clock) and clears below. */
const UP_4_AND_CLEAR = "\x1b[4A\x1b[J";

function capture(isTTY: boolean) {
  let text = "";
  return {
    out: { isTTY, columns: 200, write: (chunk: string) => (text += chunk) },
    text: () => text,
  };
}

describe("the demo's progress view", () => {
  it.each<[string, IssueView, string]>([
    ["no pull request yet", view(), ""],
    ["no verdict yet", open(undefined), "reviewing"],
    [
      "checks running",
      open({ status: "in_progress", conclusion: null, title: "Waiting: ci / test" }, 1),
      "tier 1 · waiting for checks",
    ],
    [
      "an approval missing, label not there yet",
      open({ status: "in_progress", conclusion: null, title: "Needs approval: 0 of 1" }),
      "tier … · needs /approve",
    ],
    [
      "tier 3",
      open({ status: "completed", conclusion: "neutral", title: "Blocked" }, 3),
      "tier 3 · left for a human",
    ],
    ["merged", view({ pr: 9, prState: "merged", tier: 1 }), "tier 1 · merged"],
  ])("says %s", (_name, issueView, text) => {
    expect(verdictText(issueView)).toBe(text);
  });

  it("aligns columns, cuts long cells and keeps minimum widths", () => {
    expect(renderTable(["a", "b"], [["xx", "a very long cell"]], 8, [0, 0])).toEqual([
      "a   b",
      "xx  a very…",
    ]);
    expect(renderTable(["a", "b"], [["x", "y"]], 8, [4, 0])).toEqual(["a     b", "x     y"]);
    const summary = renderSummary([
      {
        view: view({ number: 1, title: "One" }),
        expected: "merged (tier 1)",
        judgement: { ok: true, final: true, detail: "merged as PR #6" },
      },
      {
        view: view({ number: 2, title: "Two" }),
        expected: "left for a human (tier 3)",
        judgement: { ok: false, final: false, detail: "task `review`" },
      },
    ]);
    expect(summary[1]).toMatch(/^✔ {2}#1 {2}One/);
    expect(summary[2]).toMatch(/^✘ {2}#2 .*task review$/);
  });

  it("prints one line per change when the output is not a terminal", () => {
    const { out, text } = capture(false);
    const progress = createProgressView({ out, startedAt: Date.now() });
    progress.update([view()]);
    progress.update([view()]);
    progress.update([view({ task: "running", runner: "runner-1" })]);
    progress.note("@maria reviews PR #8 and comments /approve");
    const lines = text().trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\[ +\d+\.\d s\] #3 Add a lint script: state queued$/);
    expect(lines[1]).toMatch(/#3 Add a lint script: state running, runner runner-1$/);
    expect(lines[2]).toMatch(/\] @maria reviews PR #8 and comments \/approve$/);
    expect(text()).not.toContain("\x1b[");
  });

  it("redraws the table in place on a terminal, with notes above it", () => {
    const { out, text } = capture(true);
    const progress = createProgressView({ out, startedAt: Date.now() });
    progress.update([view(), view({ number: 4 })]);
    const first = text();
    // Header, two rows, the clock.
    expect(first.split("\n").filter(Boolean)).toHaveLength(4);
    expect(first).toContain(issueRow(view())[1]);
    progress.update([view({ task: "running" }), view({ number: 4 })]);
    expect(text().slice(first.length).startsWith(`${UP_4_AND_CLEAR}  #`)).toBe(true);
    const before = text().length;
    progress.note("a note");
    expect(text().slice(before).startsWith(`${UP_4_AND_CLEAR}a note\n  #`)).toBe(true);
  });
});

describe("renderAddresses", () => {
  it("says how to sign in to the dashboard, not only where it is", () => {
    const lines = renderAddresses({
      serverUrl: "http://127.0.0.1:4000",
      dashboardUrl: "http://127.0.0.1:4000/dashboard",
      adminToken: "demo-0123456789abcdef",
      githubUrl: "http://127.0.0.1:4001",
      ci: "ci / test",
    });
    expect(lines).toEqual([
      "  server     http://127.0.0.1:4000",
      "  dashboard  http://127.0.0.1:4000/dashboard",
      "  sign in    paste this token on the dashboard's sign-in page: demo-0123456789abcdef",
      '  GitHub     http://127.0.0.1:4001 (simulator; CI "ci / test" posts a check on every commit)',
    ]);
  });
});
