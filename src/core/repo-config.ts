import { z } from "zod";
import { MAX_BEST_OF } from "./best-of.ts";
import { globListProblem, globProblem, MAX_GLOB_LENGTH } from "./glob.ts";
import { LANES } from "./task-states.ts";

export const REPO_CONFIG_PATH = ".github/conveyor.yml";

/** Default `merge.protected_paths` (docs/merge-policy.md). Setting the key replaces this list. */
export const DEFAULT_PROTECTED_PATHS = [
  ".github/**",
  REPO_CONFIG_PATH,
  "CODEOWNERS",
  "**/CODEOWNERS",
  "app.yml",
  "package.json",
  "package-lock.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  "npm-shrinkwrap.json",
  "bun.lockb",
  "Cargo.lock",
  "poetry.lock",
  "Gemfile.lock",
  "go.sum",
  "Dockerfile*",
  "docker-compose*",
  ".env*",
  "**/migrations/**",
  "**/auth/**",
  "*.pem",
  "*.key",
] as const;

/** Default `merge.test_paths`: files whose deletion forces tier 3. */
export const DEFAULT_TEST_PATHS = [
  "**/*.test.*",
  "**/*.spec.*",
  "**/__tests__/**",
  "**/test/**",
  "**/tests/**",
  "**/*_test.go",
  "**/test_*.py",
] as const;

export const MERGE_METHODS = ["squash", "merge", "rebase"] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];

/**
 * `merge.mode`: `auto` merges when every rule passes; `approve` also waits for a maintainer's
 * `/approve`, whatever the tier; `report` merges nothing and only says what it would have done.
 */
export const MERGE_MODES = ["auto", "approve", "report"] as const;
export type MergeMode = (typeof MERGE_MODES)[number];

/**
 * `merge.revert`: what Conveyor does when a check that passed on its pull request fails on the
 * merge commit (and passed on the parent): `pr` opens a revert pull request, `auto` also merges it
 * once its checks pass (only after a tier-1 merge), `off` only reports and freezes.
 */
export const REVERT_MODES = ["auto", "pr", "off"] as const;
export type RevertMode = (typeof REVERT_MODES)[number];

/** A check name as GitHub allows it (a check run's `name` or a status's `context`). */
const checkName = z
  .string()
  .min(1)
  .max(255)
  .refine((name) => name.trim() === name, "no leading or trailing spaces");

const glob = z
  .string()
  .min(1)
  .max(MAX_GLOB_LENGTH)
  .superRefine((pattern, ctx) => {
    // Length has its own message above.
    if (pattern.length === 0 || pattern.length > MAX_GLOB_LENGTH) return;
    const problem = globProblem(pattern);
    if (problem) ctx.addIssue({ code: "custom", message: `invalid glob: ${problem}` });
  });

/** A list of globs matched together: each acceptable, and not too costly in all. */
const globList = (max: number) =>
  z
    .array(glob)
    .max(max)
    .superRefine((patterns, ctx) => {
      const problem = globListProblem(patterns);
      if (problem) ctx.addIssue({ code: "custom", message: `invalid globs: ${problem}` });
    });

const capability = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "lower-case letters, digits, '.', '_' or '-'");

/** The budget of one attempt, which the runner enforces from the agent's own usage figures. */
const budgetLimits = {
  max_cost_usd: z
    .number()
    .positive()
    .max(100_000)
    .optional()
    .describe("Stop the agent once its reported cost passes this many USD (no retry)."),
  max_tokens: z
    .number()
    .int()
    .positive()
    .optional()
    .describe("Stop the agent once its tokens (input plus output) pass this (no retry)."),
  max_turns: z
    .number()
    .int()
    .positive()
    .max(100_000)
    .optional()
    .describe("Stop the agent once its model round trips pass this (no retry)."),
};

/** The budget fields of `tasks.limits` and `tasks.label_limits`. */
export const BUDGET_KEYS = ["max_cost_usd", "max_tokens", "max_turns"] as const;
export type BudgetKey = (typeof BUDGET_KEYS)[number];
export type BudgetLimits = Partial<Record<BudgetKey, number>>;

