/**
 * Best of N (docs/merge-policy.md#best-of-n): an issue run by n runners at once, each candidate on
 * its own branch, and the one kept for the pull request chosen by a documented order. Pure: the
 * label and config rules, the ranking and the table the pull request shows.
 */

/** The most candidates one issue may run at once. */
export const MAX_BEST_OF = 4;

/** `conveyor:best-of-<n>`. */
export const BEST_OF_LABEL_PREFIX = "conveyor:best-of-";

export interface BestOfPlan {
  /** Candidates to run: 1 is the ordinary single run. */
  n: number;
  /**
   * Adapter names, candidate k asking for `adapters[(k - 1) % length]` as a runner capability;
   * empty: any runner may take any candidate.
   */
  adapters: string[];
  /** Why a `conveyor:best-of-*` label was not used (shown on the issue); undefined when fine. */
  problem?: string | undefined;
}

/** `tasks.best_of` as the config schema gives it: a count, or a list of adapters (one each). */
export type BestOfSetting = number | readonly string[];

/**
 * How many candidates an issue runs and which adapters they ask for: a `conveyor:best-of-<n>`
 * label (n from 1 to 4) wins over `tasks.best_of`; the config's adapter list applies to either
 * count. A label that names no valid n (`conveyor:best-of-5`, `conveyor:best-of-two`) is not
 * ignored silently: the plan falls back to the config and says why in `problem`. Two different
 * valid labels: the largest n wins.
 */
export function planBestOf(
  labels: readonly string[],
  setting: BestOfSetting | undefined,
): BestOfPlan {
  const adapters = typeof setting === "object" ? [...setting] : [];
  const configured = typeof setting === "number" ? setting : Math.max(1, adapters.length);
  let fromLabel: number | undefined;
  const bad: string[] = [];
  for (const raw of labels) {
    const label = raw.trim().toLowerCase();
    if (!label.startsWith(BEST_OF_LABEL_PREFIX)) continue;
    const rest = label.slice(BEST_OF_LABEL_PREFIX.length);
    const n = /^[0-9]{1,3}$/.test(rest) ? Number(rest) : Number.NaN;
    if (Number.isInteger(n) && n >= 1 && n <= MAX_BEST_OF) {
      fromLabel = Math.max(fromLabel ?? 0, n);
    } else {
      bad.push(raw.trim());
    }
  }
  const n = fromLabel ?? configured;
  const problem =
    bad.length > 0
      ? `the label${bad.length > 1 ? "s" : ""} ${bad.map((b) => `\`${b.slice(0, 60)}\``).join(", ")} ` +
        `${bad.length > 1 ? "name" : "names"} no candidate count: use \`${BEST_OF_LABEL_PREFIX}<n>\` with n from 1 to ${MAX_BEST_OF}; ` +
        `this issue runs ${n === 1 ? "on one runner" : `${n} candidates`}`
      : undefined;
  return { n, adapters: n > 1 ? adapters : [], problem };
}

/** The adapter candidate k (1-based) asks for, or undefined. */
export function adapterFor(plan: Pick<BestOfPlan, "adapters">, k: number): string | undefined {
  if (plan.adapters.length === 0) return undefined;
  return plan.adapters[(k - 1) % plan.adapters.length];
}

/** `conveyor/issue-<N>-<k>`. */
export function candidateBranch(issueNumber: number, k: number): string {
  return `conveyor/issue-${issueNumber}-${k}`;
}

/**
 * The budget of one candidate: `max_cost_usd` and `max_tokens` of the task's limits divided by n,
 * so the candidates together stay within the figure the task was given ("budgets apply to the
 * sum"). Turns and the time limits bound one agent's run and are kept as they are.
 */
export function candidateLimits(
  limits: Readonly<Record<string, unknown>>,
  n: number,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...limits };
  const cost = limits.max_cost_usd;
  if (typeof cost === "number" && n > 1)
    out.max_cost_usd = Math.floor((cost / n) * 10_000) / 10_000;
  const tokens = limits.max_tokens;
  if (typeof tokens === "number" && n > 1) out.max_tokens = Math.max(1, Math.floor(tokens / n));
  return out;
}

/** What the checks on a candidate's head came to: all green, one red, some still running, none. */
export type CandidateChecks = "green" | "red" | "pending" | "none";

/**
 * The checks on a candidate's head, each already counted as the merge policy counts it
 * (`checkRunOutcome` with `merge.strict_conclusions`, `statusOutcome`): one that fails makes it
 * red; one still running, or a list read only in part (`cut`: what was not read is not known to
 * be green), pending; none at all, none.
 */
export function candidateChecks(
  outcomes: readonly ("success" | "pass" | "pending" | "fail")[],
  cut: boolean,
): CandidateChecks {
  if (outcomes.includes("fail")) return "red";
  if (outcomes.includes("pending") || cut) return "pending";
  return outcomes.length > 0 ? "green" : "none";
}

