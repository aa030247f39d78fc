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
 * Every pattern compiles once into a small nondeterministic automaton (its brace alternatives
 * side by side), and a {@link GlobSet} runs all of its patterns' automata together in one pass
 * over the path, keeping the set of live states: the work per path is at most its length times
 * the number of states, with no backtracking, so neither a hostile path nor a hostile pattern can
 * make it slow. {@link globProblem} refuses a pattern whose automaton would be too large
 * ({@link MAX_GLOB_STATES} states), which bounds that factor.
 */

/** Most alternatives a pattern's `{…}` may expand to. */
export const MAX_GLOB_ALTERNATIVES = 64;
/** Longest pattern accepted in configuration. */
export const MAX_GLOB_LENGTH = 200;

/** Most automaton states one pattern may compile to (all its alternatives together). */
export const MAX_GLOB_STATES = 600;
/**
 * Most wildcards (`*`, `**`) one pattern may hold, all alternatives together: each can keep a
 * state live for a whole path, so they bound the work per character.
 */
export const MAX_GLOB_WILDCARDS = 32;
/** Most wildcards a whole list of patterns (one config key) may hold. */
export const MAX_GLOB_LIST_WILDCARDS = 512;

/** Whether `path` matches `pattern`. Throws only for a pattern {@link globProblem} refuses as too large. */
export function matchesGlob(path: string, pattern: string): boolean {
  return globSetOf([pattern]).first(path) !== undefined;
}

/** Whether `path` matches any of `patterns`. */
export function matchesAny(path: string, patterns: readonly string[]): boolean {
  return globSetOf(patterns).first(path) !== undefined;
}

/** The first pattern of `patterns` that `path` matches, for reasons that name it. */
export function firstMatch(path: string, patterns: readonly string[]): string | undefined {
  return globSetOf(patterns).first(path);
}

/** Many patterns compiled once, matched against one path in one pass. */
export interface GlobSet {
  /** The first pattern (in the given order) that `path` matches, or undefined. */
  first(path: string): string | undefined;
}

/**
 * A set of patterns for matching many paths, compiled once: one pass over the path's last
 * segment for the basename patterns, one over the whole path for the others, each carrying every
 * pattern's automaton at once. With `ignoreCase`, patterns and paths are compared in lower case.
 * Throws only for a pattern {@link globProblem} refuses.
 */
export function createGlobSet(
  patterns: readonly string[],
  options: { ignoreCase?: boolean } = {},
): GlobSet {
  const ignoreCase = options.ignoreCase ?? false;
  const whole = new Automaton();
  const basename = new Automaton();
  patterns.forEach((pattern, index) => {
    for (const alternative of compile(ignoreCase ? pattern.toLowerCase() : pattern)) {
      (alternative.basename ? basename : whole).add(alternative.atoms, index);
    }
  });
  whole.seal();
  basename.seal();
  return {
    first(path) {
      let subject = path.startsWith("/") ? path.slice(1) : path;
      if (ignoreCase) subject = subject.toLowerCase();
      const last = subject.slice(subject.lastIndexOf("/") + 1);
      const index = Math.min(basename.run(last), whole.run(subject));
      return index === Number.POSITIVE_INFINITY ? undefined : patterns[index];
    },
  };
}

// Sets are compiled once per list of patterns (a config version's `merge.protected_paths`, say):
// keyed by the list's contents, bounded so a long-running server cannot grow it without limit.
const MAX_CACHE = 500;
const setCache = new Map<string, GlobSet>();

/** The compiled set for `patterns`, from the cache when this exact list was compiled before. */
export function globSetOf(patterns: readonly string[]): GlobSet {
  const key = JSON.stringify(patterns);
  const hit = setCache.get(key);
  if (hit) return hit;
  const set = createGlobSet(patterns);
  if (setCache.size >= MAX_CACHE) setCache.clear();
  setCache.set(key, set);
  return set;
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
  const compiled = alternatives.map(compileAlternative);
  const wildcards = compiled.reduce((sum, alternative) => sum + alternative.wildcards, 0);
  if (wildcards > MAX_GLOB_WILDCARDS) {
    return `too complex: ${wildcards} wildcards across its alternatives (at most ${MAX_GLOB_WILDCARDS})`;
  }
  const states = compiled.reduce((sum, alternative) => sum + alternative.states, 0);
  if (states > MAX_GLOB_STATES) {
    return `too complex: its alternatives compile to ${states} matcher states (at most ${MAX_GLOB_STATES}); use fewer alternatives or wildcards`;
  }
  return undefined;
}

/**
 * Why a list of patterns (one config key, each pattern acceptable on its own) is too costly to
 * match together, or undefined: more than {@link MAX_GLOB_LIST_WILDCARDS} wildcards in all.
 */