/**
 * The attempt budget of an issue with these labels: `tasks.limits`, with each figure the first
 * matching `tasks.label_limits` entry (in the file's order) names put in its place. Labels compare
 * without regard to case, as GitHub's do.
 */
export function budgetFor(config: RepoConfig, labels: readonly string[]): BudgetLimits {
  const have = new Set(labels.map((l) => l.toLowerCase()));
  const budget: BudgetLimits = {};
  for (const key of BUDGET_KEYS) {
    const value = config.tasks.limits[key];
    if (value !== undefined) budget[key] = value;
  }
  const match = Object.entries(config.tasks.label_limits).find(([label]) =>
    have.has(label.toLowerCase()),
  );
  if (match) {
    for (const key of BUDGET_KEYS) {
      const value = match[1][key];
      if (value !== undefined) budget[key] = value;
    }
  }
  return budget;
}

/**
 * `.github/conveyor.yml`, version 1. Strict: an unknown key is an error (a typo must not silently
 * fall back to a default). Every key is optional; the defaults are the documented ones.
 */
export const RepoConfig = z
  .strictObject({
    version: z.literal(1).describe("Schema version of this file. Only 1 exists."),
    intake: z
      .strictObject({
        label: z
          .string()
          .min(1)
          .max(50)
          .default("conveyor")
          .describe("Label that queues an issue when a person with write access adds it."),
        default_lane: z
          .enum(LANES)
          .default("normal")
          .describe("Lane of an issue without a priority:<lane> label."),
      })
      .prefault({})
      .describe("How issues become tasks."),
    tasks: z
      .strictObject({
        max_attempts: z
          .number()
          .int()
          .min(1)
          .max(10)
          .default(3)
          .describe(
            "Attempts before a task is dead (failures, lease expiries and deadlines count).",
          ),
        max_ci_fixes: z
          .number()
          .int()
          .min(0)
          .max(10)
          .default(2)
          .describe(
            "Follow-up attempts when checks fail on the pull request, then a human decides.",
          ),
        max_review_fixes: z
          .number()
          .int()
          .min(0)
          .max(20)
          .default(3)
          .describe("Follow-up attempts for /fix and 'changes requested' reviews."),
        max_conflict_retries: z
          .number()
          .int()
          .min(0)
          .max(10)
          .default(2)
          .describe(
            "Follow-up attempts on the current base when the pull request conflicts with it " +
              "(another merge landed first), then a human decides.",
          ),
        deadline_minutes: z
          .number()
          .int()
          .min(1)
          .max(24 * 60)
          .default(120)
          .describe("Wall-clock budget of one attempt, from assignment to result."),
        max_running: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .optional()
          .describe(
            "Tasks of this repository assigned to or running on runners at once (unset: no cap besides the installation's). Read when an issue is queued; a campaign of hundreds of issues then runs a few at a time.",
          ),
        capabilities: z
          .array(capability)
          .max(20)
          .default([])
          .describe(
            "Runner capabilities every task of this repository needs, besides needs:<cap> labels.",
          ),
        best_of: z
          .union([
            z.number().int().min(1).max(MAX_BEST_OF),
            z.array(capability).min(1).max(MAX_BEST_OF),
          ])
          .optional()
          .describe(
            `Best of N: run every issue on this many runners at once (1 to ${MAX_BEST_OF}) and keep one candidate for the pull request, or a list of adapters, one candidate each, matched by runner capabilities (e.g. [claude, codex]). A conveyor:best-of-<n> label overrides the count.`,
          ),
        limits: z
          .strictObject({
            wall_clock_minutes: z
              .number()
              .int()
              .min(1)
              .max(24 * 60)
              .default(60),
            idle_minutes: z
              .number()
              .int()
              .min(1)
              .max(24 * 60)
              .default(10),
            output_bytes: z
              .number()
              .int()
              .min(1024)
              .max(100 * 1024 * 1024)
              .default(10 * 1024 * 1024),
            ...budgetLimits,
          })
          .prefault({})
          .describe(
            "Limits the runner enforces on the agent: run time, silence, output size, and the " +
              "budget of one attempt (cost, tokens, turns; none by default).",
          ),
        label_limits: z
          .record(z.string().trim().min(1).max(100), z.strictObject(budgetLimits))
          .refine((record) => Object.keys(record).length <= 50, "at most 50 labels")
          .default({})
          .describe(
            "Budgets for issues with a label, replacing tasks.limits' figures they name; when " +
              "several labels match, the first one listed here wins.",
          ),
        daily_budget_usd: z
          .number()
          .positive()
          .max(1_000_000)
          .optional()
          .describe(
            "What this repository's agents may cost in one UTC day; when spent, its queue pauses " +
              "until the next day, a larger budget here or a maintainer's /budget <usd>.",
          ),
      })
      .prefault({})
      .describe("Attempts, deadlines and the limits runners enforce."),
    verify: z
      .strictObject({
        commands: z
          .array(z.array(z.string().min(1)).min(1))
          .max(10)
          .default([])
          .describe(
            "Commands (argv arrays, never a shell string) the runner runs after the agent.",
          ),
      })
      .prefault({})
      .describe("Verification the runner runs before uploading a change."),
    merge: z
      .strictObject({
        method: z
          .enum(MERGE_METHODS)
          .default("squash")
          .describe("How Conveyor merges: squash, merge or rebase."),
        tier1: z
          .strictObject({
            max_changed_lines: z
              .number()
              .int()
              .min(0)
              .max(10_000)
              .default(19)
              .describe("Most changed lines (additions + deletions) of a tier-1 pull request."),
            max_files: z
              .number()
              .int()
              .min(0)
              .max(1_000)
              .default(3)
              .describe("Most files of a tier-1 pull request."),
            max_line_bytes: z
              .number()
              .int()
              .min(1)
              .max(100_000)
              .default(1_000)
              .describe(
                "Most UTF-8 bytes of one added line of a tier-1 pull request (a minified line " +
                  "is not 'one line').",
              ),
            max_file_bytes: z
              .number()
              .int()
              .min(1)
              .max(10_000_000)
              .default(4_096)
              .describe("Most UTF-8 bytes added to one file of a tier-1 pull request."),
          })
          .prefault({})
          .describe("Limits of tier 1, which merges without an approval."),
        protected_paths: globList(200)
          .default([...DEFAULT_PROTECTED_PATHS])
          .describe(
            "Globs that force tier 3 (never auto-merged). Replaces the defaults; workflows, " +
              "local actions, .github/conveyor.yml and CODEOWNERS are protected whatever this says.",
          ),
        test_paths: globList(200)
          .default([...DEFAULT_TEST_PATHS])
          .describe("Globs of test files: deleting one forces tier 3."),
        checks_timeout_minutes: z
          .number()
          .int()
          .min(1)
          .max(7 * 24 * 60)
          .default(60)
          .describe("How long to wait for checks on a commit before a person has to look."),
        update_branch: z
          .boolean()
          .default(false)
          .describe("Update a branch that is behind its base instead of waiting for a person."),
        hold_labels: z
          .array(z.string().trim().min(1).max(100))
          .max(50)
          .default([])
          .describe(
            "Labels that hold a pull request besides the built-in ones (hold, on hold, " +
              "do-not-merge, do-not-merge/*, wip, work in progress, conveyor:hold); any case, " +
              "'x/*' holds every label under x/.",
          ),
        required_approvals: z
          .number()
          .int()
          .min(1)
          .max(10)
          .default(1)
          .describe("Approvals a tier-2 pull request needs from people with write access."),
        required_checks: z
          .array(checkName)
          .max(100)
          .default([])
          .describe(
            "Check runs or commit statuses that must report and pass on the head before a merge, " +
              "besides the base branch's required checks and the checks that ran on its base commit.",
          ),
        strict_conclusions: z
          .boolean()
          .default(false)
          .describe(
            "Only `success` passes. By default `skipped` and `neutral` pass too, as GitHub counts " +
              "them for required checks (at least one check must succeed either way).",
          ),
        mode: z
          .enum(MERGE_MODES)
          .default("auto")
          .describe(
            "auto: merge when every rule passes; approve: also wait for a maintainer's /approve, " +
              "whatever the tier; report: merge nothing, say what would have happened.",
          ),
        revert: z
          .enum(REVERT_MODES)
          .default("pr")
          .describe(
            "After a merge, when a check that passed on the pull request fails on the merge " +
              "commit: pr opens a revert pull request, auto also merges it once its checks pass " +
              "(only after a tier-1 merge), off only reports; each freezes the repository.",
          ),
      })
      .prefault({})
      .describe("When and how Conveyor merges its pull requests (docs/merge-policy.md)."),
    runners: z
      .strictObject({
        actions: z
          .strictObject({
            workflow: z
              .string()
              .regex(/^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.ya?ml|[1-9][0-9]{0,15})$/, {
                error: "expected a workflow file name under .github/workflows/ or a workflow id",
              })
              .default("conveyor-runner.yml")
              .describe(
                "The workflow Conveyor dispatches, in this repository: a file name under " +
                  ".github/workflows/ (which calls the reusable workflows/conveyor-runner.yml) " +
                  "or its numeric id. It must run on workflow_dispatch with a runner_token input.",
              ),
            ref: z
              .string()
              .min(1)
              .max(255)
              .regex(/^[^\s~^:?*[\\]+$/, { error: "expected a branch or tag name" })
              .optional()
              .describe("The branch or tag the workflow runs from; the default branch if absent."),
            capabilities: z
              .array(capability)
              .max(20)
              .default([])
              .describe(
                "Capabilities the dispatched runners offer; only tasks that need no more wait for them.",
              ),
            max_parallel: z
              .number()
              .int()
              .min(1)
              .max(50)
              .default(2)
              .describe(
                "Most dispatched runners of this repository at once (dispatched and not yet gone).",
              ),
            after_seconds: z
              .number()
              .int()
              .min(0)
              .max(24 * 3600)
              .default(60)
              .describe(
                "How long a task waits with no connected runner free for it before a runner is dispatched.",
              ),
          })
          .optional()
          .describe(
            "GitHub Actions on demand: when tasks wait and no runner is free for them, dispatch " +
              "this workflow with a one-time runner credential. Off when absent.",
          ),
      })
      .prefault({})
      .describe("Where runners come from besides the fixed fleet (docs/operations.md)."),
  })
  .partial({ version: true });

