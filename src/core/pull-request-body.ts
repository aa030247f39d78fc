import { z } from "zod";
import { type CandidateRow, renderCandidatesTable } from "./best-of.ts";
import { formatDuration } from "./task-machine.ts";

/**
 * What the runner reported about its work, with the protocol's field names so a `complete`
 * frame's `stats` can be passed as it arrived. Every field is optional: agents report what they
 * know.
 */
export interface PullRequestStats {
  files_changed?: number | undefined;
  lines_added?: number | undefined;
  lines_removed?: number | undefined;
  duration_ms?: number | undefined;
  tokens?: number | undefined;
  input_tokens?: number | undefined;
  output_tokens?: number | undefined;
  cache_read_tokens?: number | undefined;
  turns?: number | undefined;
  cost_usd?: number | undefined;
}

/** The runner's verification report (the protocol's `Verification`). */
export interface PullRequestVerification {
  passed: boolean;
  commands: readonly {
    argv: readonly string[];
    exit_code: number | null;
    passed: boolean;
    output_tail: string;
  }[];
}

export interface PullRequestFacts {
  taskId: string;
  generation: number;
  issueNumber: number;
  /** The runner's own account of the change: untrusted text. */
  summary: string;
  stats?: PullRequestStats | undefined;
  runnerName?: string | undefined;
  /** 1-based attempt number of the task and the task's attempt cap. */
  attempt: number;
  maxAttempts: number;
  verification?: PullRequestVerification | undefined;
  /** Best of N: every candidate of the round, for the collapsed table (`best-of.ts`). */
  candidates?: readonly CandidateRow[] | undefined;
}

export interface PullRequestMarker {
  taskId: string;
  generation: number;
}

/** The summary is shown up to this many characters (the PR body limit is 65,536). */
export const MAX_SUMMARY_CHARS = 10_000;
/** The failing command's output tail, shown folded. */
export const MAX_OUTPUT_TAIL_CHARS = 4_000;
/** GitHub's limit for a pull request title. */
export const MAX_TITLE_CHARS = 256;

const ZWJ = "\u200D";
const MARKER_PREFIX = "<!-- conveyor:pr";
const MARKER_PATTERN = /<!-- conveyor:pr task=([0-9a-fA-F-]{36}) generation=([0-9]{1,15}) -->/g;
const uuid = z.uuid();

/** The hidden marker that ties a pull request to the task and generation that wrote it. */
export function pullRequestMarker(taskId: string, generation: number): string {
  return `${MARKER_PREFIX} task=${taskId} generation=${generation} -->`;
}

/**
 * Finds Conveyor's marker in a pull request body. Fails closed: no marker, a malformed one, or two
 * markers that disagree (someone edited the body) give `undefined`. Rendered summaries can never
 * contain a marker, because {@link neutraliseUntrusted} breaks every `<!--` in them.
 */
export function parsePullRequestMarker(
  body: string | null | undefined,
): PullRequestMarker | undefined {
  if (!body) return undefined;
  let found: PullRequestMarker | undefined;
  for (const match of body.matchAll(MARKER_PATTERN)) {
    const taskId = match[1]!.toLowerCase();
    const generation = Number(match[2]);
    if (!uuid.safeParse(taskId).success || !Number.isSafeInteger(generation) || generation < 1) {
      return undefined;
    }
    if (found && (found.taskId !== taskId || found.generation !== generation)) return undefined;
    found = { taskId, generation };
  }
  return found;
}

/**
 * The pull request's title: the issue's title on one line, bounded to GitHub's 256 characters.
 * The issue number is not appended because a squash merge already adds ` (#<pr>)` and the body
 * says `Closes #N`; it names the pull request only when the issue title is empty.
 */
export function pullRequestTitle(issueTitle: string, issueNumber: number): string {
  const line = stripControl(issueTitle).replace(/\s+/g, " ").trim();
  return truncateChars(line || `Resolve issue #${issueNumber}`, MAX_TITLE_CHARS, "…");
}

/**
 * The pull request body: a summary line, `Closes #N`, the runner's summary as plain text in a
 * fence it cannot close, a table of stats, runner, attempt and verification, and the hidden marker
 * last. Untrusted text (summary, runner name, commands, output) is neutralised first: no
 * `@mentions`, no closing keywords, nothing that opens or closes an HTML comment.
 */
