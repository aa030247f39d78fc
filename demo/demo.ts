import { parseArgs } from "node:util";
import { createProgressView, elapsed, renderSummary, renderTable } from "./progress-view.ts";
import { type FiledIssue, type PlayOutcome, type Stage, startStage } from "./stage.ts";
import { describeExpectation, FILER, INTAKE_LABEL, REPO } from "./story.ts";

const USAGE = `Usage: npm run demo [-- --keep] [-- --timeout <seconds>]

Runs Conveyor end to end on this machine, with no GitHub account: the GitHub simulator with a
sample repository and its CI, the Conveyor server on the embedded database, two runners with the
scripted agent. It files five issues, shows their progress, approves the tier-2 pull request as a
maintainer would, and exits 0 when every issue ends as expected.

Options:
  --keep             leave everything running afterwards to explore (Ctrl-C stops it)
  --timeout <s>      give up after this many seconds (default 110)
  -h, --help         this text`;

/** The running stage, closed on every way out. */
let current: Stage | undefined;

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
  let stage: Stage | undefined;
  let interrupted = false;
  const stop = async (code: number) => {
    await stage?.close();
    process.exit(code);
  };
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say("\nStopping: closing the runners, the server and the simulator …");
    void stop(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  say(`Conveyor demo: ${REPO} on the GitHub simulator, no GitHub account needed.`);
  stage = await startStage({ onStep: (step) => say(`  · ${step}`) });
  current = stage;
  say();
  say(`  server     ${stage.serverUrl}`);
  say(`  dashboard  ${stage.dashboardUrl}`);
  say(`  GitHub     ${stage.sim.url} (simulator; CI "ci / test" posts a check on every commit)`);
  say();

  const issues = await stage.fileIssues();
  say(`Filed ${issues.length} issues as @${FILER}, each labelled \`${INTAKE_LABEL}\`:`);
  for (const line of renderTable(
    ["", "", ""],
    issues.map((filed) => [`#${filed.number}`, filed.story.title, filed.story.pitch]),
    80,
  ).slice(1)) {
    say(`  ${line}`);
  }
  await stage.startRunners();
  say(`Started ${stage.runners.map((r) => r.name).join(" and ")} with the scripted agent.`);
  say();

  const view = createProgressView({ out: process.stdout, startedAt });
  const outcome = await stage.play(issues, {
    deadline: startedAt + options.timeoutMs,
    onViews: (views) => view.update(views),
    onNote: (line) => view.note(line),
    shouldStop: () => interrupted,
  });
  view.finish();
  if (outcome.end === "stopped") return 130;
  return summarise(stage, issues, outcome, startedAt, options);
}

async function summarise(
  stage: Stage,
  issues: FiledIssue[],
  outcome: PlayOutcome,
  startedAt: number,
  options: { keep: boolean; timeoutMs: number },
): Promise<number> {
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
    say(`  The server's log is in ${stage.dir}/conveyor.log until the demo exits.`);
  }
  const code = failed.length === 0 ? 0 : 1;
  if (options.keep) {
    say();
    say(`Still running (--keep). Explore:`);
    say(`  dashboard     ${stage.dashboardUrl}`);
    say(`  health        curl ${stage.serverUrl}/readyz`);
    say(
      `  runners       curl -H 'authorization: Bearer ${stage.adminToken}' ${stage.serverUrl}/api/runners`,
    );
    say(`  logs          ${stage.dir}/conveyor.log`);
    say("Press Ctrl-C to stop and clean up.");
    await new Promise(() => {});
  }
  return code;
}

main().then(
  async (code) => {
    await current?.close();
    process.exit(code);
  },
  async (error: unknown) => {
    process.stderr.write(`demo: ${(error as Error).stack ?? error}\n`);
    await current?.close();
    process.exit(1);
  },
);
