import {
  type ContentFinding,
  contentFindingTier,
  type FileMode,
  findContentProblems,
} from "./content-rules.ts";
import { hasPermission, type Permission } from "./intake.ts";
import { protectedPathFinding } from "./protected-paths.ts";
import type { RepoConfig } from "./repo-config.ts";
import { formatDuration } from "./task-machine.ts";
import { findTestWeakening, type TestWeakening } from "./test-weakening.ts";

// ---------------------------------------------------------------------------------------------
// Facts: what the GitHub side reads about a pull request, for its current head commit.
// ---------------------------------------------------------------------------------------------

/** A file's status as GitHub's "list pull request files" returns it. */
export type PrFileStatus =
  | "added"
  | "removed"
  | "modified"
  | "renamed"
  | "copied"
  | "changed"
  | "unchanged";

/** One changed file of the pull request (`GET /repos/{o}/{r}/pulls/{n}/files`). */
export interface PrFile {
  /** Path in the head commit (`filename`). */
  path: string;
  /** Path before a rename or copy (`previous_filename`); judged like `path`. */
  previousPath?: string | undefined;
  status: PrFileStatus;
  additions: number;
  deletions: number;
  /**
   * The unified-diff hunks as GitHub returns them (starting at `@@`, no `---`/`+++` headers).
   * GitHub leaves it out for binary files and very large diffs; such a file is treated as binary.
   */
  patch?: string | undefined;
  /** Set when the collector knows the file is binary. */
  binary?: boolean | undefined;
  /**
   * The mode Conveyor wrote the file with, from its change set (GitHub's file list has no modes):
   * `120000` is a symbolic link, `100755` an executable. Undefined when not known.
   */
  mode?: FileMode | undefined;
}

/** A check run on the head commit: the latest run of each name (GitHub's `filter=latest`). */
export interface CheckFact {
  name: string;
  status: "queued" | "in_progress" | "completed" | "waiting" | "requested" | "pending";
  /** `success`, `failure`, `neutral`, `skipped`, `cancelled`, `timed_out`, … ; null until completed. */
  conclusion: string | null;
  /** Created by Conveyor's own App (`Conveyor / safety` and friends): never counts. */
  ours: boolean;
}

/** Where a check's requirement comes from. */
export const EXPECTED_CHECK_SOURCES = [
  "branch protection",
  "ruleset",
  "merge.required_checks",
  "base commit",
] as const;
export type ExpectedCheckSource = (typeof EXPECTED_CHECK_SOURCES)[number];

/**
 * A check that must report on the head and pass before a merge: a check run `name` or a commit
 * status `context` (either satisfies it), matched exactly as GitHub matches required checks.
 */
export interface ExpectedCheck {
  name: string;
  source: ExpectedCheckSource;
}

/** A commit status on the head commit: the latest state of each context. */
export interface StatusFact {
  context: string;
  state: "error" | "failure" | "pending" | "success";
}

/** A submitted pull request review. */
export interface ReviewFact {
  login: string;
  isBot: boolean;
  state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" | "DISMISSED" | "PENDING";
  /** The commit the review was submitted on (`commit_id`). */
  commitSha: string;
  /** ISO time (`submitted_at`); orders a reviewer's reviews. */
  submittedAt: string;
  /** The reviewer's permission now; undefined when it could not be read (counts as none). */
  permission: Permission | undefined;
}

/**
 * A standing `/approve [sha]` from the commands issue. `sha` is the full SHA the approval is bound
 * to (the commands layer resolves a short SHA or "the head at the time"); `/unapprove` removes it.
 */
export interface ApprovalFact {
  login: string;
  isBot: boolean;
  sha: string;
  permission: Permission | undefined;
  via: "command";
}

/** The runner's verification report for the head commit, as far as the merge policy cares. */
export interface VerificationFact {
  passed: boolean;
  /** The first failing command, for the reason shown. */
  failedCommand?: string | undefined;
}

/** Everything the merge policy looks at. Collected fresh for every evaluation. */
export interface PrFacts {
  prNumber: number;
  /** The pull request's head commit on GitHub now. */
  headSha: string;
  /**
   * The commit Conveyor wrote (or produced by updating the branch): the only one it may merge.
   * Anything else on the head means someone pushed to the branch.
   */
  conveyorHeadSha: string;
  /** The pull request's author (Conveyor's App user); may not approve. */
  authorLogin: string;
  draft: boolean;
  /** Open and not merged. */
  open: boolean;
  /** The pull request's base branch on GitHub now (`base.ref`). */
  baseRef?: string | undefined;
  /**
   * The branch the task was made for (recorded when Conveyor opened the pull request): Conveyor
   * merges into no other. The fact collector always sets it; without it the rule is n/a.
   */
  expectedBaseRef?: string | undefined;
  /**
   * Checks that must report on the head and pass: the base branch's required status checks (branch
   * protection and rulesets) and the checks that reported on the commit the runner started from.
   * The policy adds `merge.required_checks` and ignores Conveyor's own check.
   */
  expectedChecks?: ExpectedCheck[] | undefined;
  /** GitHub's `mergeable`: false on a conflict, null while GitHub is still computing it. */
  mergeable: boolean | null;
  /** GitHub's `mergeable_state`: clean, dirty, behind, blocked, unstable, unknown, has_hooks, draft. */
  mergeableState: string;
  /** Names of the labels on the pull request. */
  labels: string[];
  /** The pull request's title (`title`); one starting with `WIP` holds it. Undefined when unread. */
  title?: string | undefined;
  files: PrFile[];
  /**
   * False when the file list may be incomplete: GitHub lists at most 3,000 files. Forces tier 3
   * and blocks.
   */
  filesComplete: boolean;
  /** Check runs on `headSha` only: results on older commits never count. */
  checks: CheckFact[];
  /** Commit statuses on `headSha` only. */
  statuses: StatusFact[];
  reviews: ReviewFact[];
  approvals: ApprovalFact[];
  /** `/hold` on the issue or pull request. */
  held: boolean;
  /** The repository is frozen (`/freeze`), with the reason given. */
  frozen: { reason: string } | null;
  /** The runner's verification of this change; null when none was reported. */
  verification: VerificationFact | null;
  /** ISO time `headSha` was written (or the branch updated): the checks timeout counts from it. */
  waitingSince: string;
  /** ISO time of this evaluation. */
  now: string;
  /**
   * Reads that failed or were cut short while collecting the facts (an API error, a list shorter
   * than GitHub's count). Any entry blocks the merge (fail closed).
   */
  errors: string[];
}

