import { describe, expect, it } from "vitest";
import {
  createGlobSet,
  firstMatch,
  globListProblem,
  globProblem,
  MAX_GLOB_ALTERNATIVES,
  MAX_GLOB_LIST_WILDCARDS,
  matchesAny,
  matchesGlob,
} from "./glob.ts";
import { parseRepoConfig } from "./repo-config.ts";

describe("matchesGlob", () => {
  it.each([
    // A pattern without "/" matches the basename at any depth.
    ["*.pem", "server.pem", true],
    ["*.pem", "deploy/keys/server.pem", true],
    ["*.pem", ".pem", true],
    ["*.pem", "server.pem.txt", false],
    ["*.pem", "keys.pem/readme.md", false],
    ["Dockerfile*", "Dockerfile", true],
    ["Dockerfile*", "services/api/Dockerfile.prod", true],
    ["Dockerfile*", "docs/Dockerfile-notes/readme.md", false],
    [".env*", ".env", true],
    [".env*", "config/.env.production", true],
    [".env*", "src/environment.ts", false],
    ["CODEOWNERS", "docs/CODEOWNERS", true],
    ["CODEOWNERS", "CODEOWNERS.md", false],
    ["package.json", "package.json", true],
    ["package.json", "packages/web/package.json", true],
    // Case-sensitive, like git.
    ["*.pem", "SERVER.PEM", false],
    ["Dockerfile*", "dockerfile", false],
    // A "/" anywhere anchors the pattern to the root.
    [".github/**", ".github/workflows/ci.yml", true],
    [".github/**", "src/.github/workflows/ci.yml", false],
    [".github/conveyor.yml", ".github/conveyor.yml", true],
    [".github/conveyor.yml", "x/.github/conveyor.yml", false],
    ["src/*.ts", "src/a.ts", true],
    ["src/*.ts", "src/a/b.ts", false],
    ["/app.yml", "app.yml", true],
    ["/app.yml", "config/app.yml", false],
    ["/Dockerfile*", "Dockerfile.dev", true],
    ["/Dockerfile*", "api/Dockerfile.dev", false],
    // ** across segments, including none.
    ["**/migrations/**", "migrations/001.sql", true],
    ["**/migrations/**", "db/migrations/001.sql", true],
    ["**/migrations/**", "db/pg/migrations/meta/x.json", true],
    ["**/migrations/**", "db/migrationsx/001.sql", false],
    ["**/auth/**", "src/auth/login.ts", true],
    ["**/auth/**", "src/oauth/login.ts", false],
    ["**/auth/**", "src/auth.ts", false],
    ["a/**/b", "a/b", true],
    ["a/**/b", "a/x/b", true],
    ["a/**/b", "a/x/y/b", true],
    ["a/**/b", "a/xb", false],
    ["a/**/**/b", "a/b", true],
    ["**", "anything/at/all.txt", true],
    ["**/*.test.*", "a.test.ts", true],
    ["**/*.test.*", "src/deep/a.test.tsx", true],
    ["**/*.test.*", "src/a.testing.ts", false],
    ["**/test/**", "test/helpers.ts", true],
    ["**/test/**", "pkg/test/x.ts", true],
    ["**/test/**", "pkg/latest/x.ts", false],
    ["**/*_test.go", "pkg/x_test.go", true],
    ["**/test_*.py", "tests/unit/test_api.py", true],
    ["**/test_*.py", "src/api_test.py", false],
    // ** inside a segment is a plain *.
    ["src/a**b", "src/axxb", true],
    ["src/a**b", "src/ax/xb", false],
    // ? is one character, never "/".
    ["file?.txt", "file1.txt", true],
    ["file?.txt", "file12.txt", false],
    ["a?b", "a/b", false],
    // Braces, nested, with "/" inside, each alternative on its own.
    ["*.{pem,key}", "certs/a.key", true],
    ["*.{pem,key}", "certs/a.crt", false],
    ["{src,lib}/auth/**", "lib/auth/x.ts", true],
    ["{src,lib}/auth/**", "app/auth/x.ts", false],
    ["*.{js,{ts,tsx}}", "a/b.tsx", true],
    ["{CODEOWNERS,docs/x}", "deep/CODEOWNERS", true],
    ["{CODEOWNERS,docs/x}", "deep/docs/x", false],
    ["{a}", "{a}", true],
    ["{a", "{a", true],
    // Escapes and regular-expression characters are literal.
    ["\\*.txt", "*.txt", true],
    ["\\*.txt", "a.txt", false],
    ["a+b(c).txt", "a+b(c).txt", true],
    ["a.b", "axb", false],
    ["$x^", "$x^", true],
    // A trailing "/" is everything under the directory.
    ["docs/", "docs/guide/a.md", true],
    ["docs/", "src/docs/a.md", false],
    // Hostile file names: newlines must not slip past a pattern.
    ["**/auth/**", "x\n/auth/\nkey", true],
    ["*.pem", "a\nb.pem", true],
    // A leading "/" on the path is ignored.
    [".github/**", "/.github/x", true],
  ])("%j matches %j: %s", (pattern, path, expected) => {
    expect(matchesGlob(path, pattern)).toBe(expected);
  });

  it("matches any of several patterns and names the first that matched", () => {
    expect(matchesAny("src/auth/x.ts", ["*.md", "**/auth/**"])).toBe(true);
    expect(matchesAny("src/x.ts", ["*.md", "**/auth/**"])).toBe(false);
    expect(matchesAny("src/x.ts", [])).toBe(false);
    expect(firstMatch("a/b.pem", ["*.key", "*.pem", "a/**"])).toBe("*.pem");
    expect(firstMatch("a/b.ts", ["*.key"])).toBeUndefined();
  });

  it("stays fast on a pattern built to backtrack", () => {
    const started = performance.now();
    expect(matchesGlob(`${"a".repeat(5000)}b`, "*a*a*a*a*a*a*a*c")).toBe(false);
    expect(matchesGlob(`${"a/".repeat(2000)}x`, "**/a/**/a/**/a/**/y")).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("refuses to expand a pattern past the limit rather than guess", () => {
    expect(() => matchesGlob("x", "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")).toThrow(/alternatives/);
  });
});

describe("globProblem", () => {
  it.each([
    "*.pem",
    ".github/**",
    "/app.yml",
    "**/migrations/**",
    "*.{pem,key}",
    "docs/",
    "\\[id\\].tsx",
  ])("accepts %j", (pattern) => {
    expect(globProblem(pattern)).toBeUndefined();
  });

  it.each([
    ["", /empty/],
    ["x".repeat(201), /longer/],
    ["[Dd]ockerfile", /character classes/],
    ["a/{b,c", /unbalanced '\{'/],
    ["a}", /unbalanced '\}'/],
    ["a\\", /escape/],
    ["a//b", /empty path segment/],
    ["/", /empty path segment/],
    ["./src/**", /relative to the repository root/],
    ["src/../.github/**", /relative to the repository root/],
    ["a\nb", /control/],
    [`${"{a,b}".repeat(7)}`, new RegExp(`more than ${MAX_GLOB_ALTERNATIVES}`)],
  ])("refuses %j", (pattern, problem) => {
    expect(globProblem(pattern)).toMatch(problem);
  });
});

describe("hostile patterns", () => {
  // The review's probes: patterns built so a backtracking matcher tries every split of a path.
  const refused = [
    [`${"*a".repeat(48)}*c`, /too complex: 49 wildcards/],
    ["{*a*,*b*}".repeat(6), /too complex/],
    [
      "**/a*a*a*a*a*a*a*a*a*a*a*a*/**/a*a*a*a*a*a*a*a*a*a*a*a*/**/a*a*a*a*a*a*a*a*/**/c",
      /too complex/,
    ],
  ] as const;

  it.each(refused)("refuses %j when the config is loaded, with the reason", (pattern, reason) => {
    expect(globProblem(pattern)).toMatch(reason);
    const loaded = parseRepoConfig({ merge: { protected_paths: ["docs/**", pattern] } });
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    expect(loaded.problems).toEqual([
      { key: "merge.protected_paths.1", message: expect.stringMatching(reason) },
    ]);
  });

  it("refuses a list whose patterns are acceptable alone but too costly together", () => {
    const each = `${"*a".repeat(31)}*`;
    const list = Array.from({ length: 17 }, (_, i) => `${each}${i}`);
    expect(list.every((pattern) => globProblem(pattern) === undefined)).toBe(true);
    expect(globListProblem(list)).toMatch(`at most ${MAX_GLOB_LIST_WILDCARDS}`);
    const loaded = parseRepoConfig({ merge: { test_paths: list } });
    expect(loaded.ok ? [] : loaded.problems).toEqual([
      { key: "merge.test_paths", message: expect.stringMatching(/too complex/) },
    ]);
    expect(parseRepoConfig({ merge: { test_paths: list.slice(0, 16) } }).ok).toBe(true);
  });

  it("matches the costliest accepted patterns against a hostile 3,000-file pull request in linear time", () => {
    // 16 patterns of 32 wildcards each: the most a config list may hold.
    const patterns = Array.from({ length: 16 }, (_, i) =>
      i % 2
        ? `${"*a".repeat(31)}*${i}`
        : `**/${"a*".repeat(10)}/**/${"a*".repeat(10)}/**/${"a*".repeat(5)}/**/c${i}`,
    );
    expect(globListProblem(patterns)).toBeUndefined();
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const files = Array.from({ length: 3000 }, (_, n) =>
      n % 3 === 0
        ? `${"a/".repeat(200)}${"a".repeat(n % 50)}b`
        : n % 3 === 1
          ? `${`${"a".repeat(255)}/`.repeat(15)}${"a".repeat(250 + (n % 5))}`
          : Array.from({ length: 400 }, () => "aaab/"[Math.floor(random() * 4.4)])
              .join("")
              .replace(/\/+/g, "/")
              .replace(/^\/|\/$/g, "x"),
    );
    const set = createGlobSet(patterns);
    const started = performance.now();
    const matched = files.filter((file) => set.first(file) !== undefined);
    const elapsed = performance.now() - started;
    // A backtracking matcher took ~38 ms a file on such input (about 2 minutes for the PR); the
    // linear one takes well under a second on an idle machine. The bound only has to tell the two
    // apart, with room for a loaded one.
    expect(elapsed).toBeLessThan(10_000);
    expect(matched).toEqual([]);
    // The same set still finds what it should.
    expect(set.first(`${"a".repeat(40)}1`)).toBe(patterns[1]);
    expect(set.first(`x/${"a".repeat(10)}/${"a".repeat(10)}/y/${"a".repeat(5)}/z/c0`)).toBe(
      patterns[0],
    );
  });
});
