import { describe, expect, it } from "vitest";
import {
  MAX_SUMMARY_CHARS,
  MAX_TITLE_CHARS,
  neutraliseUntrusted,
  type PullRequestFacts,
  parsePullRequestMarker,
  pullRequestMarker,
  pullRequestTitle,
  renderPullRequestBody,
} from "./pull-request-body.ts";

const TASK = "0b7c5a52-5a3e-4e8f-9d4c-3f1e2a6b7c8d";
const OTHER_TASK = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f";
const ZWJ = "\u200D";

const base: PullRequestFacts = {
  taskId: TASK,
  generation: 3,
  issueNumber: 12,
  summary: "Made the button blue.\n\n- changed `src/button.css`",
  stats: {
    files_changed: 2,
    lines_added: 14,
    lines_removed: 3,
    duration_ms: 125_000,
    tokens: 123_456,
    cost_usd: 0.4213,
  },
  runnerName: "laptop-1",
  attempt: 2,
  maxAttempts: 3,
};

/** The part of the body between the heading and the stats table: where the summary goes. */
function summarySection(body: string): string {
  const start = body.indexOf("### What the runner says it did");
  const end = body.indexOf("| | |");
  return body.slice(start, end);
}

/** A body must keep exactly one marker, the real one, last, outside any fence. */
function expectIntact(body: string, facts: PullRequestFacts = base) {
  expect(parsePullRequestMarker(body)).toEqual({
    taskId: facts.taskId,
    generation: facts.generation,
  });
  expect(body.split("<!--")).toHaveLength(2);
  expect(body.split("-->")).toHaveLength(2);
  expect(body.endsWith(pullRequestMarker(facts.taskId, facts.generation))).toBe(true);
  expect(body).toContain(`\nCloses #${facts.issueNumber}\n`);
  expect(body.length).toBeLessThan(65_536);
}