// ---------------------------------------------------------------------------------------------
// Tiers
// ---------------------------------------------------------------------------------------------

export type Tier = 1 | 2 | 3;

export interface TierResult {
  tier: Tier;
  /** Why this tier: every tier-3 finding, every reason it is not tier 1, or why it is tier 1. */
  reasons: string[];
  /** Every finding that raised the tier, by the rule that shows it in the safety check's table. */
  findings: TierFinding[];
}

/** The families of findings that raise a change's tier; each has its own row in the table. */
export type FindingRule = "paths" | "tests" | "content" | "change";

/** One thing about a change that makes it tier 3 (never auto-merged) or at least tier 2. */
export interface TierFinding {
  rule: FindingRule;
  tier: 2 | 3;
  /** One line of markdown; untrusted names are inside code spans. */
  reason: string;
}

/** Labels Conveyor puts on its pull requests, one per tier. */
export const RISK_LABELS = ["risk:tier-1", "risk:tier-2", "risk:tier-3"] as const;
export type RiskLabel = (typeof RISK_LABELS)[number];

/** `risk:tier-N`. */
export function riskLabel(tier: Tier): RiskLabel {
  return `risk:tier-${tier}`;
}

/**
 * The risk tier of a change, computed from the pull request's files and the modes Conveyor wrote
 * (never from what the runner claims), with every finding by the table row that shows it:
 *
 * - **3**, never auto-merged: a protected path (the built-in floor of `protected-paths.ts` or
 *   `merge.protected_paths`; a renamed file's old path counts), test weakening
 *   (`test-weakening.ts`), content that cannot be seen or inspected (`content-rules.ts`), failed
 *   verification, or no verification report although `verify.commands` is set;
 * - **1**, merges by itself: at most `merge.tier1.max_changed_lines` changed lines and
 *   `merge.tier1.max_files` files, all of them `modified`, within the tier-1 byte caps, and no
 *   build or lint configuration;
 * - **2** otherwise: needs an approval.
 */
export function classifyTier(
  files: readonly PrFile[],
  verification: VerificationFact | null,
  config: RepoConfig,
): TierResult {
  const merge = config.merge;
  const findings: TierFinding[] = [];
  const find = (rule: FindingRule, tier: 2 | 3, reason: string) => {
    findings.push({ rule, tier, reason });
  };
  for (const file of files) {
    for (const path of new Set([file.path, file.previousPath ?? file.path])) {
      const found = protectedPathFinding(path, merge.protected_paths);
      if (!found) continue;
      const why = found.builtIn
        ? `${found.what}: ${code(found.pattern)}, built in`
        : code(found.pattern);
      if (found.tier === 3) find("paths", 3, `${code(path)} is protected (${why})`);
      else
        find(
          "paths",
          2,
          `${code(path)} is ${found.what} (${code(found.pattern)}): at least tier 2`,
        );
    }
  }
  const limits = {
    maxLineBytes: merge.tier1.max_line_bytes,
    maxFileBytes: merge.tier1.max_file_bytes,
  };
  for (const problem of findContentProblems(files, limits)) {
    find("content", contentFindingTier(problem), contentReason(problem));
  }
  for (const weakening of findTestWeakening(files, merge.test_paths)) {
    find("tests", 3, weakeningReason(weakening));
  }
  if (verification && !verification.passed) {
    find(
      "change",
      3,
      verification.failedCommand
        ? `verification failed: ${code(verification.failedCommand, 200)}`
        : "verification failed",
    );
  } else if (!verification && config.verify.commands.length > 0) {
    find("change", 3, "no verification report although verify.commands is set");
  }
  const tier3 = findings.filter((f) => f.tier === 3);
  if (tier3.length > 0) return { tier: 3, reasons: tier3.map((f) => f.reason), findings };

  const { max_changed_lines: maxLines, max_files: maxFiles } = merge.tier1;
  const unknownCounts = files.filter(
    (f) => !isCount(f.additions) || !isCount(f.deletions) || !isCount(f.additions + f.deletions),
  );
  const changed = files.reduce((sum, f) => sum + f.additions + f.deletions, 0);
  if (files.length === 0) find("change", 2, "GitHub lists no changed files");
  if (unknownCounts.length > 0) {
    find("change", 2, `line counts unknown for ${list(unknownCounts.map((f) => code(f.path)))}`);
  } else if (changed > maxLines) {
    find("change", 2, `${plural(changed, "changed line")} (tier 1 allows ${maxLines})`);
  }
  if (files.length > maxFiles) {
    find("change", 2, `${plural(files.length, "file")} (tier 1 allows ${maxFiles})`);
  }
  const structural = files.filter((f) => f.status !== "modified");
  if (structural.length > 0) {
    find(
      "change",
      2,
      `${list(structural.map((f) => `${code(f.path)} ${f.status}`))} (tier 1 only modifies files)`,
    );
  }
  if (findings.length > 0) return { tier: 2, reasons: findings.map((f) => f.reason), findings };
  return {
    tier: 1,
    reasons: [
      `${plural(changed, "changed line")} (at most ${maxLines})`,
      `${plural(files.length, "file")} (at most ${maxFiles})`,
      "only modified files",
    ],
    findings,
  };
}

function contentReason(c: ContentFinding): string {
  const at = (line: number | undefined) => (line ? `, line ${line}` : "");
  switch (c.kind) {
    case "hidden":
      return `${code(c.path)} adds an invisible or direction-changing character (${c.name}${at(c.line)})`;
    case "binary":
      return `${code(c.path)} is a binary file`;
    case "no_diff":
      return `${code(c.path)} has no diff to inspect (binary or too large)`;
    case "symlink":
      return `${code(c.path)} is a symbolic link`;
    case "executable":
      return `${code(c.path)} is written executable (mode 100755)`;
    case "type_changed":
      return `${code(c.path)} changes its file type (status \`changed\`)`;
    case "long_line":
      return `${code(c.path)} adds a line of ${c.bytes} bytes${at(c.line)} (tier 1 allows ${c.limit}, merge.tier1.max_line_bytes)`;
    case "file_bytes":
      return `${code(c.path)} adds ${c.bytes} bytes (tier 1 allows ${c.limit} per file, merge.tier1.max_file_bytes)`;
  }
}

