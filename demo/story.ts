import { parseScript } from "../runners/scripted-agent.ts";
import type { CiProvider } from "../test/github-sim/ci-provider.ts";
import type { GitHubSimulator } from "../test/github-sim/create-github-simulator.ts";

/**
 * The story that `npm run demo` tells and `test/e2e/demo-story.test.ts` checks: one sample
 * repository, the issues filed on it, what the scripted agent does for each, and how each must end.
 * Both import it from here, so the demo and the test cannot drift apart.
 */

export const OWNER = "acme";
export const REPO_NAME = "widgets";
export const REPO = `${OWNER}/${REPO_NAME}`;
/** Files the issues and labels them (write permission). */
export const FILER = "octocat";
/** Approves tier-2 pull requests with `/approve` (maintain permission). */
export const MAINTAINER = "maria";
export const INTAKE_LABEL = "conveyor";
export const SAFETY_CHECK = "Conveyor / safety";

/** The repository's CI: one check run per pushed commit, as a GitHub Actions job would post. */
export const CI: CiProvider = {
  name: "ci / test",
  appSlug: "ci",
  durationMs: 1_500,
  conclude: () => "success",
};

const CONVEYOR_YML = `# Conveyor's settings for this repository (docs/configuration.md).
version: 1
verify:
  # The runner runs these after the agent; a failure makes the pull request tier 3.
  commands:
    - [node, --test]
`;

/** A sample repository's package.json: an ES module whose tests run with `node --test`. */
const packageJson = (name: string) =>
  `${JSON.stringify(
    { name, version: "1.0.0", type: "module", scripts: { test: "node --test" } },
    null,
    2,
  )}\n`;

/** The sample repository: a tiny Node.js library with tests and a CI. */
export const REPO_FILES: Record<string, string> = {
  "README.md":
    "# widgets\n\nSmall helpers for widgets of evry size.\n\nRun the tests with `npm test`.\n",
  "package.json": packageJson("widgets"),
  ".github/conveyor.yml": CONVEYOR_YML,
  "src/greet.js": 'export function greet(name) {\n  return "Hello, " + name + "!";\n}\n',
  "src/sizes.js": 'export const SIZES = ["small", "medium", "large"];\n',
  "src/label.js":
    'export function label(widget) {\n  return widget.name + " (" + widget.size + ")";\n}\n',
  "test/greet.test.js": [
    'import assert from "node:assert/strict";',
    'import { test } from "node:test";',
    'import { greet } from "../src/greet.js";',
    "",
    'test("greets by name", () => {',
    '  assert.equal(greet("Ada"), "Hello, Ada!");',
    "});",
    "",
  ].join("\n"),
  "test/label.test.js": [
    'import assert from "node:assert/strict";',
    'import { test } from "node:test";',
    'import { label } from "../src/label.js";',
    "",
    'test("labels a widget with its size", () => {',
    '  assert.equal(label({ name: "Gear", size: "small" }), "Gear (small)");',
    "});",
    "",
  ].join("\n"),
};

/**
 * The second repository: every issue there runs as best of 2 (`tasks.best_of` names the adapters,
 * so candidate 1 goes to the runner offering `claude` and candidate 2 to one offering `scripted`).
 * It is a repository of its own because `tasks.best_of` applies to every issue of a repository.
 */
export const BEST_OF_REPO_NAME = "gadgets";
export const BEST_OF_REPO = `${OWNER}/${BEST_OF_REPO_NAME}`;
/** The capability the demo's scripted runners offer (candidate 2 of a best-of round asks for it). */
export const SCRIPTED_CAPABILITY = "scripted";

const BEST_OF_CONVEYOR_YML = `# Conveyor's settings for this repository (docs/configuration.md).
version: 1
verify:
  commands:
    - [node, --test]
tasks:
  # Best of N: two candidates per issue, the first on a runner offering claude, the second on
  # one offering scripted; the best one gets the pull request (docs/merge-policy.md).
  best_of: [claude, ${SCRIPTED_CAPABILITY}]
`;

/** The best-of repository: prices, with a test. */
export const BEST_OF_REPO_FILES: Record<string, string> = {
  "README.md": "# gadgets\n\nPrices for gadgets.\n",
  "package.json": packageJson("gadgets"),
  ".github/conveyor.yml": BEST_OF_CONVEYOR_YML,
  "src/price.js": 'export function formatPrice(cents) {\n  return "$" + cents / 100;\n}\n',
  "test/price.test.js": [
    'import assert from "node:assert/strict";',
    'import { test } from "node:test";',
    'import { formatPrice } from "../src/price.js";',
    "",
    'test("formats cents as dollars", () => {',
    '  assert.equal(formatPrice(1999), "$19.99");',
    "});",
    "",
  ].join("\n"),
};