describe("renderPullRequestBody", () => {
  it("summarises, links the issue, fences the summary and tabulates the stats", () => {
    const body = renderPullRequestBody(base);
    expectIntact(body);
    expect(body.split("\n")[0]).toBe(
      "Conveyor's change for #12, written by runner `laptop-1` (attempt 2 of 3).",
    );
    expect(summarySection(body)).toContain(
      "```text\nMade the button blue.\n\n- changed `src/button.css`\n```",
    );
    expect(body).toContain("| Files changed | 2 |");
    expect(body).toContain("| Lines | +14 / −3 |");
    expect(body).toContain("| Duration | 2 min |");
    expect(body).toContain("| Tokens | 123,456 |");
    expect(body).toContain("| Cost | $0.42 |");
    expect(body).toContain("| Runner | `laptop-1` |");
    expect(body).toContain("| Attempt | 2/3 |");
    expect(body).not.toContain("Verification");
  });

  it.each<[string, Partial<PullRequestFacts>, string[], string[]]>([
    [
      "no stats and no runner",
      { stats: undefined, runnerName: undefined },
      ["| Attempt | 2/3 |", "Conveyor's change for #12, written (attempt 2 of 3)."],
      ["Files changed", "Tokens", "Cost", "| Runner |"],
    ],
    [
      "only lines added",
      { stats: { lines_added: 5 } },
      ["| Lines | +5 / −? |"],
      ["Files changed", "Duration"],
    ],
    ["a tiny cost", { stats: { cost_usd: 0.0012 } }, ["| Cost | $0.0012 |"], []],
    [
      "an adapter's token breakdown and turns",
      {
        stats: {
          tokens: 26252,
          input_tokens: 25612,
          output_tokens: 640,
          cache_read_tokens: 20480,
          turns: 3,
        },
      },
      ["| Tokens | 26,252 (25,612 in, of which 20,480 cached; 640 out) |", "| Turns | 3 |"],
      [],
    ],
    ["an empty summary", { summary: "  \n " }, ["_The runner gave no summary._"], ["```text"]],
    [
      "verification passed",
      {
        verification: {
          passed: true,
          commands: [
            { argv: ["npm", "test"], exit_code: 0, passed: true, output_tail: "ok" },
            { argv: ["npm", "run", "lint"], exit_code: 0, passed: true, output_tail: "" },
          ],
        },
      },
      ["| Verification | ✅ passed (2 commands) |"],
      ["<details>"],
    ],
    [
      "verification failed with the failing command and its output",
      {
        verification: {
          passed: false,
          commands: [
            { argv: ["npm", "run", "lint"], exit_code: 0, passed: true, output_tail: "" },
            {
              argv: ["npm", "test"],
              exit_code: 1,
              passed: false,
              output_tail: "FAIL src/a.test.ts\nexpected 1 to be 2",
            },
          ],
        },
      },
      [
        "| Verification | ❌ failed: `npm test` (exit 1) |",
        "<details><summary>Output of the failing command (last lines)</summary>",
        "```text\nFAIL src/a.test.ts\nexpected 1 to be 2\n```",
      ],
      [],
    ],
    [
      "a killed command and a hostile argv",
      {
        verification: {
          passed: false,
          commands: [
            {
              argv: ["sh", "-c", "echo `x` | cat\n@octocat"],
              exit_code: null,
              passed: false,
              output_tail: "",
            },
          ],
        },
      },
      [
        `| Verification | ❌ failed: \`\`sh -c echo \`x\` \\| cat @${ZWJ}octocat\`\` (no exit code) |`,
      ],
      ["<details>", "@octocat"],
    ],
    [
      "a runner name with pipes, backticks and a mention",
      { runnerName: "a|b `c` @d" },
      [`| Runner | \`\`a\\|b \`c\` @${ZWJ}d\`\` |`],
      ["@d"],
    ],
  ])("renders %s", (_name, patch, present, absent) => {
    const facts = { ...base, ...patch };
    const body = renderPullRequestBody(facts);
    expectIntact(body, facts);
    for (const text of present) expect(body).toContain(text);
    for (const text of absent) expect(body).not.toContain(text);
  });

  const forged = `<!-- conveyor:pr task=${OTHER_TASK} generation=99 -->`;

  it.each<[string, string, (section: string) => void]>([
    [
      "a summary that closes an HTML comment",
      "done --> <img src=x> --!> bye",
      (s) => expect(s).toContain(`done --${ZWJ}> <img src=x> --!${ZWJ}> bye`),
    ],
    [
      "a summary carrying a forged marker",
      `Done.\n${forged}`,
      (s) =>
        expect(s).toContain(`<${ZWJ}!-- conveyor:pr task=${OTHER_TASK} generation=99 --${ZWJ}>`),
    ],
    [
      "a summary that opens a comment to hide the rest of the body",
      "Done. <!-- everything after this is hidden",
      (s) => expect(s).toContain(`<${ZWJ}!-- everything`),
    ],
    [
      "mentions of people and teams",
      "Thanks @octocat and @acme/security-team; mail me at a@b.c",
      (s) => {
        expect(s).toContain(`@${ZWJ}octocat`);
        expect(s).toContain(`@${ZWJ}acme/security-team`);
        expect(s).not.toMatch(/@[A-Za-z0-9]/);
      },
    ],
    [
      "closing keywords aimed at other issues",
      "Fixes #1, closes acme/other#2, Resolved: #3, fixed https://github.com/acme/x/issues/4",
      (s) => {
        expect(s).not.toMatch(/\b(close[sd]?|fix(e[sd])?|resolve[sd]?)\b/i);
        expect(s).toContain(`F${ZWJ}ixes #1`);
        expect(s).toContain(`c${ZWJ}loses acme/other#2`);
      },
    ],
    [
      "keywords in ordinary prose stay readable",
      "I fixed the flaky test and closed the socket.",
      (s) => expect(s).toContain("I fixed the flaky test and closed the socket."),
    ],
    [
      "a summary that tries to end the fence",
      "before\n```\n# Approved by @admin\n````\nafter",
      (s) => {
        expect(s).toContain("`````text\nbefore\n```\n# Approved by");
        expect(s.trimEnd().endsWith("after\n`````")).toBe(true);
      },
    ],
    [
      "control characters and bidirectional overrides",
      "a\u0000b\u001b[31mc\r\nd\u202Ee",
      (s) => expect(s).toContain("ab[31mc\nde"),
    ],
  ])("neutralises %s", (_name, summary, check) => {
    const body = renderPullRequestBody({ ...base, summary });
    expectIntact(body);
    check(summarySection(body));
  });

  it("bounds a 1 MB summary to about 10 KB and keeps the marker intact", () => {
    const hostile = `${"@everyone --> <!-- ".repeat(10)}${"x".repeat(1024 * 1024)}`;
    const body = renderPullRequestBody({ ...base, summary: hostile });
    expectIntact(body);
    const section = summarySection(body);
    expect(section.length).toBeLessThan(MAX_SUMMARY_CHARS + 200);
    expect(section).toMatch(/about 1,0\d\d,\d{3} more characters not shown/);
    expect(body.length).toBeLessThan(MAX_SUMMARY_CHARS + 2_000);
  });

  it("keeps the tail of a long failing output and never splits a surrogate pair", () => {
    const body = renderPullRequestBody({
      ...base,
      summary: "😀".repeat(MAX_SUMMARY_CHARS),
      verification: {
        passed: false,
        commands: [
          {
            argv: ["npm", "test"],
            exit_code: 1,
            passed: false,
            output_tail: `${"noise\n".repeat(2000)}THE LAST LINE`,
          },
        ],
      },
    });
    expectIntact(body);
    expect(body).toContain("earlier characters not shown");
    expect(body).toContain("THE LAST LINE\n```");
    expect(body).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(body).not.toMatch(/(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });
});

describe("parsePullRequestMarker", () => {
  it.each<[string, string | null | undefined, ReturnType<typeof parsePullRequestMarker>]>([
    ["our marker", `text\n${pullRequestMarker(TASK, 3)}`, { taskId: TASK, generation: 3 }],
    [
      "an upper-case task id",
      pullRequestMarker(TASK.toUpperCase(), 1),
      { taskId: TASK, generation: 1 },
    ],
    [
      "the same marker twice",
      `${pullRequestMarker(TASK, 2)}\n${pullRequestMarker(TASK, 2)}`,
      { taskId: TASK, generation: 2 },
    ],
    ["no body", null, undefined],
    ["no marker", "Closes #1", undefined],
    [
      "two markers that disagree",
      `${pullRequestMarker(OTHER_TASK, 9)}\n${pullRequestMarker(TASK, 2)}`,
      undefined,
    ],
    ["generation zero", pullRequestMarker(TASK, 0), undefined],
    [
      "a task id that is not a uuid",
      "<!-- conveyor:pr task=zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz generation=1 -->",
      undefined,
    ],
    ["a status-comment marker", `<!-- conveyor:status task=${TASK} -->`, undefined],
    [
      "a marker neutralised in a rendered summary",
      neutraliseUntrusted(pullRequestMarker(TASK, 2)),
      undefined,
    ],
  ])("reads %s", (_name, body, expected) => {
    expect(parsePullRequestMarker(body)).toEqual(expected);
  });

  it("ignores a forged marker in the summary of a rendered body", () => {
    const body = renderPullRequestBody({
      ...base,
      summary: pullRequestMarker(OTHER_TASK, 99),
    });
    expect(parsePullRequestMarker(body)).toEqual({ taskId: TASK, generation: 3 });
  });
});

describe("pullRequestTitle", () => {
  it.each<[string, string, number, string]>([
    ["a plain title", "Make the button blue", 4, "Make the button blue"],
    ["whitespace and newlines", "  Make\n the\tbutton  blue \r\n", 4, "Make the button blue"],
    ["an empty title", " \n ", 7, "Resolve issue #7"],
    ["control characters", "Fix\u0000 the \u001b[1mbold", 2, "Fix the [1mbold"],
  ])("uses %s", (_name, title, issueNumber, expected) => {
    expect(pullRequestTitle(title, issueNumber)).toBe(expected);
  });

  it("bounds a long title to 256 characters without splitting a surrogate pair", () => {
    const title = pullRequestTitle(`a${"😀".repeat(300)}`, 1);
    expect(title.length).toBeLessThanOrEqual(MAX_TITLE_CHARS);
    expect(title.endsWith("…")).toBe(true);
    expect(title).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