function weakeningReason(w: TestWeakening): string {
  switch (w.kind) {
    case "marker":
      return `${code(w.path)} adds a skipped or focused test (${code(w.marker)}${w.line ? `, line ${w.line}` : ""})`;
    case "deleted":
      return `test file ${code(w.path)} is deleted`;
    case "renamed_away":
      return `test file ${code(w.from)} is renamed to non-test ${code(w.to)}`;
    case "renamed_uncollected":
      return `test file ${code(w.from)} is renamed to ${code(w.to)}, a name its runner may not collect`;
    case "emptied":
      return w.before === undefined
        ? `test file ${code(w.path)} loses most of its lines (${w.removed} removed)`
        : `test file ${code(w.path)} loses most of its lines (${w.removed} of ${w.before})`;
    case "assertions":
      return `the test files remove more assertions than they add (${w.removed} removed, ${w.added} added)`;
    case "runner_config":
      return `${code(w.path)} is test-runner configuration (${code(w.pattern)})`;
  }
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

// ---------------------------------------------------------------------------------------------
// The verdict
// ---------------------------------------------------------------------------------------------

/** Every rule, in the order it is evaluated and shown. */
export const RULE_IDS = [
  "facts",
  "open",
  "head",
  "base",
  "draft",
  "hold",
  "freeze",
  "conflict",
  "checks_present",
  "checks_green",
  "checks_timeout",
  "changes_requested",
  "paths",
  "tests",
  "content",
  "tier",
  "approval",
  "mode",
] as const;
export type RuleId = (typeof RULE_IDS)[number];

export const RULE_TITLES: Record<RuleId, string> = {
  facts: "Facts complete",
  open: "Pull request open",
  head: "Head is Conveyor's commit",
  base: "Base is the branch it was made for",
  draft: "Not a draft",
  hold: "Not on hold",
  freeze: "Repository not frozen",
  conflict: "GitHub can merge it",
  checks_present: "Expected checks reported",
  checks_green: "Every check passed",
  checks_timeout: "Checks finished in time",
  changes_requested: "No standing change request",
  paths: "No protected path",
  tests: "Tests not weakened",
  content: "Content visible and inspectable",
  tier: "Risk tier",
  approval: "Approval",
  mode: "Merge mode",
};

export type RuleResult = "pass" | "fail" | "wait" | "n/a";

export interface RuleOutcome {
  id: RuleId;
  title: string;
  result: RuleResult;
  /** One line of markdown; untrusted names are inside code spans. */
  detail: string;
}

export type VerdictKind = "merge" | "wait" | "needs_approval" | "blocked";

export interface Verdict {
  /**
   * `merge`: every rule passed, merge `headSha` now. `wait`: nothing is wrong yet, re-evaluate on
   * the next event. `needs_approval`: only a tier-2 approval is missing. `blocked`: a rule failed; a
   * person has to act (precedence: blocked > wait > needs_approval > merge).
   */
  kind: VerdictKind;
  tier: Tier;
  tierReasons: string[];
  /** Every rule of {@link RULE_IDS}, in that order, with its result. */
  rules: RuleOutcome[];
  /** Concrete actions that would move the pull request on, in rule order (markdown). */
  unblock: string[];
  /** One line (markdown) for the status comment and logs. */
  summary: string;
  /** `update_branch`: the branch is behind its base and `merge.update_branch` is on: update it. */
  action?: "update_branch" | undefined;
  /**
   * Every rule but the merge mode passed: with `merge.mode: auto` Conveyor would merge this commit
   * now. Set in `approve` and `report` mode (in `auto` the verdict is simply `merge`).
   */
  wouldMerge?: boolean | undefined;
}

// ---------------------------------------------------------------------------------------------
// Checks: what is expected, what reported, and how GitHub counts a conclusion
// ---------------------------------------------------------------------------------------------

/** How one conclusion or state counts: `success`, another passing one, still `pending`, or `fail`. */
export type CheckOutcome = "success" | "pass" | "pending" | "fail";

/**
 * A check run's result as GitHub counts it for required checks: `success` succeeds, `skipped` and
 * `neutral` pass (`strict`: they fail), anything else that completed fails — `failure`,
 * `cancelled`, `timed_out`, `action_required`, `stale`, `startup_failure`, no conclusion and any
 * value not known today. A run that has not completed is pending.
 * https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/collaborating-on-repositories-with-code-quality-features/troubleshooting-required-status-checks
 */
export function checkRunOutcome(check: CheckFact, strict: boolean): CheckOutcome {
  if (check.status !== "completed") {
    return PENDING_CHECK_STATUSES.has(check.status) ? "pending" : "fail";
  }
  if (check.conclusion === "success") return "success";
  if (!strict && (check.conclusion === "skipped" || check.conclusion === "neutral")) return "pass";
  return "fail";
}

const PENDING_CHECK_STATUSES: ReadonlySet<string> = new Set([
  "queued",
  "in_progress",
  "waiting",
  "requested",
  "pending",
]);

/** A commit status as GitHub counts it: `success`, `pending`, and `error`/`failure` (or unknown) fail. */
export function statusOutcome(status: StatusFact): CheckOutcome {
  if (status.state === "success") return "success";
  if (status.state === "pending") return "pending";
  return "fail";
}

export interface ChecksJudgement {
  /** Check runs (not Conveyor's) and commit statuses on the head. */
  checkRuns: number;
  statuses: number;
  /** The expected checks (Conveyor's own left out), each name once with every source naming it. */
  expected: { name: string; sources: ExpectedCheckSource[] }[];
  /** Expected checks with no check run and no status on the head yet. */
  missing: { name: string; sources: ExpectedCheckSource[] }[];
  /** Names still running (or a status still `pending`). */
  pending: string[];
  /** Names that failed, with the conclusion or state. */
  failing: { name: string; result: string }[];
  /** How many concluded `success`, and how many passed otherwise (skipped, neutral). */
  succeeded: number;
  passedOtherwise: number;
  /** The base branch requires `Conveyor / safety` itself (GitHub stays `blocked` until it passes). */
  safetyRequired: boolean;
}

/**
 * Compares what reported on the head with what is expected. Conveyor's own check runs never count
 * as reports, and its own check is never expected of itself (a branch protection that requires
 * `Conveyor / safety` would otherwise wait forever).
 */
export function judgeChecks(facts: PrFacts, config: RepoConfig): ChecksJudgement {
  const strict = config.merge.strict_conclusions;
  const others = facts.checks.filter((c) => !c.ours);
  const sources = new Map<string, ExpectedCheckSource[]>();
  const wanted: ExpectedCheck[] = [
    ...(facts.expectedChecks ?? []),
    ...config.merge.required_checks.map(
      (name): ExpectedCheck => ({ name, source: "merge.required_checks" }),
    ),
  ];
  let safetyRequired = false;
  for (const { name, source } of wanted) {
    if (name === SAFETY_CHECK_NAME) {
      if (source === "branch protection" || source === "ruleset") safetyRequired = true;
      continue;
    }
    const list = sources.get(name) ?? [];
    if (!list.includes(source)) list.push(source);
    sources.set(name, list);
  }
  const reported = new Set([...others.map((c) => c.name), ...facts.statuses.map((s) => s.context)]);
  const expected = [...sources].map(([name, from]) => ({ name, sources: from }));
  const pending: string[] = [];
  const failing: { name: string; result: string }[] = [];
  let succeeded = 0;
  let passedOtherwise = 0;
  const count = (name: string, outcome: CheckOutcome, result: string) => {
    if (outcome === "success") succeeded++;
    else if (outcome === "pass") passedOtherwise++;
    else if (outcome === "pending") pending.push(name);
    else failing.push({ name, result });
  };
  for (const c of others) {
    const result = c.status === "completed" ? (c.conclusion ?? "no conclusion") : c.status;
    count(c.name, checkRunOutcome(c, strict), result);
  }
  for (const s of facts.statuses) count(s.context, statusOutcome(s), s.state);
  return {
    checkRuns: others.length,
    statuses: facts.statuses.length,
    expected,
    missing: expected.filter((e) => !reported.has(e.name)),
    pending,
    failing,
    succeeded,
    passedOtherwise,
    safetyRequired,
  };
}

/**
 * Labels that hold a pull request whatever the config says: the ones teams already use with Prow,
 * Mergify and Kodiak. `merge.hold_labels` adds to them. An entry ending in `/*` holds every label
 * under that prefix (`do-not-merge/hold`, `do-not-merge/work-in-progress`).
 */
export const HOLD_LABELS = [
  "hold",
  "on hold",
  "do-not-merge",
  "do-not-merge/*",
  "wip",
  "work in progress",
  "conveyor:hold",
] as const;

/**
 * A label as it is compared: Unicode-normalised (NFKC), lower case, without leading or trailing
 * symbols (`🚧 WIP`), with runs of spaces, `_` and `-` as one `-` (`Do Not Merge`, `do_not_merge`,
 * `on-hold`) and no spaces around `/`.
 */
function normaliseLabel(label: string): string {
  return label
    .normalize("NFKC")
    .toLowerCase()
    .replace(/\s*\/\s*/g, "/")
    .replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}*]+$/gu, "")
    .replace(/[\s_-]+/g, "-");
}

