import { describe, expect, it } from "vitest";
import { DEFAULT_TEST_PATHS } from "./repo-config.ts";
import {
  findTestWeakening,
  languageOf,
  type TestWeakening,
  type TestWeakeningFile,
  testFileRole,
  testRunnerConfigPattern,
} from "./test-weakening.ts";

const TEST_PATHS = [...DEFAULT_TEST_PATHS];

/** A hunk as GitHub returns it, with `context` lines after the removed and added ones. */
function patch(add: string[], remove: string[] = [], context: string[] = []): string {
  return [
    `@@ -10,${remove.length + context.length} +10,${add.length + context.length} @@`,
    ...remove.map((l) => `-${l}`),
    ...add.map((l) => `+${l}`),
    ...context.map((l) => ` ${l}`),
  ].join("\n");
}

function changed(
  path: string,
  add: string[],
  remove: string[] = [],
  extra: Partial<TestWeakeningFile> = {},
): TestWeakeningFile {
  return {
    path,
    status: "modified",
    additions: add.length,
    deletions: remove.length,
    patch: patch(add, remove, ["}", "", "// end"]),
    ...extra,
  };
}

const kinds = (files: TestWeakeningFile[]) =>
  findTestWeakening(files, TEST_PATHS).map((w) => w.kind);

const markerOf = (path: string, line: string) => {
  const found = findTestWeakening([changed(path, [line])], TEST_PATHS).find(
    (w): w is Extract<TestWeakening, { kind: "marker" }> => w.kind === "marker",
  );
  return found?.marker;
};