export function renderPullRequestBody(facts: PullRequestFacts): string {
  const runner = facts.runnerName ? ` by runner ${inlineCode(facts.runnerName, 100)}` : "";
  const lines = [
    `Conveyor's change for #${facts.issueNumber}, written${runner} (attempt ${facts.attempt} of ${facts.maxAttempts}).`,
    "",
    `Closes #${facts.issueNumber}`,
    "",
    "### What the runner says it did",
    "",
  ];
  const summary = boundUntrusted(facts.summary, MAX_SUMMARY_CHARS, "head").trim();
  if (summary) lines.push(fenced(summary));
  else lines.push("_The runner gave no summary._");
  lines.push("", "| | |", "| --- | --- |");
  for (const [key, value] of tableRows(facts)) lines.push(`| ${key} | ${value} |`);

  const failing = facts.verification?.commands.find((command) => !command.passed);
  if (facts.verification && !facts.verification.passed && failing?.output_tail.trim()) {
    const tail = boundUntrusted(failing.output_tail, MAX_OUTPUT_TAIL_CHARS, "tail").trim();
    lines.push(
      "",
      "<details><summary>Output of the failing command (last lines)</summary>",
      "",
      fenced(tail),
      "",
      "</details>",
    );
  }
  if (facts.candidates && facts.candidates.length > 0) {
    lines.push("", renderCandidatesTable(facts.candidates));
  }
  lines.push(
    "",
    "<sub>The summary is the runner's own account, shown as plain text. Review the diff, not the summary.</sub>",
    "",
    pullRequestMarker(facts.taskId, facts.generation),
  );
  return lines.join("\n");
}

function tableRows(facts: PullRequestFacts): [string, string][] {
  const stats = facts.stats ?? {};
  const rows: [string, string][] = [];
  if (stats.files_changed !== undefined) rows.push(["Files changed", count(stats.files_changed)]);
  if (stats.lines_added !== undefined || stats.lines_removed !== undefined) {
    const added = stats.lines_added === undefined ? "?" : count(stats.lines_added);
    const removed = stats.lines_removed === undefined ? "?" : count(stats.lines_removed);
    rows.push(["Lines", `+${added} / −${removed}`]);
  }
  if (stats.duration_ms !== undefined) rows.push(["Duration", formatDuration(stats.duration_ms)]);
  if (stats.tokens !== undefined) rows.push(["Tokens", tokensText(stats)]);
  if (stats.turns !== undefined) rows.push(["Turns", count(stats.turns)]);
  if (stats.cost_usd !== undefined) rows.push(["Cost", usd(stats.cost_usd)]);
  if (facts.runnerName) rows.push(["Runner", inlineCode(facts.runnerName, 100)]);
  rows.push(["Attempt", `${facts.attempt}/${facts.maxAttempts}`]);
  if (facts.verification) rows.push(["Verification", verificationText(facts.verification)]);
  return rows;
}

/** `12,345 (10,000 in, of which 8,000 cached; 2,345 out)`, as far as the runner said. */
function tokensText(stats: PullRequestStats): string {
  const parts: string[] = [];
  if (stats.input_tokens !== undefined) {
    parts.push(
      `${count(stats.input_tokens)} in${stats.cache_read_tokens ? `, of which ${count(stats.cache_read_tokens)} cached` : ""}`,
    );
  }
  if (stats.output_tokens !== undefined) parts.push(`${count(stats.output_tokens)} out`);
  return parts.length ? `${count(stats.tokens!)} (${parts.join("; ")})` : count(stats.tokens!);
}

function verificationText(verification: PullRequestVerification): string {
  const n = verification.commands.length;
  if (verification.passed) return `✅ passed (${n} command${n === 1 ? "" : "s"})`;
  const failing = verification.commands.find((command) => !command.passed);
  if (!failing) return "❌ failed";
  const exit = failing.exit_code === null ? "no exit code" : `exit ${failing.exit_code}`;
  return `❌ failed: ${inlineCode(failing.argv.join(" "), 200)} (${exit})`;
}

const numberFormat = new Intl.NumberFormat("en-US");

function count(value: number): string {
  return Number.isFinite(value) ? numberFormat.format(value) : "?";
}

function usd(value: number): string {
  if (!Number.isFinite(value)) return "?";
  return `$${value.toFixed(value > 0 && value < 0.01 ? 4 : 2)}`;
}

