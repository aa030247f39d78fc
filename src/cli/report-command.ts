import { loadConfig } from "../config.ts";
import {
  type AgentOutcome,
  OUTCOME_TIERS,
  type OutcomeFigures,
  type OutcomeReport,
  parseWindow,
  type RunnerOutcome,
} from "../core/outcome-analytics.ts";
import {
  type CliOutput,
  type Env,
  expectPositionals,
  parseCommandArgs,
  printJson,
  processOutput,
  renderTable,
  runCli,
  usage,
} from "./cli-support.ts";
import { openAdminApi, readAnswer } from "./open-admin-api.ts";

export const REPORT_USAGE = `Usage: conveyor report [--since <window>] [--format table|csv|json]

How each agent (adapter and model) and each runner did over the window: tasks, attempts, merged
rate, median time from queue to merge, CI-fix and review-fix rounds, cost and tokens per merged
pull request, and the share of each tier left for a person.

Options:
  --since <window>   the attempts that ended in the last 30m, 24h, 7d, 2w … (default 7d, at most 366d)
  --format <f>       table (default), csv (one row per agent and per runner) or json (the API's answer)

Goes to GET /api/analytics (a read token is enough with CONVEYOR_URL).`;

const FORMATS = ["table", "csv", "json"] as const;
type Format = (typeof FORMATS)[number];

/** The answer of `GET /api/analytics`. */
export type AnalyticsAnswer = { since: string; until: string } & OutcomeReport;

/** `conveyor report`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runReportCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  return runCli("report", out, async () => {
    const args = parseCommandArgs(argv, {
      since: { type: "string" },
      format: { type: "string" },
    });
    if (args.help) {
      out.stdout(`${REPORT_USAGE}\n`);
      return 0;
    }
    expectPositionals(args, [], "report");
    const since = String(args.values.since ?? "7d");
    const window = parseWindow(since);
    if ("error" in window) throw usage(`--since ${since}: ${window.error}`);
    const format = (args.json ? "json" : String(args.values.format ?? "table")) as Format;
    if (!FORMATS.includes(format)) {
      throw usage(`--format ${format}: expected ${FORMATS.join(", ")}`);
    }
    const api = await openAdminApi(loadConfig(env), env);
    try {
      if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
      const report = await readAnswer<AnalyticsAnswer>(
        api,
        await api.request("GET", `/analytics?since=${encodeURIComponent(since)}`),
      );
      if (format === "json") printJson(out, report);
      else if (format === "csv") out.stdout(renderReportCsv(report));
      else out.stdout(renderReportTable(report));
      return 0;
    } finally {
      await api.close();
    }
  });
}

const TIER_COLUMNS = OUTCOME_TIERS.map((t) => `left_for_human_tier${t}`);

export const CSV_HEADER = [
  "group",
  "adapter",
  "model",
  "runner",
  "tasks",
  "attempts",
  "merged",
  "merged_rate",
  "median_queue_to_merge_seconds",
  "ci_fix_rounds",
  "review_fix_rounds",
  "cost_usd",
  "tokens",
  "cost_per_merged_pr_usd",
  "tokens_per_merged_pr",
  ...TIER_COLUMNS,
];

/** One row per agent, then one per runner; exact numbers, empty cells for "none". */
export function renderReportCsv(report: OutcomeReport): string {
  const figures = (f: OutcomeFigures) => [
    f.tasks,
    f.attempts,
    f.merged,
    f.merged_rate,
    f.median_queue_to_merge_seconds,
    f.ci_fix_rounds,
    f.review_fix_rounds,
    f.cost_usd,
    f.tokens,
    f.cost_per_merged_pr_usd,
    f.tokens_per_merged_pr,
    ...OUTCOME_TIERS.map((t) => f.left_for_human[`tier${t}`]),
  ];
  const rows: unknown[][] = [
    CSV_HEADER,
    ...report.by_agent.map((a) => ["agent", a.adapter, a.model, null, ...figures(a)]),
    ...report.by_runner.map((r) => ["runner", null, null, r.runner, ...figures(r)]),
  ];
  return rows.map((row) => `${row.map(csvCell).join(",")}\r\n`).join("");
}

/** RFC 4180: a cell with a comma, quote or line break is quoted, quotes doubled. */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const TABLE_HEADER = [
  "TASKS",
  "ATTEMPTS",
  "MERGED",
  "MERGED %",
  "QUEUE→MERGE",
  "CI FIXES",
  "REVIEW FIXES",
  "COST",
  "TOKENS",
  "COST/MERGED",
  "TOKENS/MERGED",
  ...OUTCOME_TIERS.map((t) => `HUMAN T${t}`),
];

/** Two aligned tables, agents then runners, with the window they cover. */
export function renderReportTable(report: AnalyticsAnswer): string {
  const cells = (f: OutcomeFigures) => [
    String(f.tasks),
    String(f.attempts),
    String(f.merged),
    percent(f.merged_rate),
    f.median_queue_to_merge_seconds === null ? "-" : duration(f.median_queue_to_merge_seconds),
    String(f.ci_fix_rounds),
    String(f.review_fix_rounds),
    dollars(f.cost_usd),
    f.tokens.toLocaleString("en-US"),
    f.cost_per_merged_pr_usd === null ? "-" : dollars(f.cost_per_merged_pr_usd),
    f.tokens_per_merged_pr === null ? "-" : f.tokens_per_merged_pr.toLocaleString("en-US"),
    ...OUTCOME_TIERS.map((t) => {
      const share = f.left_for_human[`tier${t}`];
      return share === null ? "-" : percent(share);
    }),
  ];
  const agentName = (a: AgentOutcome) => (a.model ? `${a.adapter} ${a.model}` : a.adapter);
  const agents = report.by_agent.length
    ? renderTable([
        ["AGENT", ...TABLE_HEADER],
        ...report.by_agent.map((a) => [agentName(a), ...cells(a)]),
      ])
    : "No attempts ended in this window.\n";
  const runners = report.by_runner.length
    ? renderTable([
        ["RUNNER", ...TABLE_HEADER],
        ...report.by_runner.map((r: RunnerOutcome) => [r.runner, ...cells(r)]),
      ])
    : "";
  return [
    `Outcomes of the attempts that ended in the last ${report.since} (until ${report.until.slice(0, 16).replace("T", " ")} UTC)\n`,
    "\nBy agent\n",
    agents,
    ...(runners ? ["\nBy runner\n", runners] : []),
  ].join("");
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Two decimals, four below a cent (a cheap attempt is not `$0.00`). */
function dollars(value: number): string {
  return value > 0 && value < 0.01 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

/** `45s`, `12m`, `3h 05m`, `2d 4h`. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}
