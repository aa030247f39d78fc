import { describe, expect, it } from "vitest";
import {
  type CheckFact,
  checkRunOutcome,
  type ExpectedCheck,
  evaluateMergePolicy,
  judgeChecks,
  type PrFacts,
  type RuleId,
  type RuleResult,
  renderSafetyCheck,
  type StatusFact,
  statusOutcome,
  type VerdictKind,
} from "./merge-policy.ts";
import { parseRepoConfig, type RepoConfig } from "./repo-config.ts";

// The checks side of the merge policy: which checks are expected, how GitHub counts a conclusion,
// mergeable_state, the pinned base and merge.mode. Facts are built here around one clean tier-1
// pull request, so every row changes one thing.

const HEAD = `c0ffee0${"1".repeat(33)}`;
const SINCE = "2026-01-01T12:00:00Z";
const at = (minutes: number) => new Date(Date.parse(SINCE) + minutes * 60_000).toISOString();

const run = (name: string, over: Partial<CheckFact> = {}): CheckFact => ({
  name,
  status: "completed",
  conclusion: "success",
  ours: false,
  ...over,
});
const status = (context: string, state: StatusFact["state"]): StatusFact => ({ context, state });
const expect_ = (name: string, source: ExpectedCheck["source"]): ExpectedCheck => ({
  name,
  source,
});

function clean(): PrFacts {
  return {
    prNumber: 7,
    headSha: HEAD,
    conveyorHeadSha: HEAD,
    authorLogin: "conveyor[bot]",
    draft: false,
    open: true,
    baseRef: "main",
    expectedBaseRef: "main",
    expectedChecks: [],
    mergeable: true,
    mergeableState: "clean",
    labels: [],
    files: [
      {
        path: "src/app.ts",
        status: "modified",
        additions: 1,
        deletions: 1,
        patch: "@@ -1 +1 @@\n-a\n+b",
      },
    ],
    filesComplete: true,
    checks: [
      run("ci"),
      run("Conveyor / safety", { status: "in_progress", conclusion: null, ours: true }),
    ],
    statuses: [],
    reviews: [],
    approvals: [],
    held: false,
    frozen: null,
    verification: { passed: true },
    waitingSince: SINCE,
    now: at(10),
    errors: [],
  };
}

function config(merge: Record<string, unknown> = {}): RepoConfig {
  const parsed = parseRepoConfig({ version: 1, merge });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.config;
}

describe("checkRunOutcome and statusOutcome: conclusions as GitHub counts them", () => {
  it.each([
    ["success", false, "success"],
    ["skipped", false, "pass"],
    ["neutral", false, "pass"],
    ["failure", false, "fail"],
    ["cancelled", false, "fail"],
    ["timed_out", false, "fail"],
    ["action_required", false, "fail"],
    ["stale", false, "fail"],
    ["startup_failure", false, "fail"],
    ["some_new_conclusion", false, "fail"],
    [null, false, "fail"],
    ["success", true, "success"],
    ["skipped", true, "fail"],
    ["neutral", true, "fail"],
  ] as const)("completed %s (strict %s) → %s", (conclusion, strict, outcome) => {
    expect(checkRunOutcome(run("x", { conclusion }), strict)).toBe(outcome);
  });

  it.each(["queued", "in_progress", "waiting", "requested", "pending"] as const)(
    "%s is pending whatever its conclusion says",
    (state) => {
      expect(checkRunOutcome(run("x", { status: state, conclusion: "success" }), false)).toBe(
        "pending",
      );
    },
  );

  it("an unknown run status fails closed", () => {
    expect(checkRunOutcome(run("x", { status: "exploded" as never }), false)).toBe("fail");
  });

  it.each([
    ["success", "success"],
    ["pending", "pending"],
    ["failure", "fail"],
    ["error", "fail"],
    ["bogus", "fail"],
  ] as const)("status %s → %s", (state, outcome) => {
    expect(statusOutcome(status("x", state as StatusFact["state"]))).toBe(outcome);
  });
});

