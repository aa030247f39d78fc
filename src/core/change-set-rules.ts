/**
 * Paths a change set may touch. The runner is not trusted: a path that escapes the repository,
 * names git's own files, or is ambiguous is refused before anything is stored.
 */
export interface PathProblem {
  /** Position of the offending entry in the change set's `files` (0-based). */
  index: number;
  path: string;
  problem: string;
}

/** Every broken path rule, in file order; a path used twice is reported at its second entry. */
export function checkChangePaths(paths: readonly string[]): PathProblem[] {
  const problems: PathProblem[] = [];
  const seen = new Set<string>();
  paths.forEach((path, index) => {
    const problem = pathProblem(path);
    if (problem) problems.push({ index, path, problem });
    const key = path.toLowerCase();
    if (seen.has(key)) {
      problems.push({ index, path, problem: "appears twice in the change set" });
    }
    seen.add(key);
  });
  return problems;
}

function isControl(char: string): boolean {
  const code = char.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

function pathProblem(path: string): string | undefined {
  if (path.includes("\0")) return "contains a NUL byte";
  if (path.includes("\\")) return "contains a backslash; use / as the separator";
  if (path.startsWith("/") || /^[a-zA-Z]:/.test(path)) return "is absolute";
  const parts = path.split("/");
  if (parts.some((p) => p === "")) return "has an empty segment (// or a trailing /)";
  if (parts.some((p) => p === "." || p === "..")) return "contains . or .. segments";
  if (parts.some((p) => p.toLowerCase() === ".git")) return "is inside .git";
  if ([...path].some(isControl)) return "contains control characters";
  return undefined;
}

/**
 * The change set may not be written at all; thrown by the pull request writer before it sends any
 * request, so nothing is left behind on GitHub. It is an expected outcome rather than a failure
 * (retrying cannot help): callers catch it with `instanceof` and tell a person, using `message`,
 * which reads as a clause without a final period.
 */
export class PullRequestRefused extends Error {
  override readonly name = "PullRequestRefused";
  constructor(
    message: string,
    /** The offending paths, when the refusal is about paths. */
    readonly paths: readonly string[] = [],
  ) {
    super(message);
  }
}
