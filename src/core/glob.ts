/**
 * A small glob matcher for repository paths (`src/a/b.ts`, as GitHub lists a pull request's files):
 *
 * - `*` matches any characters within one path segment (dotfiles included: `*.pem` matches `.pem`);
 * - `**` as a whole segment matches zero or more segments (`a/**\/b` matches `a/b` and `a/x/y/b`;
 *   `a/**` matches everything under `a`); `**` inside a segment (`a**b`) is a plain `*`;
 * - `?` matches one character other than `/`;
 * - `{a,b}` matches either alternative (nesting and `/` inside alternatives are fine; a brace
 *   without a top-level comma, or an unbalanced one, is literal);
 * - `\x` matches `x` literally;
 * - a leading `/` anchors the pattern to the repository root; a pattern with a `/` anywhere else is
 *   anchored too (`.github/**` is the root's `.github`); a pattern without `/` matches the basename
 *   at any depth (`*.pem`, `Dockerfile*`, `.env*`, `CODEOWNERS`);
 * - a trailing `/` means everything under that directory (`docs/` is `docs/**`);
 * - matching is case-sensitive, like git.
 *
 * Brace alternatives are expanded per pattern, and each alternative follows the rules above on its
 * own (`{CODEOWNERS,docs/x}` is a basename pattern and an anchored one). `[...]` classes are not
 * supported (brackets are literal here); {@link globProblem} refuses them in configuration, so an
 * author finds out instead of getting a pattern that silently matches nothing they meant.
 *
 * Matching walks segments and characters with the classic single-backtrack wildcard algorithm
 * (no regular expressions), so a hostile file name cannot make it slow.
 */

/** Most alternatives a pattern's `{…}` may expand to. */
export const MAX_GLOB_ALTERNATIVES = 64;
/** Longest pattern accepted in configuration. */
export const MAX_GLOB_LENGTH = 200;

/** Whether `path` matches `pattern`. Throws only for a pattern {@link globProblem} refuses as too large. */
export function matchesGlob(path: string, pattern: string): boolean {
  const subject = path.startsWith("/") ? path.slice(1) : path;
  return compile(pattern).some((compiled) => matches(subject, compiled));
}

/** Whether `path` matches any of `patterns`. */
export function matchesAny(path: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => matchesGlob(path, pattern));
}

/** The first pattern of `patterns` that `path` matches, for reasons that name it. */
export function firstMatch(path: string, patterns: readonly string[]): string | undefined {
  return patterns.find((pattern) => matchesGlob(path, pattern));
}

/** Many patterns compiled once, matched against one path split once. */
export interface GlobSet {
  /** The first pattern (in the given order) that `path` matches, or undefined. */
  first(path: string): string | undefined;
}

/**
 * A set of patterns for matching many paths: the path is split into segments and characters once
 * per call instead of once per pattern, which matters for a pull request of 3,000 files against a
 * few hundred built-in patterns. With `ignoreCase`, patterns and paths are compared in lower case.
 * Throws only for a pattern {@link globProblem} refuses as too large.
 */
export function createGlobSet(
  patterns: readonly string[],
  options: { ignoreCase?: boolean } = {},
): GlobSet {
  const ignoreCase = options.ignoreCase ?? false;
  const compiled = patterns.map((pattern) => ({
    pattern,
    alternatives: compile(ignoreCase ? pattern.toLowerCase() : pattern),
  }));
  return {
    first(path) {
      const subject = (path.startsWith("/") ? path.slice(1) : path)[
        ignoreCase ? "toLowerCase" : "toString"
      ]();
      const parts = subject.split("/");
      const chars: (string[] | undefined)[] = [];
      const charsOf = (i: number) => {
        let cached = chars[i];
        if (!cached) {
          cached = [...(parts[i] ?? "")];
          chars[i] = cached;
        }
        return cached;
      };
      const partSet = new Set(parts);
      for (const { pattern, alternatives } of compiled) {
        for (const alternative of alternatives) {
          if (matchParts(alternative, parts, charsOf, partSet)) return pattern;
        }
      }
      return undefined;
    },
  };
}