describe("skip, focus and expected-failure markers", () => {
  it.each([
    // JavaScript and TypeScript: every spelling the runners offer.
    ["src/app.test.ts", 'it.skip("adds", () => {', "it.skip"],
    ["src/app.test.ts", 'test.only("adds", () => {', "test.only"],
    ["src/app.test.ts", 'describe.skip("math", () => {', "describe.skip"],
    ["src/app.test.ts", 'it.todo("adds");', "it.todo"],
    ["src/app.test.ts", 'test.fixme("adds", () => {', "test.fixme"],
    ["src/app.test.ts", 'it.fails("adds", () => {', "it.fails"],
    ["src/app.test.ts", 'test.failing("adds", () => {', "test.failing"],
    ["src/app.test.ts", "it.skipIf(process.env.CI)('adds', () => {", "it.skipIf"],
    ["src/app.test.ts", "test.runIf(false)('adds', () => {", "test.runIf"],
    ["src/app.test.ts", 'it.concurrent.only("adds", () => {', "it.concurrent.only"],
    ["e2e/login.spec.ts", 'test.describe.skip("login", () => {', "test.describe.skip"],
    ["e2e/login.spec.ts", "test.fail();", "test.fail"],
    ["spec/app.spec.js", 'xit("adds", () => {});', "xit("],
    ["spec/app.spec.js", 'xdescribe("math", () => {', "xdescribe("],
    ["spec/app.spec.js", 'fit("adds", () => {', "fit("],
    ["spec/app.spec.js", 'fdescribe("math", () => {', "fdescribe("],
    ["spec/app.spec.js", '  pending("flaky on CI");', "pending("],
    ["test/app.js", "    this.skip();", "this.skip("],
    ["test/app.test.ts", "  ctx.skip();", "ctx.skip("],
    ["test/app.test.mjs", "  t.skip('not today');", "t.skip("],
    ["test/app.test.mjs", 'test("adds", { skip: true }, () => {', "skip:"],
    ["test/app.test.mjs", 'test("adds", { todo: true }, () => {', "todo: true"],
    ["src/app.test.ts", "  .skip('adds', () => {", ".skip"],
    ["src/app.test.ts", 'it["skip"]("adds", () => {', '["skip"]'],
    ["src/app.test.ts", "const { skip } = test;", "} = test;"],
    ["src/app.test.ts", "jest.retryTimes(5);", "jest.retryTimes("],
    ["test/setup.ts", "process.exit(0);", "process.exit(0)"],
    // Setup and helper files count like tests.
    ["src/setupTests.ts", "beforeEach(() => ctx.skip());", "ctx.skip("],
    ["test-utils/render.tsx", "export const skipOnCI = it.skipIf(!!process.env.CI);", "it.skipIf"],
    // In-source tests (Vitest's import.meta.vitest) count in any JS file.
    ["src/math.ts", '  it.skip("adds", () => {});', "it.skip"],
    // Python
    ["tests/test_api.py", '@pytest.mark.skip(reason="flaky")', "pytest.mark.skip"],
    [
      "tests/test_api.py",
      "@pytest.mark.skipif(sys.platform == 'linux', reason='')",
      "pytest.mark.skipif",
    ],
    ["tests/test_api.py", "@pytest.mark.xfail", "pytest.mark.xfail"],
    ["tests/test_api.py", "pytestmark = pytest.mark.skip", "pytest.mark.skip"],
    ["tests/test_api.py", "    pytest.skip('later')", "pytest.skip("],
    ["tests/test_api.py", "np = pytest.importorskip('numpy')", "pytest.importorskip("],
    ["tests/test_api.py", '@unittest.skip("broken")', "@unittest.skip"],
    ["tests/test_api.py", "@unittest.expectedFailure", "@unittest.expectedFailure"],
    ["tests/test_api.py", '@skipIf(True, "x")', "@skipIf"],
    ["tests/test_api.py", "        self.skipTest('nope')", "skipTest"],
    ["tests/test_api.py", "    raise unittest.SkipTest('nope')", "unittest.SkipTest"],
    ["tests/test_api.py", "__test__ = False", "__test__ = False"],
    ["src/pkg/testing/helpers.py", "        self.skipTest('nope')", "skipTest"],
    // Go
    ["pkg/api_test.go", '\tt.Skip("flaky")', "t.Skip("],
    ["pkg/api_test.go", '\tt.Skipf("flaky %d", n)', "t.Skipf("],
    ["pkg/api_test.go", "\tt.SkipNow()", "t.SkipNow("],
    ["pkg/api_test.go", "\tif testing.Short() {", "testing.Short()"],
    ["pkg/api_test.go", "//go:build ignore", "//go:build"],
    ["pkg/api_test.go", "// +build ignore", "// +build"],
    ["pkg/testutil/env.go", '\ttb.Skip("no docker")', "tb.Skip("],
    // Ruby
    ["spec/models/user_spec.rb", '  xit "validates" do', "xit"],
    ["spec/models/user_spec.rb", '  xdescribe "validation" do', "xdescribe"],
    ["spec/models/user_spec.rb", '  fit "validates" do', "fit"],
    ["spec/models/user_spec.rb", '    skip "flaky"', "skip"],
    ["spec/models/user_spec.rb", '    pending "broken"', "pending"],
    ["spec/models/user_spec.rb", '  it "validates", skip: true do', "skip:"],
    ["spec/models/user_spec.rb", '  it "validates", :skip do', ", :skip"],
    ["test/models/user_test.rb", '    skip("later")', "skip"],
    ["spec/spec_helper.rb", "  config.filter_run_excluding :slow", "filter_run_excluding"],
    // Java and Kotlin
    ["src/test/java/app/UserTest.java", "  @Disabled", "@Disabled"],
    ["src/test/java/app/UserTest.java", '  @Disabled("flaky")', "@Disabled"],
    ["src/test/java/app/UserTest.java", "  @DisabledOnOs(OS.LINUX)", "@DisabledOnOs"],
    ["src/test/java/app/UserTest.java", "  @Ignore", "@Ignore"],
    ["src/test/java/app/UserTest.java", "  @Test(enabled = false)", "enabled = false"],
    ["src/test/java/app/UserTest.java", "    assumeTrue(isCi());", "assumeTrue("],
    ["src/test/kotlin/app/UserTest.kt", "    @Ignore", "@Ignore"],
    ["src/test/kotlin/app/UserSpec.kt", '  xtest("validates") {', "xtest("],
    // C#
    ["tests/App.Tests/UserTests.cs", "    [Ignore]", "[Ignore]"],
    ["tests/App.Tests/UserTests.cs", '    [TestMethod, Ignore("flaky")]', ", Ignore("],
    ["tests/App.Tests/UserTests.cs", '    [Fact(Skip = "flaky")]', "(Skip ="],
    ["tests/App.Tests/UserTests.cs", '    [Theory(DisplayName = "x", Skip = "y")]', ", Skip ="],
    ["tests/App.Tests/UserTests.cs", "    [Test, Explicit]", ", Explicit]"],
    ["tests/App.Tests/UserTests.cs", '        Assert.Ignore("later");', "Assert.Ignore("],
    ["tests/App.Tests/UserTests.cs", "        Assert.Pass();", "Assert.Pass("],
    // Rust, in tests/ and in-source test modules alike
    ["tests/api.rs", "#[ignore]", "#[ignore"],
    ["src/lib.rs", '    #[ignore = "slow"]', "#[ignore"],
    ["src/lib.rs", "    #[should_panic]", "#[should_panic"],
    [
      "src/lib.rs",
      '    #[cfg_attr(target_os = "linux", ignore)]',
      '#[cfg_attr(target_os = "linux", ignore',
    ],
    ["src/lib.rs", "#[cfg(any())]", "#[cfg(any())"],
    // PHP, Swift, Elixir, Dart, C++, shell, Gherkin
    ["tests/UserTest.php", '        $this->markTestSkipped("later");', "markTestSkipped("],
    ["tests/Feature/UserTest.php", "})->skip();", "->skip("],
    ["Tests/AppTests/UserTests.swift", '        throw XCTSkip("later")', "XCTSkip"],
    ["test/user_test.exs", "  @tag :skip", "@tag :skip"],
    ["test/user_test.dart", "  }, skip: true);", "skip:"],
    ["tests/user_test.cpp", "TEST(User, DISABLED_Validates) {", "DISABLED_Validates"],
    ["tests/user_test.cpp", "  GTEST_SKIP();", "GTEST_SKIP("],
    ["tests/user_test.cpp", 'TEST_CASE("validates", "[.]") {', "[.]"],
    ["test/cli.bats", "  skip 'later'", "skip"],
    ["features/login.feature", "  @wip", "@wip"],
    ["features/login.feature", "  @skip @slow", "@skip"],
  ])("%s: %j is %j", (path, line, marker) => {
    expect(markerOf(path, line)).toBe(marker);
  });

  it.each([
    // Prose that talks about skip APIs is not code.
    ["docs/testing.md", "Use `it.skip(...)` sparingly; never `test.only` in CI."],
    ["README.md", "    @pytest.mark.skip"],
    ["CHANGELOG.txt", "- xit() and fit() are now refused"],
    ["docs/testing.rst", ".. code:: python\n\n   @unittest.skip"],
    // Unrelated APIs that share a word with a test API, outside tests.
    ["src/stream.ts", "const rest = stream.skip(3);"],
    ["src/query.ts", "return db.user.findMany({ skip: 10, take: 20 });"],
    ["src/query.ts", "const page = { skip: offset, take: limit };"],
    ["src/jobs.ts", "const pending = jobs.filter((j) => j.pending);"],
    ["src/jobs.ts", "pending(job);"],
    ["src/lambda.js", "context.fail(new Error('x'));"],
    ["src/lib.rs", "let rest = args.iter().skip(1);"],
    ["src/train.py", "model.fit(x, y)"],
    ["src/reader.go", "\tr.Skip(4)"],
    ["lib/queue.rb", "    skip = options[:skip]"],
    ["lib/queue.rb", "  pending = jobs.select(&:pending?)"],
    ["src/main/java/app/Json.java", "  @JsonIgnore"],
    ["src/App/Dto.cs", "    [JsonIgnore]"],
    ["src/App/Dto.cs", "    [IgnoreDataMember]"],
    ["src/App/Query.cs", "    var page = items.Skip(10).Take(5);"],
    // The same words in test files, used as what they are.
    ["src/stream.test.ts", "expect(stream.skip(3)).toEqual([4]);"],
    ["src/query.test.ts", "expect(findMany).toHaveBeenCalledWith({ skip: 10, take: 20 });"],
    ["src/jobs.test.ts", "const pending = jobs.filter((j) => j.pending);"],
    ["src/jobs.test.ts", "expect(pending.length).toBe(1);"],
    ["src/todo.test.ts", 'const item = { todo: "buy milk", done: false };'],
    ["spec/queue_spec.rb", "    pending = queue.pending"],
    ["spec/queue_spec.rb", "    expect(queue.pending?).to be true"],
    ["spec/queue_spec.rb", "    it 'fits the box' do"],
    ["tests/test_stream.py", "    rest = list(itertools.islice(it, 1, None))"],
    ["pkg/reader_test.go", "\tif err != nil { t.Fatal(err) }"],
    // Commented-out markers do not run.
    ["src/app.test.ts", "// it.skip was used here before; keep it running"],
    ["tests/test_api.py", "# @pytest.mark.skip would hide this"],
    // A plain test.
    ["src/app.test.ts", 'it("adds", () => {'],
  ])("%s: %j is not a marker", (path, line) => {
    expect(markerOf(path, line)).toBeUndefined();
  });

  it("only judges added lines: removing a marker is fine", () => {
    const file = changed("src/app.test.ts", ['it("adds", () => {'], ['it.only("adds", () => {']);
    expect(kinds([file])).toEqual([]);
  });

  it("names the line the marker is on", () => {
    const file: TestWeakeningFile = {
      path: "src/app.test.ts",
      status: "modified",
      additions: 1,
      deletions: 0,
      patch: "@@ -40,3 +40,4 @@ describe('x', () => {\n a\n b\n+  it.skip('y', () => {});\n c",
    };
    expect(findTestWeakening([file], TEST_PATHS)).toEqual([
      { kind: "marker", path: "src/app.test.ts", marker: "it.skip", line: 42 },
    ]);
  });
});