/**
 * The hold entry (built in, or from `merge.hold_labels`) that `label` matches, or undefined.
 * Matching ignores case, spacing and `-`/`_`/space differences; `prefix/*` matches `prefix/<anything>`.
 */
export function holdLabelMatch(label: string, extra: readonly string[] = []): string | undefined {
  const name = normaliseLabel(label);
  if (name === "") return undefined;
  return [...HOLD_LABELS, ...extra].find((entry) => {
    if (entry.endsWith("/*")) {
      const prefix = `${normaliseLabel(entry.slice(0, -2))}/`;
      return name.startsWith(prefix) && name.length > prefix.length;
    }
    return normaliseLabel(entry) === name;
  });
}

export function isHoldLabel(label: string, extra: readonly string[] = []): boolean {
  return holdLabelMatch(label, extra) !== undefined;
}

/** A title starting with `WIP` (any case, after brackets or symbols: `[WIP]`, `WIP:`, `🚧 wip`). */
export function isWipTitle(title: string): boolean {
  return /^[^\p{L}\p{N}]*wip(?![\p{L}\p{N}_])/iu.test(title.normalize("NFKC"));
}

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The merge policy: facts about a pull request's current head → a verdict with the result of every
 * rule. Pure and total; it fails closed (an API error, a truncated file list, an unreadable
 * timestamp or permission never yields `merge`). See docs/merge-policy.md.
 */
