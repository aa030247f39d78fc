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

/** A change set's entry as far as the rules look: its path, and for a symlink its target. */
export interface ChangeEntry {
  path: string;
  /** `120000` is a symlink whose `content` is its target; `160000` (a submodule) is refused. */
  mode?: string | undefined;
  action?: string | undefined;
  content?: string | undefined;
  encoding?: string | undefined;
}

/**
 * Every broken path rule, in file order; a path used twice is reported at its second entry.
 * Entries may be bare paths, or files whose symlink targets and modes are checked too.
 */
export function checkChangePaths(entries: readonly (string | ChangeEntry)[]): PathProblem[] {
  const problems: PathProblem[] = [];
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    const file = typeof entry === "string" ? { path: entry } : entry;
    const path = file.path;
    const problem = pathProblem(path) ?? entryProblem(file);
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
  if (parts.some(isDisguisedGit)) {
    return "has a component that git or a file system reads as .git (case, trailing dots or spaces, 8.3 name, invisible characters)";
  }
  if (isDisguised(parts[0]!, ".gitmodules", "gitmod~")) {
    return "is .gitmodules: submodules are not written through Conveyor";
  }
  return undefined;
}

/**
 * Code points that HFS+ and some tools ignore in names, and other invisible ones (git's
 * `is_hfs_dotgit` list, zero-width joiners, soft hyphen, BOM, variation selectors): `.g\u200Dit`
 * is `.git` on a Mac.
 */
const IGNORABLE_RANGES: readonly (readonly [number, number])[] = [
  [0x00ad, 0x00ad],
  [0x034f, 0x034f],
  [0x115f, 0x1160],
  [0x17b4, 0x17b5],
  [0x180b, 0x180f],
  [0x200b, 0x200f],
  [0x202a, 0x202e],
  [0x2060, 0x206f],
  [0x3164, 0x3164],
  [0xfe00, 0xfe0f],
  [0xfeff, 0xfeff],
  [0xffa0, 0xffa0],
];

function isIgnorable(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  return IGNORABLE_RANGES.some(([from, to]) => code >= from && code <= to);
}

/**
 * A name as file systems may read it: Unicode-normalised (NFKC), invisible code points removed,
 * lower case, an NTFS stream suffix (`:$DATA`) cut off, and trailing dots and spaces removed
 * (Windows drops them).
 */
function normalisedName(name: string): string {
  return name
    .normalize("NFKC")
    .split("")
    .filter((char) => !isIgnorable(char))
    .join("")
    .toLowerCase()
    .replace(/:.*$/, "")
    .replace(/[. ]+$/, "");
}

/** Whether `name` reads as `target` somewhere, or as its NTFS 8.3 short name (`GIT~1`). */
function isDisguised(name: string, target: string, shortPrefix: string): boolean {
  const normal = normalisedName(name);
  return (
    normal === target ||
    (normal.startsWith(shortPrefix) && /^\d+$/.test(normal.slice(shortPrefix.length)))
  );
}

function isDisguisedGit(name: string): boolean {
  return isDisguised(name, ".git", "git~");
}

/** A symlink's target that leaves the repository or reaches into `.git`; a submodule entry. */
function entryProblem(file: ChangeEntry): string | undefined {
  if (file.mode === "160000")
    return "is a submodule entry; submodules are not written through Conveyor";
  if (file.mode !== "120000" || file.action === "delete") return undefined;
  let target = file.content ?? "";
  if (file.encoding === "base64") {
    try {
      target = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(target), (c) => c.charCodeAt(0)),
      );
    } catch {
      return "is a symlink whose target is not valid base64 UTF-8";
    }
  }
  if (target === "" || target.includes("\0") || [...target].some(isControl)) {
    return "is a symlink with an empty or unprintable target";
  }
  if (target.includes("\\")) return "is a symlink whose target contains a backslash";
  if (target.startsWith("/") || /^[a-zA-Z]:/.test(target) || target.startsWith("~")) {
    return "is a symlink to an absolute path, outside the repository";
  }
  // Resolve the target from the link's own directory; it must stay inside the repository.
  const resolved = file.path.split("/").slice(0, -1);
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (resolved.length === 0) return "is a symlink that points outside the repository";
      resolved.pop();
    } else {
      resolved.push(part);
    }
  }
  if (resolved.some((part) => part.toLowerCase() === ".git" || isDisguisedGit(part))) {
    return "is a symlink into .git";
  }
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
