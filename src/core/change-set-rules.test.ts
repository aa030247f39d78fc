import { describe, expect, it } from "vitest";
import { checkChangePaths } from "./change-set-rules.ts";

describe("change set paths", () => {
  it.each([
    ["src/index.ts", undefined],
    ["README.md", undefined],
    [".github/conveyor.yml", undefined],
    ["../etc/passwd", "contains . or .. segments"],
    ["src/../../x", "contains . or .. segments"],
    ["./a", "contains . or .. segments"],
    ["/etc/passwd", "is absolute"],
    ["C:/win", "is absolute"],
    [".git/config", "is inside .git"],
    ["sub/.GIT/hooks/pre-commit", "is inside .git"],
    ["a\\b", "contains a backslash; use / as the separator"],
    ["a//b", "has an empty segment (// or a trailing /)"],
    ["dir/", "has an empty segment (// or a trailing /)"],
    ["a\u0000b", "contains a NUL byte"],
    ["a\nb", "contains control characters"],
  ])("%j → %s", (path, problem) => {
    expect(checkChangePaths([path])[0]?.problem).toBe(problem);
  });

  // The review's probes, and their relatives: names git, Windows or macOS read as `.git`.
  it.each([
    ".git.",
    ".git./config",
    ".git ",
    ".GIT. . /hooks/pre-commit",
    "GIT~1/config",
    "sub/git~2/HEAD",
    ".g\u200Dit/config",
    ".\u200Cgit/config",
    ".git\uFEFF/config",
    "\uFF0Egit/config",
    ".gi\u0074\u00AD/config",
    ".git::$INDEX_ALLOCATION/config",
    ".git:stream",
    ".gitmodules",
    ".GITMODULES.",
    "GITMOD~1",
  ])("refuses the disguised %j", (path) => {
    expect(checkChangePaths([path])).toHaveLength(1);
  });

  it.each([
    ".github/x.yml",
    ".gitignore",
    "git/x",
    "src/.gitkeep",
    "a.git/x",
    "sub/.gitmodules",
    "gitx~1",
  ])("keeps %j, which is not .git", (path) => {
    expect(checkChangePaths([path])).toEqual([]);
  });

  const link = (path: string, content: string, extra: Record<string, string> = {}) => ({
    path,
    mode: "120000",
    action: "add",
    content,
    ...extra,
  });

  it.each([
    [link("evil", "/etc/passwd"), /absolute/],
    [link("evil", "../outside"), /outside the repository/],
    [link("a/b/evil", "../../../x"), /outside the repository/],
    [link("a/evil", "x/../../../y"), /outside the repository/],
    [link("evil", "C:/Windows"), /absolute/],
    [link("evil", "~/.ssh/id_rsa"), /absolute/],
    [link("evil", ".git/config"), /into .git/],
    [link("a/evil", "../.GIT./hooks"), /into .git/],
    [link("evil", btoa("/etc/shadow"), { encoding: "base64" }), /absolute/],
    [link("evil", "a\\b"), /backslash/],
    [link("evil", ""), /empty/],
    [{ path: "vendor/lib", mode: "160000", action: "add", content: "" }, /submodule/],
  ])("refuses %j", (entry, problem) => {
    expect(checkChangePaths([entry])[0]?.problem).toMatch(problem);
  });

  it.each([
    link("docs/current", "v2"),
    link("a/b/up", "../../README.md"),
    link("a/self", "./x/../y"),
    { ...link("gone", "/etc/passwd"), action: "delete" },
    { path: "x.txt", mode: "100644", action: "add", content: "/etc/passwd" },
  ])("keeps %j", (entry) => {
    expect(checkChangePaths([entry])).toEqual([]);
  });

  it("refuses the same path twice, whatever its case", () => {
    expect(checkChangePaths(["a.txt", "b.txt", "A.txt"])).toEqual([
      { index: 2, path: "A.txt", problem: "appears twice in the change set" },
    ]);
  });
});
