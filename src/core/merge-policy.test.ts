import { describe, expect, it } from "vitest";
import {
  approval,
  MERGE_POLICY_CASES as cases,
  check,
  cleanTier1,
  config,
  file,
  hunk,
  makeTier2,
  minutesAfter,
  OLD,
  OTHER,
  review,
} from "../../test/fixtures/merge-policy-cases.ts";
import {
  classifyTier,
  evaluateMergePolicy,
  HOLD_LABELS,
  isHoldLabel,
  isWipTitle,
  MAX_CHECK_SUMMARY_CHARS,
  MAX_CHECK_TITLE_CHARS,
  type PrFacts,
  RISK_LABELS,
  RULE_IDS,
  RULE_TITLES,
  renderSafetyCheck,
  riskLabel,
  type Verdict,
} from "./merge-policy.ts";
import { FLOOR_PROTECTED_PATHS } from "./protected-paths.ts";
import { DEFAULT_PROTECTED_PATHS, DEFAULT_REPO_CONFIG, parseRepoConfig } from "./repo-config.ts";

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
      "a person reviews the protected files and merges by hand (Conveyor never merges changes to them)",
      "a person reviews and merges it by hand (tier 3 is never auto-merged)",
    ]);
    expect(verdict.summary).toBe("Blocked: held by label `hold` and /hold (and 3 more)");
  });

  it.each([
    [
      "a protected path alone",
      [file("go.mod")],
      null,
      "Blocked: `go.mod` is protected (a dependency manifest or lockfile: `go.mod`, built in)",
    ],
    [
      "a protected path and failed verification",
      [file("go.mod")],
      { passed: false, failedCommand: "go test" },
      "Blocked: `go.mod` is protected (a dependency manifest or lockfile: `go.mod`, built in) (and 1 more)",
    ],
  ])("summarises %s without counting the tier row twice", (_name, files, verification, summary) => {
    const facts = cleanTier1();
    facts.files = files;
    if (verification) facts.verification = verification;
    expect(evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).summary).toBe(summary);
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
      "facts incomplete: 4 reads of GitHub failed or came back cut short: `a: 500`, `b: 502`, `c: timeout` and 1 more",
    );
  });
});

