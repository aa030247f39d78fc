import { parseArgs } from "node:util";
import { type AnalyticsAnswer, renderReportTable } from "../src/cli/report-command.ts";
import {
  createProgressView,
  elapsed,
  renderAddresses,
  renderSummary,
  renderTable,
} from "./progress-view.ts";
import { type FiledIssue, type PlayOutcome, type Stage, startStage } from "./stage.ts";
import {
  BEST_OF_REPO,
  CI,
  describeExpectation,
  FILER,
  INTAKE_LABEL,
  type IssueView,
  issueRef,
  REPO,
  readQueueTrip,
  repoOf,
} from "./story.ts";

const USAGE = `Usage: npm run demo [-- --keep] [-- --timeout <seconds>]

Runs Conveyor end to end on this machine, with no GitHub account: the GitHub simulator with two
sample repositories and their CI, the Conveyor server on the embedded database, two runners with
the scripted agent and one with a stand-in for Claude Code. It files six issues (one runs as best
of 2, on a repository whose merge queue merges it), shows their progress, approves the tier-2 pull
request as a maintainer would, and exits 0 when every issue ends as expected.

Options:
  --keep             leave everything running afterwards to explore (Ctrl-C stops it)
  --timeout <s>      give up after this many seconds (default 110)
  -h, --help         this text`;

/** The running stage, closed on every way out. */
let current: Stage | undefined;
/** The watchdog fired: what fails after that is the clean-up's doing, not news. */
let gaveUp = false;
/** Aborted by Ctrl-C or SIGTERM. */
const stopping = new AbortController();