/** One candidate as the ranking sees it. */
export interface CandidateFacts {
  k: number;
  /** False when the candidate produced no change (failed, timed out, refused): never chosen. */
  hasChange: boolean;
  /** The runner's verification passed (a candidate without `verify.commands` passes). */
  verificationPassed: boolean;
  /** Risk tier of its change, 1 to 3 (docs/merge-policy.md). */
  tier: number;
  checks: CandidateChecks;
  /** Lines added plus lines removed. */
  changedLines: number;
  /** What its attempt cost; null when the agent reported no cost (ranked after any figure). */
  costUsd: number | null;
}

/**
 * Compares two candidates by the documented order: verification passed, then the lower risk
 * tier, then checks green, then the smaller diff, then the lower cost, then the lower k (so the
 * order is total and the same on every instance). Negative: `a` is better.
 */
export function compareCandidates(a: CandidateFacts, b: CandidateFacts): number {
  const green = (c: CandidateFacts) => (c.checks === "green" ? 0 : 1);
  const cost = (c: CandidateFacts) => c.costUsd ?? Number.POSITIVE_INFINITY;
  return (
    Number(b.hasChange) - Number(a.hasChange) ||
    Number(b.verificationPassed) - Number(a.verificationPassed) ||
    a.tier - b.tier ||
    green(a) - green(b) ||
    a.changedLines - b.changedLines ||
    (cost(a) === cost(b) ? 0 : cost(a) < cost(b) ? -1 : 1) ||
    a.k - b.k
  );
}

export interface Ranking<T extends CandidateFacts> {
  /** The candidates with a change, best first. */
  ranked: T[];
  /** The one kept for the pull request, or undefined when no candidate has a change. */
  winner: T | undefined;
  /** One line: why the winner beat the runner-up (the first criterion that told them apart). */
  reason: string;
}

const CRITERIA: { name: string; differs: (a: CandidateFacts, b: CandidateFacts) => boolean }[] = [
  { name: "verification passed", differs: (a, b) => a.verificationPassed !== b.verificationPassed },
  { name: "lower risk tier", differs: (a, b) => a.tier !== b.tier },
  { name: "checks green", differs: (a, b) => (a.checks === "green") !== (b.checks === "green") },
  { name: "smaller diff", differs: (a, b) => a.changedLines !== b.changedLines },
  { name: "lower cost", differs: (a, b) => (a.costUsd ?? -1) !== (b.costUsd ?? -1) },
];

/** Ranks a round's candidates and names the winner with the reason it won. */
export function rankCandidates<T extends CandidateFacts>(candidates: readonly T[]): Ranking<T> {
  const ranked = candidates.filter((c) => c.hasChange).sort(compareCandidates);
  const [winner, second] = ranked;
  if (!winner) return { ranked, winner, reason: "no candidate produced a change" };
  if (!second) return { ranked, winner, reason: "the only candidate with a change" };
  const by = CRITERIA.find((c) => c.differs(winner, second));
  return {
    ranked,
    winner,
    reason: by
      ? `${by.name} (ahead of candidate ${second.k})`
      : `tied with candidate ${second.k} on every figure; the lower number wins`,
  };
}

/** A row of the pull request's candidates table. */
export interface CandidateRow {
  k: number;
  /** The adapter (and model) the runner reported, untrusted; or the one asked for. */
  agent: string | undefined;
  picked: boolean;
  rank: number | null;
  verificationPassed: boolean | null;
  tier: number | null;
  checks: string | null;
  changedLines: number | null;
  costUsd: number | null;
  /** Why it has no change, untrusted text; or null. */
  failure: string | null;
}

const cell = (text: string, max = 80) =>
  text
    .slice(0, max)
    .replace(/[\r\n|`<>@\\]/g, " ")
    .trim();

/**
 * The collapsed table of a best-of-N pull request: every candidate with the figures the ranking
 * compared, the picked one first marked, and how to swap (`/pick <k>`). Agent names and failure
 * reasons come from runners: shown inside code spans with anything that could break out removed.
 */
export function renderCandidatesTable(rows: readonly CandidateRow[]): string {
  if (rows.length === 0) return "";
  const picked = rows.find((r) => r.picked);
  const sorted = [...rows].sort((a, b) => a.k - b.k);
  const yesNo = (v: boolean | null) => (v === null ? "–" : v ? "✅" : "❌");
  const lines = [
    `<details><summary>Best of ${rows.length}: candidate ${picked?.k ?? "?"} is on this pull request</summary>`,
    "",
    "| k | agent | verification | tier | checks | changed lines | cost | |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of sorted) {
    const agent = r.agent ? `\`${cell(r.agent, 60) || "?"}\`` : "–";
    const what = r.picked
      ? "**picked**"
      : r.failure
        ? `no change: \`${cell(r.failure, 120) || "?"}\``
        : r.rank !== null
          ? `#${r.rank}, branch deleted`
          : "";
    lines.push(
      `| ${r.k} | ${agent} | ${yesNo(r.verificationPassed)} | ${r.tier ?? "–"} | ${r.checks ?? "–"} | ${r.changedLines ?? "–"} | ${r.costUsd === null ? "–" : `$${r.costUsd.toFixed(2)}`} | ${what} |`,
    );
  }
  lines.push(
    "",
    "Ranked by: verification passed, then lowest risk tier, then checks green, then smallest diff, then lowest cost. A maintainer can swap the pull request to another candidate with `/pick <k>`.",
    "",
    "</details>",
  );
  return lines.join("\n");
}
