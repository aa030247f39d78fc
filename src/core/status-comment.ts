import { untrustedInline } from "./pull-request-body.ts";
import { formatDuration } from "./task-machine.ts";
import type { Lane, TaskState } from "./task-states.ts";

export interface StatusFacts {
  taskId: string;
  state: TaskState;
  lane: Lane;
  attempts: number;
  maxAttempts: number;
  /** 1-based, while queued. */
  queuePosition?: number | undefined;
  /** While queued: how long until a runner takes it, from recent throughput (`estimateWait`). */
  waitEstimateMs?: number | undefined;
  runnerName?: string | undefined;
  createdAt: Date;
  finishedAt?: Date | null | undefined;
  now: Date;
  prUrl?: string | undefined;
  lastError?: string | null | undefined;
  snapshotHash: string;
  /** When the task waits to retry. */
  availableAt?: Date | undefined;
  /** While it waits for a person: why (the merge verdict, e.g. "Needs approval: …"). */
  waitingReason?: string | undefined;
  /** The latest attempt's agent as its runner reported it (heartbeats, then its result). */
  agent?: AgentProgress | undefined;
  /** The task's page on the dashboard, when the server knows its public address. */
  taskPageUrl?: string | undefined;
  /** While merging through GitHub's merge queue: where it stands there. */
  mergeQueue?: string | undefined;
  /** Once merged: the post-merge watch's last step (checks on the merge commit, a revert). */
  afterMerge?: string | undefined;
  /** Best of N: how many candidates the issue runs, and the one on the pull request once kept. */
  bestOf?: { n: number; picked?: number | undefined } | undefined;
  /** While queued: the daily cost budget that pauses this repository's queue, if one does. */
  budgetPause?:
    | { scope: "repository" | "installation"; spentUsd: number; budgetUsd: number }
    | undefined;
}

/** What an attempt's agent did, from the `attempts` row. */
export interface AgentProgress {
  turns?: number | null | undefined;
  tokens?: number | null | undefined;
  costUsd?: number | null | undefined;
  /** The current tool call (agent output: untrusted). */
  tool?: string | null | undefined;
}

const MARKER_PREFIX = "<!-- conveyor:status";

/** The hidden marker that identifies Conveyor's status comment for a task. */
export function statusMarker(taskId: string): string {
  return `${MARKER_PREFIX} task=${taskId} -->`;
}

export function isStatusComment(body: string | undefined | null): boolean {
  return Boolean(body?.includes(MARKER_PREFIX));
}

const HEADLINES: Record<TaskState, string> = {
  queued: "⏳ Queued",
  assigned: "📦 Assigned to a runner",
  running: "🛠️ Running",
  pushed: "📬 Pull request opened",
  review: "🔎 In review",
  merging: "🔀 Merging",
  merged: "✅ Merged",
  waiting_human: "🙋 Waiting for a maintainer",
  retry_wait: "🔁 Waiting to retry",
  failed: "⚠️ Attempt failed",
  dead: "❌ Gave up",
  cancelled: "🚫 Cancelled",
  held: "⏸️ On hold",
};

/** Commands that make sense on the issue in each state (docs/commands.md). */
export function commandsFor(state: TaskState): string[] {
  switch (state) {
    case "queued":
      return ["/priority <lane>", "/hold", "/cancel", "/status"];
    case "assigned":
    case "running":
      return ["/cancel", "/status"];
    case "retry_wait":
    case "failed":
      return ["/retry", "/cancel", "/status"];
    case "dead":
      return ["/retry", "/status"];
    case "held":
      return ["/unhold", "/cancel", "/status"];
    case "pushed":
    case "review":
    case "merging":
    case "waiting_human":
      return ["/cancel", "/status"];
    case "cancelled":
      return ["/queue"];
    case "merged":
      return [];
  }
}