function parseOptions(argv: string[]): { keep: boolean; timeoutMs: number } {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      options: {
        keep: { type: "boolean", default: false },
        timeout: { type: "string", default: "110" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    process.stderr.write(`demo: ${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const seconds = Number(parsed.values.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    process.stderr.write(
      `demo: --timeout expects a positive number of seconds, got ${JSON.stringify(parsed.values.timeout)}\n`,
    );
    process.exit(2);
  }
  return { keep: parsed.values.keep, timeoutMs: seconds * 1000 };
}

const say = (line = "") => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = Date.now();
  const { signal } = stopping;
  let phase = "starting";
  const onSignal = () => {
    // A second Ctrl-C does not wait for the clean-up.
    if (signal.aborted) process.exit(130);
    say("\nStopping: closing the runners, the server and the simulator …");
    stopping.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // The story has its own deadline; this catches a start-up or clean-up that hangs.
  setTimeout(() => {
    gaveUp = true;
    say(`\n✘ The demo did not finish within ${options.timeoutMs / 1000} s: stuck ${phase}.`);
    void (current?.close() ?? Promise.resolve()).finally(() => process.exit(1));
    setTimeout(() => process.exit(1), 15_000).unref();
  }, options.timeoutMs + 10_000).unref();

  say(
    `Conveyor demo: ${REPO} and ${BEST_OF_REPO} on the GitHub simulator, no GitHub account needed.`,
  );
  const stage = await startStage({ signal, onStep: (step) => say(`  · ${step}`) });
  current = stage;
  say();
  const addresses = { ...stage, githubUrl: stage.sim.url, ci: CI.name };
  for (const line of renderAddresses(addresses)) say(line);
  say();

  phase = "filing the issues";
  const issues = await stage.fileIssues();
  if (signal.aborted) return 130;
  say(`Filed ${issues.length} issues as @${FILER}, each labelled \`${INTAKE_LABEL}\`:`);
  const filed = issues.map((f) => [issueRef(f.story, f.number), f.story.title, f.story.pitch]);
  for (const line of renderTable(["", "", ""], filed, 80).slice(1)) say(`  ${line}`);
  phase = "starting the runners";
  await stage.startRunners();
  const scripted = stage.runners.filter((r) => r.name !== "claude-runner").map((r) => r.name);
  say(`Started ${scripted.join(" and ")} with the scripted agent (capability \`scripted\`), and`);
  say(
    "  claude-runner with --agent claude (a stand-in that replays a recorded Claude Code session).",
  );
  say();

  phase = "watching the issues";
  const view = createProgressView({ out: process.stdout, startedAt });
  const outcome = await stage.play(issues, {
    deadline: startedAt + options.timeoutMs,
    onViews: (views) => view.update(views),
    onNote: (line) => view.note(line),
    shouldStop: () => signal.aborted,
  });
  view.finish();
  if (outcome.end === "stopped") return 130;
  let code = summarise(stage, issues, outcome, startedAt, options);
  // The task page of the issue Claude Code's adapter ran: its timeline, cost and log.
  for (const [i, filed] of issues.entries()) {
    const view = outcome.views[i];
    if (!filed.story.agent || !view?.taskId) continue;
    say();
    say(
      `${issueRef(view, filed.number)} ran with --agent claude: ${view.agent ?? "no usage reported"}`,
    );
    say(`  task page  ${stage.serverUrl}/dashboard/tasks/${view.taskId}`);
    say(
      options.keep
        ? "             (sign in with the token below)"
        : "             (run `npm run demo -- --keep` to open it: the server stays up, the sign-in token is printed)",
    );
  }
  for (const [i, filed] of issues.entries()) {
    const view = outcome.views[i];
    if (filed.story.expect.kind === "best_of" && view) await showBestOf(stage, view);
  }
  for (const [i, filed] of issues.entries()) {
    const view = outcome.views[i];
    const { expect } = filed.story;
    if (expect.kind !== "best_of" || !expect.mergeQueue || view?.prState !== "merged") continue;
    if (!(await showMergeQueue(stage, view))) code = 1;
  }
  await showReport(stage);
  if (options.keep && !signal.aborted) {
    phase = "kept running (--keep)";
    say();
    say("Still running (--keep). Explore:");
    say(`  dashboard  ${stage.dashboardUrl}`);
    say(`  sign in    paste this token on the dashboard's sign-in page: ${stage.adminToken}`);
    say(`  health     curl ${stage.serverUrl}/readyz`);
    say(
      `  runners    curl -H 'authorization: Bearer ${stage.adminToken}' ${stage.serverUrl}/api/runners`,
    );
    say(
      `  CLI        CONVEYOR_DATA_DIR=${stage.dir}/data CONVEYOR_ADMIN_TOKEN=${stage.adminToken} npx conveyor runners list`,
    );
    say(
      `  report     CONVEYOR_DATA_DIR=${stage.dir}/data CONVEYOR_ADMIN_TOKEN=${stage.adminToken} npx conveyor report --since 1d`,
    );
    const { token } = stage.sim.createInstallationToken(stage.installationId);
    say(
      `  GitHub     curl -s -H 'authorization: token ${token}' '${stage.sim.url}/repos/${REPO}/pulls?state=all'`,
    );
    say(`  logs       ${stage.dir}/conveyor.log, ${stage.dir}/runner-*.log`);
    say("Press Ctrl-C to stop and clean up.");
    await new Promise((resolve) => signal.addEventListener("abort", resolve));
  }
  return code;
}

/**
 * The best-of issue: its candidates with the figures they were ranked by (from the pull request
 * body's collapsed table), which one was kept and why (from the task's history), and its PR.
 */
async function showBestOf(stage: Stage, view: IssueView): Promise<void> {
  const table = view.candidates;
  say();
  const ref = issueRef(view, view.number);
  if (!table) {
    say(`${ref} ran as best of N, but its pull request shows no candidates table (yet).`);
    return;
  }
  say(
    `${ref} "${view.title}" ran as best of ${table.rows.length} (label conveyor:best-of-${table.rows.length}; ${repoOf(view)}'s tasks.best_of names the adapters):`,
  );
  const plain = (cell: string) => cell.replace(/`|\*\*/g, "");
  const lines = renderTable(
    table.header.map(plain),
    table.rows.map((row) => row.map(plain)),
    40,
  );
  for (const line of lines) say(`  ${line}`);
  // Without the history, the table above still says which candidate was picked.
  const details = await taskDetails(stage, view.taskId);
  const why = details.events.map((e) => e.reason).findLast((r) => r && / kept \(/.test(r));
  const candidates = details.candidates ?? [];
  say(`  kept: ${why ?? `candidate ${table.picked ?? "?"}`}`);
  if (candidates.length) {
    say(
      "  Its task page lists them; each candidate is a task of its own, with its own page and log:",
    );
    for (const c of candidates) say(`    candidate ${c.k}: /dashboard/tasks/${c.task_id}`);
  }
  const pr = view.pr === undefined ? "no pull request" : `PR ${issueRef(view, view.pr)}`;
  say(
    `  ${pr} (${view.prState ?? "not opened"}) has this table collapsed in its body; the candidates' branches conveyor/issue-${view.number}-<k> are deleted.`,
  );
  say(
    view.prState === "merged"
      ? "  Until it merged, a maintainer could have swapped it to another candidate with /pick <k>."
      : "  A maintainer can swap it to another candidate with /pick <k>.",
  );
}

/** A task's history, from the server's API (`GET /api/tasks/:id`); empty if it cannot be read. */
/** A task as the admin API shows it: its history and, for a best-of task, its candidates. */
interface TaskDetails {
  events: { reason: string | null; data?: unknown }[];
  candidates?: { k: number; task_id: string }[];
}

async function taskDetails(stage: Stage, taskId: string | undefined): Promise<TaskDetails> {
  if (!taskId) return { events: [] };
  try {
    const response = await fetch(`${stage.serverUrl}/api/tasks/${taskId}`, {
      headers: { authorization: `Bearer ${stage.adminToken}` },
    });
    if (!response.ok) return { events: [] };
    return (await response.json()) as TaskDetails;
  } catch {
    return { events: [] };
  }
}

async function taskEvents(stage: Stage, taskId: string | undefined) {
  return (await taskDetails(stage, taskId)).events;
}

/**
 * A pull request merged on the repository that requires GitHub's merge queue: how it got there,
 * from the task's history (enqueued, merged by the queue at which commit), the merge group as
 * GitHub shows it (the CI's check suite on that commit ran on `gh-readonly-queue/…`), and whether
 * Conveyor ever asked for a direct merge. False when the history or GitHub says it did not go
 * through the queue.
 */
async function showMergeQueue(stage: Stage, view: IssueView): Promise<boolean> {
  const repo = repoOf(view);
  const pr = view.pr!;
  say();
  say(
    `PR ${issueRef(view, pr)} went through GitHub's merge queue (${repo}'s ruleset: merge_queue, ${CI.name} required):`,
  );
  const trip = readQueueTrip(await taskEvents(stage, view.taskId));
  if (!trip) {
    say("  ✘ the task's history does not say it was enqueued in the merge queue");
    return false;
  }
  const place = trip.position === undefined ? "" : ` at position ${trip.position}`;
  say(`  enqueued in the merge queue${place}: head ${trip.head}, ${trip.method}`);
  if (trip.mergeSha) {
    let group: { head_branch: string | null; conclusion: string | null } | undefined;
    try {
      const { token } = stage.sim.createInstallationToken(stage.installationId);
      const response = await fetch(
        `${stage.sim.url}/repos/${repo}/commits/${trip.mergeSha}/check-suites`,
        { headers: { authorization: `token ${token}`, accept: "application/vnd.github+json" } },
      );
      const { check_suites: suites } = (await response.json()) as {
        check_suites: { head_branch: string | null; conclusion: string | null }[];
      };
      group = suites.find((s) => s.head_branch?.startsWith("gh-readonly-queue/"));
    } catch {
      // The history below still says where it merged.
    }
    say(
      group
        ? `  merge group ${group.head_branch}: ${CI.name} ${group.conclusion ?? "running"}`
        : "  merge group: GitHub shows no check suite on a gh-readonly-queue/ branch for it",
    );
    say(`  merged by the merge queue at ${trip.mergeSha.slice(0, 7)}`);
  } else {
    say("  ✘ the task's history does not say the merge queue merged it");
  }
  const direct = stage.sim.requests.some(
    (r) => r.method === "PUT" && r.path === `/repos/${repo}/pulls/${pr}/merge`,
  );
  say(
    direct
      ? `  ✘ Conveyor also asked for a direct merge (PUT /repos/${repo}/pulls/${pr}/merge)`
      : "  Conveyor made no PUT …/merge for it: the CI on the merge group was the last gate.",
  );
  return trip.mergeSha !== undefined && !direct;
}

/** What `conveyor report` says about the run: every attempt's agent, outcome and cost. */
async function showReport(stage: Stage): Promise<void> {
  try {
    const response = await fetch(`${stage.serverUrl}/api/analytics?since=1d`, {
      headers: { authorization: `Bearer ${stage.adminToken}` },
    });
    if (!response.ok) return;
    say();
    say("Outcomes per agent (conveyor report --since 1d)");
    const table = renderReportTable((await response.json()) as AnalyticsAnswer);
    for (const line of table.trimEnd().split("\n").slice(2)) say(line ? `  ${line}` : "");
  } catch {
    // The report is a bonus: the summary above is the demo's verdict.
  }
}

function summarise(
  stage: Stage,
  issues: FiledIssue[],
  outcome: PlayOutcome,
  startedAt: number,
  options: { keep: boolean; timeoutMs: number },
): number {
  const rows = issues.map((filed, i) => ({
    view: outcome.views[i]!,
    expected: describeExpectation(filed.story.expect),
    judgement: outcome.judgements[i]!,
  }));
  say();
  say("Summary");
  for (const line of renderSummary(rows)) say(`  ${line}`);
  say();
  const failed = rows.filter((r) => !r.judgement.ok);
  const took = elapsed(startedAt).trim();
  if (failed.length === 0) {
    say(`✔ Every issue ended as expected in ${took}.`);
  } else {
    const why = failed
      .map(
        (r) =>
          `#${r.view.number} "${r.view.title}" expected ${r.expected}, last seen: ${r.judgement.detail}`,
      )
      .join("\n  ");
    say(
      `✘ ${failed.length} of ${rows.length} issues did not end as expected${outcome.end === "timeout" ? ` within ${options.timeoutMs / 1000} s` : ""}:\n  ${why}`,
    );
    say(`  The server's and the runners' logs are in ${stage.saveLogs()}`);
  }
  return failed.length === 0 ? 0 : 1;
}

main().then(
  async (code) => {
    await current?.close();
    process.exit(code);
  },
  async (error: unknown) => {
    // Ctrl-C reaches the child processes too, and their exit may surface as an error here.
    if (gaveUp) return;
    if (stopping.signal.aborted) {
      await current?.close();
      process.exit(130);
    }
    process.stderr.write(`\n✘ demo: ${(error as Error).message}\n`);
    await current?.close();
    process.exit(1);
  },
);
