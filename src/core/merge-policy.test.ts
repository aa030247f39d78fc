import { describe, expect, it } from "vitest";
import {
  type ApprovalFact,
  type CheckFact,
  classifyTier,
  evaluateMergePolicy,
  HOLD_LABELS,
  MAX_CHECK_SUMMARY_CHARS,
  MAX_CHECK_TITLE_CHARS,
  type PrFacts,
  type PrFile,
  type ReviewFact,
  RISK_LABELS,
  RULE_IDS,
  RULE_TITLES,
  type RuleId,
  type RuleResult,
  renderSafetyCheck,
  riskLabel,
  type Tier,
  type Verdict,
  type VerdictKind,
} from "./merge-policy.ts";
import {
  DEFAULT_PROTECTED_PATHS,
  DEFAULT_REPO_CONFIG,
  FLOOR_PROTECTED_PATHS,
  parseRepoConfig,
  type RepoConfig,
} from "./repo-config.ts";

const HEAD = `c0ffee0${"1".repeat(33)}`;
const OLD = `deadbee${"0".repeat(33)}`;
const OTHER = `abcdef0${"2".repeat(33)}`;
const SINCE = "2026-01-01T12:00:00Z";
const minutesAfter = (m: number) => new Date(Date.parse(SINCE) + m * 60_000).toISOString();

/** A unified-diff hunk as GitHub returns it: context lines, then removed, then added. */
function hunk(lines: { add?: string[]; remove?: string[]; context?: string[] }): string {
  const context = lines.context ?? [];
  const remove = lines.remove ?? [];
  const add = lines.add ?? [];
  return [
    `@@ -1,${context.length + remove.length} +1,${context.length + add.length} @@`,
    ...context.map((l) => ` ${l}`),
    ...remove.map((l) => `-${l}`),
    ...add.map((l) => `+${l}`),
  ].join("\n");
}

/** A modified text file with `additions` added and `deletions` removed lines. */
function file(path: string, additions = 1, deletions = 0, extra: Partial<PrFile> = {}): PrFile {
  const patch = hunk({
    add: Array.from({ length: additions }, (_, i) => `const added${i} = ${i};`),
    remove: Array.from({ length: deletions }, (_, i) => `const removed${i} = ${i};`),
  });
  return { path, status: "modified", additions, deletions, patch, ...extra };
}

const check = (name: string, over: Partial<CheckFact> = {}): CheckFact => ({
  name,
  status: "completed",
  conclusion: "success",
  ours: false,
  ...over,
});

const review = (
  login: string,
  state: ReviewFact["state"],
  over: Partial<ReviewFact> = {},
): ReviewFact => ({
  login,
  isBot: false,
  state,
  commitSha: HEAD,
  submittedAt: minutesAfter(5),
  permission: "write",
  ...over,
});

const approval = (login: string, over: Partial<ApprovalFact> = {}): ApprovalFact => ({
  login,
  isBot: false,
  sha: HEAD,
  permission: "write",
  via: "command",
  ...over,
});

/** A clean tier-1 pull request: one small modified file, green CI, nothing in the way. */
function cleanTier1(): PrFacts {
  return {
    prNumber: 12,
    headSha: HEAD,
    conveyorHeadSha: HEAD,
    authorLogin: "conveyor[bot]",
    draft: false,
    open: true,
    mergeable: true,
    mergeableState: "clean",
    labels: ["conveyor", "risk:tier-1"],
    files: [file("src/app.ts", 3, 1)],
    filesComplete: true,
    checks: [
      check("ci/test"),
      check("Conveyor / safety", { status: "in_progress", conclusion: null, ours: true }),
    ],
    statuses: [],
    reviews: [],
    approvals: [],
    held: false,
    frozen: null,
    verification: { passed: true },
    waitingSince: SINCE,
    now: minutesAfter(10),
    errors: [],
  };
}

/** 25 changed lines in one file: tier 2. */
const makeTier2 = (f: PrFacts) => {
  f.files = [file("src/app.ts", 15, 10)];
};

function config(raw: Record<string, unknown>): RepoConfig {
  const parsed = parseRepoConfig({ version: 1, ...raw });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.config;
}

interface Case {
  name: string;
  change: (facts: PrFacts) => void;
  kind: VerdictKind;
  tier: Tier;
  /** A rule whose result the row is about. */
  rule?: [RuleId, RuleResult];
  action?: "update_branch";
  config?: RepoConfig;
}

