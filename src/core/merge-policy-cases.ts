/**
 * The merge policy's table of cases: facts around one clean tier-1 pull request, each row changing
 * one thing, with the verdict it must get. `merge-policy.test.ts` checks every row, and
 * `bench/benchmarks/merge-decision.ts` times `evaluateMergePolicy` over the same rows.
 */
import type {
  ApprovalFact,
  CheckFact,
  PrFacts,
  PrFile,
  ReviewFact,
  RuleId,
  RuleResult,
  Tier,
  VerdictKind,
} from "./merge-policy.ts";
import { parseRepoConfig, type RepoConfig } from "./repo-config.ts";

export const HEAD = `c0ffee0${"1".repeat(33)}`;
export const OLD = `deadbee${"0".repeat(33)}`;
export const OTHER = `abcdef0${"2".repeat(33)}`;
export const SINCE = "2026-01-01T12:00:00Z";
export const minutesAfter = (m: number) => new Date(Date.parse(SINCE) + m * 60_000).toISOString();

/** A unified-diff hunk as GitHub returns it: context lines, then removed, then added. */
export function hunk(lines: { add?: string[]; remove?: string[]; context?: string[] }): string {
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
export function file(
  path: string,
  additions = 1,
  deletions = 0,
  extra: Partial<PrFile> = {},
): PrFile {
  const patch = hunk({
    add: Array.from({ length: additions }, (_, i) => `const added${i} = ${i};`),
    remove: Array.from({ length: deletions }, (_, i) => `const removed${i} = ${i};`),
  });
  return { path, status: "modified", additions, deletions, patch, ...extra };
}

export const check = (name: string, over: Partial<CheckFact> = {}): CheckFact => ({
  name,
  status: "completed",
  conclusion: "success",
  ours: false,
  ...over,
});

export const review = (
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

export const approval = (login: string, over: Partial<ApprovalFact> = {}): ApprovalFact => ({
  login,
  isBot: false,
  sha: HEAD,
  permission: "write",
  via: "command",
  ...over,
});

/** A clean tier-1 pull request: one small modified file, green CI, nothing in the way. */
export function cleanTier1(): PrFacts {
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
export const makeTier2 = (f: PrFacts) => {
  f.files = [file("src/app.ts", 15, 10)];
};

export function config(raw: Record<string, unknown>): RepoConfig {
  const parsed = parseRepoConfig({ version: 1, ...raw });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.config;
}

export interface MergePolicyCase {
  name: string;
  change: (facts: PrFacts) => void;
  kind: VerdictKind;
  tier: Tier;
  /** A rule whose result the row is about. */
  rule?: [RuleId, RuleResult];
  action?: "update_branch";
  config?: RepoConfig;
}

export const MERGE_POLICY_CASES: MergePolicyCase[] = [
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
    kind: "blocked",
    tier: 3,
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
    name: "package.json when config replaced the defaults (dependency manifests are on the floor)",
    change: (f) => {
      f.files = [file("package.json", 1, 0)];
    },
    config: config({ merge: { protected_paths: ["docs/**"] } }),
    kind: "blocked",
    tier: 3,
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
    kind: "merge",
    tier: 1,
    rule: ["checks_green", "pass"],
  },
  {
    name: "a skipped check",
    change: (f) => {
      f.checks.push(check("deploy", { conclusion: "skipped" }));
    },
    kind: "merge",
    tier: 1,
    rule: ["checks_green", "pass"],
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
    kind: "blocked",
    tier: 1,
    rule: ["conflict", "fail"],
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