export type RepoConfig = z.output<typeof RepoConfig>;

/** The configuration used when a repository has no file, or an invalid one (never looser). */
export const DEFAULT_REPO_CONFIG: RepoConfig = RepoConfig.parse({});

export interface ConfigProblem {
  /** Dotted key, e.g. `tasks.max_attempts`; empty for the whole file. */
  key: string;
  message: string;
}

export type RepoConfigResult =
  | { ok: true; config: RepoConfig }
  | { ok: false; config: RepoConfig; problems: ConfigProblem[] };

/**
 * Validates a parsed `.github/conveyor.yml`. An invalid file yields the defaults plus the problems,
 * so the caller can show them where the user will see them and carry on safely.
 */
export function parseRepoConfig(raw: unknown): RepoConfigResult {
  if (raw === null || raw === undefined) return { ok: true, config: DEFAULT_REPO_CONFIG };
  const parsed = RepoConfig.safeParse(raw);
  if (parsed.success) return { ok: true, config: parsed.data };
  const problems = parsed.error.issues.flatMap((issue): ConfigProblem[] => {
    const base = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => ({
        key: base ? `${base}.${k}` : k,
        message: "unknown key",
      }));
    }
    return [{ key: base, message: issue.message }];
  });
  return { ok: false, config: DEFAULT_REPO_CONFIG, problems };
}

/** JSON Schema of the file, for editors and `docs/conveyor.schema.json`. */
export function repoConfigJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(RepoConfig, { io: "input", target: "draft-2020-12" }),
    $id: "https://conveyor.dev/schemas/conveyor.yml.json",
    title: "Conveyor repository configuration (.github/conveyor.yml)",
  };
}