/**
 * `acme/gadgets`'s default branch requires GitHub's merge queue: a ruleset with a `merge_queue`
 * rule (squash) and the CI as a required check. So Conveyor enqueues its safe pull requests instead
 * of merging them (`enqueuePullRequest`), the CI runs on the merge group and the queue merges
 * (docs/merge-policy.md, "Merge queue"). A `PUT …/merge` there would be refused with a 405.
 */
export const MERGE_QUEUE_REPO = BEST_OF_REPO;
/** The ruleset the stage adds to {@link MERGE_QUEUE_REPO} (the simulator's `addRuleset`). */
export const MERGE_QUEUE_RULESET = {
  name: "main: merge queue",
  branches: ["~DEFAULT_BRANCH"],
  requiredChecks: [CI.name],
  mergeQueue: { merge_method: "SQUASH" as const },
};

export type StoryKey = "tier1" | "tier2" | "tier3" | "verify" | "bestof" | "urgent";

/** How an issue must end. */
export type Expectation =
  /** Merged by Conveyor; tier 2 only after a maintainer's `/approve`. */
  | { kind: "merged"; tier: 1 | 2 }
  /** A pull request that Conveyor leaves for a person: tier 3, never merged by itself. */
  | { kind: "left_for_human"; reason: RegExp }
  /** The runner's verification failed: a tier-3 pull request, and the issue says why. */
  | { kind: "verification_failed" }
  /**
   * Best of N: one pull request from candidate `picked`, merged at `tier` (by GitHub's merge queue
   * when `mergeQueue`); its body's candidates table lists all `n` candidates.
   */
  | { kind: "best_of"; n: number; picked: number; tier: 1 | 2; mergeQueue?: boolean };

export interface StoryIssue {
  key: StoryKey;
  /** The repository it is filed on (default {@link REPO}). */
  repo?: string;
  title: string;
  /** What a person would write; the script block follows it in the issue body. */
  description: string;
  /** The scripted agent's instructions (runners/scripted-agent.ts). */
  script: string[];
  /** What the demo says the issue shows, before it starts. */
  pitch: string;
  /** Labels besides the intake label. */
  labels: string[];
  /**
   * The runner adapter the issue is for (its `needs:` label routes it): `claude` runs the demo's
   * stand-in for Claude Code (demo/bin/claude), which replays a recorded stream-json session.
   */
  agent?: "claude";
  expect: Expectation;
}

const write = (path: string, content: string) => [`write ${path}`, "<<<", content, ">>>"];