export function evaluateMergePolicy(facts: PrFacts, config: RepoConfig): Verdict {
  const merge = config.merge;
  const rules: RuleOutcome[] = [];
  const unblock: string[] = [];
  const rule = (id: RuleId, result: RuleResult, detail: string, ...actions: string[]) => {
    rules.push({ id, title: RULE_TITLES[id], result, detail });
    for (const action of actions) if (!unblock.includes(action)) unblock.push(action);
  };
  const head = facts.headSha.toLowerCase();
  const head7 = head.slice(0, 7);
  const nowMs = Date.parse(facts.now);
  const sinceMs = Date.parse(facts.waitingSince);
  const timesKnown = Number.isFinite(nowMs) && Number.isFinite(sinceMs);

  // facts
  const missing: string[] = [];
  if (facts.errors.length > 0) {
    missing.push(
      `facts incomplete: ${plural(facts.errors.length, "read")} of GitHub failed or came back cut short: ${list(
        facts.errors.map((e) => code(e, 200)),
        3,
      )}`,
    );
  }
  if (!facts.filesComplete) {
    missing.push("the file list is incomplete (GitHub lists at most 3,000 files)");
  }
  if (!timesKnown) missing.push("the evaluation or commit time is unreadable");
  if (missing.length === 0) {
    rule("facts", "pass", "every fact was read");
  } else {
    rule(
      "facts",
      "fail",
      missing.join("; "),
      "re-evaluate once GitHub answers again (/refresh)",
      ...(facts.filesComplete
        ? []
        : ["split a change of 3,000 or more files: it is never auto-merged"]),
    );
  }

  // open
  if (facts.open) rule("open", "pass", "open");
  else rule("open", "fail", "the pull request is closed or merged", "reopen the pull request");

  // head
  const conveyorHead = facts.conveyorHeadSha.toLowerCase();
  if (!SHA.test(head) || !SHA.test(conveyorHead)) {
    rule(
      "head",
      "fail",
      "the head commit or the commit Conveyor wrote is unknown",
      "re-evaluate once GitHub answers again (/refresh)",
    );
  } else if (head !== conveyorHead) {
    rule(
      "head",
      "fail",
      `someone pushed to the branch: the head is ${code(head7)}, Conveyor wrote ${code(conveyorHead.slice(0, 7))}`,
      "merge it by hand after reviewing the pushed commits, or /retry to let Conveyor redo the change",
    );
  } else {
    rule("head", "pass", `${code(head7)} is the commit Conveyor wrote`);
  }

  // base
  const expectedBase = facts.expectedBaseRef;
  if (expectedBase === undefined) {
    rule("base", "n/a", "the branch the task was made for is not recorded");
  } else if (!expectedBase || !facts.baseRef) {
    rule(
      "base",
      "fail",
      "the base branch of the pull request or of the task is unknown",
      "re-evaluate once GitHub answers again (/refresh)",
    );
  } else if (facts.baseRef !== expectedBase) {
    rule(
      "base",
      "fail",
      `the pull request now targets ${code(facts.baseRef)}, but the task was made for ${code(expectedBase)}`,
      `change the base back to ${code(expectedBase)}, or review and merge it by hand`,
    );
  } else {
    rule("base", "pass", `targets ${code(expectedBase)}, the branch it was made for`);
  }

  // draft
  if (facts.draft || facts.mergeableState.toLowerCase() === "draft") {
    rule("draft", "fail", "the pull request is a draft", "mark the pull request ready for review");
  } else {
    rule("draft", "pass", "ready for review");
  }

  // hold
  const holdLabels = facts.labels.filter((l) => isHoldLabel(l, merge.hold_labels));
  const holds: string[] = [];
  const holdActions: string[] = [];
  if (holdLabels.length > 0) {
    holds.push(`label ${list(holdLabels.map((l) => code(l)))}`);
    holdActions.push(`remove the ${list(holdLabels.map((l) => code(l)))} label`);
  }
  if (facts.title !== undefined && isWipTitle(facts.title)) {
    holds.push("a title starting with WIP");
    holdActions.push("remove WIP from the start of the pull request title");
  }
  if (facts.held) {
    holds.push("/hold");
    holdActions.push("comment /unhold");
  }
  if (holds.length > 0) rule("hold", "fail", `held by ${holds.join(" and ")}`, ...holdActions);
  else rule("hold", "pass", "no hold");

  // freeze
  if (facts.frozen) {
    const reason = facts.frozen.reason.trim();
    rule(
      "freeze",
      "fail",
      reason ? `the repository is frozen: ${code(reason, 200)}` : "the repository is frozen",
      "a maintainer comments /unfreeze",
    );
  } else {
    rule("freeze", "pass", "not frozen");
  }

  // The checks are judged first: GitHub's `blocked` is explained by checks still running.
  const checks = judgeChecks(facts, config);
  const strict = merge.strict_conclusions;
  const reportedCount = checks.checkRuns + checks.statuses;
  const noSuccessYet = reportedCount > 0 && checks.failing.length === 0 && checks.succeeded === 0;
  const waitingOnChecks =
    reportedCount === 0 || checks.missing.length > 0 || checks.pending.length > 0 || noSuccessYet;

  // conflict: GitHub's own answer (mergeable, mergeable_state)
  const state = facts.mergeableState.toLowerCase();
  let updateBranch = false;
  if (facts.mergeable === false || state === "dirty") {
    rule(
      "conflict",
      "fail",
      "the branch conflicts with its base",
      "/retry to let Conveyor redo the change on the current base, or resolve the conflict by hand",
    );
  } else if (facts.mergeable === null || state === "unknown") {
    rule(
      "conflict",
      "wait",
      "GitHub is still computing whether the branch merges cleanly",
      "nothing: Conveyor re-evaluates when GitHub has computed mergeability",
    );
  } else if (state === "blocked" && waitingOnChecks && checks.failing.length === 0) {
    rule(
      "conflict",
      "wait",
      "GitHub reports `blocked` while checks are still to come",
      "nothing: Conveyor re-evaluates when the checks finish",
    );
  } else if (state === "blocked" && !checks.safetyRequired) {
    rule(
      "conflict",
      "fail",
      "GitHub reports `blocked`: the base branch's protection or rulesets require something that is missing (a failing or unseen required check, a required review)",
      "satisfy the base branch's protection or rulesets (a required review, a required check), then /refresh",
    );
  } else if (state === "behind" && merge.update_branch) {
    updateBranch = true;
    rule(
      "conflict",
      "wait",
      "the branch is behind its base: Conveyor updates it (merge.update_branch)",
      "nothing: Conveyor updates the branch, then checks run again",
    );
  } else if (state === "behind") {
    rule(
      "conflict",
      "fail",
      "the branch is behind its base, which must be up to date, and merge.update_branch is off",
      "comment /update to bring the branch up to date, or set merge.update_branch: true",
    );
  } else if (state === "blocked") {
    rule(
      "conflict",
      "pass",
      `GitHub reports \`blocked\` until ${code(SAFETY_CHECK_NAME)} passes, which the base branch requires; Conveyor marks it success when it merges`,
    );
  } else {
    rule("conflict", "pass", `merges cleanly (${code(state || "unknown")})`);
  }

  // checks_present: every expected check reported, and at least one check at all
  const expectedList = (items: ChecksJudgement["missing"]) =>
    list(items.map((e) => `${code(e.name)} (${e.sources.join(", ")})`));
  if (checks.missing.length > 0) {
    rule(
      "checks_present",
      "wait",
      `expected but not reported on ${code(head7)} yet: ${expectedList(checks.missing)}`,
      "nothing: Conveyor re-evaluates when the expected checks report (see merge.checks_timeout_minutes)",
    );
  } else if (reportedCount === 0) {
    rule(
      "checks_present",
      "wait",
      `no check or status besides Conveyor's own has reported on ${code(head7)} yet`,
      "nothing yet: a pull request needs at least one check (CI) besides Conveyor's own",
    );
  } else {
    const counted = `${plural(checks.checkRuns, "check run")}, ${plural(checks.statuses, "commit status", "commit statuses")}`;
    rule(
      "checks_present",
      "pass",
      checks.expected.length > 0
        ? `${counted}; all ${plural(checks.expected.length, "expected check")} reported`
        : `${counted}; no other checks are expected`,
    );
  }

  // checks_green
  const passing = strict
    ? "only success passes (merge.strict_conclusions)"
    : "success, skipped and neutral pass";
  if (checks.failing.length > 0) {
    const first = checks.failing[0]?.name ?? "";
    rule(
      "checks_green",
      "fail",
      `not passing: ${list(checks.failing.map((f) => `${code(f.name)} (${code(f.result, 40)})`))} (${passing})`,
      `fix the failing check ${code(first)}${checks.failing.length > 1 ? ` and ${checks.failing.length - 1} more` : ""}, then re-run it (/retry lets Conveyor try)`,
    );
  } else if (checks.pending.length > 0) {
    rule(
      "checks_green",
      "wait",
      `waiting for ${list(checks.pending.map((name) => code(name)))}`,
      "nothing: Conveyor re-evaluates when the checks finish",
    );
  } else if (reportedCount === 0) {
    rule("checks_green", "n/a", "no checks yet");
  } else if (noSuccessYet) {
    rule(
      "checks_green",
      "wait",
      `no check has succeeded yet: ${plural(checks.passedOtherwise, "check")} skipped or neutral, and at least one success is needed`,
      "nothing: Conveyor re-evaluates when a check succeeds",
    );
  } else {
    const others =
      checks.passedOtherwise > 0 ? ` (${checks.passedOtherwise} skipped or neutral)` : "";
    rule("checks_green", "pass", `all ${reportedCount} passed on ${code(head7)}${others}`);
  }

  // checks_timeout
  const limitMs = merge.checks_timeout_minutes * 60_000;
  const limit = `${merge.checks_timeout_minutes} min`;
  if (!timesKnown) {
    rule("checks_timeout", waitingOnChecks ? "fail" : "n/a", "the waiting time is unknown");
  } else if (!waitingOnChecks) {
    rule("checks_timeout", "pass", "nothing is pending");
  } else {
    const waited = Math.max(0, nowMs - sinceMs);
    if (waited > limitMs) {
      const stuck =
        checks.missing.length > 0
          ? `expected checks did not report within ${limit}: ${expectedList(checks.missing)}`
          : reportedCount === 0
            ? `no check reported within ${limit}`
            : checks.pending.length > 0
              ? `checks did not finish within ${limit}`
              : `no check succeeded within ${limit}`;
      rule(
        "checks_timeout",
        "fail",
        `${stuck} (waited ${formatDuration(waited)})`,
        reportedCount === 0 || checks.missing.length > 0
          ? "make CI run on Conveyor's pull requests (a workflow on pull_request), then /refresh"
          : "find out why the checks are stuck and re-run them, then /refresh",
      );
    } else {
      rule(
        "checks_timeout",
        "wait",
        `waiting ${formatDuration(waited)} of at most ${limit} (merge.checks_timeout_minutes)`,
      );
    }
  }

  // changes_requested
  const latest = latestReviews(facts.reviews);
  const requested = latest.filter((r) => r.state === "CHANGES_REQUESTED");
  // Write+ people's requests stand; an unreadable permission counts too (fail closed).
  const standing = requested.filter(
    (r) => r.permission === undefined || hasPermission(r.permission, "write"),
  );
  const ignored = requested.filter((r) => !standing.includes(r));
  if (standing.length > 0) {
    rule(
      "changes_requested",
      "fail",
      `changes requested by ${list(standing.map((r) => code(r.login)))}${
        standing.some((r) => r.permission === undefined)
          ? " (a reviewer whose permission could not be read counts)"
          : ""
      }`,
      `an APPROVE review from ${list(standing.map((r) => code(r.login)))}, or dismissing the review, clears it (/fix asks Conveyor to address it)`,
    );
  } else {
    rule(
      "changes_requested",
      "pass",
      ignored.length > 0
        ? `none standing (ignored: ${list(ignored.map((r) => `${code(r.login)} has ${r.permission} permission`))})`
        : "none standing",
    );
  }

  // tier
  const classified = classifyTier(facts.files, facts.verification, config);
  const tierResult: TierResult = facts.filesComplete
    ? classified
    : {
        tier: 3,
        reasons: [
          "the file list is incomplete, so the change cannot be judged",
          ...classified.reasons,
        ],
        findings: [
          {
            rule: "change",
            tier: 3,
            reason: "the file list is incomplete, so the change cannot be judged",
          },
          ...classified.findings,
        ],
      };
  const { tier } = tierResult;
  for (const [id, fine, unblockIt] of FINDING_ROWS) {
    const own = tierResult.findings.filter((f) => f.rule === id);
    const blocking = own.filter((f) => f.tier === 3).map((f) => f.reason);
    const raising = own.filter((f) => f.tier === 2).map((f) => f.reason);
    if (blocking.length > 0) rule(id, "fail", list(blocking, 3), unblockIt);
    else if (raising.length > 0) rule(id, "pass", `not tier 1: ${list(raising, 3)}`);
    else rule(id, "pass", fine);
  }
  if (tier === 3) {
    rule(
      "tier",
      "fail",
      `tier 3, never auto-merged: ${list(tierResult.reasons, 3)}`,
      "a person reviews and merges it by hand (tier 3 is never auto-merged)",
    );
  } else {
    rule("tier", "pass", `tier ${tier}: ${list(tierResult.reasons, 3)}`);
  }

  // approval
  if (tier === 1) {
    rule("approval", "n/a", "tier 1 needs no approval");
  } else if (tier === 3) {
    rule("approval", "n/a", "tier 3 is never auto-merged; approvals do not change that");
  } else {
    const { valid, rejected } = countApprovals(facts, latest);
    const needed = merge.required_approvals;
    const not = rejected.length > 0 ? `; not counted: ${list(rejected, 5)}` : "";
    if (valid.length >= needed) {
      rule(
        "approval",
        "pass",
        `approved on ${code(head7)} by ${list(valid.map((l) => code(l)))}${not}`,
      );
    } else {
      rule(
        "approval",
        "wait",
        `tier 2 needs ${plural(needed, "approval")} on ${code(head7)}, has ${valid.length}${not}`,
        `approve with /approve ${head7 || "<sha>"} or an APPROVE review (write access or more; not the author, not a bot)`,
      );
    }
  }

  // mode: what Conveyor may do with a verdict that would merge
  const wouldMerge = verdictKind(rules) === "merge";
  const approvedBy = rules.find((r) => r.id === "approval" && r.result === "pass");
  const whatWouldMerge = `would merge: tier ${tier}${
    approvedBy ? `, approved` : ""
  }, all checks green`;
  if (merge.mode === "auto") {
    rule("mode", "pass", "auto: Conveyor merges when every rule passes");
  } else if (merge.mode === "report") {
    if (wouldMerge) {
      rule(
        "mode",
        "fail",
        `${whatWouldMerge} (merge.mode is report: Conveyor merges nothing)`,
        "a person reviews and merges it by hand (merge.mode: report); set merge.mode: auto to let Conveyor merge",
      );
    } else {
      rule("mode", "n/a", "report: Conveyor merges nothing; it would not merge this commit yet");
    }
  } else {
    const { valid } = countApprovals(facts, [], { commandsOnly: true });
    if (valid.length > 0) {
      rule(
        "mode",
        "pass",
        `approve: /approve on ${code(head7)} by ${list(valid.map((l) => code(l)))}`,
      );
    } else {
      rule(
        "mode",
        "wait",
        `approve: Conveyor merges only after a maintainer's /approve on ${code(head7 || "?")}${
          wouldMerge ? ` (${whatWouldMerge})` : ""
        }`,
        `a maintainer comments /approve ${head7 || "<sha>"} (write access or more; not the author, not a bot)`,
      );
    }
  }

  const kind = verdictKind(rules);
  const verdict: Verdict = {
    kind,
    tier,
    tierReasons: tierResult.reasons,
    rules,
    unblock,
    summary:
      merge.mode === "report" && wouldMerge
        ? `Report only: ${whatWouldMerge} at ${code(head7)} (merge.mode: report).`
        : summarise(kind, rules, tier, head7, tierResult.findings),
  };
  if (updateBranch && kind === "wait") verdict.action = "update_branch";
  if (merge.mode !== "auto") verdict.wouldMerge = wouldMerge;
  return verdict;
}