export function globListProblem(patterns: readonly string[]): string | undefined {
  let wildcards = 0;
  for (const pattern of patterns) {
    if (globProblem(pattern) !== undefined) continue;
    wildcards += compile(pattern).reduce((sum, alternative) => sum + alternative.wildcards, 0);
  }
  if (wildcards > MAX_GLOB_LIST_WILDCARDS) {
    return `too complex: the patterns hold ${wildcards} wildcards in all (at most ${MAX_GLOB_LIST_WILDCARDS})`;
  }
  return undefined;
}

/**
 * One step of a compiled pattern, over the characters of a path:
 * a literal character, `?` (one character but `/`), `*` (any run without `/`), `/`,
 * `**\/` (nothing, or any run ending in `/`), `/**` (nothing, or `/` and any run) and a lone `**`
 * (anything).
 */
type Atom =
  | { kind: "char"; ch: string }
  | { kind: "one" }
  | { kind: "star" }
  | { kind: "slash" }
  | { kind: "deep-prefix" }
  | { kind: "deep-suffix" }
  | { kind: "all" };

interface Compiled {
  /** No `/` in the pattern: matched against the path's last segment only. */
  basename: boolean;
  atoms: Atom[];
  /** The automaton states the atoms need: the complexity {@link globProblem} bounds. */
  states: number;
  /** Atoms that loop (`*`, `**`): each may stay live for a whole path. */
  wildcards: number;
}

const compileCache = new Map<string, Compiled[]>();

function compile(pattern: string): Compiled[] {
  const hit = compileCache.get(pattern);
  if (hit) return hit;
  const alternatives = expandBraces(pattern, MAX_GLOB_ALTERNATIVES + 1);
  if (alternatives.length > MAX_GLOB_ALTERNATIVES) {
    throw new Error(`glob pattern expands to more than ${MAX_GLOB_ALTERNATIVES} alternatives`);
  }
  const compiled = alternatives.map(compileAlternative);
  if (compileCache.size >= MAX_CACHE) compileCache.clear();
  compileCache.set(pattern, compiled);
  return compiled;
}

function compileAlternative(alternative: string): Compiled {
  let body = alternative;
  const anchored = body.startsWith("/");
  if (anchored) body = body.slice(1);
  if (body.endsWith("/")) body = `${body}**`;
  const raw = splitUnescaped(body);
  const parts = raw.filter((part, i) => !(part === "**" && raw[i - 1] === "**"));
  const atoms: Atom[] = [];
  if (parts.length === 1 && parts[0] === "**") {
    atoms.push({ kind: "all" });
  } else {
    parts.forEach((part, i) => {
      if (part === "**") {
        if (i === parts.length - 1) {
          atoms.push({ kind: "deep-suffix" });
        } else {
          if (i > 0) atoms.push({ kind: "slash" });
          atoms.push({ kind: "deep-prefix" });
        }
        return;
      }
      if (i > 0 && parts[i - 1] !== "**") atoms.push({ kind: "slash" });
      atoms.push(...tokenize(part));
    });
  }
  // Each atom adds at most two states; a start state besides.
  const states = 1 + atoms.reduce((sum, atom) => sum + (atom.kind.startsWith("deep") ? 2 : 1), 0);
  const wildcards = atoms.filter(
    (atom) => atom.kind === "star" || atom.kind.startsWith("deep") || atom.kind === "all",
  ).length;
  return { basename: !anchored && raw.length === 1, atoms, states, wildcards };
}

/** A segment's pattern as atoms, by code point (`?` matches one character, emoji included). */
function tokenize(segment: string): Atom[] {
  const chars = [...segment];
  const atoms: Atom[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === "\\" && i + 1 < chars.length) {
      atoms.push({ kind: "char", ch: chars[++i]! });
    } else if (ch === "*") {
      // `**` inside a segment is a plain `*`.
      if (atoms.at(-1)?.kind !== "star") atoms.push({ kind: "star" });
    } else if (ch === "?") {
      atoms.push({ kind: "one" });
    } else {
      atoms.push({ kind: "char", ch });
    }
  }
  return atoms;
}

/** A set of live states, what it accepts, and where each character read from it leads. */
interface DfaNode {
  states: number[];
  accept: number;
  next: Map<string, DfaNode>;
}

/** No live state left: nothing can match any more. */
const DEAD: DfaNode = { states: [], accept: Number.POSITIVE_INFINITY, next: new Map() };

/** Remembered sets of live states per automaton before the memory starts over. */
const MAX_DFA_NODES = 4096;

/** What a state's edge consumes: one given character, any but `/`, or any. */
type Edge = { ch: string; to: number } | { ch: "not-slash" | "any"; to: number; wildcard: true };

/**
 * Thompson automata of several patterns side by side. Running one keeps the set of live states
 * while it reads the path once, so its cost is the path's length times the live states, never
 * more: no backtracking.
 */