/**
 * Why a pattern is not acceptable in configuration, or undefined when it is. Refused: empty or
 * over-long patterns, `[...]` classes (unsupported), unbalanced braces, a trailing `\`, empty
 * segments (`a//b`), `.` and `..` segments (paths are relative to the root), and patterns that
 * expand to more than {@link MAX_GLOB_ALTERNATIVES} alternatives.
 */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "empty pattern";
  if (pattern.length > MAX_GLOB_LENGTH) return `longer than ${MAX_GLOB_LENGTH} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001F\u007F]/.test(pattern)) return "control characters are not allowed";
  let depth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      if (i === pattern.length - 1) return "ends with an unfinished escape '\\'";
      i++;
    } else if (ch === "[" || ch === "]") {
      return "character classes ([...]) are not supported; use {a,b} or escape with \\[";
    } else if (ch === "{") {
      depth++;
    } else if (ch === "}") {
      depth--;
      if (depth < 0) return "unbalanced '}'";
    }
  }
  if (depth !== 0) return "unbalanced '{'";
  const alternatives = expandBraces(pattern, MAX_GLOB_ALTERNATIVES + 1);
  if (alternatives.length > MAX_GLOB_ALTERNATIVES) {
    return `expands to more than ${MAX_GLOB_ALTERNATIVES} alternatives`;
  }
  for (const alternative of alternatives) {
    const body = alternative.replace(/^\//, "").replace(/\/$/, "");
    const segments = body.split("/");
    if (body === "" || segments.some((s) => s === "")) return "empty path segment";
    if (segments.some((s) => s === "." || s === "..")) {
      return "'.' and '..' segments are not allowed; paths are relative to the repository root";
    }
  }
  return undefined;
}

/** One unit of a segment pattern: a literal character, `?`, or `*` (as `"**"`: any run). */
type Token = { kind: "char"; ch: string } | { kind: "one" } | "**";
/** A path segment's pattern, or `**` (any number of whole segments). */
type Segment = Token[] | "**";
interface Compiled {
  /** No `/` in the pattern: only the path's last segment is compared. */
  basename: boolean;
  segments: Segment[];
  /** Segments without wildcards: a path lacking one of them cannot match (a cheap first test). */
  literals: string[];
}

// Patterns come from a handful of configs; the cache is bounded anyway so a long-running server
// cannot grow it without limit.
const MAX_CACHE = 1000;
const cache = new Map<string, Compiled[]>();

function compile(pattern: string): Compiled[] {
  const hit = cache.get(pattern);
  if (hit) return hit;
  const alternatives = expandBraces(pattern, MAX_GLOB_ALTERNATIVES + 1);
  if (alternatives.length > MAX_GLOB_ALTERNATIVES) {
    throw new Error(`glob pattern expands to more than ${MAX_GLOB_ALTERNATIVES} alternatives`);
  }
  const compiled = alternatives.map(compileAlternative);
  if (cache.size >= MAX_CACHE) cache.clear();
  cache.set(pattern, compiled);
  return compiled;
}

function compileAlternative(alternative: string): Compiled {
  let body = alternative;
  const anchored = body.startsWith("/");
  if (anchored) body = body.slice(1);
  if (body.endsWith("/")) body = `${body}**`;
  const parts = splitUnescaped(body);
  const segments = parts
    .filter((part, i) => !(part === "**" && parts[i - 1] === "**"))
    .map((part): Segment => (part === "**" ? "**" : tokenize(part)));
  const literals = segments.flatMap((segment) =>
    segment !== "**" && segment.every((t) => t !== "**" && t.kind === "char")
      ? [segment.map((t) => (t as { ch: string }).ch).join("")]
      : [],
  );
  return { basename: !anchored && parts.length === 1, segments, literals };
}

function matches(path: string, compiled: Compiled): boolean {
  const parts = path.split("/");
  return matchParts(compiled, parts, (i) => [...(parts[i] ?? "")], new Set(parts));
}

/**
 * Matches split path `parts` (with their characters from `charsOf`, which may cache). The last
 * segment is compared first when the pattern ends in one: most paths fail there, cheaply.
 */
function matchParts(
  compiled: Compiled,
  parts: readonly string[],
  charsOf: (index: number) => readonly string[],
  partSet: ReadonlySet<string>,
): boolean {
  const lastIndex = parts.length - 1;
  const last = compiled.segments[compiled.segments.length - 1];
  if (compiled.basename) return last === "**" || matchTokens(last ?? [], charsOf(lastIndex));
  if (last !== undefined && last !== "**" && !matchTokens(last, charsOf(lastIndex))) return false;
  if (!compiled.literals.every((literal) => partSet.has(literal))) return false;
  const indices = parts.map((_, i) => i);
  return matchSequence(compiled.segments, indices, (segment, i) =>
    matchTokens(segment, charsOf(i)),
  );
}

/** Splits on `/` that are not escaped. */
function splitUnescaped(text: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && i + 1 < text.length) {
      current += ch + text[++i];
    } else if (ch === "/") {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** A segment's pattern as tokens, by code point (`?` matches one character, emoji included). */
function tokenize(segment: string): Token[] {
  const chars = [...segment];
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === "\\" && i + 1 < chars.length) {
      tokens.push({ kind: "char", ch: chars[++i]! });
    } else if (ch === "*") {
      // `**` inside a segment is a plain `*`.
      if (tokens.at(-1) !== "**") tokens.push("**");
    } else if (ch === "?") {
      tokens.push({ kind: "one" });
    } else {
      tokens.push({ kind: "char", ch });
    }
  }
  return tokens;
}

function matchTokens(tokens: readonly Token[], chars: readonly string[]): boolean {
  return matchSequence(tokens, chars, unitMatches);
}

function unitMatches(token: Exclude<Token, "**">, ch: string): boolean {
  return token.kind === "one" || token.ch === ch;
}

/**
 * Wildcard matching of a pattern (units and stars) against a sequence, in O(pattern × subject)
 * steps: on a mismatch only the most recent star grows by one, which is enough because any
 * earlier star's extra length can be absorbed by the later one. No regular expressions, so no
 * catastrophic backtracking on a hostile file name.
 */
function matchSequence<P, S>(
  pattern: readonly (P | "**")[],
  subject: readonly S[],
  unitMatches: (unit: P, item: S) => boolean,
): boolean {
  let p = 0;
  let s = 0;
  let star = -1;
  let starS = 0;
  while (s < subject.length) {
    const unit = pattern[p];
    if (unit === "**") {
      star = p++;
      starS = s;
    } else if (unit !== undefined && unitMatches(unit, subject[s]!)) {
      p++;
      s++;
    } else if (star >= 0) {
      p = star + 1;
      s = ++starS;
    } else {
      return false;
    }
  }
  while (pattern[p] === "**") p++;
  return p === pattern.length;
}

/**
 * Expands the first top-level `{a,b}` group and recurses, stopping once `limit` alternatives exist
 * (the caller refuses the pattern then). Escapes are kept for the matcher to interpret.
 */
function expandBraces(pattern: string, limit: number): string[] {
  const group = findBraceGroup(pattern);
  if (!group) return [pattern];
  const prefix = pattern.slice(0, group.open);
  const suffix = pattern.slice(group.close + 1);
  const out: string[] = [];
  for (const option of group.options) {
    for (const expanded of expandBraces(`${prefix}${option}${suffix}`, limit)) {
      out.push(expanded);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

/** The first balanced `{…}` with a top-level comma; braces without one are literal text. */
function findBraceGroup(
  pattern: string,
): { open: number; close: number; options: string[] } | undefined {
  for (let open = 0; open < pattern.length; open++) {
    if (pattern[open] === "\\") {
      open++;
      continue;
    }
    if (pattern[open] !== "{") continue;
    let depth = 0;
    let start = open + 1;
    const options: string[] = [];
    for (let i = open; i < pattern.length; i++) {
      const ch = pattern[i];
      if (ch === "\\") {
        i++;
      } else if (ch === "{") {
        depth++;
      } else if (ch === "}") {
        depth--;
        if (depth === 0) {
          options.push(pattern.slice(start, i));
          if (options.length > 1) return { open, close: i, options };
          break;
        }
      } else if (ch === "," && depth === 1) {
        options.push(pattern.slice(start, i));
        start = i + 1;
      }
    }
  }
  return undefined;
}