/** Rules whose wait means "a person's approval is missing", not "something is still running". */
const APPROVAL_RULES: ReadonlySet<RuleId> = new Set(["approval", "mode"]);

/** The rows that show one family of tier findings: the rule, its detail when clean, its unblock. */
const FINDING_ROWS: readonly [Exclude<FindingRule, "change">, string, string][] = [
  [
    "paths",
    "no protected path is touched",
    "a person reviews the protected files and merges by hand (Conveyor never merges changes to them)",
  ],
  [
    "tests",
    "no test is skipped, removed or weakened",
    "restore the weakened tests (/fix asks Conveyor to), or a person reviews and merges by hand",
  ],
  [
    "content",
    "every added line is visible text",
    "remove what cannot be seen or inspected (/fix asks Conveyor to), or a person reviews and merges by hand",
  ],
];

function isFindingRow(id: RuleId): boolean {
  return FINDING_ROWS.some(([row]) => row === id);
}

function verdictKind(rules: readonly RuleOutcome[]): VerdictKind {
  if (rules.some((r) => r.result === "fail")) return "blocked";
  if (rules.some((r) => r.result === "wait" && !APPROVAL_RULES.has(r.id))) return "wait";
  if (rules.some((r) => r.result === "wait")) return "needs_approval";
  return "merge";
}

