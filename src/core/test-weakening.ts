import { createGlobSet, type GlobSet } from "./glob.ts";
import { parsePatch } from "./unified-diff.ts";

/**
 * Ways a change can make a red test suite green without fixing anything: skipping, focusing or
 * inverting tests in any ecosystem's runner, deleting or emptying test files, removing
 * assertions, or changing the runner's configuration. Each is tier 3 (never auto-merged).
 *
 * Only code is looked at: prose (Markdown, text) that mentions a skip API is fine, and the markers
 * that are too common outside tests (`iter.skip(1)`, a variable called `pending`, `{ skip: 10 }`
 * in a query) count only in test files and test setup or helper files.
 */

/** What a file of the pull request is, as far as the tests go. */
export type TestFileRole = "test" | "support" | "other";

export type Language =
  | "js"
  | "python"
  | "go"
  | "ruby"
  | "jvm"
  | "dotnet"
  | "rust"
  | "php"
  | "swift"
  | "elixir"
  | "dart"
  | "cpp"
  | "shell"
  | "gherkin";

const EXTENSIONS: Record<string, Language> = {
  js: "js",
  jsx: "js",
  mjs: "js",
  cjs: "js",
  ts: "js",
  tsx: "js",
  mts: "js",
  cts: "js",
  vue: "js",
  svelte: "js",
  coffee: "js",
  py: "python",
  pyi: "python",
  go: "go",
  rb: "ruby",
  rake: "ruby",
  java: "jvm",
  kt: "jvm",
  kts: "jvm",
  scala: "jvm",
  groovy: "jvm",
  cs: "dotnet",
  fs: "dotnet",
  vb: "dotnet",
  rs: "rust",
  php: "php",
  swift: "swift",
  ex: "elixir",
  exs: "elixir",
  dart: "dart",
  c: "cpp",
  cc: "cpp",
  cpp: "cpp",
  cxx: "cpp",
  h: "cpp",
  hh: "cpp",
  hpp: "cpp",
  hxx: "cpp",
  sh: "shell",
  bash: "shell",
  bats: "shell",
  zsh: "shell",
  feature: "gherkin",
};

/** The language of a path by its extension; undefined for prose, data and unknown files. */
export function languageOf(path: string): Language | undefined {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return undefined;
  return EXTENSIONS[name.slice(dot + 1).toLowerCase()];
}

/**
 * Test files by the conventions of each ecosystem's runner, on top of `merge.test_paths` (which
 * a repository may narrow, but never below these for the purpose of spotting weakened tests).
 */
export const BUILTIN_TEST_PATHS = [
  "**/*.test.*",
  "**/*.spec.*",
  "**/*.cy.*",
  "**/__tests__/**",
  "**/test/**",
  "**/tests/**",
  "**/Tests/**",
  "**/spec/**",
  "**/specs/**",
  "**/e2e/**",
  "**/cypress/**",
  "**/*_test.*",
  "**/test_*.py",
  "**/*_spec.rb",
  "**/*{Test,Tests,Spec,IT}.{java,kt,scala,groovy}",
  "**/*{Test,Tests}.{cs,fs,vb,swift,php}",
  "**/*.{Tests,Test,UnitTests,IntegrationTests}/**",
  "**/*.feature",
] as const;

/** Setup and helper files that test runners load: judged like tests. */
export const TEST_SUPPORT_PATHS = [
  "**/{setupTests,setup-tests,test-setup,testSetup,jest.setup,vitest.setup}.*",
  "**/{global-setup,globalSetup,global-teardown,globalTeardown}.*",
  "**/*.setup.{js,jsx,ts,tsx,mjs,cjs,mts,cts}",
  "**/{test-utils,test_utils,testutils,testutil,testing,test-helpers,test_helpers,testhelpers}/**",
  "**/{spec_helper,rails_helper,test_helper}.rb",
  "**/__mocks__/**",
] as const;

