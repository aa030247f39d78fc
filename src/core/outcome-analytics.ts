/**
 * Outcome analytics: how each agent (adapter and model) and each runner does, over a window. Pure:
 * the store reads the facts, this adds them up, so the definitions live in one place (and in
 * docs/operations.md, which states them in words).
 */

/** The adapters runners know (`conveyor-runner start --agent`); anything else counts as `other`. */
export const KNOWN_ADAPTERS = [
  "claude",
  "codex",
  "gemini",
  "aider",
  "opencode",
  "command",
] as const;

/** The merge policy's tiers, and `none` for a task whose pull request never got a verdict. */
export const OUTCOME_TIERS = ["1", "2", "3"] as const;
export type OutcomeTier = (typeof OUTCOME_TIERS)[number];

/** One attempt that ended in the window. */
export interface AttemptFact {
  taskId: string;
  adapter: string | null;
  model: string | null;
  runner: string;
  costUsd: number | null;
  tokens: number | null;
  /**
   * Best of N: for a candidate's attempt, whether its round is decided and this candidate is the
   * one on the pull request (`true`) or not (`false`); undefined for any other attempt or while its
   * round is open.
   */
  picked?: boolean | undefined;
}

/**
 * A task whose last attempt ended in the window, credited to that attempt's agent and runner:
 * the attempt whose change was (or was not) merged.
 */
export interface TaskOutcomeFact {
  taskId: string;
  adapter: string | null;
  model: string | null;
  runner: string;
  merged: boolean;
  /** From being queued to being merged, for a merged task. */
  queueToMergeSeconds: number | null;
  ciFixes: number;
  reviewFixes: number;
  /** The tier of the latest verdict on its pull request; null without one. */
  tier: OutcomeTier | null;
  /** Waiting for a person (`waiting_human`), or merged by a person rather than by Conveyor. */
  leftForHuman: boolean;
}

export interface OutcomeFigures {
  /** Distinct tasks the group made an attempt at. */
  tasks: number;
  attempts: number;
  /** Tasks the group made the last attempt of that are merged. */
  merged: number;
  /** merged / tasks. */
  merged_rate: number;
  median_queue_to_merge_seconds: number | null;
  /** Follow-up attempts for red CI and for review feedback, over the tasks credited to the group. */
  ci_fix_rounds: number;
  review_fix_rounds: number;
  /** What every attempt of the group cost and used (failed ones too). */
  cost_usd: number;
  tokens: number;
  cost_per_merged_pr_usd: number | null;
  tokens_per_merged_pr: number | null;
  /**
   * Per tier, the share of the credited tasks whose pull request is at that tier that were left
   * for a person; null when no credited task reached that tier.
   */
  left_for_human: Record<`tier${OutcomeTier}`, number | null>;
  /**
   * Best of N: the group's candidate attempts of decided rounds, and how many of them were kept
   * for (or `/pick`ed onto) the pull request; the rest were recorded and their branches deleted.
   */
  best_of: { candidates: number; picked: number };
}

export type AgentOutcome = { adapter: string; model: string | null } & OutcomeFigures;
export type RunnerOutcome = { runner: string } & OutcomeFigures;

export interface OutcomeReport {
  by_agent: AgentOutcome[];
  by_runner: RunnerOutcome[];
}

/** Adds the facts up per adapter + model and per runner, each list sorted by its key. */
export function summarizeOutcomes(
  attempts: readonly AttemptFact[],
  outcomes: readonly TaskOutcomeFact[],
): OutcomeReport {
  const agentKey = (f: { adapter: string | null; model: string | null }) =>
    JSON.stringify([f.adapter ?? "unknown", f.model]);
  const runnerKey = (f: { runner: string }) => f.runner;
  const by_agent = group(attempts, outcomes, agentKey).map(([key, figures]) => {
    const [adapter, model] = JSON.parse(key) as [string, string | null];
    return { adapter, model, ...figures };
  });
  const by_runner = group(attempts, outcomes, runnerKey).map(([runner, figures]) => ({
    runner,
    ...figures,
  }));
  return { by_agent, by_runner };
}

function group<K extends { adapter: string | null; model: string | null; runner: string }>(
  attempts: readonly (AttemptFact & K)[],
  outcomes: readonly (TaskOutcomeFact & K)[],
  keyOf: (fact: K) => string,
): [string, OutcomeFigures][] {
  const keys = [...new Set(attempts.map(keyOf))].sort();
  return keys.map((key) => {
    const mine = attempts.filter((a) => keyOf(a) === key);
    const credited = outcomes.filter((o) => keyOf(o) === key);
    const merged = credited.filter((o) => o.merged);
    const cost = round(
      mine.reduce((sum, a) => sum + (a.costUsd ?? 0), 0),
      6,
    );
    const tokens = mine.reduce((sum, a) => sum + (a.tokens ?? 0), 0);
    const tasks = new Set(mine.map((a) => a.taskId)).size;
    const left = Object.fromEntries(
      OUTCOME_TIERS.map((tier) => {
        const atTier = credited.filter((o) => o.tier === tier);
        const share = atTier.length
          ? round(atTier.filter((o) => o.leftForHuman).length / atTier.length, 4)
          : null;
        return [`tier${tier}`, share];
      }),
    ) as OutcomeFigures["left_for_human"];
    return [
      key,
      {
        tasks,
        attempts: mine.length,
        merged: merged.length,
        merged_rate: tasks ? round(merged.length / tasks, 4) : 0,
        median_queue_to_merge_seconds: median(
          merged.flatMap((o) => (o.queueToMergeSeconds === null ? [] : [o.queueToMergeSeconds])),
        ),
        ci_fix_rounds: credited.reduce((sum, o) => sum + o.ciFixes, 0),
        review_fix_rounds: credited.reduce((sum, o) => sum + o.reviewFixes, 0),
        cost_usd: cost,
        tokens,
        cost_per_merged_pr_usd: merged.length ? round(cost / merged.length, 6) : null,
        tokens_per_merged_pr: merged.length ? Math.round(tokens / merged.length) : null,
        left_for_human: left,
        best_of: {
          candidates: mine.filter((a) => a.picked !== undefined).length,
          picked: mine.filter((a) => a.picked === true).length,
        },
      },
    ];
  });
}

/** The middle value (the mean of the two middle ones for an even count); null for none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

const WINDOW = /^(\d{1,4})([mhdw])$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;
/** The longest window: a year. */
export const MAX_WINDOW_MS = 366 * 86_400_000;

/**
 * `--since` / `?since=`: a whole number and a unit, `30m`, `24h`, `7d` or `2w`, at most a year.
 * Returns the window in milliseconds, or a message saying what is wrong.
 */
export function parseWindow(text: string): { ms: number } | { error: string } {
  const match = WINDOW.exec(text.trim());
  if (!match) return { error: "expected a window such as 30m, 24h, 7d or 2w" };
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms <= 0) return { error: "the window must be longer than 0" };
  if (ms > MAX_WINDOW_MS) return { error: "the window can be at most a year (366d)" };
  return { ms };
}

/** A Prometheus label for an adapter name: one of the known adapters, else `other`. */
export function adapterLabel(adapter: string | null): string {
  return adapter && (KNOWN_ADAPTERS as readonly string[]).includes(adapter) ? adapter : "other";
}