interface Row {
  name: string;
  change: (f: PrFacts) => void;
  config?: RepoConfig;
  kind: VerdictKind;
  rule?: [RuleId, RuleResult];
  /** Text the rule's detail must contain. */
  detail?: string;
}

const ROWS: Row[] = [
  // Conclusions
  {
    name: "a skipped optional job passes",
    change: (f) => f.checks.push(run("deploy", { conclusion: "skipped" })),
    kind: "merge",
    rule: ["checks_green", "pass"],
    detail: "1 skipped or neutral",
  },
  {
    name: "a neutral coverage bot passes",
    change: (f) => f.checks.push(run("coverage", { conclusion: "neutral" })),
    kind: "merge",
  },
  {
    name: "strict_conclusions: a skipped job fails",
    change: (f) => f.checks.push(run("deploy", { conclusion: "skipped" })),
    config: config({ strict_conclusions: true }),
    kind: "blocked",
    rule: ["checks_green", "fail"],
    detail: "only success passes (merge.strict_conclusions)",
  },
  {
    name: "strict_conclusions: a neutral check fails",
    change: (f) => f.checks.push(run("coverage", { conclusion: "neutral" })),
    config: config({ strict_conclusions: true }),
    kind: "blocked",
  },
  ...(["cancelled", "timed_out", "action_required", "stale", "failure", "mystery"] as const).map(
    (conclusion): Row => ({
      name: `a ${conclusion} check fails`,
      change: (f) => f.checks.push(run("e2e", { conclusion })),
      kind: "blocked",
      rule: ["checks_green", "fail"],
      detail: `\`e2e\` (\`${conclusion}\`)`,
    }),
  ),
  {
    name: "only skipped and neutral checks: no success yet, wait",
    change: (f) => {
      f.checks = [run("a", { conclusion: "skipped" }), run("b", { conclusion: "neutral" })];
    },
    kind: "wait",
    rule: ["checks_green", "wait"],
    detail: "at least one success is needed",
  },
  {
    name: "only skipped checks past the timeout: blocked",
    change: (f) => {
      f.checks = [run("a", { conclusion: "skipped" })];
      f.now = at(61);
    },
    kind: "blocked",
    rule: ["checks_timeout", "fail"],
    detail: "no check succeeded within 60 min",
  },
  {
    name: "a successful status alone is a success",
    change: (f) => {
      f.checks = [];
      f.statuses = [status("ci/jenkins", "success")];
    },
    kind: "merge",
  },
  // Expected checks
  {
    name: "a required check from branch protection has not reported yet: wait, naming it",
    change: (f) => {
      f.expectedChecks = [expect_("build", "branch protection")];
    },
    kind: "wait",
    rule: ["checks_present", "wait"],
    detail: "`build` (branch protection)",
  },
  {
    name: "a CLA status alone while the base commit's CI has not started: wait",
    change: (f) => {
      f.checks = [];
      f.statuses = [status("cla/signed", "success")];
      f.expectedChecks = [expect_("test", "base commit"), expect_("lint", "base commit")];
    },
    kind: "wait",
    rule: ["checks_present", "wait"],
    detail: "`test` (base commit), `lint` (base commit)",
  },
  {
    name: "a ruleset's required check reported and passed",
    change: (f) => {
      f.expectedChecks = [expect_("ci", "ruleset")];
    },
    kind: "merge",
    rule: ["checks_present", "pass"],
    detail: "all 1 expected check reported",
  },
  {
    name: "an expected check satisfied by a commit status of that context",
    change: (f) => {
      f.statuses = [status("ci/jenkins", "success")];
      f.expectedChecks = [expect_("ci/jenkins", "branch protection")];
    },
    kind: "merge",
  },
  {
    name: "merge.required_checks adds a check",
    change: () => {},
    config: config({ required_checks: ["security-scan"] }),
    kind: "wait",
    detail: "`security-scan` (merge.required_checks)",
  },
  {
    name: "the same name from several sources is named once with every source",
    change: (f) => {
      f.expectedChecks = [expect_("e2e", "branch protection"), expect_("e2e", "base commit")];
    },
    config: config({ required_checks: ["e2e"] }),
    kind: "wait",
    detail: "`e2e` (branch protection, base commit, merge.required_checks)",
  },
  {
    name: "an expected check that never reports blocks after the timeout",
    change: (f) => {
      f.expectedChecks = [expect_("build", "base commit")];
      f.now = at(90);
    },
    kind: "blocked",
    rule: ["checks_timeout", "fail"],
    detail: "expected checks did not report within 60 min: `build` (base commit)",
  },
  {
    name: "expected names match exactly (GitHub's required checks are exact)",
    change: (f) => {
      f.expectedChecks = [expect_("CI", "branch protection")];
    },
    kind: "wait",
  },
  {
    name: "Conveyor's own check is never expected of itself",
    change: (f) => {
      f.expectedChecks = [expect_("Conveyor / safety", "base commit")];
    },
    config: config({ required_checks: ["Conveyor / safety"] }),
    kind: "merge",
    rule: ["checks_present", "pass"],
    detail: "no other checks are expected",
  },
  {
    name: "a check by another app named like Conveyor's still counts as a report",
    change: (f) => f.checks.push(run("Conveyor / safety", { conclusion: "failure" })),
    kind: "blocked",
    rule: ["checks_green", "fail"],
  },
  {
    name: "an expected check still running: wait",
    change: (f) => {
      f.checks.push(run("e2e", { status: "in_progress", conclusion: null }));
      f.expectedChecks = [expect_("e2e", "branch protection")];
    },
    kind: "wait",
    rule: ["checks_green", "wait"],
  },
  // mergeable_state
  {
    name: "blocked while a required check has not reported: wait",
    change: (f) => {
      f.mergeableState = "blocked";
      f.expectedChecks = [expect_("build", "branch protection")];
    },
    kind: "wait",
    rule: ["conflict", "wait"],
  },
  {
    name: "blocked with every check we can see green: blocked (something unseen is missing)",
    change: (f) => {
      f.mergeableState = "blocked";
    },
    kind: "blocked",
    rule: ["conflict", "fail"],
  },
  {
    name: "blocked only by Conveyor's own required check: merge (it turns success first)",
    change: (f) => {
      f.mergeableState = "blocked";
      f.expectedChecks = [expect_("Conveyor / safety", "branch protection")];
    },
    kind: "merge",
    rule: ["conflict", "pass"],
  },
  {
    name: "Conveyor's check required only by config does not explain blocked",
    change: (f) => {
      f.mergeableState = "blocked";
    },
    config: config({ required_checks: ["Conveyor / safety"] }),
    kind: "blocked",
  },
  {
    name: "blocked with a failing check: blocked",
    change: (f) => {
      f.mergeableState = "blocked";
      f.checks.push(run("e2e", { conclusion: "failure" }));
    },
    kind: "blocked",
  },
  {
    name: "dirty: blocked",
    change: (f) => {
      f.mergeableState = "dirty";
    },
    kind: "blocked",
    rule: ["conflict", "fail"],
  },
  {
    name: "unknown: wait",
    change: (f) => {
      f.mergeableState = "unknown";
    },
    kind: "wait",
    rule: ["conflict", "wait"],
  },
  {
    name: "unstable (a non-required check failed) with our checks green passes the conflict rule",
    change: (f) => {
      f.mergeableState = "unstable";
    },
    kind: "merge",
  },
  // The base it was made for
  {
    name: "retargeted to another branch: blocked, saying which",
    change: (f) => {
      f.baseRef = "release-1.x";
    },
    kind: "blocked",
    rule: ["base", "fail"],
    detail: "now targets `release-1.x`, but the task was made for `main`",
  },
  {
    name: "the base is read as unknown: blocked",
    change: (f) => {
      f.baseRef = "";
    },
    kind: "blocked",
    rule: ["base", "fail"],
  },
  {
    name: "base names compare exactly",
    change: (f) => {
      f.baseRef = "Main";
    },
    kind: "blocked",
  },
  // Incomplete facts
  {
    name: "a list cut short: facts incomplete, blocked",
    change: (f) => {
      f.errors = ["check runs: GitHub listed 100 of 101"];
    },
    kind: "blocked",
    rule: ["facts", "fail"],
    detail: "facts incomplete",
  },
  // merge.mode
  {
    name: "approve: a tier-1 PR waits for a maintainer's /approve",
    change: () => {},
    config: config({ mode: "approve" }),
    kind: "needs_approval",
    rule: ["mode", "wait"],
    detail: "would merge: tier 1, all checks green",
  },
  {
    name: "approve: a maintainer's /approve on the head merges it",
    change: (f) => {
      f.approvals = [
        { login: "maria", isBot: false, sha: HEAD, permission: "maintain", via: "command" },
      ];
    },
    config: config({ mode: "approve" }),
    kind: "merge",
    rule: ["mode", "pass"],
  },
  {
    name: "approve: an APPROVE review is not an /approve",
    change: (f) => {
      f.reviews = [
        {
          login: "maria",
          isBot: false,
          state: "APPROVED",
          commitSha: HEAD,
          submittedAt: at(5),
          permission: "admin",
        },
      ];
    },
    config: config({ mode: "approve" }),
    kind: "needs_approval",
  },
  {
    name: "approve: an /approve by someone with read access does not count",
    change: (f) => {
      f.approvals = [
        { login: "rita", isBot: false, sha: HEAD, permission: "read", via: "command" },
      ];
    },
    config: config({ mode: "approve" }),
    kind: "needs_approval",
  },
  {
    name: "approve: an /approve of an older commit does not count",
    change: (f) => {
      f.approvals = [
        { login: "maria", isBot: false, sha: "f".repeat(40), permission: "admin", via: "command" },
      ];
    },
    config: config({ mode: "approve" }),
    kind: "needs_approval",
  },
  {
    name: "approve: a tier-3 change stays blocked",
    change: (f) => {
      f.files = [{ ...f.files[0]!, path: ".github/workflows/ci.yml" }];
      f.approvals = [
        { login: "maria", isBot: false, sha: HEAD, permission: "admin", via: "command" },
      ];
    },
    config: config({ mode: "approve" }),
    kind: "blocked",
  },
  {
    name: "approve: still waiting for checks is a wait, not needs_approval",
    change: (f) => f.checks.push(run("e2e", { status: "queued", conclusion: null })),
    config: config({ mode: "approve" }),
    kind: "wait",
  },
  {
    name: "report: a PR that would merge is handed to a person, saying so",
    change: () => {},
    config: config({ mode: "report" }),
    kind: "blocked",
    rule: ["mode", "fail"],
    detail: "would merge: tier 1, all checks green",
  },
  {
    name: "report: a PR still waiting for checks waits",
    change: (f) => f.checks.push(run("e2e", { status: "queued", conclusion: null })),
    config: config({ mode: "report" }),
    kind: "wait",
    rule: ["mode", "n/a"],
  },
  {
    name: "report: even an approved tier-2 PR is not merged",
    change: (f) => {
      f.files = [{ ...f.files[0]!, additions: 30, patch: `@@ -1 +1,30 @@\n${"+x\n".repeat(30)}` }];
      f.approvals = [
        { login: "maria", isBot: false, sha: HEAD, permission: "write", via: "command" },
      ];
    },
    config: config({ mode: "report" }),
    kind: "blocked",
    detail: "would merge: tier 2, approved, all checks green",
  },
];