/** In filing order. The urgent one is filed last and still runs first. */
export const STORY: readonly StoryIssue[] = [
  {
    key: "tier1",
    pitch: "one line in one file: merges by itself (tier 1)",
    title: "Add an extra-large size",
    description:
      "Customers keep asking for extra-large widgets. Add the size.\n\n<!-- demo: replay claude-extra-large.jsonl -->",
    script: [
      'print "Looking at src/sizes.js"',
      "sleep 1200",
      ...write("src/sizes.js", 'export const SIZES = ["small", "medium", "large", "extra-large"];'),
      'print "Added extra-large to SIZES."',
      "report-usage 1840 0.02",
    ],
    labels: ["needs:claude"],
    agent: "claude",
    expect: { kind: "merged", tier: 1 },
  },
  {
    key: "tier2",
    pitch: "adds two files: merges after a maintainer's /approve (tier 2)",
    title: "Add a farewell helper",
    description: "Next to `greet`, add `farewell(name)` that says goodbye, with a test.",
    script: [
      'print "Writing src/farewell.js and its test"',
      "sleep 1200",
      ...write(
        "src/farewell.js",
        'export function farewell(name) {\n  return "Goodbye, " + name + ".";\n}',
      ),
      ...write(
        "test/farewell.test.js",
        [
          'import assert from "node:assert/strict";',
          'import { test } from "node:test";',
          'import { farewell } from "../src/farewell.js";',
          "",
          'test("says goodbye by name", () => {',
          '  assert.equal(farewell("Ada"), "Goodbye, Ada.");',
          "});",
        ].join("\n"),
      ),
      'print "Added farewell() with a test."',
      "report-usage 4210 0.05",
    ],
    labels: [],
    expect: { kind: "merged", tier: 2 },
  },
  {
    key: "tier3",
    pitch: "touches package.json: left for a human (tier 3)",
    title: "Add a lint script",
    description: "Add `npm run lint` to package.json.",
    script: [
      'print "Editing package.json"',
      "sleep 1200",
      ...write(
        "package.json",
        JSON.stringify(
          {
            name: "widgets",
            version: "1.0.0",
            type: "module",
            scripts: { test: "node --test", lint: "node --check src/*.js" },
          },
          null,
          2,
        ),
      ),
      'print "Added a lint script."',
    ],
    labels: [],
    expect: { kind: "left_for_human", reason: /package\.json is protected/ },
  },
  {
    key: "verify",
    pitch: "breaks a test: verification fails, and the issue says so",
    title: "Show sizes in capitals in labels",
    description: "Labels should read `Gear (SMALL)`.",
    script: [
      'print "Changing src/label.js"',
      "sleep 1200",
      ...write(
        "src/label.js",
        'export function label(widget) {\n  return widget.name + " (" + widget.size.toUpperCase() + ")";\n}',
      ),
      'print "Labels now show the size in capitals (forgot the test)."',
    ],
    labels: [],
    expect: { kind: "verification_failed" },
  },
  {
    key: "bestof",
    repo: BEST_OF_REPO,
    pitch: "conveyor:best-of-2: Claude vs the scripted agent, merged by the merge queue",
    title: "Show prices with two decimals",
    // Candidate 1 runs on claude-runner, whose stand-in replays the recording named here (Claude
    // keeps the cents); candidate 2 runs on a scripted runner, which follows the script (it
    // rounds to whole dollars, cheaper, and breaks the test).
    description:
      "`formatPrice(500)` shows `$5`; it should show `$5.00`.\n\n<!-- demo: replay claude-two-decimals.jsonl -->",
    script: [
      'print "Rounding prices"',
      ...write(
        "src/price.js",
        'export function formatPrice(cents) {\n  return "$" + Math.round(cents / 100) + ".00";\n}',
      ),
      'print "Prices end in .00 now (forgot the test)."',
      "report-usage 1200 0.01",
    ],
    labels: ["conveyor:best-of-2"],
    expect: { kind: "best_of", n: 2, picked: 1, tier: 1, mergeQueue: true },
  },
  {
    key: "urgent",
    pitch: "priority:urgent: filed last, runs first (tier 1)",
    title: "Fix the typo in the README",
    description: "“evry” should be “every”. Customers noticed; please fix first.",
    script: [
      'print "Fixing the typo"',
      ...write(
        "README.md",
        "# widgets\n\nSmall helpers for widgets of every size.\n\nRun the tests with `npm test`.",
      ),
      'print "Fixed evry → every."',
    ],
    labels: ["priority:urgent"],
    expect: { kind: "merged", tier: 1 },
  },
];

/** The issue body: the request in words, then the script the scripted agent follows. */
export function issueBody(issue: StoryIssue): string {
  return `${issue.description}\n\n\`\`\`conveyor-script\n${issue.script.join("\n")}\n\`\`\`\n`;
}

/** The paths the scripted agent changes for an issue, sorted: what its pull request must hold. */
export function scriptedPaths(issue: StoryIssue): string[] {
  const parsed = parseScript(issue.script.join("\n"));
  if (!parsed.ok)
    throw new Error(`the story's script for "${issue.title}" is bad: ${parsed.error}`);
  const paths = parsed.steps.flatMap((step) => ("path" in step ? [step.path] : []));
  return [...new Set(paths)].sort();
}

/** What the issue's expectation reads as in the summary table. */
export function describeExpectation(expect: Expectation): string {
  switch (expect.kind) {
    case "merged":
      return expect.tier === 1 ? "merged (tier 1)" : "merged after /approve (tier 2)";
    case "left_for_human":
      return "left for a human (tier 3)";
    case "verification_failed":
      return "verification failure reported";
    case "best_of":
      return `best of ${expect.n}: candidate ${expect.picked} merged${expect.mergeQueue ? " by the queue" : ""} (tier ${expect.tier})`;
  }
}