function summarise(
  kind: VerdictKind,
  rules: readonly RuleOutcome[],
  tier: Tier,
  head7: string,
  findings: readonly TierFinding[],
) {
  const sha = code(head7 || "?");
  switch (kind) {
    case "merge":
      return `Ready to merge ${sha} (tier ${tier}).`;
    case "needs_approval": {
      const waiting = rules.filter((r) => r.result === "wait" && APPROVAL_RULES.has(r.id));
      return `Needs approval: ${waiting.map((r) => r.detail).join("; ")}`;
    }
    case "wait": {
      const waiting = rules.filter((r) => r.result === "wait" && !APPROVAL_RULES.has(r.id));
      return `Waiting: ${waiting.map((r) => r.detail).join("; ")}`;
    }
    case "blocked": {
      // The tier row only repeats the finding rows when they hold every tier-3 reason.
      const repeats = findings.every((f) => f.tier !== 3 || f.rule !== "change");
      const failed = rules.filter(
        (r) =>
          r.result === "fail" &&
          !(
            r.id === "tier" &&
            repeats &&
            rules.some((o) => o.result === "fail" && isFindingRow(o.id))
          ),
      );
      const more = failed.length > 1 ? ` (and ${failed.length - 1} more)` : "";
      return `Blocked: ${failed[0]?.detail ?? ""}${more}`;
    }
  }
}

const SUBSTANTIVE = new Set<ReviewFact["state"]>(["APPROVED", "CHANGES_REQUESTED", "DISMISSED"]);

/**
 * Each reviewer's latest approval, change request or dismissal, by `submittedAt` (ties and
 * unreadable times keep the list's order). Comments do not change a standing review, as on GitHub.
 */
function latestReviews(reviews: readonly ReviewFact[]): ReviewFact[] {
  const byReviewer = new Map<string, { review: ReviewFact; at: number; index: number }>();
  reviews.forEach((review, index) => {
    if (!SUBSTANTIVE.has(review.state)) return;
    const key = review.login.toLowerCase();
    const at = Date.parse(review.submittedAt);
    const current = byReviewer.get(key);
    const later =
      !current ||
      (Number.isFinite(at) && Number.isFinite(current.at)
        ? at >= current.at
        : index > current.index);
    if (later) byReviewer.set(key, { review, at, index });
  });
  return [...byReviewer.values()].map((entry) => entry.review);
}

/**
 * Approvals that count: an APPROVED latest review or a `/approve`, bound to the head SHA, by a
 * human who is not the author and has write permission or more (an unreadable permission counts
 * as none). Each person counts once.
 */
function countApprovals(
  facts: PrFacts,
  latest: readonly ReviewFact[],
  options: { commandsOnly?: boolean } = {},
): { valid: string[]; rejected: string[] } {
  const head = facts.headSha.toLowerCase();
  const author = facts.authorLogin.toLowerCase();
  const candidates = [
    ...(options.commandsOnly ? [] : latest)
      .filter((r) => r.state === "APPROVED")
      .map((r) => ({ ...r, sha: r.commitSha, how: "review" })),
    ...facts.approvals.map((a) => ({ ...a, how: "/approve" })),
  ];
  const valid = new Map<string, string>();
  const rejected: string[] = [];
  for (const c of candidates) {
    const why = c.isBot
      ? "a bot"
      : c.login.toLowerCase() === author
        ? "the author"
        : c.sha.toLowerCase() !== head || head === ""
          ? `approved ${code(c.sha.slice(0, 7) || "?")}, not the head`
          : c.permission === undefined
            ? "permission unknown"
            : !hasPermission(c.permission, "write")
              ? `${c.permission} permission`
              : undefined;
    if (why === undefined) valid.set(c.login.toLowerCase(), c.login);
    else rejected.push(`${code(c.login)} (${c.how}: ${why})`);
  }
  return {
    valid: [...valid.values()],
    rejected: rejected.filter((r, i) => rejected.indexOf(r) === i),
  };
}

// ---------------------------------------------------------------------------------------------
// The `Conveyor / safety` check run
// ---------------------------------------------------------------------------------------------