describe("evaluateMergePolicy: expected checks, conclusions, mergeable_state, base and mode", () => {
  it.each(ROWS)("$name → $kind", (row) => {
    const facts = clean();
    row.change(facts);
    const verdict = evaluateMergePolicy(facts, row.config ?? config());
    expect(verdict.kind).toBe(row.kind);
    if (row.rule) {
      const [id, result] = row.rule;
      expect(verdict.rules.find((r) => r.id === id)?.result).toBe(result);
    }
    if (row.detail) {
      const rule = row.rule
        ? verdict.rules.filter((r) => r.id === row.rule![0])
        : verdict.rules.filter((r) => r.result !== "pass" && r.result !== "n/a");
      expect(rule.map((r) => r.detail).join("\n")).toContain(row.detail);
    }
    if (verdict.kind === "merge") {
      expect(verdict.rules.every((r) => r.result === "pass" || r.result === "n/a")).toBe(true);
    } else {
      expect(verdict.unblock.length).toBeGreaterThan(0);
    }
  });

  it("judges expected checks once per name, leaving Conveyor's own out", () => {
    const facts = clean();
    facts.expectedChecks = [
      expect_("ci", "branch protection"),
      expect_("ci", "ruleset"),
      expect_("Conveyor / safety", "ruleset"),
      expect_("lint", "base commit"),
    ];
    const judged = judgeChecks(facts, config({ required_checks: ["lint"] }));
    expect(judged.expected).toEqual([
      { name: "ci", sources: ["branch protection", "ruleset"] },
      { name: "lint", sources: ["base commit", "merge.required_checks"] },
    ]);
    expect(judged.missing).toEqual([
      { name: "lint", sources: ["base commit", "merge.required_checks"] },
    ]);
    expect(judged.safetyRequired).toBe(true);
    expect(judged.checkRuns).toBe(1);
  });

  it("without a recorded base the rule is n/a", () => {
    const facts = clean();
    delete facts.expectedBaseRef;
    const verdict = evaluateMergePolicy(facts, config());
    expect(verdict.rules.find((r) => r.id === "base")?.result).toBe("n/a");
  });

  it("marks a would-merge in approve and report mode, never in auto", () => {
    expect(evaluateMergePolicy(clean(), config()).wouldMerge).toBeUndefined();
    expect(evaluateMergePolicy(clean(), config({ mode: "approve" })).wouldMerge).toBe(true);
    expect(evaluateMergePolicy(clean(), config({ mode: "report" })).wouldMerge).toBe(true);
    const waiting = clean();
    waiting.checks.push(run("e2e", { status: "queued", conclusion: null }));
    expect(evaluateMergePolicy(waiting, config({ mode: "report" })).wouldMerge).toBe(false);
  });

  it("report mode: the safety check is neutral and says what would have happened", () => {
    const check = renderSafetyCheck(evaluateMergePolicy(clean(), config({ mode: "report" })));
    expect(check).toMatchObject({ status: "completed", conclusion: "neutral" });
    expect(check.title).toBe(
      "Report only: would merge: tier 1, all checks green at c0ffee0 (merge.mode: report).",
    );
    expect(check.summary).toContain("**Report only.**");
    expect(check.summary).toContain("would merge: tier 1, all checks green");
  });

  it("a retargeted PR hands over (neutral): a person may merge it", () => {
    const facts = clean();
    facts.baseRef = "release";
    const check = renderSafetyCheck(evaluateMergePolicy(facts, config()));
    expect(check.conclusion).toBe("neutral");
  });

  it("refuses bad config for the new keys", () => {
    for (const merge of [
      { mode: "yolo" },
      { strict_conclusions: "yes" },
      { required_checks: [""] },
      { required_checks: [" padded "] },
      { required_checks: "ci" },
    ]) {
      expect(parseRepoConfig({ version: 1, merge }).ok).toBe(false);
    }
  });
});
