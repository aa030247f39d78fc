import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runGit } from "./run-git.ts";

export type GitObjectType = "blob" | "tree" | "commit" | "tag";
export type TreeEntryType = "blob" | "tree" | "commit";

/** A person in a commit; `date` is ISO 8601 (`2024-01-02T03:04:05Z`). */
export interface GitIdentity {
  name: string;
  email: string;
  date: string;
}

export interface TreeEntry {
  path: string;
  mode: string;
  type: TreeEntryType;
  sha: string;
  /** Blob size in bytes; absent for trees and submodules. */
  size?: number;
}

/**
 * One entry of a "create a tree" request, as GitHub takes it: either `sha` (null deletes the path)
 * or `content` (a new UTF-8 blob).
 */
export interface TreeChange {
  path: string;
  mode: string;
  type: TreeEntryType;
  sha?: string | null;
  content?: string;
}

export interface CommitInfo {
  sha: string;
  tree: string;
  parents: string[];
  author: GitIdentity;
  committer: GitIdentity;
  message: string;
}

export type FileStatus = "added" | "removed" | "modified" | "renamed" | "changed";

export interface FileChange {
  filename: string;
  previousFilename?: string;
  status: FileStatus;
  /** Blob sha of the new version (the old one for removed files). */
  sha: string;
  additions: number;
  deletions: number;
  binary: boolean;
  /** Unified diff hunks, as GitHub's `patch` field; absent for binary files. */
  patch?: string;
}

export interface CommitFilesInput {
  branch: string;
  /** Path → UTF-8 content; `null` deletes the path. */
  files: Record<string, string | null>;
  message: string;
  author: GitIdentity;
  committer?: GitIdentity;
}

export interface MergeTreeResult {
  clean: boolean;
  /** The merged tree; meaningful only when `clean`. */
  tree: string;
}

/** A bare-repository store: the simulator's Git Data API and smart HTTP both work on it. */
export interface GitStore {
  readonly root: string;
  /** Absolute path of the bare repository of `owner/name`. */
  gitDir(fullName: string): string;
  init(fullName: string, defaultBranch: string): Promise<void>;
  remove(fullName: string): Promise<void>;
  objectType(fullName: string, sha: string): Promise<GitObjectType | undefined>;
  writeBlob(fullName: string, content: Buffer): Promise<string>;
  readBlob(fullName: string, sha: string): Promise<Buffer | undefined>;
  /** Entries of a tree, given a tree sha, a commit sha or a ref; `sha` is the tree's. */
  readTree(
    fullName: string,
    treeish: string,
    recursive?: boolean,
  ): Promise<{ sha: string; entries: TreeEntry[] } | undefined>;
  /** Builds a tree from `baseTree` plus changes (nested paths allowed); returns its sha. */
  createTree(
    fullName: string,
    baseTree: string | undefined,
    changes: TreeChange[],
  ): Promise<string>;
  createCommit(
    fullName: string,
    input: {
      tree: string;
      parents: string[];
      message: string;
      author: GitIdentity;
      committer: GitIdentity;
    },
  ): Promise<string>;
  readCommit(fullName: string, sha: string): Promise<CommitInfo | undefined>;
  /** Resolves a sha (full or abbreviated), a branch, a tag or a `refs/…`/`heads/…` name to a commit. */
  resolveCommit(fullName: string, ref: string): Promise<string | undefined>;
  /** Full ref names (`refs/heads/main`) with their target, optionally under a prefix. */
  listRefs(fullName: string, prefix?: string): Promise<{ ref: string; sha: string }[]>;
  readRef(fullName: string, ref: string): Promise<string | undefined>;
  /** Moves `ref` to `sha`; with `expectedOld` only if the ref still points there (compare-and-swap). */
  updateRef(fullName: string, ref: string, sha: string, expectedOld?: string): Promise<boolean>;
  deleteRef(fullName: string, ref: string): Promise<void>;
  readFile(
    fullName: string,
    commit: string,
    filePath: string,
  ): Promise<{ entry: TreeEntry; content?: Buffer; children?: TreeEntry[] } | undefined>;
  commitFiles(fullName: string, input: CommitFilesInput): Promise<string>;
  isAncestor(fullName: string, ancestor: string, descendant: string): Promise<boolean>;
  mergeBase(fullName: string, a: string, b: string): Promise<string | undefined>;
  mergeTree(fullName: string, ours: string, theirs: string): Promise<MergeTreeResult>;
  /** Replays the commits `onto..head` (excluding merges) one by one; undefined on a conflict. */
  rebase(
    fullName: string,
    onto: string,
    head: string,
    committer: GitIdentity,
  ): Promise<string[] | undefined>;
  revList(fullName: string, from: string, to: string): Promise<string[]>;
  diff(fullName: string, from: string, to: string): Promise<FileChange[]>;
}