/** The repository a story issue is filed on. */
export function repoOf(issue: { repo?: string | undefined }): string {
  return issue.repo ?? REPO;
}

/** `#N` on the sample repository, `gadgets#N` on another. */
export function issueRef(view: { repo?: string | undefined }, number: number): string {
  const repo = repoOf(view);
  return repo === REPO ? `#${number}` : `${repo.split("/")[1]}#${number}`;
}

/** A task's trip through GitHub's merge queue, as its history (`GET /api/tasks/:id`) tells it. */
export interface QueueTrip {
  /** The head Conveyor enqueued (7 hex digits): "enqueuing <sha> in the merge queue (<method>)". */
  head: string;
  /** The queue rule's merge method, lower case (`squash`). */
  method: string;
  /** Its place when GitHub took it: "in GitHub's merge queue at position N (<sha>)". */
  position: number | undefined;
  /**
   * The commit the queue merged (the merge group's head, now the base's tip), from the event that
   * says "merged by the merge queue at <sha>" (its `data.merge_sha` when given, in full).
   */
  mergeSha: string | undefined;
}

/** Reads a task's history for its merge queue trip; undefined when it was never enqueued. */
export function readQueueTrip(
  events: readonly { reason: string | null; data?: unknown }[],
): QueueTrip | undefined {
  let trip: QueueTrip | undefined;
  for (const event of events) {
    const reason = event.reason ?? "";
    const enqueuing = /^enqueuing ([0-9a-f]{7}) in the merge queue \((\w+)\)/.exec(reason);
    if (enqueuing) {
      trip = {
        head: enqueuing[1]!,
        method: enqueuing[2]!,
        position: undefined,
        mergeSha: undefined,
      };
      continue;
    }
    if (!trip) continue;
    const queued = /^in GitHub's merge queue at position (\d+) \(([0-9a-f]{7})\)/.exec(reason);
    if (queued && queued[2] === trip.head) trip.position = Number(queued[1]);
    const merged = /merged by the merge queue at ([0-9a-f]{7,40})$/.exec(reason);
    if (merged) {
      const data = event.data as { merge_sha?: unknown } | null | undefined;
      const full = typeof data?.merge_sha === "string" ? data.merge_sha : undefined;
      trip.mergeSha = full?.startsWith(merged[1]!) ? full : merged[1];
    }
  }
  return trip;
}

/** The collapsed candidates table of a best-of-N pull request, as its body shows it. */
export interface CandidatesTable {
  /** From the summary line: the candidate on the pull request. */
  picked: number | undefined;
  header: string[];
  /** One row per candidate, its cells as written (`1`, `` `claude / …` ``, `✅`, …). */
  rows: string[][];
}

/** Reads the candidates table out of a pull request body; undefined when there is none. */
export function parseCandidatesTable(body: string): CandidatesTable | undefined {
  const start = body.indexOf("<details><summary>Best of ");
  if (start < 0) return undefined;
  const end = body.indexOf("</details>", start);
  const section = body.slice(start, end < 0 ? undefined : end);
  const picked = /candidate (\d+) is on this pull request/.exec(section)?.[1];
  const cells = (line: string) =>
    line
      .slice(1, -1)
      .split(" | ")
      .map((c) => c.trim());
  const lines = section.split("\n").filter((l) => l.startsWith("| ") && l.endsWith(" |"));
  const [header, , ...rows] = lines;
  if (!header) return undefined;
  return {
    picked: picked ? Number(picked) : undefined,
    header: cells(header),
    rows: rows.map(cells),
  };
}

/** What GitHub shows about one story issue: its status comment, pull request and checks. */
export interface IssueView {
  key: StoryKey;
  /** The repository (unset: {@link REPO}). */
  repo?: string | undefined;
  number: number;
  title: string;
  issueState: "open" | "closed";
  /** The task state in Conveyor's status comment (undefined before it is written). */
  task: string | undefined;
  runner: string | undefined;
  pr: number | undefined;
  prState: "open" | "merged" | "closed" | undefined;
  headSha: string | undefined;
  /** From the `risk:tier-N` label on the pull request. */
  tier: 1 | 2 | 3 | undefined;
  safety: { status: string; conclusion: string | null; title: string } | undefined;
  ci: { status: string; conclusion: string | null } | undefined;
  /**
   * The maintainer's `/approve` on the pull request and Conveyor's answer to it: `+1` done, `-1`
   * refused, `none` not answered yet.
   */
  approval: { commentId: number; answer: "+1" | "-1" | "none" } | undefined;
  /** Why the task waits for a person, from the status comment's Reason row. */
  reason: string | undefined;
  /** Some comment on the issue says the verification failed. */
  failureReported: boolean;
  /** Every comment on the issue, oldest first. */
  comments: string[];
  /** The task's id, from the status comment's hidden marker. */
  taskId?: string | undefined;
  /** The status comment's Agent row: the attempt's progress, turns, tokens and cost. */
  agent?: string | undefined;
  /** Best of N: the pull request body's candidates table. */
  candidates?: CandidatesTable | undefined;
}