describe("classifyTier", () => {
  it("explains tier 1", () => {
    expect(classifyTier([file("src/a.ts", 3, 1)], { passed: true }, DEFAULT_REPO_CONFIG)).toEqual({
      tier: 1,
      reasons: ["4 changed lines (at most 19)", "1 file (at most 3)", "only modified files"],
      findings: [],
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
    const result = classifyTier(
      files,
      { passed: false, failedCommand: "npm test" },
      DEFAULT_REPO_CONFIG,
    );
    expect(result.tier).toBe(3);
    expect(result.findings.map((f) => [f.rule, f.tier, f.reason])).toEqual([
      [
        "paths",
        3,
        "`.github/workflows/ci.yml` is protected (CI configuration: `.github/workflows/**`, built in)",
      ],
      [
        "paths",
        3,
        "`package.json` is protected (a dependency manifest or lockfile: `package.json`, built in)",
      ],
      ["content", 3, "`logo.png` has no diff to inspect (binary or too large)"],
      ["tests", 3, "test file `tests/test_a.py` is deleted"],
      ["tests", 3, "`src/a.test.ts` adds a skipped or focused test (`test.only`, line 1)"],
      ["change", 3, "verification failed: `npm test`"],
    ]);
    expect(result.reasons).toEqual(result.findings.map((f) => f.reason));
  });

  it("treats unknown line counts as not tier 1", () => {
    const files = [file("src/a.ts", Number.NaN, 0)];
    expect(classifyTier(files, { passed: true }, DEFAULT_REPO_CONFIG)).toMatchObject({ tier: 2 });
  });
});

describe("a row per family of tier findings", () => {
  it.each([
    {
      name: "another CI system's config",
      files: [file(".circleci/config.yml")],
      row: "paths",
      result: "fail",
      detail: "`.circleci/config.yml` is protected (CI configuration: `.circleci/**`, built in)",
      kind: "blocked",
      unblock: "a person reviews the protected files and merges by hand",
    },
    {
      name: "build configuration",
      files: [file("Makefile")],
      row: "paths",
      result: "pass",
      detail: "not tier 1: `Makefile` is build or lint configuration (`Makefile`): at least tier 2",
      kind: "needs_approval",
    },
    {
      name: "a skipped Go test",
      files: [file("pkg/a_test.go", 1, 0, { patch: hunk({ add: ['\tt.Skip("later")'] }) })],
      row: "tests",
      result: "fail",
      detail: "`pkg/a_test.go` adds a skipped or focused test (`t.Skip(`, line 1)",
      kind: "blocked",
      unblock: "restore the weakened tests",
    },
    {
      name: "removed assertions",
      files: [
        file("tests/test_a.py", 0, 1, { patch: hunk({ remove: ["    assert total == 3"] }) }),
      ],
      row: "tests",
      result: "fail",
      detail: "the test files remove more assertions than they add (1 removed, 0 added)",
      kind: "blocked",
    },
    {
      name: "a bidi override",
      files: [file("src/a.ts", 1, 0, { patch: hunk({ add: ["let a = '\u202E';"] }) })],
      row: "content",
      result: "fail",
      detail:
        "`src/a.ts` adds an invisible or direction-changing character (U+202E RIGHT-TO-LEFT OVERRIDE, line 1)",
      kind: "blocked",
      unblock: "remove what cannot be seen or inspected",
    },
    {
      name: "a symlink",
      files: [file("docs/link", 1, 0, { mode: "120000" as const })],
      row: "content",
      result: "fail",
      detail: "`docs/link` is a symbolic link",
      kind: "blocked",
    },
    {
      name: "one minified line",
      files: [file("src/a.js", 1, 0, { patch: hunk({ add: ["x".repeat(2_000)] }) })],
      row: "content",
      result: "pass",
      detail:
        "not tier 1: `src/a.js` adds a line of 2000 bytes, line 1 (tier 1 allows 1000, merge.tier1.max_line_bytes)",
      kind: "needs_approval",
    },
    {
      name: "a clean change",
      files: [file("src/a.ts")],
      row: "tests",
      result: "pass",
      detail: "no test is skipped, removed or weakened",
      kind: "merge",
    },
  ])("$name: $row $result", ({ files, row, result, detail, kind, unblock }) => {
    const facts = cleanTier1();
    facts.files = files;
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.rules.find((r) => r.id === row)).toMatchObject({ result, detail });
    expect(verdict.kind).toBe(kind);
    if (unblock) expect(verdict.unblock.some((u) => u.startsWith(unblock))).toBe(true);
    if (result === "fail") {
      const check = renderSafetyCheck(verdict);
      expect(check.conclusion).toBe("neutral");
      expect(check.summary).toContain(
        `| ${RULE_TITLES[row as keyof typeof RULE_TITLES]} | ❌ fail |`,
      );
    }
  });
});

describe("merge config", () => {
  it("has the documented defaults", () => {
    expect(DEFAULT_REPO_CONFIG.merge).toEqual({
      method: "squash",
      tier1: { max_changed_lines: 19, max_files: 3, max_line_bytes: 1_000, max_file_bytes: 4_096 },
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
      hold_labels: [],
      required_approvals: 1,
      required_checks: [],
      strict_conclusions: false,
      mode: "auto",
      revert: "pr",
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
    expect(HOLD_LABELS).toEqual([
      "hold",
      "on hold",
      "do-not-merge",
      "do-not-merge/*",
      "wip",
      "work in progress",
      "conveyor:hold",
    ]);
  });
});

describe("hold labels and titles", () => {
  const extra = config({ merge: { hold_labels: ["blocked-by-legal", "release/*"] } });

  it.each([
    // The floor, in the spellings teams use.
    ["hold", true],
    ["Hold", true],
    ["  HOLD  ", true],
    ["on hold", true],
    ["On-Hold", true],
    ["on_hold", true],
    ["do-not-merge", true],
    ["Do Not Merge", true],
    ["DO_NOT_MERGE", true],
    ["do-not-merge/hold", true],
    ["do-not-merge/work-in-progress", true],
    ["do-not-merge / needs-rebase", true],
    ["wip", true],
    ["WIP", true],
    ["🚧 WIP", true],
    ["work in progress", true],
    ["Work-In-Progress", true],
    ["conveyor:hold", true],
    ["Conveyor:Hold", true],
    ["ｈｏｌｄ", true],
    // Safe twins: labels that only share a word.
    ["holding-pattern", false],
    ["threshold", false],
    ["do-not-merge-bot-config", false],
    ["do-not-merge/", true],
    ["wipe", false],
    ["swipe-gestures", false],
    ["merge", false],
    ["ready-to-merge", false],
    ["", false],
    ["/", false],
    ["conveyor", false],
    ["risk:tier-1", false],
    ["blocked-by-legal", false],
  ])("label %j holds: %s (built-in list)", (label, held) => {
    expect(isHoldLabel(label)).toBe(held);
  });

  it.each([
    ["blocked-by-legal", true],
    ["Blocked By Legal", true],
    ["release/next", true],
    ["release", false],
    ["release-notes", false],
    ["hold", true],
  ])("label %j holds: %s with merge.hold_labels", (label, held) => {
    expect(isHoldLabel(label, extra.merge.hold_labels)).toBe(held);
  });

  it.each([
    ["WIP: make the button blue", true],
    ["[WIP] make the button blue", true],
    ["(wip) make the button blue", true],
    ["wip make the button blue", true],
    ["🚧 WIP", true],
    ["WIP", true],
    ["WIP-123 tidy up", true],
    ["Wipe the cache on logout", false],
    ["WIPO trademark lookup", false],
    ["Make WIP labels hold the merge", false],
    ["Support wip_ prefixed branches", false],
    ["", false],
  ])("title %j holds: %s", (title, held) => {
    expect(isWipTitle(title)).toBe(held);
  });

  it.each([
    { labels: ["do-not-merge/hold"], title: "Fix typo", held: "label `do-not-merge/hold`" },
    { labels: ["Work In Progress"], title: "Fix typo", held: "label `Work In Progress`" },
    { labels: ["bug"], title: "[WIP] Fix typo", held: "a title starting with WIP" },
    { labels: ["bug"], title: "Wipe stale sessions", held: undefined },
    { labels: ["threshold"], title: undefined, held: undefined },
  ])("holds a PR labelled $labels titled $title", ({ labels, title, held }) => {
    const facts = cleanTier1();
    facts.labels = labels;
    facts.title = title;
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    const rule = verdict.rules.find((r) => r.id === "hold");
    if (held === undefined) {
      expect(verdict.kind).toBe("merge");
      expect(rule?.result).toBe("pass");
    } else {
      expect(verdict.kind).toBe("blocked");
      expect(rule?.result).toBe("fail");
      expect(rule?.detail).toContain(held);
      expect(verdict.unblock.join("\n")).toMatch(/remove/);
    }
  });

  it("holds on a label only config adds", () => {
    const facts = cleanTier1();
    facts.labels = ["blocked-by-legal"];
    expect(evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).kind).toBe("merge");
    expect(evaluateMergePolicy(facts, extra).kind).toBe("blocked");
  });

  it.each([
    [{ merge: { hold_labels: [""] } }, "merge.hold_labels.0"],
    [{ merge: { hold_labels: ["x".repeat(101)] } }, "merge.hold_labels.0"],
    [{ merge: { hold_labels: "hold" } }, "merge.hold_labels"],
  ])("refuses %j naming %s", (raw, key) => {
    const result = parseRepoConfig(raw);
    expect(result.ok ? [] : result.problems.map((p) => p.key)).toContain(key);
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