export const SAFETY_CHECK_NAME = "Conveyor / safety";
/** GitHub's limits for a check run's output. */
export const MAX_CHECK_TITLE_CHARS = 255;
export const MAX_CHECK_SUMMARY_CHARS = 65_535;

export interface SafetyCheck {
  status: "in_progress" | "completed";
  conclusion?: "success" | "failure" | "neutral" | undefined;
  title: string;
  /** Markdown: the rule table, the tier with its reasons, and what would unblock it. */
  summary: string;
}

/**
 * Rules whose failure means "a person decides", not "something is wrong": the check concludes
 * `neutral` (which branch protection accepts) so a person can still merge by hand.
 */
const HAND_OVER: ReadonlySet<RuleId> = new Set([
  "head",
  "base",
  "draft",
  "hold",
  "freeze",
  "paths",
  "tests",
  "content",
  "tier",
  "mode",
]);

const RESULT_ICONS: Record<RuleResult, string> = {
  pass: "✅ pass",
  fail: "❌ fail",
  wait: "⏳ wait",
  "n/a": "➖ n/a",
};

/**
 * The `Conveyor / safety` check run for a verdict:
 *
 * - `merge` → completed, `success`;
 * - `wait` and `needs_approval` → `in_progress` (waiting, not failing: `action_required` would show
 *   as a failed check and fail other tools' required-check gates while a person simply has not
 *   approved yet);
 * - `blocked` → completed, `neutral` when only hand-over rules failed (tier 3, someone else's
 *   commit, another base, draft, hold, freeze, `merge.mode: report`: Conveyor will not merge, a
 *   person may), else `failure`.
 */
export function renderSafetyCheck(verdict: Verdict): SafetyCheck {
  const { status, conclusion, headline } = checkOutcome(verdict);
  const title = truncate(oneLine(stripCode(verdict.summary)), MAX_CHECK_TITLE_CHARS);
  const lines = [headline, "", "| Rule | Result | Detail |", "| --- | --- | --- |"];
  for (const r of verdict.rules) {
    lines.push(`| ${cell(r.title, 200)} | ${RESULT_ICONS[r.result]} | ${cell(r.detail, 2_000)} |`);
  }
  lines.push("", `### Tier ${verdict.tier}: ${TIER_MEANING[verdict.tier]}`, "");
  for (const reason of bounded(verdict.tierReasons, 50)) lines.push(`- ${oneLine(reason)}`);
  lines.push("", "### What would unblock it", "");
  if (verdict.kind === "merge") lines.push("- Nothing: Conveyor merges this commit.");
  for (const action of bounded(verdict.unblock, 30)) lines.push(`- ${oneLine(action)}`);
  lines.push(
    "",
    "<sub>Conveyor merges only the commit it wrote, only when every rule passes. See docs/merge-policy.md in the Conveyor repository.</sub>",
  );
  const summary = truncate(lines.join("\n"), MAX_CHECK_SUMMARY_CHARS, "\n\n… (truncated)");
  return conclusion ? { status, conclusion, title, summary } : { status, title, summary };
}

const TIER_MEANING: Record<Tier, string> = {
  1: "merges by itself when every rule passes",
  2: "merges after an approval",
  3: "never auto-merged",
};

function checkOutcome(verdict: Verdict): {
  status: SafetyCheck["status"];
  conclusion?: SafetyCheck["conclusion"];
  headline: string;
} {
  switch (verdict.kind) {
    case "merge":
      return {
        status: "completed",
        conclusion: "success",
        headline: "**Ready to merge.** Every rule passed for this commit.",
      };
    case "wait":
      return {
        status: "in_progress",
        headline:
          "**Waiting.** Nothing is wrong yet; Conveyor re-evaluates when something changes.",
      };
    case "needs_approval":
      return {
        status: "in_progress",
        headline:
          "**Needs approval.** Every other rule passed; a person's approval is missing (tier 2, or merge.mode: approve).",
      };
    case "blocked": {
      const failed = verdict.rules.filter((r) => r.result === "fail");
      const handOver = failed.every((r) => HAND_OVER.has(r.id));
      if (verdict.wouldMerge) {
        return {
          status: "completed",
          conclusion: "neutral",
          headline:
            "**Report only.** Every rule passed: Conveyor would merge this commit, but `merge.mode` is `report`, so a person decides.",
        };
      }
      return {
        status: "completed",
        conclusion: handOver ? "neutral" : "failure",
        headline: handOver
          ? "**Not auto-merged.** Conveyor will not merge this commit; a person may review and merge it."
          : "**Blocked.** Conveyor will not merge this commit until the failing rules pass.",
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Text helpers: untrusted names (paths, check names, logins, reasons) go into code spans.
// ---------------------------------------------------------------------------------------------

/** Control characters and bidirectional overrides ("trojan source") removed. */
function stripControl(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return text.replace(/[\u0000-\u0008\u000B-\u001F\u007F\u202A-\u202E\u2066-\u2069]/g, "");
}

/** Untrusted text as a one-line code span, at most `max` characters of it. */
function code(text: string, max = 120): string {
  const line = truncate(stripControl(text).replace(/\s+/g, " ").trim(), max);
  if (line === "") return "(empty)";
  const longest = Math.max(0, ...[...line.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = "`".repeat(longest + 1);
  const pad = line.startsWith("`") || line.endsWith("`") ? " " : "";
  return `${ticks}${pad}${line}${pad}${ticks}`;
}

/** Drops code-span backticks for plain-text places (the check run's title). */
function stripCode(text: string): string {
  return text.replace(/`/g, "");
}

function oneLine(text: string): string {
  return stripControl(text).replace(/\s+/g, " ").trim();
}

/** One table cell: on one line, pipes escaped (GFM honours `\|` inside code spans too). */
function cell(text: string, max: number): string {
  return truncate(oneLine(text), max).replace(/\|/g, "\\|");
}

function bounded(items: readonly string[], max: number): string[] {
  if (items.length <= max) return [...items];
  return [...items.slice(0, max), `… and ${items.length - max} more`];
}

function list(items: readonly string[], max = 10): string {
  if (items.length <= max) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function truncate(text: string, max: number, ellipsis = "…"): string {
  if (text.length <= max) return text;
  let end = max - ellipsis.length;
  const unit = text.charCodeAt(end);
  // Never split a surrogate pair.
  if (unit >= 0xdc00 && unit <= 0xdfff) end -= 1;
  return `${text.slice(0, end)}${ellipsis}`;
}