/**
 * Test-runner configuration: which tests run, how failures count, coverage gates. A change to one
 * can exclude tests or make failures pass, so it is tier 3. (`pyproject.toml` and `setup.cfg`,
 * which may hold `[tool.pytest…]` and `[tool:pytest]` sections, are dependency manifests and on the
 * protected floor anyway.)
 */
export const TEST_RUNNER_CONFIG_PATHS = [
  // JavaScript and TypeScript
  "vitest.config.*",
  "vitest.*.config.*",
  "vitest.workspace.*",
  "vite.config.*",
  "jest.config.*",
  "jest.*.config.*",
  "playwright.config.*",
  "playwright.*.config.*",
  "playwright-ct.config.*",
  ".mocharc",
  ".mocharc.*",
  "karma.conf.*",
  "karma.*.conf.*",
  "cypress.config.*",
  "cypress.json",
  "ava.config.*",
  "wdio.conf.*",
  "jasmine.json",
  ".taprc",
  ".c8rc",
  ".c8rc.*",
  ".nycrc",
  ".nycrc.*",
  // Python
  "pytest.ini",
  "tox.ini",
  "conftest.py",
  "noxfile.py",
  ".coveragerc",
  // Ruby, PHP, .NET, Rust, JVM
  ".rspec",
  "spec_helper.rb",
  "rails_helper.rb",
  "test_helper.rb",
  "phpunit.xml",
  "phpunit.xml.dist",
  "Pest.php",
  "*.runsettings",
  "xunit.runner.json",
  "nextest.toml",
  "junit-platform.properties",
  // Coverage gates reported as checks
  "codecov.yml",
  ".codecov.yml",
  "codecov.yaml",
  ".codecov.yaml",
] as const;

interface Marker {
  pattern: RegExp;
  /** `any`: every file of the language; `tests`: test and support files only. */
  where: "any" | "tests";
}

const JS_SUFFIXES = "only|skip|skipIf|runIf|todo|fixme|fails|failing";

/**
 * Markers that skip, focus, invert or disable tests, per language. Every pattern is linear in the
 * line (no nested quantifiers that could backtrack), so a hostile minified line cannot stall it.
 */