const cases: Case[] = [
  { name: "a clean tier-1 PR", change: () => {}, kind: "merge", tier: 1 },
  // Size and shape
  {
    name: "19 changed lines",
    change: (f) => {
      f.files = [file("src/app.ts", 10, 9)];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "20 changed lines",
    change: (f) => {
      f.files = [file("src/app.ts", 10, 10)];
    },
    kind: "needs_approval",
    tier: 2,
    rule: ["approval", "wait"],
  },
  {
    name: "3 files",
    change: (f) => {
      f.files = [file("src/a.ts"), file("src/b.ts"), file("src/c.ts")];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "4 files",
    change: (f) => {
      f.files = [file("src/a.ts"), file("src/b.ts"), file("src/c.ts"), file("src/d.ts")];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "an added file",
    change: (f) => {
      f.files = [file("src/new.ts", 3, 0, { status: "added" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a renamed file",
    change: (f) => {
      f.files = [file("src/new-name.ts", 1, 1, { status: "renamed", previousPath: "src/old.ts" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a pure rename without a patch (content identical)",
    change: (f) => {
      f.files = [
        {
          path: "src/new-name.ts",
          previousPath: "src/old.ts",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a copied file",
    change: (f) => {
      f.files = [file("src/copy.ts", 2, 0, { status: "copied", previousPath: "src/app.ts" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a removed source file",
    change: (f) => {
      f.files = [file("src/unused.ts", 0, 4, { status: "removed" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a file mode change",
    change: (f) => {
      f.files = [file("scripts/run.sh", 0, 0, { status: "changed" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "no files at all",
    change: (f) => {
      f.files = [];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "a tighter tier 1 (max_files: 0)",
    change: () => {},
    config: config({ merge: { tier1: { max_files: 0 } } }),
    kind: "needs_approval",
    tier: 2,
  },
  // Tests deleted, skipped or focused
  {
    name: "a deleted test",
    change: (f) => {
      f.files = [file("src/app.test.ts", 0, 30, { status: "removed" })];
    },
    kind: "blocked",
    tier: 3,
    rule: ["tier", "fail"],
  },
  {
    name: "a test renamed to a non-test path",
    change: (f) => {
      f.files = [
        file("src/app.ts.bak", 0, 0, { status: "renamed", previousPath: "src/app.test.ts" }),
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a test moved between test directories",
    change: (f) => {
      f.files = [
        file("tests/unit/test_api.py", 0, 0, {
          status: "renamed",
          previousPath: "tests/test_api.py",
        }),
      ];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "an added .only",
    change: (f) => {
      f.files = [
        file("src/app.test.ts", 1, 1, {
          patch: hunk({ remove: ['  it("adds", () => {'], add: ['  it.only("adds", () => {'] }),
        }),
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: ".only in a context line only (not added)",
    change: (f) => {
      f.files = [
        file("src/app.test.ts", 1, 0, {
          patch: hunk({ context: ['  it.only("adds", () => {'], add: ["    expect(1).toBe(1);"] }),
        }),
      ];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "a removed .only (un-focusing)",
    change: (f) => {
      f.files = [
        file("src/app.test.ts", 1, 1, {
          patch: hunk({ remove: ['  it.only("adds", () => {'], add: ['  it("adds", () => {'] }),
        }),
      ];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "an added it.skip in an in-source test",
    change: (f) => {
      f.files = [file("src/app.ts", 1, 0, { patch: hunk({ add: ['  it.skip("x", () => {});'] }) })];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added describe.concurrent.only",
    change: (f) => {
      f.files = [
        file("src/app.spec.ts", 1, 0, {
          patch: hunk({ add: ['describe.concurrent.only("x", () => {'] }),
        }),
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added xit(",
    change: (f) => {
      f.files = [file("spec/app.spec.js", 1, 0, { patch: hunk({ add: ['xit("x", () => {});'] }) })];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added it.todo (a test turned into a placeholder)",
    change: (f) => {
      f.files = [file("src/app.test.ts", 1, 0, { patch: hunk({ add: ['it.todo("adds");'] }) })];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added @pytest.mark.skip",
    change: (f) => {
      f.files = [
        file("tests/test_api.py", 1, 0, {
          patch: hunk({ add: ['@pytest.mark.skipif(True, reason="")'] }),
        }),
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added t.Skip(",
    change: (f) => {
      f.files = [file("pkg/api_test.go", 1, 0, { patch: hunk({ add: ['\tt.Skip("flaky")'] }) })];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added #[ignore]",
    change: (f) => {
      f.files = [file("src/lib.rs", 1, 0, { patch: hunk({ add: ["    #[ignore]"] }) })];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "iter.skip(1) in Rust source is not a skipped test",
    change: (f) => {
      f.files = [
        file("src/lib.rs", 1, 0, { patch: hunk({ add: ["let rest = args.iter().skip(1);"] }) }),
      ];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "model.fit( in Python source is not a focused test",
    change: (f) => {
      f.files = [file("src/train.py", 1, 0, { patch: hunk({ add: ["model.fit(x, y)"] }) })];
    },
    kind: "merge",
    tier: 1,
  },
  // Protected paths and the floor
  {
    name: "package.json touched",
    change: (f) => {
      f.files = [file("package.json", 1, 1)];
    },
    kind: "blocked",
    tier: 3,
    rule: ["tier", "fail"],
  },
  {
    name: "a nested lockfile touched",
    change: (f) => {
      f.files = [file("web/yarn.lock", 1, 1)];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a workflow touched",
    change: (f) => {
      f.files = [file(".github/workflows/ci.yml", 1, 1)];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a workflow touched with protected_paths: [] (the floor holds)",
    change: (f) => {
      f.files = [file(".github/workflows/ci.yml", 1, 1)];
    },
    config: config({ merge: { protected_paths: [] } }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "CODEOWNERS with raised tier-1 limits and no protected paths (the floor holds)",
    change: (f) => {
      f.files = [file("docs/CODEOWNERS", 1, 0)];
    },
    config: config({
      merge: { protected_paths: [], tier1: { max_changed_lines: 1000, max_files: 100 } },
    }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "Conveyor's own config with protected_paths: [] (the floor holds)",
    change: (f) => {
      f.files = [file(".github/conveyor.yml", 1, 1)];
    },
    config: config({ merge: { protected_paths: [] } }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a local action with protected_paths: [] (the floor holds)",
    change: (f) => {
      f.files = [file(".github/actions/setup/action.yml", 1, 0)];
    },
    config: config({ merge: { protected_paths: [] } }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "package.json when config replaced the defaults (config may loosen above the floor)",
    change: (f) => {
      f.files = [file("package.json", 1, 0)];
    },
    config: config({ merge: { protected_paths: ["docs/**"] } }),
    kind: "merge",
    tier: 1,
  },
  {
    name: "a path config adds",
    change: (f) => {
      f.files = [file("docs/guide.md", 1, 0)];
    },
    config: config({ merge: { protected_paths: ["docs/**"] } }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a file renamed away from a protected path",
    change: (f) => {
      f.files = [
        file("src/token.ts", 0, 0, { status: "renamed", previousPath: "src/auth/token.ts" }),
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a migration",
    change: (f) => {
      f.files = [file("db/migrations/0005_x.sql", 2, 0)];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an .env file",
    change: (f) => {
      f.files = [file("config/.env.production", 1, 1)];
    },
    kind: "blocked",
    tier: 3,
  },
  // Binary, unseen and unverified changes
  {
    name: "a binary file",
    change: (f) => {
      f.files = [
        { path: "assets/logo.png", status: "modified", additions: 0, deletions: 0, binary: true },
      ];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "a modified file without a patch (too large or binary)",
    change: (f) => {
      f.files = [{ path: "src/generated.ts", status: "modified", additions: 9000, deletions: 0 }];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "an added file without a patch (binary, or empty)",
    change: (f) => {
      f.files = [{ path: "bin/tool", status: "added", additions: 0, deletions: 0 }];
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "verification failed",
    change: (f) => {
      f.verification = { passed: false, failedCommand: "npm test" };
    },
    kind: "blocked",
    tier: 3,
  },
  {
    name: "no verification report although verify.commands is set",
    change: (f) => {
      f.verification = null;
    },
    config: config({ verify: { commands: [["npm", "test"]] } }),
    kind: "blocked",
    tier: 3,
  },
  {
    name: "no verification report and no verify.commands",
    change: (f) => {
      f.verification = null;
    },
    kind: "merge",
    tier: 1,
  },
  // Checks and statuses
  {
    name: "a neutral check",
    change: (f) => {
      f.checks.push(check("lint", { conclusion: "neutral" }));
    },
    kind: "blocked",
    tier: 1,
    rule: ["checks_green", "fail"],
  },
  {
    name: "a skipped check",
    change: (f) => {
      f.checks.push(check("deploy", { conclusion: "skipped" }));
    },
    kind: "blocked",
    tier: 1,
    rule: ["checks_green", "fail"],
  },
  {
    name: "a cancelled check",
    change: (f) => {
      f.checks.push(check("e2e", { conclusion: "cancelled" }));
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "a failed check",
    change: (f) => {
      f.checks[0] = check("ci/test", { conclusion: "failure" });
    },
    kind: "blocked",
    tier: 1,
    rule: ["checks_green", "fail"],
  },
  {
    name: "a failed commit status",
    change: (f) => {
      f.statuses = [{ context: "ci/jenkins", state: "failure" }];
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "an errored commit status",
    change: (f) => {
      f.statuses = [{ context: "ci/jenkins", state: "error" }];
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "a successful commit status and no check runs",
    change: (f) => {
      f.checks = f.checks.filter((c) => c.ours);
      f.statuses = [{ context: "ci/jenkins", state: "success" }];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "no checks at all (only Conveyor's own)",
    change: (f) => {
      f.checks = f.checks.filter((c) => c.ours);
    },
    kind: "wait",
    tier: 1,
    rule: ["checks_present", "wait"],
  },
  {
    name: "no checks at all after the timeout",
    change: (f) => {
      f.checks = f.checks.filter((c) => c.ours);
      f.now = minutesAfter(61);
    },
    kind: "blocked",
    tier: 1,
    rule: ["checks_timeout", "fail"],
  },
  {
    name: "a pending check",
    change: (f) => {
      f.checks.push(check("e2e", { status: "in_progress", conclusion: null }));
    },
    kind: "wait",
    tier: 1,
    rule: ["checks_green", "wait"],
  },
  {
    name: "a queued check",
    change: (f) => {
      f.checks.push(check("e2e", { status: "queued", conclusion: null }));
    },
    kind: "wait",
    tier: 1,
  },
  {
    name: "a pending commit status",
    change: (f) => {
      f.statuses = [{ context: "ci/jenkins", state: "pending" }];
    },
    kind: "wait",
    tier: 1,
  },
  {
    name: "a pending check after the timeout",
    change: (f) => {
      f.checks.push(check("e2e", { status: "in_progress", conclusion: null }));
      f.now = minutesAfter(61);
    },
    kind: "blocked",
    tier: 1,
    rule: ["checks_timeout", "fail"],
  },
  {
    name: "a pending check at exactly the timeout",
    change: (f) => {
      f.checks.push(check("e2e", { status: "in_progress", conclusion: null }));
      f.now = minutesAfter(60);
    },
    kind: "wait",
    tier: 1,
    rule: ["checks_timeout", "wait"],
  },
  {
    name: "a pending check within a longer configured timeout",
    change: (f) => {
      f.checks.push(check("e2e", { status: "in_progress", conclusion: null }));
      f.now = minutesAfter(61);
    },
    config: config({ merge: { checks_timeout_minutes: 120 } }),
    kind: "wait",
    tier: 1,
  },
  {
    name: "Conveyor's own failing check does not count",
    change: (f) => {
      f.checks.push(check("Conveyor / safety", { conclusion: "failure", ours: true }));
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "a failed check on an older SHA only (facts carry head-SHA checks only)",
    change: (f) => {
      f.checks = [check("ci/test"), check("lint")];
    },
    kind: "merge",
    tier: 1,
  },
  // Head SHA and approvals
  {
    name: "head SHA moved after approval: someone pushed",
    change: (f) => {
      makeTier2(f);
      f.conveyorHeadSha = OLD;
      f.headSha = OTHER;
      f.reviews = [review("maria", "APPROVED", { commitSha: OLD })];
    },
    kind: "blocked",
    tier: 2,
    rule: ["head", "fail"],
  },
  {
    name: "head SHA moved after approval: Conveyor pushed a follow-up",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED", { commitSha: OLD })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "an unknown head SHA",
    change: (f) => {
      f.headSha = "";
    },
    kind: "blocked",
    tier: 1,
    rule: ["head", "fail"],
  },
  {
    name: "tier 2 with one valid APPROVE review",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED")];
    },
    kind: "merge",
    tier: 2,
    rule: ["approval", "pass"],
  },
  {
    name: "tier 2 with one valid /approve",
    change: (f) => {
      makeTier2(f);
      f.approvals = [approval("maria")];
    },
    kind: "merge",
    tier: 2,
  },
  {
    name: "tier 2 approved by an admin with an upper-case SHA",
    change: (f) => {
      makeTier2(f);
      f.approvals = [approval("root", { permission: "admin", sha: HEAD.toUpperCase() })];
    },
    kind: "merge",
    tier: 2,
  },
  {
    name: "approval by the author",
    change: (f) => {
      makeTier2(f);
      f.authorLogin = "maria";
      f.reviews = [review("Maria", "APPROVED")];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "approval by a bot",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("helper[bot]", "APPROVED", { isBot: true, permission: "admin" })];
      f.approvals = [approval("other[bot]", { isBot: true })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "approval by a read-only user",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("visitor", "APPROVED", { permission: "read" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "approval by a triager",
    change: (f) => {
      makeTier2(f);
      f.approvals = [approval("triager", { permission: "triage" })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "approval whose permission could not be read",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED", { permission: undefined })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "approval review on an older SHA",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED", { commitSha: OLD })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "/approve bound to an older SHA",
    change: (f) => {
      makeTier2(f);
      f.approvals = [approval("maria", { sha: OLD })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "/approve with only a short SHA",
    change: (f) => {
      makeTier2(f);
      f.approvals = [approval("maria", { sha: HEAD.slice(0, 7) })];
    },
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "two approvals needed, one person approved twice",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED")];
      f.approvals = [approval("MARIA")];
    },
    config: config({ merge: { required_approvals: 2 } }),
    kind: "needs_approval",
    tier: 2,
  },
  {
    name: "two approvals needed, two people approved",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED")];
      f.approvals = [approval("li", { permission: "maintain" })];
    },
    config: config({ merge: { required_approvals: 2 } }),
    kind: "merge",
    tier: 2,
  },
  {
    name: "an older approval followed by a comment still counts",
    change: (f) => {
      makeTier2(f);
      f.reviews = [
        review("maria", "APPROVED", { submittedAt: minutesAfter(5) }),
        review("maria", "COMMENTED", { submittedAt: minutesAfter(6) }),
      ];
    },
    kind: "merge",
    tier: 2,
  },
  {
    name: "an approval later dismissed",
    change: (f) => {
      makeTier2(f);
      f.reviews = [
        review("maria", "APPROVED", { submittedAt: minutesAfter(5) }),
        review("maria", "DISMISSED", { submittedAt: minutesAfter(6) }),
      ];
    },
    kind: "needs_approval",
    tier: 2,
  },
  // Change requests
  {
    name: "changes requested by a writer",
    change: (f) => {
      f.reviews = [review("maria", "CHANGES_REQUESTED", { commitSha: OLD })];
    },
    kind: "blocked",
    tier: 1,
    rule: ["changes_requested", "fail"],
  },
  {
    name: "changes requested, then approved by the same reviewer",
    change: (f) => {
      f.reviews = [
        review("maria", "CHANGES_REQUESTED", { submittedAt: minutesAfter(2), commitSha: OLD }),
        review("maria", "APPROVED", { submittedAt: minutesAfter(8) }),
      ];
    },
    kind: "merge",
    tier: 1,
    rule: ["changes_requested", "pass"],
  },
  {
    name: "changes requested, then approved, listed out of order",
    change: (f) => {
      f.reviews = [
        review("maria", "APPROVED", { submittedAt: minutesAfter(8) }),
        review("maria", "CHANGES_REQUESTED", { submittedAt: minutesAfter(2) }),
      ];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "changes requested, then dismissed",
    change: (f) => {
      f.reviews = [
        review("maria", "CHANGES_REQUESTED", { submittedAt: minutesAfter(2) }),
        review("maria", "DISMISSED", { submittedAt: minutesAfter(8) }),
      ];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "changes requested, then only a comment",
    change: (f) => {
      f.reviews = [
        review("maria", "CHANGES_REQUESTED", { submittedAt: minutesAfter(2) }),
        review("maria", "COMMENTED", { submittedAt: minutesAfter(8) }),
      ];
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "approved, then changes requested",
    change: (f) => {
      f.reviews = [
        review("maria", "APPROVED", { submittedAt: minutesAfter(2) }),
        review("maria", "CHANGES_REQUESTED", { submittedAt: minutesAfter(8) }),
      ];
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "changes requested by someone else than the approver",
    change: (f) => {
      makeTier2(f);
      f.reviews = [review("maria", "APPROVED"), review("li", "CHANGES_REQUESTED")];
    },
    kind: "blocked",
    tier: 2,
    rule: ["changes_requested", "fail"],
  },
  {
    name: "changes requested by a read-only user",
    change: (f) => {
      f.reviews = [review("visitor", "CHANGES_REQUESTED", { permission: "read" })];
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "changes requested by a reviewer whose permission could not be read",
    change: (f) => {
      f.reviews = [review("maria", "CHANGES_REQUESTED", { permission: undefined })];
    },
    kind: "blocked",
    tier: 1,
  },
  // State of the pull request and the repository
  {
    name: "draft",
    change: (f) => {
      f.draft = true;
    },
    kind: "blocked",
    tier: 1,
    rule: ["draft", "fail"],
  },
  {
    name: "hold label",
    change: (f) => {
      f.labels.push("conveyor:hold");
    },
    kind: "blocked",
    tier: 1,
    rule: ["hold", "fail"],
  },
  {
    name: "plain hold label in another case",
    change: (f) => {
      f.labels.push("Hold");
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "/hold",
    change: (f) => {
      f.held = true;
    },
    kind: "blocked",
    tier: 1,
    rule: ["hold", "fail"],
  },
  {
    name: "conflict (mergeable false)",
    change: (f) => {
      f.mergeable = false;
      f.mergeableState = "dirty";
    },
    kind: "blocked",
    tier: 1,
    rule: ["conflict", "fail"],
  },
  {
    name: "conflict (dirty)",
    change: (f) => {
      f.mergeableState = "dirty";
    },
    kind: "blocked",
    tier: 1,
  },
  {
    name: "mergeable unknown (GitHub still computing)",
    change: (f) => {
      f.mergeable = null;
      f.mergeableState = "unknown";
    },
    kind: "wait",
    tier: 1,
    rule: ["conflict", "wait"],
  },
  {
    name: "mergeable_state blocked (GitHub waits for required checks, ours included)",
    change: (f) => {
      f.mergeableState = "blocked";
    },
    kind: "merge",
    tier: 1,
  },
  {
    name: "freeze",
    change: (f) => {
      f.frozen = { reason: "release week" };
    },
    kind: "blocked",
    tier: 1,
    rule: ["freeze", "fail"],
  },
  {
    name: "closed",
    change: (f) => {
      f.open = false;
    },
    kind: "blocked",
    tier: 1,
    rule: ["open", "fail"],
  },
  {
    name: "behind base with update_branch",
    change: (f) => {
      f.mergeableState = "behind";
    },
    config: config({ merge: { update_branch: true } }),
    kind: "wait",
    tier: 1,
    rule: ["conflict", "wait"],
    action: "update_branch",
  },
  {
    name: "behind base without update_branch",
    change: (f) => {
      f.mergeableState = "behind";
    },
    kind: "blocked",
    tier: 1,
    rule: ["conflict", "fail"],
  },
  {
    name: "behind base with update_branch but a failing check",
    change: (f) => {
      f.mergeableState = "behind";
      f.checks[0] = check("ci/test", { conclusion: "failure" });
    },
    config: config({ merge: { update_branch: true } }),
    kind: "blocked",
    tier: 1,
  },
  {
    name: "tier 2 behind base with update_branch, not approved yet",
    change: (f) => {
      makeTier2(f);
      f.mergeableState = "behind";
    },
    config: config({ merge: { update_branch: true } }),
    kind: "wait",
    tier: 2,
    action: "update_branch",
  },
  {
    name: "tier 2 without an approval and a pending check",
    change: (f) => {
      makeTier2(f);
      f.checks.push(check("e2e", { status: "in_progress", conclusion: null }));
    },
    kind: "wait",
    tier: 2,
    rule: ["approval", "wait"],
  },
  {
    name: "tier 3 even when approved",
    change: (f) => {
      f.files = [file("package.json", 1, 1)];
      f.reviews = [review("maria", "APPROVED")];
      f.approvals = [approval("li")];
    },
    kind: "blocked",
    tier: 3,
    rule: ["approval", "n/a"],
  },
  // Incomplete facts fail closed
  {
    name: "an API error while collecting facts",
    change: (f) => {
      f.errors = ["listing check runs: 502 Bad Gateway"];
    },
    kind: "blocked",
    tier: 1,
    rule: ["facts", "fail"],
  },
  {
    name: "a truncated file list",
    change: (f) => {
      f.filesComplete = false;
    },
    kind: "blocked",
    tier: 3,
    rule: ["facts", "fail"],
  },
  {
    name: "an unreadable timestamp",
    change: (f) => {
      f.waitingSince = "yesterday";
    },
    kind: "blocked",
    tier: 1,
    rule: ["facts", "fail"],
  },
];

describe("evaluateMergePolicy", () => {
  it("has a big enough table", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases)("$name → $kind (tier $tier)", (row) => {
    const facts = cleanTier1();
    row.change(facts);
    const verdict = evaluateMergePolicy(facts, row.config ?? DEFAULT_REPO_CONFIG);
    expect(verdict.rules.map((r) => r.id)).toEqual([...RULE_IDS]);
    expect({ kind: verdict.kind, tier: verdict.tier }).toEqual({ kind: row.kind, tier: row.tier });
    if (row.rule) {
      const [id, result] = row.rule;
      expect(verdict.rules.find((r) => r.id === id)).toMatchObject({ result });
    }
    expect(verdict.action).toBe(row.action);
    if (verdict.kind === "merge") {
      expect(verdict.rules.every((r) => r.result === "pass" || r.result === "n/a")).toBe(true);
    } else {
      expect(verdict.unblock.length).toBeGreaterThan(0);
    }
    if (verdict.kind === "blocked") {
      expect(verdict.rules.some((r) => r.result === "fail")).toBe(true);
    }
  });

  it("lists every rule with its title and a detail", () => {
    const verdict = evaluateMergePolicy(cleanTier1(), DEFAULT_REPO_CONFIG);
    expect(verdict).toMatchObject({ kind: "merge", tier: 1, unblock: [] });
    for (const r of verdict.rules) {
      expect(r.title).toBe(RULE_TITLES[r.id]);
      expect(r.detail).not.toBe("");
    }
    expect(verdict.summary).toBe("Ready to merge `c0ffee0` (tier 1).");
  });

  it("tells how to approve a tier-2 change, with the short SHA, and who did not count", () => {
    const facts = cleanTier1();
    makeTier2(facts);
    facts.reviews = [review("visitor", "APPROVED", { permission: "read" })];
    facts.approvals = [approval("maria", { sha: OLD })];
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.kind).toBe("needs_approval");
    expect(verdict.unblock).toEqual([
      "approve with /approve c0ffee0 or an APPROVE review (write access or more; not the author, not a bot)",
    ]);
    const detail = verdict.rules.find((r) => r.id === "approval")!.detail;
    expect(detail).toContain("needs 1 approval on `c0ffee0`, has 0");
    expect(detail).toContain("`visitor` (review: read permission)");
    expect(detail).toContain("`maria` (/approve: approved `deadbee`, not the head)");
    expect(verdict.summary).toMatch(/^Needs approval: /);
  });

  it("names what to do for every blocking rule at once", () => {
    const facts = cleanTier1();
    facts.labels.push("hold");
    facts.held = true;
    facts.frozen = { reason: "release" };
    facts.checks[0] = check("ci/test", { conclusion: "failure" });
    facts.files = [file(".github/workflows/ci.yml")];
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.kind).toBe("blocked");
    expect(verdict.unblock).toEqual([
      "remove the `hold` label",
      "comment /unhold",
      "a maintainer comments /unfreeze",
      "fix the failing check `ci/test`, then re-run it (/retry lets Conveyor try)",
      "a person reviews and merges it by hand (tier 3 is never auto-merged)",
    ]);
    expect(verdict.summary).toBe("Blocked: held by label `hold` and /hold (and 3 more)");
  });

  it("says why checks timed out and how long it waited", () => {
    const facts = cleanTier1();
    facts.checks.push(check("e2e", { status: "queued", conclusion: null }));
    facts.now = minutesAfter(95);
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.rules.find((r) => r.id === "checks_timeout")?.detail).toBe(
      "checks did not finish within 60 min (waited 1 h 35 min)",
    );
    expect(verdict.rules.find((r) => r.id === "checks_green")?.detail).toBe("waiting for `e2e`");
  });

  it("shows which API calls failed, bounded", () => {
    const facts = cleanTier1();
    facts.errors = ["a: 500", "b: 502", "c: timeout", "d: 404"];
    const detail = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).rules[0]!.detail;
    expect(detail).toBe(
      "4 API errors while reading the pull request: `a: 500`, `b: 502`, `c: timeout` and 1 more",
    );
  });
});

describe("classifyTier", () => {
  it("explains tier 1", () => {
    expect(classifyTier([file("src/a.ts", 3, 1)], { passed: true }, DEFAULT_REPO_CONFIG)).toEqual({
      tier: 1,
      reasons: ["4 changed lines (at most 19)", "1 file (at most 3)", "only modified files"],
    });
  });

  it("explains every reason a change is not tier 1", () => {
    const files = [
      file("src/a.ts", 30, 0),
      file("src/b.ts"),
      file("src/c.ts"),
      file("src/d.ts", 1, 0, { status: "added" }),
    ];
    expect(classifyTier(files, { passed: true }, DEFAULT_REPO_CONFIG).reasons).toEqual([
      "33 changed lines (tier 1 allows 19)",
      "4 files (tier 1 allows 3)",
      "`src/d.ts` added (tier 1 only modifies files)",
    ]);
  });

  it("collects every tier-3 finding, naming the floor and the pattern", () => {
    const files = [
      file(".github/workflows/ci.yml"),
      file("package.json"),
      file("tests/test_a.py", 0, 3, { status: "removed" }),
      file("src/a.test.ts", 1, 0, { patch: hunk({ add: ['test.only("x", () => {'] }) }),
      { path: "logo.png", status: "added" as const, additions: 0, deletions: 0 },
    ];
    expect(
      classifyTier(files, { passed: false, failedCommand: "npm test" }, DEFAULT_REPO_CONFIG),
    ).toEqual({
      tier: 3,
      reasons: [
        "`.github/workflows/ci.yml` is protected (`.github/workflows/**`, built in)",
        "`package.json` is protected (`package.json`)",
        "test file `tests/test_a.py` is deleted",
        "`src/a.test.ts` adds a skipped or focused test (`test.only`)",
        "`logo.png` has no diff to inspect (binary or too large)",
        "verification failed: `npm test`",
      ],
    });
  });

  it("treats unknown line counts as not tier 1", () => {
    const files = [file("src/a.ts", Number.NaN, 0)];
    expect(classifyTier(files, { passed: true }, DEFAULT_REPO_CONFIG)).toMatchObject({ tier: 2 });
  });
});

describe("merge config", () => {
  it("has the documented defaults", () => {
    expect(DEFAULT_REPO_CONFIG.merge).toEqual({
      method: "squash",
      tier1: { max_changed_lines: 19, max_files: 3 },
      protected_paths: [...DEFAULT_PROTECTED_PATHS],
      test_paths: [
        "**/*.test.*",
        "**/*.spec.*",
        "**/__tests__/**",
        "**/test/**",
        "**/tests/**",
        "**/*_test.go",
        "**/test_*.py",
      ],
      checks_timeout_minutes: 60,
      update_branch: false,
      required_approvals: 1,
    });
  });

  it("protects by default everything the floor protects", () => {
    const examples = [
      ".github/workflows/ci.yml",
      ".github/actions/x/action.yml",
      ".github/conveyor.yml",
      "CODEOWNERS",
      "docs/CODEOWNERS",
      ".github/CODEOWNERS",
    ];
    for (const path of examples) {
      const tier = classifyTier([file(path)], { passed: true }, DEFAULT_REPO_CONFIG);
      const floorOnly = classifyTier(
        [file(path)],
        { passed: true },
        config({ merge: { protected_paths: [] } }),
      );
      expect([tier.tier, floorOnly.tier]).toEqual([3, 3]);
    }
    expect(FLOOR_PROTECTED_PATHS).toContain(".github/conveyor.yml");
  });

  it.each([
    [{ merge: { method: "fast-forward" } }, "merge.method"],
    [{ merge: { required_approvals: 0 } }, "merge.required_approvals"],
    [{ merge: { checks_timeout_minutes: 0 } }, "merge.checks_timeout_minutes"],
    [{ merge: { tier1: { max_lines: 5 } } }, "merge.tier1.max_lines"],
    [{ merge: { protected_paths: ["[Dd]ockerfile"] } }, "merge.protected_paths.0"],
    [{ merge: { test_paths: ["ok/**", "./tests/**"] } }, "merge.test_paths.1"],
    [{ merge: { protected_paths: [""] } }, "merge.protected_paths.0"],
    [{ merge: { auto: true } }, "merge.auto"],
  ])("refuses %j naming %s", (raw, key) => {
    const result = parseRepoConfig(raw);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.key)).toContain(key);
    expect(result.config).toEqual(DEFAULT_REPO_CONFIG);
  });

  it("explains a refused glob", () => {
    const result = parseRepoConfig({ merge: { protected_paths: ["[Dd]ockerfile"] } });
    expect(result.ok ? [] : result.problems).toEqual([
      {
        key: "merge.protected_paths.0",
        message:
          "invalid glob: character classes ([...]) are not supported; use {a,b} or escape with \\[",
      },
    ]);
  });
});

describe("labels", () => {
  it("names the risk label of each tier", () => {
    expect([riskLabel(1), riskLabel(2), riskLabel(3)]).toEqual([...RISK_LABELS]);
    expect(riskLabel(2)).toBe("risk:tier-2");
    expect(HOLD_LABELS).toEqual(["conveyor:hold", "hold"]);
  });
});

describe("renderSafetyCheck", () => {
  const verdictFor = (change: (f: PrFacts) => void, cfg = DEFAULT_REPO_CONFIG): Verdict => {
    const facts = cleanTier1();
    change(facts);
    return evaluateMergePolicy(facts, cfg);
  };
  const tableRows = (summary: string) =>
    summary
      .split("\n")
      .filter((l) => l.startsWith("| ") && !l.startsWith("| Rule") && !l.startsWith("| ---"));

  it.each([
    ["merge", () => {}, { status: "completed", conclusion: "success" }],
    [
      "wait",
      (f: PrFacts) => {
        f.checks.push(check("e2e", { status: "queued", conclusion: null }));
      },
      { status: "in_progress" },
    ],
    ["needs approval", makeTier2, { status: "in_progress" }],
    [
      "tier 3 (a person may merge)",
      (f: PrFacts) => {
        f.files = [file("package.json")];
      },
      { status: "completed", conclusion: "neutral" },
    ],
    [
      "someone pushed (a person may merge)",
      (f: PrFacts) => {
        f.headSha = OTHER;
      },
      { status: "completed", conclusion: "neutral" },
    ],
    [
      "a failing check",
      (f: PrFacts) => {
        f.checks[0] = check("ci/test", { conclusion: "failure" });
      },
      { status: "completed", conclusion: "failure" },
    ],
    [
      "tier 3 and a failing check",
      (f: PrFacts) => {
        f.files = [file("package.json")];
        f.checks[0] = check("ci/test", { conclusion: "failure" });
      },
      { status: "completed", conclusion: "failure" },
    ],
    [
      "an API error",
      (f: PrFacts) => {
        f.errors = ["boom"];
      },
      { status: "completed", conclusion: "failure" },
    ],
  ] as const)("%s → %j", (_name, change, expected) => {
    const check = renderSafetyCheck(verdictFor(change));
    expect({ status: check.status, conclusion: check.conclusion }).toEqual({
      conclusion: undefined,
      ...expected,
    });
    if (check.status === "in_progress") expect(check).not.toHaveProperty("conclusion");
  });

  it("shows every rule in the table, the tier with its reasons, and what would unblock it", () => {
    const verdict = verdictFor((f) => {
      makeTier2(f);
    });
    const { title, summary } = renderSafetyCheck(verdict);
    expect(title).toBe("Needs approval: tier 2 needs 1 approval on c0ffee0, has 0");
    const rows = tableRows(summary);
    expect(rows).toHaveLength(RULE_IDS.length);
    RULE_IDS.forEach((id, i) => {
      expect(rows[i]).toContain(`| ${RULE_TITLES[id]} |`);
    });
    expect(rows[RULE_IDS.indexOf("approval")]).toContain("⏳ wait");
    expect(rows[0]).toContain("✅ pass");
    expect(summary).toContain(
      "### Tier 2: merges after an approval\n\n- 25 changed lines (tier 1 allows 19)",
    );
    expect(summary).toContain("### What would unblock it\n\n- approve with /approve c0ffee0");
  });

  it("says nothing is needed when it merges", () => {
    const { summary, title } = renderSafetyCheck(verdictFor(() => {}));
    expect(title).toBe("Ready to merge c0ffee0 (tier 1).");
    expect(summary).toContain("- Nothing: Conveyor merges this commit.");
  });

  it("escapes hostile check names and paths so they cannot break the table", () => {
    const hostileCheck = "evil | name\n| injected | ❌ row |\n\n# heading @org/team <!-- x";
    const hostilePath = "src/``a|b``\n.pem";
    const verdict = verdictFor((f) => {
      f.checks[0] = check(hostileCheck, { conclusion: "failure" });
      f.files = [file(hostilePath)];
    });
    const { summary, title } = renderSafetyCheck(verdict);
    const rows = tableRows(summary);
    expect(rows).toHaveLength(RULE_IDS.length);
    for (const row of rows) {
      // Four unescaped pipes: three cells.
      expect(row.match(/(?<!\\)\|/g)).toHaveLength(4);
    }
    expect(summary).not.toMatch(/^# heading/m);
    const checksRow = rows[RULE_IDS.indexOf("checks_green")]!;
    expect(checksRow).toContain(
      "`evil \\| name \\| injected \\| ❌ row \\| # heading @org/team <!-- x`",
    );
    const tierRow = rows[RULE_IDS.indexOf("tier")]!;
    expect(tierRow).toContain("```src/``a\\|b`` .pem```");
    expect(title).not.toContain("\n");
  });

  it("keeps the title and summary within GitHub's limits", () => {
    const verdict = verdictFor((f) => {
      f.checks = Array.from({ length: 5_000 }, (_, i) =>
        check(`${"x".repeat(300)}-${i}`, { conclusion: "failure" }),
      );
      f.files = Array.from({ length: 3_000 }, (_, i) =>
        file(`.github/${"d/".repeat(100)}${i}.yml`),
      );
      f.errors = ["y".repeat(100_000)];
      f.frozen = { reason: "z".repeat(100_000) };
    });
    const { title, summary } = renderSafetyCheck(verdict);
    expect(title.length).toBeLessThanOrEqual(MAX_CHECK_TITLE_CHARS);
    expect(summary.length).toBeLessThanOrEqual(MAX_CHECK_SUMMARY_CHARS);
    expect(tableRows(summary)).toHaveLength(RULE_IDS.length);
    expect(summary).toContain("… and 2950 more");
  });
});