/** The one status comment per task, rewritten in place as the task moves. */
export function renderStatusComment(f: StatusFacts): string {
  const rows: [string, string][] = [["State", `\`${f.state}\``]];
  if (f.state === "queued" && f.queuePosition !== undefined) {
    rows.push(["Queue position", `${f.queuePosition} (lane \`${f.lane}\`)`]);
    rows.push([
      "Estimated wait",
      f.waitEstimateMs === undefined
        ? "no estimate yet (no task left the queue recently)"
        : `about ${formatDuration(roundWait(f.waitEstimateMs))}`,
    ]);
    if (f.budgetPause) rows.push(["Paused", renderBudgetPause(f.budgetPause)]);
  } else {
    rows.push(["Lane", `\`${f.lane}\``]);
  }
  rows.push(["Attempts used", `${f.attempts}/${f.maxAttempts}`]);
  // The runner's name and its failure text come from the runner (and the agent): code spans.
  if (f.runnerName) rows.push(["Runner", untrustedInline(f.runnerName, 100)]);
  if (f.bestOf && f.bestOf.n > 1) {
    rows.push([
      "Best of",
      f.bestOf.picked
        ? `${f.bestOf.n}: candidate ${f.bestOf.picked} is on the pull request (\`/pick <k>\` swaps it)`
        : `${f.bestOf.n} candidates, each on its own branch; the best one gets the pull request`,
    ]);
  }
  const end = f.finishedAt ?? f.now;
  rows.push(["Elapsed", formatDuration(end.getTime() - f.createdAt.getTime())]);
  if (f.state === "retry_wait" && f.availableAt) {
    rows.push([
      "Next attempt",
      `in ${formatDuration(Math.max(0, f.availableAt.getTime() - f.now.getTime()))}`,
    ]);
  }
  const agent = f.agent && renderAgentProgress(f.state, f.agent);
  if (agent) rows.push(["Agent", agent]);
  if (f.prUrl) rows.push(["Pull request", f.prUrl]);
  if (f.state === "waiting_human" && f.waitingReason)
    rows.push(["Reason", oneLine(f.waitingReason)]);
  if (f.state === "merging" && f.mergeQueue) rows.push(["Merge queue", oneLine(f.mergeQueue)]);
  if (f.state === "merged" && f.afterMerge) rows.push(["After merge", oneLine(f.afterMerge)]);
  if (f.lastError) rows.push(["Last error", untrustedInline(f.lastError, 300)]);
  rows.push(["Snapshot", `\`${f.snapshotHash.slice(0, 12)}\``]);
  if (f.taskPageUrl) rows.push(["Task page", f.taskPageUrl]);

  const commands = commandsFor(f.state);
  return [
    statusMarker(f.taskId),
    `### Conveyor: ${HEADLINES[f.state]}`,
    "",
    "| | |",
    "| --- | --- |",
    ...rows.map(([k, v]) => `| ${k} | ${v.replace(/\|/g, "\\|")} |`),
    "",
    commands.length
      ? `Commands: ${commands.map((c) => `\`${c}\``).join(" · ")}`
      : "Nothing left to do here.",
    "",
    "<sub>This comment is updated in place. The issue text was snapshotted when it was queued; edits after that need `/queue` again.</sub>",
  ].join("\n");
}

/**
 * One line of an attempt's progress: `running · 14 turns · $0.42 · \`Edit src/sizes.ts\`` while the
 * agent works (the tool only then), the figures alone afterwards; undefined when nothing is known.
 */
export function renderAgentProgress(state: TaskState, p: AgentProgress): string | undefined {
  const parts: string[] = [];
  if (p.turns != null) parts.push(`${p.turns} ${p.turns === 1 ? "turn" : "turns"}`);
  if (p.tokens != null) parts.push(`${p.tokens.toLocaleString("en-US")} tokens`);
  if (p.costUsd != null) parts.push(formatUsd(p.costUsd));
  const live = state === "assigned" || state === "running";
  if (live && p.tool) parts.push(untrustedInline(p.tool, 120));
  if (!parts.length) return undefined;
  return live ? [state, ...parts].join(" · ") : parts.join(" · ");
}

/** `$0.42`; amounts under a cent keep two significant digits (`$0.0031`). */
export function formatUsd(amount: number): string {
  if (amount > 0 && amount < 0.01) return `$${amount.toPrecision(2)}`;
  return `$${amount.toFixed(2)}`;
}

/**
 * How long a task at `position` (1-based) waits, from the queue's recent throughput: `started`
 * tasks left the queue for a runner during the last `windowMs`. Undefined when none did (nothing
 * to estimate from). Position 1 waits about one interval between starts.
 */
export function estimateWait(
  position: number,
  recent: { started: number; windowMs: number },
): number | undefined {
  if (recent.started <= 0 || recent.windowMs <= 0 || position < 1) return undefined;
  return (position * recent.windowMs) / recent.started;
}

/** Estimates are rough: whole minutes (a minute at least), whole seconds below one. */
function roundWait(ms: number): number {
  if (ms < 60_000) return Math.max(1000, Math.round(ms / 1000) * 1000);
  return Math.round(ms / 60_000) * 60_000;
}

/**
 * What the status comment says, without what changes by the clock alone (elapsed time, the
 * countdown to a retry): two renders with the same digest differ only by time passing, so the
 * notifier need not edit the comment for it.
 */
export function statusDigestText(f: StatusFacts): string {
  return renderStatusComment({ ...f, now: f.createdAt });
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 297)}…` : line;
}

/**
 * Why a queued task is not dispatched: `$10.42 of this repository's $10.00 daily budget spent
 * today; the queue resumes at 00:00 UTC, or when a maintainer raises it with /budget <usd>`.
 */
export function renderBudgetPause(pause: NonNullable<StatusFacts["budgetPause"]>): string {
  const whose = pause.scope === "repository" ? "this repository's" : "this installation's";
  const raise =
    pause.scope === "repository"
      ? "a maintainer raises it with `/budget <usd>` or `tasks.daily_budget_usd`"
      : "an operator raises `CONVEYOR_INSTALLATION_DAILY_BUDGET_USD`";
  return `$${pause.spentUsd.toFixed(2)} of ${whose} $${pause.budgetUsd.toFixed(2)} daily budget spent today; the queue resumes at 00:00 UTC, or when ${raise}`;
}