const MARKERS: Record<Language, readonly Marker[]> = {
  js: [
    // it.skip(, test.only(, describe.todo(, it.concurrent.only(, test.describe.skip(,
    // it.skipIf(…)(, test.fixme(, it.fails( and test.failing( (expected to fail: red is green)
    {
      pattern: new RegExp(
        `\\b(?:describe|it|test|suite|specify|bench)(?:\\.[A-Za-z]+){0,4}\\.(?:${JS_SUFFIXES})\\b`,
      ),
      where: "any",
    },
    // xit(, xdescribe(, xtest(, xcontext(, xspecify(
    { pattern: /(?<![\w$.])x(?:it|describe|test|context|specify)\s*\(/, where: "any" },
    // Jasmine focus and pending(), Mocha's this.skip(), Vitest's ctx.skip(), node:test t.skip()
    { pattern: /(?<![\w$.])f(?:it|describe)\s*\(/, where: "tests" },
    { pattern: /(?<![\w$.])pending\s*\(/, where: "tests" },
    {
      pattern: /\b(?:this|ctx|context|t|testContext)\.(?:skip|todo|skipIf|runIf)\s*\(/,
      where: "tests",
    },
    {
      pattern: /\b(?:context|feature|scenario)(?:\.[A-Za-z]+){0,4}\.(?:only|skip|todo|fixme)\b/,
      where: "tests",
    },
    // Playwright's test.fail() marks a test as expected to fail.
    { pattern: /\btest(?:\.describe)?\.fail\b/, where: "tests" },
    // A chain split over lines (`it\n  .skip(`) or written as an index (`it["skip"](`).
    { pattern: new RegExp(`^\\s*\\.(?:${JS_SUFFIXES})\\b`), where: "tests" },
    { pattern: new RegExp(`\\[\\s*["'\`](?:${JS_SUFFIXES})["'\`]\\s*\\]`), where: "tests" },
    // Destructuring the runner's API: const { skip } = test
    { pattern: /\}\s*=\s*(?:describe|it|test)\b\s*;?\s*$/, where: "tests" },
    // Options of node:test and friends: { skip: true }, { skip: "why" }, { only: true },
    // { todo: true } (a numeric skip is a query's offset, a todo string is usually data)
    {
      pattern: /\b(?:skip|only)\s*:(?!\s*(?:false\b|null\b|undefined\b|\d))|\btodo\s*:\s*true\b/,
      where: "tests",
    },
    // Retrying until green, or leaving the process before a failure is reported.
    { pattern: /\bjest\.retryTimes\s*\(|\bthis\.retries\s*\(/, where: "tests" },
    { pattern: /\bprocess\.exit\s*\(\s*0?\s*\)/, where: "tests" },
  ],
  python: [
    { pattern: /\bpytest\.mark\.(?:skip\w*|xfail)\b/, where: "any" },
    { pattern: /\bpytest\.(?:skip|xfail|importorskip)\s*\(/, where: "any" },
    { pattern: /@unittest\.(?:skip\w*|expectedFailure)\b/, where: "any" },
    { pattern: /\bunittest\.SkipTest\b/, where: "any" },
    { pattern: /^\s*@(?:[\w.]+\.)?(?:skip\w*|expectedFailure|xfail)\b/, where: "tests" },
    { pattern: /\b(?:skipTest|SkipTest)\b/, where: "tests" },
    // pytest and unittest do not collect a module or class that says so.
    { pattern: /^\s*__test__\s*=\s*False\b/, where: "tests" },
    { pattern: /\b(?:sys\.exit|os\._exit)\s*\(\s*0?\s*\)/, where: "tests" },
  ],
  go: [
    { pattern: /\b(?:t|b|f|tb)\.Skip(?:f|Now)?\s*\(/, where: "any" },
    { pattern: /\.Skip(?:f|Now)?\s*\(/, where: "tests" },
    { pattern: /\btesting\.Short\s*\(\s*\)/, where: "tests" },
    // A build constraint can leave a test file out of `go test` altogether.
    { pattern: /^\s*\/\/\s*(?:go:build|\+build)\b/, where: "tests" },
    { pattern: /\bos\.Exit\s*\(\s*0\s*\)/, where: "tests" },
  ],
  ruby: [
    {
      pattern:
        /(?<![\w.:])[xf](?:it|describe|context|specify|example|feature|scenario)\b(?!\s*[=.])/,
      where: "tests",
    },
    // skip / pending as a statement (Minitest, RSpec), not a variable or method of that name.
    { pattern: /^\s*(?:skip|pending)\b(?!\s*(?:[=?!.:]|\|\||&&))/, where: "tests" },
    { pattern: /\b(?:skip|pending|focus)\s*:(?!\s*(?:false|nil)\b)/, where: "tests" },
    { pattern: /,\s*:(?:skip|pending|focus)\b/, where: "tests" },
    { pattern: /\bfilter_run_(?:excluding|when_matching)\b/, where: "tests" },
  ],
  jvm: [
    // JUnit 4/5, TestNG, Spock, Kotest
    { pattern: /@(?:Disabled\w*|Ignore|IgnoreIf|PendingFeature)\b/, where: "any" },
    { pattern: /@Enabled(?:If|On)\w*/, where: "any" },
    { pattern: /\benabled\s*=\s*false\b/, where: "tests" },
    { pattern: /\b(?:Assume|Assumptions)\.assume\w*\s*\(/, where: "tests" },
    { pattern: /(?<![\w.])assume(?:True|False|That)\s*\(/, where: "tests" },
    {
      pattern: /(?<![\w.])x(?:test|it|describe|context|should|given|feature|scenario|expect)\s*\(/,
      where: "tests",
    },
  ],
  dotnet: [
    // [Ignore], [TestMethod, Ignore("…")], [Fact(Skip = "…")], NUnit's [Explicit]
    { pattern: /(?:\[|,)\s*Ignore(?:Attribute)?\s*(?:[\](,]|$)/, where: "any" },
    { pattern: /(?:\(|,)\s*Skip\s*=/, where: "any" },
    { pattern: /(?:\[|,)\s*Explicit(?:Attribute)?\s*(?:[\](,]|$)/, where: "any" },
    { pattern: /\bAssert\.(?:Ignore|Inconclusive|Pass)\s*\(/, where: "tests" },
    { pattern: /\bSkip\.(?:If|IfNot|Unless|When)\w*\s*\(/, where: "tests" },
    { pattern: /\bAssume\.That\s*\(/, where: "tests" },
  ],
  rust: [
    { pattern: /#\[\s*ignore\b/, where: "any" },
    { pattern: /#\[\s*should_panic\b/, where: "any" },
    { pattern: /#\[\s*cfg_attr\s*\([^\]]{0,200}?\bignore\b/, where: "any" },
    { pattern: /#\[\s*cfg\s*\(\s*any\s*\(\s*\)\s*\)/, where: "any" },
  ],
  php: [
    { pattern: /\bmarkTest(?:Skipped|Incomplete)\s*\(/, where: "any" },
    { pattern: /->(?:skip|todo|only)\s*\(/, where: "tests" },
    { pattern: /@group\s+(?:skip|ignore|disabled|incomplete)\b/, where: "tests" },
  ],
  swift: [
    { pattern: /\bXCTSkip(?:If|Unless)?\b/, where: "any" },
    { pattern: /\bXCTExpectFailure\s*\(/, where: "any" },
    { pattern: /\.disabled\s*\(/, where: "tests" },
  ],
  elixir: [
    { pattern: /@(?:module)?tag\s+(?::?(?:skip|pending)\b|skip:)/, where: "tests" },
    { pattern: /@moduletag\s+:skip\b/, where: "tests" },
  ],
  dart: [{ pattern: /\bskip\s*:(?!\s*(?:false|null)\b)/, where: "tests" }],
  cpp: [
    { pattern: /\bGTEST_SKIP\s*\(/, where: "any" },
    { pattern: /\bDISABLED_\w+/, where: "tests" },
    // Catch2 tags that hide a test or let it fail: [.], [!hide], [!mayfail], [!shouldfail]
    { pattern: /\[(?:\.|!hide|!mayfail|!shouldfail)\]/, where: "tests" },
  ],
  shell: [
    { pattern: /^\s*skip\b/, where: "tests" },
    { pattern: /^\s*exit\s+0\b/, where: "tests" },
  ],
  gherkin: [
    {
      pattern: /(?:^|\s)@(?:skip|ignore|ignored|wip|pending|disabled?|manual|todo)\b/i,
      where: "tests",
    },
  ],
};

/** A line that is only a comment: its markers and assertions do not run. */
function isCommentLine(text: string, language: Language): boolean {
  const t = text.trimStart();
  if (t.startsWith("//") && !(language === "go" && /^\/\/\s*(?:go:build|\+build)\b/.test(t))) {
    return true;
  }
  if (t.startsWith("/*") || t.startsWith("*") || t.startsWith("<!--")) return true;
  const hashComments: readonly Language[] = ["python", "ruby", "shell", "elixir", "gherkin"];
  if (t.startsWith("#") && hashComments.includes(language)) return true;
  return false;
}

/** The first marker on a line, or undefined. */
function markerOn(text: string, language: Language, inTests: boolean): string | undefined {
  if (isCommentLine(text, language)) return undefined;
  for (const marker of MARKERS[language]) {
    if (marker.where === "tests" && !inTests) continue;
    const found = marker.pattern.exec(text);
    if (found) return found[0].trim();
  }
  return undefined;
}

/**
 * Assertions by the spellings of the common frameworks: expect(…), assert…, Assert.…, should…,
 * refute…, must_…/wont_…, Go's t.Error/t.Fatal, testify's require.…, Mockito's verify(…),
 * pytest.raises, Rust's assert!/assert_eq!.
 */
const ASSERTION =
  /\b(?:expect|Expect)\s*[({]|\bassert\w*(?:\s*[(!]|\s|\.\w+\s*\()|\bAssert(?:ions)?\.\w+|\.[Ss]hould\b|\bshould(?:[A-Z_]\w*)\b|\b(?:must|wont)_\w+|\brefute\w*|\bt\.(?:Error|Errorf|Fatal|Fatalf|Fail|FailNow)\s*\(|\brequire\.[A-Z]\w*\s*\(|\bverify\s*\(|\bpytest\.raises\s*\(/g;

function countAssertions(text: string, language: Language): number {
  if (isCommentLine(text, language)) return 0;
  let count = 0;
  ASSERTION.lastIndex = 0;
  while (ASSERTION.exec(text) !== null) count++;
  return count;
}

export type TestWeakening =
  /** An added line skips, focuses, inverts or disables tests. */
  | { kind: "marker"; path: string; marker: string; line?: number | undefined }
  | { kind: "deleted"; path: string }
  /** Renamed to a path that is not a test path. */
  | { kind: "renamed_away"; from: string; to: string }
  /** Renamed so its name no longer follows the runner's test-file convention. */
  | { kind: "renamed_uncollected"; from: string; to: string }
  /** Loses most of its lines (`before` is the old length when the diff shows it). */
  | { kind: "emptied"; path: string; removed: number; before?: number | undefined }
  /** The change's test files remove more assertions than they add. */
  | { kind: "assertions"; removed: number; added: number }
  | { kind: "runner_config"; path: string; pattern: string };

const BUILTIN_TESTS = createGlobSet(BUILTIN_TEST_PATHS);
const SUPPORT = createGlobSet(TEST_SUPPORT_PATHS);
const RUNNER_CONFIG = createGlobSet(TEST_RUNNER_CONFIG_PATHS, { ignoreCase: true });

/** The role of a path for the tests: test file, setup/helper file, or anything else. */
export function testFileRole(path: string, testPaths: readonly string[] | GlobSet): TestFileRole {
  const configured = "first" in testPaths ? testPaths : createGlobSet(testPaths);
  if (configured.first(path) !== undefined || BUILTIN_TESTS.first(path) !== undefined) {
    return "test";
  }
  if (SUPPORT.first(path) !== undefined) return "support";
  return "other";
}

/** The runner-configuration pattern a path matches (case-insensitively), or undefined. */
export function testRunnerConfigPattern(path: string): string | undefined {
  return RUNNER_CONFIG.first(path);
}

/**
 * The runner's naming convention a test file's name follows (`.test.ts`, `test_*.py`, …), so a
 * rename that leaves it can be told from one that keeps it collected.
 */
function testNameConvention(path: string): string | undefined {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const conventions: [RegExp, (m: RegExpExecArray) => string][] = [
    [/\.(test|spec|cy)\.([^.]+)$/, (m) => `.${m[1]}.${m[2]}`],
    [/^test_[^/]*\.py$/, () => "test_*.py"],
    [/_(test|spec)\.([^.]+)$/, (m) => `_${m[1]}.${m[2]}`],
    [/(Tests?|Spec|IT)\.([^.]+)$/, (m) => `${m[1]}.${m[2]}`],
  ];
  for (const [pattern, key] of conventions) {
    const found = pattern.exec(name);
    if (found) return key(found);
  }
  return undefined;
}

function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot <= 0 ? "" : name.slice(dot).toLowerCase();
}

/** The shape of a changed file this module needs (a subset of the policy's `PrFile`). */
export interface TestWeakeningFile {
  path: string;
  previousPath?: string | undefined;
  status: string;
  additions: number;
  deletions: number;
  patch?: string | undefined;
}

/**
 * A test file "loses most of its lines" when it ends up with less than half of what it had. The
 * old length is known when the last hunk reaches the end of the file (fewer than the 3 lines of
 * trailing context git shows, or an emptied file); otherwise the file may go on past the diff, so
 * only a loss of at least {@link MIN_UNSEEN_LOSS} lines that is more than half of what the diff
 * shows counts.
 */
export const MIN_UNSEEN_LOSS = 20;
/** Smaller losses are edits, not emptying (a 4-line test file losing 3 lines still counts). */
const MIN_LOSS = 3;

function emptied(file: TestWeakeningFile): TestWeakening | undefined {
  if (!file.patch || (file.status !== "modified" && file.status !== "renamed")) return undefined;
  const hunks = parsePatch(file.patch);
  let added = 0;
  let removed = 0;
  for (const hunk of hunks) {
    for (const line of hunk.lines) {
      if (line.kind === "add") added++;
      else if (line.kind === "remove") removed++;
    }
  }
  const loss = removed - added;
  if (loss < MIN_LOSS) return undefined;
  const last = hunks.at(-1);
  if (!last) return undefined;
  const seenEnd = last.oldStart + last.oldCount - 1;
  let trailingContext = 0;
  for (let i = last.lines.length - 1; i >= 0 && last.lines[i]?.kind === "context"; i--) {
    trailingContext++;
  }
  const endKnown = last.newCount === 0 || trailingContext < 3;
  if (endKnown) {
    return loss * 2 > seenEnd
      ? { kind: "emptied", path: file.path, removed: loss, before: seenEnd }
      : undefined;
  }
  return loss >= MIN_UNSEEN_LOSS && loss * 2 > seenEnd
    ? { kind: "emptied", path: file.path, removed: loss }
    : undefined;
}

/**
 * Every way the change weakens tests, in file order, the assertion balance last. `testPaths` is
 * `merge.test_paths`; the built-in conventions ({@link BUILTIN_TEST_PATHS}) and setup/helper
 * files ({@link TEST_SUPPORT_PATHS}) count as well.
 */
export function findTestWeakening(
  files: readonly TestWeakeningFile[],
  testPaths: readonly string[],
): TestWeakening[] {
  const found: TestWeakening[] = [];
  const configured = createGlobSet(testPaths);
  let assertionsAdded = 0;
  let assertionsRemoved = 0;
  for (const file of files) {
    const role = testFileRole(file.path, configured);
    const previousRole = file.previousPath ? testFileRole(file.previousPath, configured) : role;
    const inTests = role !== "other" || previousRole !== "other";

    for (const path of new Set([file.path, file.previousPath ?? file.path])) {
      const pattern = testRunnerConfigPattern(path);
      if (pattern) found.push({ kind: "runner_config", path, pattern });
    }
    if (file.status === "removed" && role === "test") {
      found.push({ kind: "deleted", path: file.path });
    }
    if (file.status === "renamed" && file.previousPath && previousRole === "test") {
      if (role !== "test") {
        found.push({ kind: "renamed_away", from: file.previousPath, to: file.path });
      } else {
        const before = testNameConvention(file.previousPath);
        const after = testNameConvention(file.path);
        const kept =
          before === undefined
            ? extensionOf(file.previousPath) === extensionOf(file.path)
            : before === after;
        if (!kept) {
          found.push({ kind: "renamed_uncollected", from: file.previousPath, to: file.path });
        }
      }
    }
    if (inTests) {
      const loss = emptied(file);
      if (loss) found.push(loss);
    }

    const language = languageOf(file.path);
    if (!language || file.patch === undefined) continue;
    let marked = false;
    for (const hunk of parsePatch(file.patch)) {
      for (const line of hunk.lines) {
        if (line.kind === "context") continue;
        if (line.kind === "add" && !marked) {
          const marker = markerOn(line.text, language, inTests);
          if (marker) {
            found.push({ kind: "marker", path: file.path, marker, line: line.newLine });
            marked = true;
          }
        }
        if (inTests) {
          const n = countAssertions(line.text, language);
          if (line.kind === "add") assertionsAdded += n;
          else assertionsRemoved += n;
        }
      }
    }
  }
  if (assertionsRemoved > assertionsAdded) {
    found.push({ kind: "assertions", removed: assertionsRemoved, added: assertionsAdded });
  }
  return found;
}