const STATUS_MARKER = "<!-- conveyor:status";

/** A row of the status comment's table (`| State | \`running\` |`). */
function statusRow(body: string, name: string): string | undefined {
  const match = new RegExp(`^\\| ${name} \\| (.+) \\|$`, "m").exec(body);
  const cell = match?.[1]?.trim();
  // Text from runners is shown as a code span; a person reads what is inside it.
  const code = cell && /^(`+) ?(.*?) ?\1$/.exec(cell);
  return code ? code[2] : cell;
}

/** Reads one issue the way a person would on GitHub: no database, only what GitHub shows. */
export async function observeIssue(
  sim: GitHubSimulator,
  issue: { key: StoryKey; number: number; title: string; repo?: string | undefined },
): Promise<IssueView> {
  const repo = repoOf(issue);
  const comments = sim.listComments(repo, issue.number).map((c) => c.body ?? "");
  const status = comments.find((body) => body.includes(STATUS_MARKER));
  const task = status ? statusRow(status, "State")?.replace(/`/g, "") : undefined;
  const runner = status ? statusRow(status, "Runner") : undefined;
  const prUrl = status ? statusRow(status, "Pull request") : undefined;
  const pr = prUrl ? Number(/\/pull\/(\d+)/.exec(prUrl)?.[1]) || undefined : undefined;
  const view: IssueView = {
    ...issue,
    issueState: sim.getIssue(repo, issue.number).state as "open" | "closed",
    task,
    runner,
    pr,
    prState: undefined,
    headSha: undefined,
    tier: undefined,
    safety: undefined,
    ci: undefined,
    approval: undefined,
    reason: status ? statusRow(status, "Reason") : undefined,
    failureReported: comments.some((body) => /verification failed/i.test(body)),
    comments,
    taskId: status ? /<!-- conveyor:status task=([0-9a-f-]+) -->/.exec(status)?.[1] : undefined,
    agent: status ? /^\| Agent \| (.+) \|$/m.exec(status)?.[1]?.replace(/\\\|/g, "|") : undefined,
  };
  if (pr === undefined) return view;
  const pull = await sim.getPull(repo, pr);
  view.prState = pull.merged ? "merged" : (pull.state as "open" | "closed");
  view.headSha = pull.head.sha;
  const tier = pull.labels.map((l) => /^risk:tier-([123])$/.exec(l.name)?.[1]).find(Boolean);
  view.tier = tier ? (Number(tier) as 1 | 2 | 3) : undefined;
  view.candidates = parseCandidatesTable(pull.body ?? "");
  const runs = await sim.listCheckRuns(repo, pull.head.sha);
  const latest = (name: string) => runs.filter((r) => r.name === name).at(-1);
  const safety = latest(SAFETY_CHECK);
  if (safety) {
    view.safety = {
      status: safety.status,
      conclusion: safety.conclusion,
      title: safety.output.title ?? "",
    };
  }
  const ci = latest(CI.name);
  if (ci) view.ci = { status: ci.status, conclusion: ci.conclusion };
  const approve = sim
    .listComments(repo, pr)
    .find((c) => c.user?.login === MAINTAINER && /^\/approve\b/.test(c.body ?? ""));
  if (approve) {
    const answers = sim
      .listReactions(repo, { comment: approve.id })
      .filter((r) => r.user?.login === sim.botLogin)
      .map((r) => r.content);
    view.approval = {
      commentId: approve.id,
      answer: answers.includes("+1") ? "+1" : answers.includes("-1") ? "-1" : "none",
    };
  }
  return view;
}

/** Whether an issue ended as the story says; `detail` says how it ended either way. */
export interface Judgement {
  ok: boolean;
  /** The outcome so far cannot change into the expected one any more. */
  final: boolean;
  detail: string;
}