describe("weakening without skipping", () => {
  const emptiedPatch = (lines: number, keep: number) =>
    [
      `@@ -1,${lines} +1,${keep} @@`,
      ...Array.from({ length: lines - keep }, (_, i) => `-  expect(a${i}).toBe(${i});`),
      ...Array.from({ length: keep }, (_, i) => ` line ${i}`),
    ].join("\n");

  it.each<[string, TestWeakeningFile[], TestWeakening["kind"][]]>([
    [
      "a deleted test file",
      [{ path: "tests/test_api.py", status: "removed", additions: 0, deletions: 30 }],
      ["deleted"],
    ],
    [
      "a deleted helper is not a deleted test (its assertions still count)",
      [
        {
          path: "test-utils/render.tsx",
          status: "removed",
          additions: 0,
          deletions: 2,
          patch: "@@ -1,2 +0,0 @@\n-export const render = () => {};\n-export const x = 1;",
        },
      ],
      [],
    ],
    [
      "a test renamed to a non-test path",
      [
        {
          path: "src/app.ts.bak",
          previousPath: "src/app.test.ts",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      ["renamed_away"],
    ],
    [
      "a test renamed out of its runner's naming convention",
      [
        {
          path: "tests/api_checks.py",
          previousPath: "tests/test_api.py",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      ["renamed_uncollected"],
    ],
    [
      "a test renamed to a .bak inside a test directory",
      [
        {
          path: "src/__tests__/app.test.ts.bak",
          previousPath: "src/__tests__/app.test.ts",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      ["renamed_uncollected"],
    ],
    [
      "safe twin: a test renamed within its convention",
      [
        {
          path: "src/account.test.ts",
          previousPath: "src/user.test.ts",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      [],
    ],
    [
      "safe twin: a test moved between test directories",
      [
        {
          path: "tests/unit/test_api.py",
          previousPath: "tests/test_api.py",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      [],
    ],
    [
      "a test file emptied",
      [
        {
          path: "src/app.test.ts",
          status: "modified",
          additions: 0,
          deletions: 40,
          patch: emptiedPatch(40, 0).replace("+1,0", "+0,0"),
        },
      ],
      ["emptied", "assertions"],
    ],
    [
      "a test file cut to a stub with as many assertions as before",
      [
        {
          path: "src/app.test.ts",
          status: "modified",
          additions: 2,
          deletions: 40,
          patch: [
            "@@ -1,40 +1,2 @@",
            ...Array.from({ length: 38 }, (_, i) => `-  const fixture${i} = build(${i});`),
            "-  expect(a).toBe(1);",
            "-  expect(b).toBe(2);",
            "+  expect(a).toBe(1);",
            "+  expect(b).toBe(2);",
          ].join("\n"),
        },
      ],
      ["emptied"],
    ],
    [
      "safe twin: a long test file loses a few lines at the top",
      [
        {
          path: "src/app.test.ts",
          status: "modified",
          additions: 0,
          deletions: 5,
          patch: [
            "@@ -1,8 +1,3 @@",
            ...Array.from({ length: 5 }, (_, i) => `-import { unused${i} } from "./x";`),
            " import { add } from './add';",
            " ",
            " describe('add', () => {",
          ].join("\n"),
        },
      ],
      [],
    ],
    [
      "assertions removed",
      [changed("src/app.test.ts", ["  // checked elsewhere"], ["  expect(total).toBe(3);"])],
      ["assertions"],
    ],
    [
      "assertions commented out",
      [changed("tests/test_api.py", ["    # assert total == 3"], ["    assert total == 3"])],
      ["assertions"],
    ],
    [
      "Go assertions removed",
      [changed("pkg/api_test.go", ["\t_ = got"], ['\tif got != 3 { t.Errorf("got %d", got) }'])],
      ["assertions"],
    ],
    [
      "safe twin: an assertion rewritten",
      [changed("src/app.test.ts", ["  expect(total).toEqual(3);"], ["  expect(total).toBe(3);"])],
      [],
    ],
    [
      "safe twin: assertions moved to another test file",
      [
        changed("src/a.test.ts", [], ["  expect(total).toBe(3);"]),
        changed("src/b.test.ts", ["  expect(total).toBe(3);"]),
      ],
      [],
    ],
    [
      "safe twin: assertions removed from application code are not test assertions",
      [changed("src/app.ts", [], ["  assert(total === 3);"])],
      [],
    ],
    [
      "test-runner configuration",
      [changed("vitest.config.ts", ["    exclude: ['**/slow/**'],"])],
      ["runner_config"],
    ],
    [
      "nested test-runner configuration in another case",
      [changed("packages/web/Jest.Config.js", ["  testPathIgnorePatterns: ['/api/'],"])],
      ["runner_config"],
    ],
    [
      "conftest.py",
      [changed("tests/conftest.py", ["collect_ignore = ['test_api.py']"])],
      ["runner_config"],
    ],
    ["pytest.ini", [changed("pytest.ini", ["addopts = -k 'not api'"])], ["runner_config"]],
    ["tox.ini", [changed("tox.ini", ["commands = pytest || true"])], ["runner_config"]],
    [".mocharc.yml", [changed(".mocharc.yml", ["ignore: test/api/**"])], ["runner_config"]],
    [
      "karma.conf.js",
      [changed("karma.conf.js", ["  exclude: ['**/*.spec.js'],"])],
      ["runner_config"],
    ],
    [
      "playwright.config.ts",
      [changed("playwright.config.ts", ["  testIgnore: '**/login*',"])],
      ["runner_config"],
    ],
    [
      "a renamed-away runner config counts by its old name",
      [
        {
          path: "old/vitest.cfg",
          previousPath: "vitest.config.ts",
          status: "renamed",
          additions: 0,
          deletions: 0,
        },
      ],
      ["runner_config"],
    ],
  ])("%s", (_name, files, expected) => {
    expect(kinds(files)).toEqual(expected);
  });
});

describe("classification", () => {
  it.each([
    ["src/app.test.ts", "test"],
    ["spec/models/user_spec.rb", "test"],
    ["src/test/java/app/UserTest.java", "test"],
    ["app/src/androidTest/UserTest.kt", "test"],
    ["tests/App.Tests/UserTests.cs", "test"],
    ["pkg/api_test.go", "test"],
    ["features/login.feature", "test"],
    ["src/setupTests.ts", "support"],
    ["test-utils/render.tsx", "support"],
    ["spec/support/factories.rb", "test"],
    ["src/app.ts", "other"],
    ["src/latest.java", "other"],
    ["src/contest.py", "other"],
  ] as const)("%s is %s", (path, role) => {
    expect(testFileRole(path, TEST_PATHS)).toBe(role);
  });

  it.each([
    ["README.md", undefined],
    ["docs/x.mdx", undefined],
    ["notes.txt", undefined],
    ["src/app.TS", "js"],
    ["Makefile", undefined],
    [".eslintrc", undefined],
    ["src/lib.rs", "rust"],
  ] as const)("%s is written in %s", (path, language) => {
    expect(languageOf(path)).toBe(language);
  });

  it.each([
    ["vitest.config.mts", "vitest.config.*"],
    ["web/vitest.e2e.config.ts", "vitest.*.config.*"],
    ["jest.config.js", "jest.config.*"],
    [".mocharc.json", ".mocharc.*"],
    ["tests/conftest.py", "conftest.py"],
    ["codecov.yml", "codecov.yml"],
    ["src/vitest-helpers.ts", undefined],
    ["src/config.ts", undefined],
  ] as const)("%s is runner configuration: %s", (path, pattern) => {
    expect(testRunnerConfigPattern(path)).toBe(pattern);
  });
});

describe("hostile input", () => {
  it.each([
    ["a chain of it.it.it…", `${"it.".repeat(50_000)}x`],
    ["a run of brackets", `[${"[,".repeat(50_000)}`],
    ["many cfg_attr", "#[cfg_attr(".repeat(20_000)],
    ["many assertions", "assert ".repeat(30_000)],
    ["letters after a test word", `it.${"a".repeat(100_000)}`],
  ])("stays fast on %s", (_name, line) => {
    const files = ["src/a.test.ts", "tests/App.Tests/A.cs", "src/lib.rs", "tests/test_a.py"].map(
      (path) => changed(path, [line], [line]),
    );
    const started = performance.now();
    findTestWeakening(files, TEST_PATHS);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