const SHORT_SHA_PATTERN = /^[0-9a-f]{4,40}$/;
const FULL_SHA_PATTERN = /^[0-9a-f]{40}$/;
/** Answers kept per store (see `remember` in {@link createGitStore}); more and the oldest go. */
const MAX_REMEMBERED = 20_000;

/** Freezes a kept answer all the way down, so no caller can change what the next one gets. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Buffer.isBuffer(value) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
/** The sha of the empty tree, the same in every repository. */
export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/** Converts an ISO date to git's internal `@<seconds> +0000` form. */
function gitDate(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`invalid date: ${iso}`);
  return `@${Math.floor(ms / 1000)} +0000`;
}

function identityEnv(author: GitIdentity, committer: GitIdentity): Record<string, string> {
  return {
    GIT_AUTHOR_NAME: author.name,
    GIT_AUTHOR_EMAIL: author.email,
    GIT_AUTHOR_DATE: gitDate(author.date),
    GIT_COMMITTER_NAME: committer.name,
    GIT_COMMITTER_EMAIL: committer.email,
    GIT_COMMITTER_DATE: gitDate(committer.date),
  };
}

function parseIdentity(line: string): GitIdentity {
  const match = /^(.*) <(.*)> (\d+) ([+-]\d{4})$/.exec(line);
  if (!match) throw new Error(`unparsable git identity: ${line}`);
  const seconds = Number(match[3]);
  return {
    name: match[1]!,
    email: match[2]!,
    date: new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
}

function parseCommit(sha: string, raw: string): CommitInfo {
  const split = raw.indexOf("\n\n");
  const headerText = split === -1 ? raw : raw.slice(0, split);
  const message = split === -1 ? "" : raw.slice(split + 2);
  let tree = "";
  const parents: string[] = [];
  let author: GitIdentity | undefined;
  let committer: GitIdentity | undefined;
  for (const line of headerText.split("\n")) {
    // Continuation lines (e.g. of a `gpgsig` header) start with a space.
    if (line.startsWith(" ")) continue;
    const space = line.indexOf(" ");
    const key = line.slice(0, space);
    const value = line.slice(space + 1);
    if (key === "tree") tree = value;
    else if (key === "parent") parents.push(value);
    else if (key === "author") author = parseIdentity(value);
    else if (key === "committer") committer = parseIdentity(value);
  }
  if (!author || !committer) throw new Error(`commit ${sha} has no author or committer`);
  return { sha, tree, parents, author, committer, message };
}

/** Parses `git ls-tree -z -l` output. */
function parseLsTree(output: Buffer, prefix = ""): TreeEntry[] {
  const entries: TreeEntry[] = [];
  for (const record of output.toString("utf8").split("\0")) {
    if (!record) continue;
    const tab = record.indexOf("\t");
    const [mode, type, sha, size] = record.slice(0, tab).split(/\s+/);
    const entry: TreeEntry = {
      path: prefix + record.slice(tab + 1),
      mode: mode!,
      type: type as TreeEntryType,
      sha: sha!,
    };
    if (size !== undefined && size !== "-") entry.size = Number(size);
    entries.push(entry);
  }
  return entries;
}

/** A directory while a tree is being built: loaded lazily from `base`, rewritten only if dirty. */
interface DirNode {
  kind: "dir";
  base: string | undefined;
  children: Map<string, DirNode | LeafNode> | undefined;
  dirty: boolean;
}

interface LeafNode {
  kind: "leaf";
  mode: string;
  type: TreeEntryType;
  sha: string;
}

/** Refuses names git could read as options or revision syntax. */
function assertSafeRef(ref: string): void {
  if (!ref || ref.startsWith("-") || /[\s~^:?*[\\\0]|\.\.|@\{/.test(ref)) {
    throw new Error(`unsafe ref name: ${JSON.stringify(ref)}`);
  }
}

function splitPatches(patchText: string): string[] {
  const sections = patchText.split(/^diff --git /m).slice(1);
  return sections.map((section) => {
    const hunk = section.search(/^@@/m);
    return hunk === -1 ? "" : section.slice(hunk).replace(/\n$/, "");
  });
}

export function createGitStore(root: string): GitStore {
  const gitDir = (fullName: string) => {
    const [owner, name] = fullName.split("/");
    if (!owner || !name || owner.startsWith(".") || name.startsWith(".")) {
      throw new Error(`invalid repository name: ${fullName}`);
    }
    return path.join(root, owner, `${name}.git`);
  };
  const git = (fullName: string, args: string[], options: Parameters<typeof runGit>[1] = {}) =>
    runGit(args, { ...options, gitDir: gitDir(fullName) });

  /**
   * What git says about objects named by full SHAs never changes (an object's name is its
   * content), so those answers are kept: each costs a git process, and forking one from a test
   * process is most of the simulator's CPU. Only answers about existing objects are kept (an
   * object may be written later), and only for full SHAs (a short one may become ambiguous).
   * Kept answers are frozen.
   */
  const remembered = new Map<string, Promise<unknown>>();
  const remember = <T>(
    key: string,
    shas: string[],
    compute: () => Promise<T>,
    keep: (value: T) => boolean = (value) => value !== undefined,
  ): Promise<T> => {
    if (!shas.every((sha) => FULL_SHA_PATTERN.test(sha))) return compute();
    const kept = remembered.get(key);
    if (kept) return kept as Promise<T>;
    const answer = compute().then(deepFreeze);
    remembered.set(key, answer);
    answer.then(
      (value) => {
        if (!keep(value)) remembered.delete(key);
      },
      () => remembered.delete(key),
    );
    if (remembered.size > MAX_REMEMBERED) {
      const oldest = remembered.keys().next().value;
      if (oldest !== undefined) remembered.delete(oldest);
    }
    return answer;
  };

  const objectType = (fullName: string, sha: string) =>
    remember(`${fullName} type ${sha}`, [sha], async () => {
      if (!SHORT_SHA_PATTERN.test(sha)) return undefined;
      const result = await git(fullName, ["cat-file", "-t", sha], { okCodes: [1, 128] });
      return result.code === 0 ? (result.stdout.toString().trim() as GitObjectType) : undefined;
    });

  /** The tree of a tree sha, a commit sha or a ref. */
  const resolveTree = async (fullName: string, treeish: string) => {
    if ((await objectType(fullName, treeish)) === "tree") {
      return (await git(fullName, ["rev-parse", "--verify", `${treeish}^{tree}`])).stdout
        .toString()
        .trim();
    }
    const commit = await resolveCommit(fullName, treeish);
    return commit ? (await readCommit(fullName, commit))?.tree : undefined;
  };

  const readTree = async (fullName: string, treeish: string, recursive = false) => {
    const sha = await resolveTree(fullName, treeish);
    if (!sha) return undefined;
    const args = recursive
      ? ["ls-tree", "-z", "-l", "-r", "-t", sha]
      : ["ls-tree", "-z", "-l", sha];
    return { sha, entries: parseLsTree((await git(fullName, args)).stdout) };
  };

  const loadDir = async (fullName: string, dir: DirNode) => {
    if (dir.children) return dir.children;
    const children = new Map<string, DirNode | LeafNode>();
    if (dir.base) {
      for (const entry of parseLsTree((await git(fullName, ["ls-tree", "-z", dir.base])).stdout)) {
        children.set(
          entry.path,
          entry.type === "tree"
            ? { kind: "dir", base: entry.sha, children: undefined, dirty: false }
            : { kind: "leaf", mode: entry.mode, type: entry.type, sha: entry.sha },
        );
      }
    }
    dir.children = children;
    return children;
  };

  const writeDir = async (fullName: string, dir: DirNode): Promise<string | undefined> => {
    if (!dir.dirty) return dir.base;
    const children = await loadDir(fullName, dir);
    const lines: string[] = [];
    for (const [name, child] of children) {
      if (child.kind === "dir") {
        const sha = await writeDir(fullName, child);
        if (sha && sha !== EMPTY_TREE) lines.push(`040000 tree ${sha}\t${name}\0`);
      } else {
        lines.push(`${child.mode} ${child.type} ${child.sha}\t${name}\0`);
      }
    }
    if (lines.length === 0) return undefined;
    const result = await git(fullName, ["mktree", "-z"], { input: lines.join("") });
    return result.stdout.toString().trim();
  };

  const createTree = async (
    fullName: string,
    baseTree: string | undefined,
    changes: TreeChange[],
  ) => {
    const root: DirNode = { kind: "dir", base: baseTree, children: undefined, dirty: true };
    for (const change of changes) {
      const parts = change.path.split("/").filter(Boolean);
      const last = parts.pop();
      if (!last) throw new Error(`invalid tree path: ${JSON.stringify(change.path)}`);
      let dir = root;
      for (const part of parts) {
        const children = await loadDir(fullName, dir);
        let next = children.get(part);
        if (next?.kind !== "dir") {
          next = { kind: "dir", base: undefined, children: new Map(), dirty: true };
          children.set(part, next);
        }
        next.dirty = true;
        dir = next;
      }
      const children = await loadDir(fullName, dir);
      let sha = change.sha;
      if (change.content !== undefined) {
        sha = await writeBlob(fullName, Buffer.from(change.content, "utf8"));
      }
      if (sha === null || sha === undefined) {
        children.delete(last);
      } else if (change.type === "tree") {
        children.set(last, { kind: "dir", base: sha, children: undefined, dirty: false });
      } else {
        children.set(last, { kind: "leaf", mode: change.mode, type: change.type, sha });
      }
    }
    return (await writeDir(fullName, root)) ?? (await emptyTree(fullName));
  };

  const emptyTree = async (fullName: string) =>
    (await git(fullName, ["mktree", "-z"], { input: "" })).stdout.toString().trim();

  const writeBlob = async (fullName: string, content: Buffer) =>
    (await git(fullName, ["hash-object", "-w", "--stdin"], { input: content })).stdout
      .toString()
      .trim();

  const readCommit = (fullName: string, sha: string) =>
    remember(`${fullName} commit ${sha}`, [sha], async () => {
      if ((await objectType(fullName, sha)) !== "commit") return undefined;
      const full = (await git(fullName, ["rev-parse", "--verify", `${sha}^{commit}`])).stdout
        .toString()
        .trim();
      const raw = (await git(fullName, ["cat-file", "commit", full])).stdout.toString("utf8");
      return parseCommit(full, raw);
    });

  const readRef = async (fullName: string, ref: string) => {
    assertSafeRef(ref);
    const result = await git(fullName, ["rev-parse", "--verify", "--quiet", ref], { okCodes: [1] });
    return result.code === 0 ? result.stdout.toString().trim() : undefined;
  };

  const resolveCommit = async (fullName: string, ref: string) => {
    if (SHORT_SHA_PATTERN.test(ref) && (await objectType(fullName, ref)) === "commit") {
      return (await readCommit(fullName, ref))?.sha;
    }
    if (!ref || ref.startsWith("-") || /[\s~^:?*[\\\0]|\.\.|@\{/.test(ref)) return undefined;
    const candidates = ref.startsWith("refs/")
      ? [ref]
      : ref.startsWith("heads/") || ref.startsWith("tags/")
        ? [`refs/${ref}`]
        : [`refs/heads/${ref}`, `refs/tags/${ref}`];
    for (const candidate of candidates) {
      const sha = await readRef(fullName, candidate);
      if (sha) return (await readCommit(fullName, sha))?.sha;
    }
    return undefined;
  };

  const listRefs = async (fullName: string, prefix = "refs/") => {
    const result = await git(fullName, [
      "for-each-ref",
      "--format=%(objectname) %(refname)",
      prefix,
    ]);
    return result.stdout
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [sha, ref] = line.split(" ");
        return { ref: ref!, sha: sha! };
      });
  };

  const updateRef = async (fullName: string, ref: string, sha: string, expectedOld?: string) => {
    assertSafeRef(ref);
    const args = ["update-ref", ref, sha];
    if (expectedOld !== undefined) args.push(expectedOld);
    const result = await git(fullName, args, { okCodes: [1, 128] });
    return result.code === 0;
  };

  const revList = (fullName: string, from: string, to: string) =>
    remember(`${fullName} revs ${from} ${to}`, [from, to], async () =>
      (await git(fullName, ["rev-list", "--reverse", "--topo-order", `${from}..${to}`])).stdout
        .toString()
        .split("\n")
        .filter(Boolean),
    );

  const store: GitStore = {
    root,
    gitDir,
    async init(fullName, defaultBranch) {
      const dir = gitDir(fullName);
      await mkdir(path.dirname(dir), { recursive: true });
      await runGit(["init", "--bare", "--quiet", `--initial-branch=${defaultBranch}`, dir]);
      // Smart HTTP clones go through `git http-backend`, which serves only exported repositories.
      await runGit(["config", "http.uploadpack", "true"], { gitDir: dir });
    },
    async remove(fullName) {
      // Its objects go with it: answers about them no longer hold.
      for (const key of remembered.keys()) {
        if (key.startsWith(`${fullName} `)) remembered.delete(key);
      }
      await rm(gitDir(fullName), { recursive: true, force: true });
    },
    objectType,
    writeBlob,
    async readBlob(fullName, sha) {
      if ((await objectType(fullName, sha)) !== "blob") return undefined;
      return (await git(fullName, ["cat-file", "blob", sha])).stdout;
    },
    readTree,
    createTree,
    async createCommit(fullName, input) {
      const args = ["commit-tree", input.tree];
      for (const parent of input.parents) args.push("-p", parent);
      const result = await git(fullName, args, {
        input: input.message,
        env: identityEnv(input.author, input.committer),
      });
      return result.stdout.toString().trim();
    },
    readCommit,
    resolveCommit,
    listRefs,
    readRef,
    updateRef,
    async deleteRef(fullName, ref) {
      assertSafeRef(ref);
      await git(fullName, ["update-ref", "-d", ref]);
    },
    async readFile(fullName, commit, filePath) {
      const clean = filePath.split("/").filter(Boolean).join("/");
      if (!clean) {
        const tree = await readTree(fullName, commit);
        if (!tree) return undefined;
        return {
          entry: { path: "", mode: "040000", type: "tree", sha: tree.sha },
          children: tree.entries,
        };
      }
      const result = await git(fullName, ["ls-tree", "-z", "-l", commit, "--", clean]);
      const entry = parseLsTree(result.stdout)[0];
      if (!entry || entry.path !== clean) return undefined;
      if (entry.type === "tree") {
        const children = parseLsTree(
          (await git(fullName, ["ls-tree", "-z", "-l", entry.sha])).stdout,
          `${clean}/`,
        );
        return { entry, children };
      }
      if (entry.type !== "blob") return { entry };
      return { entry, content: (await git(fullName, ["cat-file", "blob", entry.sha])).stdout };
    },
    async commitFiles(fullName, input) {
      const ref = `refs/heads/${input.branch}`;
      const parent = await readRef(fullName, ref);
      const baseTree = parent ? (await readCommit(fullName, parent))?.tree : undefined;
      const changes: TreeChange[] = Object.entries(input.files).map(([filePath, content]) =>
        content === null
          ? { path: filePath, mode: "100644", type: "blob", sha: null }
          : { path: filePath, mode: "100644", type: "blob", content },
      );
      const tree = await createTree(fullName, baseTree, changes);
      const sha = await store.createCommit(fullName, {
        tree,
        parents: parent ? [parent] : [],
        message: input.message,
        author: input.author,
        committer: input.committer ?? input.author,
      });
      if (!(await updateRef(fullName, ref, sha, parent ?? ""))) {
        throw new Error(`branch ${input.branch} of ${fullName} moved while committing`);
      }
      return sha;
    },
    isAncestor: (fullName, ancestor, descendant) =>
      remember(
        `${fullName} ancestor ${ancestor} ${descendant}`,
        [ancestor, descendant],
        async () => {
          const result = await git(
            fullName,
            ["merge-base", "--is-ancestor", ancestor, descendant],
            { okCodes: [1] },
          );
          return result.code === 0;
        },
        () => true,
      ),
    mergeBase: (fullName, a, b) =>
      remember(`${fullName} merge-base ${a} ${b}`, [a, b], async () => {
        const result = await git(fullName, ["merge-base", a, b], { okCodes: [1] });
        return result.code === 0 ? result.stdout.toString().trim() : undefined;
      }),
    async mergeTree(fullName, ours, theirs) {
      const result = await git(
        fullName,
        ["merge-tree", "--write-tree", "--no-messages", ours, theirs],
        {
          okCodes: [1],
        },
      );
      const tree = result.stdout.toString().split("\n")[0]!.trim();
      return { clean: result.code === 0, tree };
    },
    async rebase(fullName, onto, head, committer) {
      const base = await store.mergeBase(fullName, onto, head);
      if (!base) return undefined;
      const picks = (await revList(fullName, base, head)).filter(Boolean);
      const created: string[] = [];
      let current = onto;
      for (const pick of picks) {
        const commit = (await readCommit(fullName, pick))!;
        if (commit.parents.length !== 1) continue;
        // A three-way merge of the pick's own change onto the current tip; a file changed on both
        // sides counts as a conflict (GitHub would refuse a rebase merge that needs resolution).
        // `read-tree -m` insists on a work tree even though without `-u` it never touches one.
        const scratch = await mkdtemp(path.join(tmpdir(), "sim-rebase-"));
        try {
          const env = { GIT_INDEX_FILE: path.join(scratch, "index"), GIT_WORK_TREE: scratch };
          const merged = await git(
            fullName,
            ["read-tree", "-m", "--aggressive", commit.parents[0]!, current, pick],
            { env, okCodes: [128] },
          );
          if (merged.code !== 0) return undefined;
          const written = await git(fullName, ["write-tree"], { env, okCodes: [128] });
          if (written.code !== 0) return undefined;
          current = await store.createCommit(fullName, {
            tree: written.stdout.toString().trim(),
            parents: [current],
            message: commit.message,
            author: commit.author,
            committer,
          });
          created.push(current);
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
      }
      return created;
    },
    revList,
    diff: (fullName, from, to) =>
      remember(`${fullName} diff ${from} ${to}`, [from, to], () => diffOf(fullName, from, to)),
  };
  async function diffOf(fullName: string, from: string, to: string): Promise<FileChange[]> {
    const base = ["diff-tree", "-r", "-M", "--no-commit-id"];
    const raw = (await git(fullName, [...base, "-z", "--raw", from, to])).stdout.toString("utf8");
    const numstat = (await git(fullName, [...base, "-z", "--numstat", from, to])).stdout.toString(
      "utf8",
    );
    const patches = splitPatches(
      (await git(fullName, [...base, "-p", "--no-color", from, to])).stdout.toString("utf8"),
    );
    const rawFields = raw.split("\0");
    const statFields = numstat.split("\0");
    const changes: FileChange[] = [];
    let r = 0;
    let s = 0;
    while (r < rawFields.length && rawFields[r]) {
      const [, , oldSha, newSha, statusField] = rawFields[r]!.slice(1).split(" ");
      const letter = statusField!.charAt(0);
      r += 1;
      let filename = rawFields[r++]!;
      let previousFilename: string | undefined;
      if (letter === "R" || letter === "C") {
        previousFilename = filename;
        filename = rawFields[r++]!;
      }
      // numstat -z: "adds\tdels\tpath\0" or, for renames, "adds\tdels\t\0old\0new\0".
      const [adds, dels, statPath] = statFields[s++]!.split("\t");
      if (statPath === "") s += 2;
      const binary = adds === "-";
      const status: FileStatus =
        letter === "A"
          ? "added"
          : letter === "D"
            ? "removed"
            : letter === "R"
              ? "renamed"
              : letter === "M"
                ? "modified"
                : "changed";
      const change: FileChange = {
        filename,
        status,
        sha: status === "removed" ? oldSha! : newSha!,
        additions: binary ? 0 : Number(adds),
        deletions: binary ? 0 : Number(dels),
        binary,
      };
      if (previousFilename) change.previousFilename = previousFilename;
      const patch = patches[changes.length];
      if (!binary && patch) change.patch = patch;
      changes.push(change);
    }
    return changes;
  }
  return store;
}