function lastState(view: IssueView): string {
  const parts = [`task ${view.task ?? "not queued"}`];
  if (view.pr !== undefined) parts.push(`PR ${issueRef(view, view.pr)} ${view.prState}`);
  if (view.tier !== undefined) parts.push(`tier ${view.tier}`);
  if (view.safety) parts.push(`safety ${view.safety.conclusion ?? view.safety.status}`);
  return parts.join(", ");
}

const GAVE_UP = new Set(["dead", "cancelled"]);

/** Judges one issue against its expectation. */
export function judge(issue: StoryIssue, view: IssueView): Judgement {
  const state = lastState(view);
  const gaveUp = GAVE_UP.has(view.task ?? "");
  switch (issue.expect.kind) {
    case "best_of": {
      const { n, picked, tier } = issue.expect;
      const merged = view.prState === "merged" && view.task === "merged";
      const table = view.candidates;
      if (merged && !table) {
        return { ok: false, final: true, detail: `merged without a candidates table (${state})` };
      }
      if (table && (table.picked !== picked || table.rows.length !== n)) {
        return {
          ok: false,
          final: merged,
          detail: `candidate ${table.picked ?? "?"} of ${table.rows.length} on the PR, expected ${picked} of ${n} (${state})`,
        };
      }
      if (merged && view.tier !== tier) {
        return { ok: false, final: true, detail: `merged, but as tier ${view.tier} (${state})` };
      }
      if (merged) {
        return {
          ok: true,
          final: true,
          detail: `candidate ${picked} of ${n} merged as PR ${issueRef(view, view.pr!)}`,
        };
      }
      return {
        ok: false,
        final:
          gaveUp ||
          view.prState === "closed" ||
          (view.tier === 3 && view.safety?.status === "completed"),
        detail: state,
      };
    }
    case "merged": {
      const merged = view.prState === "merged" && view.task === "merged";
      if (merged && view.tier !== issue.expect.tier) {
        return { ok: false, final: true, detail: `merged, but as tier ${view.tier} (${state})` };
      }
      if (issue.expect.tier === 2 && view.approval?.answer !== "+1") {
        if (merged) {
          return {
            ok: false,
            final: true,
            detail: `merged without an accepted /approve (${state})`,
          };
        }
        if (view.approval) {
          const answer =
            view.approval.answer === "-1"
              ? "Conveyor refused /approve (see its reply on the PR)"
              : "Conveyor has not answered /approve";
          return { ok: false, final: view.approval.answer === "-1", detail: `${state}; ${answer}` };
        }
      }
      if (merged) return { ok: true, final: true, detail: `merged as PR #${view.pr}` };
      return {
        ok: false,
        final:
          gaveUp ||
          view.prState === "closed" ||
          (view.tier === 3 && view.safety?.status === "completed"),
        detail: state,
      };
    }
    case "left_for_human":
    case "verification_failed": {
      if (view.prState === "merged") {
        return { ok: false, final: true, detail: `merged although it is tier 3 (${state})` };
      }
      const leftOpen =
        view.prState === "open" &&
        view.tier === 3 &&
        view.safety?.conclusion === "neutral" &&
        view.task === "waiting_human";
      if (!leftOpen)
        return { ok: false, final: gaveUp || view.prState === "closed", detail: state };
      if (issue.expect.kind === "left_for_human") {
        const why = (view.safety?.title ?? "").replace(
          /^Blocked: (?:tier 3, never auto-merged: )?/,
          "",
        );
        return issue.expect.reason.test(why)
          ? { ok: true, final: true, detail: `PR #${view.pr} left open: ${why}` }
          : { ok: false, final: true, detail: `tier 3 for another reason: ${why}` };
      }
      return view.failureReported
        ? {
            ok: true,
            final: true,
            detail: `PR #${view.pr} left open; the issue says: ${
              view.reason?.replace(/^Blocked: (?:tier 3, never auto-merged: )?/, "") ??
              "verification failed"
            }`,
          }
        : {
            ok: false,
            final: false,
            detail: `${state}; the issue does not say verification failed yet`,
          };
    }
  }
}

/** The tier-2 pull request waits for exactly one thing: a maintainer's approval. */
export function awaitsApproval(view: IssueView): boolean {
  return (
    view.prState === "open" &&
    view.tier === 2 &&
    view.task === "waiting_human" &&
    /^Needs approval/.test(view.safety?.title ?? "")
  );
}
