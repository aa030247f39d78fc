import { type IssueView, issueRef, type Judgement } from "./story.ts";

/**
 * The demo's terminal output. Pure functions render rows and tables; `createProgressView` writes
 * them: redrawn in place on a terminal, one line per change otherwise (CI logs, `| cat`).
 */

/** The short verdict for a pull request, from Conveyor's check and the PR's state. */
export function verdictText(view: IssueView): string {
  if (view.pr === undefined) return "";
  // The risk label follows the check by a moment.
  const tier = view.tier ? `tier ${view.tier}` : "tier …";
  if (view.prState === "merged") return `${tier} · merged`;
  if (view.prState === "closed") return `${tier} · closed`;
  const safety = view.safety;
  if (!safety) return "reviewing";
  if (safety.conclusion === "success") return `${tier} · merging`;
  if (safety.conclusion === "neutral") return `${tier} · left for a human`;
  if (safety.conclusion) return `${tier} · ${safety.conclusion}`;
  if (/^Needs approval/.test(safety.title)) return `${tier} · needs /approve`;
  if (/^Waiting/.test(safety.title)) return `${tier} · waiting for checks`;
  return `${tier} · ${safety.status}`;
}

/**
 * Where things are once the stage is up: the server, the dashboard and how to sign in to it (the
 * admin token to paste on its sign-in page), and the simulated GitHub.
 */
export function renderAddresses(stage: {
  serverUrl: string;
  dashboardUrl: string;
  adminToken: string;
  githubUrl: string;
  ci: string;
}): string[] {
  return [
    `  server     ${stage.serverUrl}`,
    `  dashboard  ${stage.dashboardUrl}`,
    `  sign in    paste this token on the dashboard's sign-in page: ${stage.adminToken}`,
    `  GitHub     ${stage.githubUrl} (simulator; CI "${stage.ci}" posts a check on every commit)`,
  ];
}

export const COLUMNS = ["#", "issue", "state", "runner", "PR", "CI", "verdict"] as const;

/** One table row per issue: what the live view and the summary show. */
export function issueRow(view: IssueView): string[] {
  return [
    issueRef(view, view.number),
    view.title,
    view.task ?? "filed",
    view.runner ?? "",
    view.pr === undefined ? "" : issueRef(view, view.pr),
    view.ci ? (view.ci.conclusion ?? view.ci.status) : "",
    verdictText(view),
  ];
}

/** Widths the live table starts with, so columns do not jump as values appear. */
const MIN_WIDTHS = [3, 20, 13, 8, 4, 11, 24];

/**
 * Left-aligned columns separated by two spaces, each cut to `max` characters and at least
 * `minWidths[i]` wide.
 */
export function renderTable(
  header: readonly string[],
  rows: string[][],
  max = 34,
  minWidths: readonly number[] = [],
): string[] {
  const cut = (cell: string) => (cell.length > max ? `${cell.slice(0, max - 1).trimEnd()}…` : cell);
  const all = [header.map(cut), ...rows.map((row) => row.map(cut))];
  const widths = header.map((_, i) =>
    Math.max(minWidths[i] ?? 0, ...all.map((row) => row[i]?.length ?? 0)),
  );
  return all.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
}

/** The final table: each issue, what was expected, and whether it happened. */
export function renderSummary(
  rows: { view: IssueView; expected: string; judgement: Judgement }[],
): string[] {
  return renderTable(
    ["", "#", "issue", "expected", "outcome"],
    rows.map(({ view, expected, judgement }) => [
      judgement.ok ? "✔" : "✘",
      issueRef(view, view.number),
      view.title,
      expected,
      judgement.detail.replace(/`/g, ""),
    ]),
    72,
  );
}

export interface ProgressView {
  /** Shows the issues' current state (redraws or prints the rows that changed). */
  update(views: readonly IssueView[]): void;
  /** A line that stays above the table (an event such as an approval). */
  note(line: string): void;
  /** Stops redrawing: what follows is printed below the last table. */
  finish(): void;
}

/** A stopwatch reading: `12.3 s`. */
export function elapsed(since: number, now = Date.now()): string {
  return `${((now - since) / 1000).toFixed(1).padStart(5)} s`;
}

export function createProgressView(options: {
  out: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean };
  startedAt: number;
}): ProgressView {
  const { out, startedAt } = options;
  const tty = Boolean(out.isTTY);
  let drawn = 0;
  let last: readonly IssueView[] = [];
  const lastRows = new Map<number, string>();

  // A line wider than the terminal wraps, and the redraw would then move up too few lines.
  const fit = (line: string) => {
    const columns = "columns" in out ? out.columns : undefined;
    return columns && line.length >= columns ? `${line.slice(0, columns - 2)}…` : line;
  };
  const table = (views: readonly IssueView[]) =>
    [
      ...renderTable(COLUMNS, views.map(issueRow), 34, MIN_WIDTHS).map((line) => `  ${line}`),
      `  elapsed ${elapsed(startedAt).trim()}`,
    ].map(fit);
  const erase = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A\x1b[J`);
    drawn = 0;
  };
  const draw = () => {
    const lines = table(last);
    out.write(`${lines.join("\n")}\n`);
    drawn = lines.length;
  };

  return {
    update(views) {
      last = views;
      if (tty) {
        erase();
        draw();
        return;
      }
      for (const view of views) {
        const row = issueRow(view);
        const key = row.join("\u0000");
        if (lastRows.get(view.number) === key) continue;
        lastRows.set(view.number, key);
        const [number, title, state, runner, pr, ci, verdict] = row;
        const parts = [`state ${state}`];
        if (runner) parts.push(`runner ${runner}`);
        if (pr) parts.push(`PR ${pr}`);
        if (ci) parts.push(`CI ${ci}`);
        if (verdict) parts.push(verdict);
        out.write(`[${elapsed(startedAt)}] ${number} ${title}: ${parts.join(", ")}\n`);
      }
    },
    note(line) {
      if (tty) {
        erase();
        out.write(`${line}\n`);
        if (last.length) draw();
      } else {
        out.write(`[${elapsed(startedAt)}] ${line}\n`);
      }
    },
    finish() {
      drawn = 0;
    },
  };
}