/**
 * Makes untrusted text inert in a pull request body:
 * - control characters other than newline and tab go (CR LF becomes LF);
 * - `<!` and `--!>`/`-->` get a zero-width joiner inside, so the text can neither open nor close
 *   an HTML comment (our marker is one) nor forge a marker;
 * - `@name` and `@org/team` get a zero-width joiner after the `@`, so nobody is notified;
 * - closing keywords before an issue reference (`Fixes #3`, `closes acme/x#4`, `Resolves https://…`)
 *   get one after their first letter, so merging cannot close issues the runner picked
 *   (https://docs.github.com/issues/tracking-your-work-with-issues/linking-a-pull-request-to-an-issue).
 */
export function neutraliseUntrusted(text: string): string {
  return stripControl(text.replace(/\r\n?/g, "\n"))
    .replace(/<!/g, `<${ZWJ}!`)
    .replace(/--(!?)>/g, `--$1${ZWJ}>`)
    .replace(/@(?=[A-Za-z0-9_])/g, `@${ZWJ}`)
    .replace(
      /\b(c)(lose[sd]?)\b(?=\s*:?\s*(?:#\d|[\w.-]+\/[\w.-]+#\d|https?:\/\/))/gi,
      `$1${ZWJ}$2`,
    )
    .replace(
      /\b(f)(ix(?:e[sd])?)\b(?=\s*:?\s*(?:#\d|[\w.-]+\/[\w.-]+#\d|https?:\/\/))/gi,
      `$1${ZWJ}$2`,
    )
    .replace(
      /\b(r)(esolve[sd]?)\b(?=\s*:?\s*(?:#\d|[\w.-]+\/[\w.-]+#\d|https?:\/\/))/gi,
      `$1${ZWJ}$2`,
    );
}

/** Control characters except newline and tab, and the bidirectional overrides ("trojan source"). */
function stripControl(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return text.replace(/[\u0000-\u0008\u000B-\u001F\u007F\u202A-\u202E\u2066-\u2069]/g, "");
}

/**
 * Neutralises untrusted text and keeps at most `max` characters of it (the head or the tail). The
 * raw text is cut first, so a 1 MB summary costs no more than a 10 KB one, and cut again after
 * neutralising (which adds characters); any prefix or suffix of neutralised text is still neutral.
 */
function boundUntrusted(raw: string, max: number, keep: "head" | "tail"): string {
  const cut = keep === "head" ? headChars : tailChars;
  const piece = cut(raw, max);
  const neutral = neutraliseUntrusted(piece);
  const safe = cut(neutral, max);
  if (piece.length === raw.length && safe.length === neutral.length) return safe;
  // Approximate: the characters cut after neutralising include a few inserted joiners.
  const omitted = numberFormat.format(raw.length - piece.length + neutral.length - safe.length);
  return keep === "head"
    ? `${safe}\n… (about ${omitted} more characters not shown)`
    : `… (about ${omitted} earlier characters not shown)\n${safe}`;
}

function headChars(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  if (isLowSurrogate(text.charCodeAt(end))) end -= 1;
  return text.slice(0, end);
}

function tailChars(text: string, max: number): string {
  if (text.length <= max) return text;
  let start = text.length - max;
  if (isLowSurrogate(text.charCodeAt(start))) start += 1;
  return text.slice(start);
}

function truncateChars(text: string, max: number, ellipsis: string): string {
  if (text.length <= max) return text;
  return `${headChars(text, max - ellipsis.length)}${ellipsis}`;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** A fenced block longer than any backtick run inside, so the text cannot end it. */
function fenced(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}text\n${text}\n${fence}`;
}

/**
 * One line of untrusted text (a runner's or an agent's) as a code span: {@link neutraliseUntrusted},
 * whitespace folded, at most `max` characters, and fenced with more backticks than it holds, so no
 * mention, link, image, HTML or closing keyword in it does anything on GitHub. Escape `|` before
 * putting it in a table cell.
 */
export function untrustedInline(text: string, max: number): string {
  const line = truncateChars(
    neutraliseUntrusted(headChars(text, max * 2))
      .replace(/\s+/g, " ")
      .trim(),
    max,
    "…",
  );
  const longest = Math.max(0, ...[...line.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = "`".repeat(longest + 1);
  const pad = line.startsWith("`") || line.endsWith("`") ? " " : "";
  return `${ticks}${pad}${line}${pad}${ticks}`;
}

/** {@link untrustedInline}, safe inside a table cell. */
function inlineCode(text: string, max: number): string {
  return untrustedInline(text, max).replace(/\|/g, "\\|");
}