class Automaton {
  private readonly edges: Edge[][] = [];
  private readonly epsilon: number[][] = [];
  /** The pattern index a state accepts for, or -1. */
  private readonly accepts: number[] = [];
  private readonly starts: number[] = [];
  /** Each state with every state reachable from it without reading a character. */
  private closures: number[][] = [];
  private seen = new Int32Array(0);
  private stamp = 0;
  private readonly nodes = new Map<string, DfaNode>();
  private start: DfaNode | undefined;

  private state(): number {
    this.edges.push([]);
    this.epsilon.push([]);
    this.accepts.push(-1);
    return this.edges.length - 1;
  }

  add(atoms: readonly Atom[], index: number): void {
    let at = this.state();
    this.starts.push(at);
    for (const atom of atoms) {
      const from = at;
      switch (atom.kind) {
        case "char":
        case "slash":
          at = this.state();
          this.edges[from]!.push({ ch: atom.kind === "slash" ? "/" : atom.ch, to: at });
          break;
        case "one":
          at = this.state();
          this.edges[from]!.push({ ch: "not-slash", to: at, wildcard: true });
          break;
        case "star":
          at = this.state();
          this.epsilon[from]!.push(at);
          this.edges[at]!.push({ ch: "not-slash", to: at, wildcard: true });
          break;
        case "all":
          at = this.state();
          this.epsilon[from]!.push(at);
          this.edges[at]!.push({ ch: "any", to: at, wildcard: true });
          break;
        case "deep-prefix": {
          // Nothing, or anything that ends in "/".
          const run = this.state();
          at = this.state();
          this.epsilon[from]!.push(at, run);
          this.edges[run]!.push({ ch: "any", to: run, wildcard: true }, { ch: "/", to: at });
          break;
        }
        case "deep-suffix": {
          // Nothing, or "/" and anything after it.
          const run = this.state();
          at = this.state();
          this.epsilon[from]!.push(at);
          this.edges[from]!.push({ ch: "/", to: run });
          this.edges[run]!.push({ ch: "any", to: run, wildcard: true });
          this.epsilon[run]!.push(at);
          break;
        }
      }
    }
    this.accepts[at] = index;
  }

  seal(): void {
    this.closures = this.epsilon.map((_, state) => {
      const closure = [state];
      for (let i = 0; i < closure.length; i++) {
        for (const next of this.epsilon[closure[i]!]!) {
          if (!closure.includes(next)) closure.push(next);
        }
      }
      return closure;
    });
    this.seen = new Int32Array(this.edges.length);
  }

  /**
   * The lowest pattern index that accepts `subject`, or +Infinity. Each set of live states met is
   * remembered with its moves (a lazily built DFA), so paths that share directories cost one
   * lookup a character; the memory is bounded and cleared when full, which leaves the bound of
   * one step per live state and character.
   */
  run(subject: string): number {
    if (this.starts.length === 0) return Number.POSITIVE_INFINITY;
    if (this.start === undefined || this.nodes.size > MAX_DFA_NODES) {
      this.nodes.clear();
      const live: number[] = [];
      this.enter(live, this.starts);
      this.start = this.node(live);
    }
    let node = this.start;
    for (const ch of subject) {
      let next = node.next.get(ch);
      if (next === undefined) {
        next = this.step(node.states, ch);
        node.next.set(ch, next);
      }
      if (next === DEAD) return Number.POSITIVE_INFINITY;
      node = next;
    }
    return node.accept;
  }

  private step(live: readonly number[], ch: string): DfaNode {
    const next: number[] = [];
    this.stamp += 1;
    for (const state of live) {
      for (const edge of this.edges[state]!) {
        const taken = "wildcard" in edge ? edge.ch === "any" || ch !== "/" : edge.ch === ch;
        if (taken) this.visit(next, edge.to);
      }
    }
    return next.length === 0 ? DEAD : this.node(next);
  }

  private node(states: number[]): DfaNode {
    states.sort((x, y) => x - y);
    const key = states.join(",");
    const known = this.nodes.get(key);
    if (known) return known;
    let accept = Number.POSITIVE_INFINITY;
    for (const state of states) {
      const index = this.accepts[state]!;
      if (index >= 0 && index < accept) accept = index;
    }
    const created: DfaNode = { states, accept, next: new Map() };
    this.nodes.set(key, created);
    return created;
  }

  private enter(live: number[], states: readonly number[]): void {
    this.stamp += 1;
    for (const state of states) this.visit(live, state);
  }

  /** Adds `state` and its closure to `into`, once per step (the stamp marks what is in). */
  private visit(into: number[], state: number): void {
    for (const reached of this.closures[state]!) {
      if (this.seen[reached] === this.stamp) continue;
      this.seen[reached] = this.stamp;
      into.push(reached);
    }
  }
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
