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

  it("refuses the same path twice, whatever its case", () => {
    expect(checkChangePaths(["a.txt", "b.txt", "A.txt"])).toEqual([
      { index: 2, path: "A.txt", problem: "appears twice in the change set" },
    ]);
  });
});
