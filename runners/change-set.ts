import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "zod";
import { type ChangedFile, ChangeSet, MAX_CHANGE_SET_BYTES } from "../src/protocol/messages.ts";
import type { TaskSandbox } from "./sandbox.ts";
import { GitError, type GitSandbox, gitEnvironment, runGit } from "./workspace.ts";

/** Counts over the collected files, ready for the `complete` frame's `stats`. */
export interface ChangeStats {
  files_changed: number;
  lines_added: number;
  lines_removed: number;
}

/** A change the protocol cannot carry, left out of the change set. */
export interface SkippedChange {
  /** The path as UTF-8 (lossy when the name is not valid UTF-8). */
  path: string;
  reason: string;
}

/** Everything the agent changed, as the upload body. */
export interface CollectedChangeSet {
  changeSet: ChangeSet;
  stats: ChangeStats;
  /** Nested repositories and non-UTF-8 names: worth a line in the summary. */
  skipped: SkippedChange[];
}

/** The change set would exceed what the server accepts (`MAX_CHANGE_SET_BYTES`, 10,000 files). */
export class ChangeSetTooLargeError extends Error {
  constructor(readonly detail: string) {
    super(`change set too large: ${detail}`);
    this.name = "ChangeSetTooLargeError";
  }
}

type FileEntry = z.infer<typeof ChangedFile>;
type Mode = FileEntry["mode"];

const MODES = new Set<string>(["100644", "100755", "120000"]);
const MAX_FILES = 10_000;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Every change in the working tree of `dir` relative to `baseSha`: modified, added (untracked
 * files included, `.gitignore` respected) and deleted files, with their modes (symlinks carry their
 * target as content), text as utf8 and anything else as base64. Works in a throwaway index, so the
 * workspace's own index and history are untouched and commits the agent made count too. Returns
 * `undefined` when nothing changed; throws `ChangeSetTooLargeError` past the server's limits.
 *
 * With `sandbox`, git runs inside the task's sandbox: the agent wrote the workspace's `.git`
 * (its config can name commands for git to run, e.g. a clean filter or `core.fsmonitor`), so git
 * must not read it with the runner's rights.
 */
export async function collectChangeSet(
  dir: string,
  baseSha: string,
  message: string,
  options: { env?: NodeJS.ProcessEnv; sandbox?: TaskSandbox } = {},
): Promise<CollectedChangeSet | undefined> {
  const indexDir = await mkdtemp(join(tmpdir(), "conveyor-index-"));
  try {
    const env = gitEnvironment(options.env, { GIT_INDEX_FILE: join(indexDir, "index") });
    const jail = options.sandbox;
    const sandbox: GitSandbox | undefined = jail
      ? (argv, commandEnv) => jail.command(argv, commandEnv, [indexDir])
      : undefined;
    // The runner host's own ignore and attribute files (~/.config/git/ignore is read even without
    // a global config) must not change what a task uploads: only the repository's rules count.
    const hostless = ["-c", "core.excludesFile=/dev/null", "-c", "core.attributesFile=/dev/null"];
    const git = (args: string[]) =>
      runGit([...hostless, ...args], { cwd: dir, env, maxBuffer: 256 * 1024 * 1024, sandbox });

    // Start from the base tree so files tracked there stay tracked even if .gitignore matches them.
    await git(["read-tree", baseSha]);
    await git(["add", "--all"]);
    const diffArgs = ["diff-index", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv"];
    const raw = await git([...diffArgs, "--raw", "--no-abbrev", "-z", baseSha, "--"]);
    const numstat = await git([...diffArgs, "--numstat", "-z", baseSha, "--"]);

    const counts = parseNumstat(numstat);
    const skipped: SkippedChange[] = [];
    const entries: RawEntry[] = [];
    for (const entry of parseRaw(raw)) {
      const path = decodePath(entry.path);
      if (path === undefined) {
        skipped.push({ path: entry.path.toString("utf8"), reason: "the name is not valid UTF-8" });
        continue;
      }
      const mode = entry.status === "D" ? entry.oldMode : entry.newMode;
      if (!MODES.has(mode)) {
        skipped.push({ path, reason: `mode ${mode} (a nested repository or submodule)` });
        continue;
      }
      entries.push({ ...entry, decoded: path, mode: mode as Mode });
    }
    if (entries.length === 0) return undefined;
    if (entries.length > MAX_FILES) {
      throw new ChangeSetTooLargeError(`${entries.length} files (at most ${MAX_FILES})`);
    }

    const blobs = entries.filter((e) => e.status !== "D").map((e) => e.newSha);
    const contents = await readBlobs(dir, env, blobs, sandbox);
    const files: FileEntry[] = [];
    const stats: ChangeStats = { files_changed: 0, lines_added: 0, lines_removed: 0 };
    for (const entry of entries) {
      const count = counts.get(entry.path.toString("latin1"));
      stats.files_changed++;
      stats.lines_added += count?.added ?? 0;
      stats.lines_removed += count?.removed ?? 0;
      if (entry.status === "D") {
        files.push({
          path: entry.decoded,
          action: "delete",
          mode: entry.mode,
          encoding: "utf8",
          content: "",
        });
        continue;
      }
      const bytes = contents.get(entry.newSha);
      if (!bytes) throw new Error("git did not return a changed file's content");
      const text = count?.binary ? undefined : decodeText(bytes);
      files.push({
        path: entry.decoded,
        action: entry.status === "A" ? "add" : "modify",
        mode: entry.mode,
        encoding: text === undefined ? "base64" : "utf8",
        content: text ?? bytes.toString("base64"),
      });
    }

    const parsed = ChangeSet.safeParse({ base_sha: baseSha, message, files });
    if (!parsed.success) {
      throw new Error("change set does not match the protocol schema", { cause: parsed.error });
    }
    const changeSet = parsed.data;
    const size = Buffer.byteLength(JSON.stringify(changeSet));
    if (size > MAX_CHANGE_SET_BYTES) {
      throw new ChangeSetTooLargeError(`${size} bytes (at most ${MAX_CHANGE_SET_BYTES})`);
    }
    return { changeSet, stats, skipped };
  } finally {
    await rm(indexDir, { recursive: true, force: true });
  }
}

interface RawEntry {
  oldMode: string;
  newMode: string;
  newSha: string;
  status: "A" | "M" | "D" | "T";
  path: Buffer;
  decoded: string;
  mode: Mode;
}

/** `:old new oldsha newsha S\0path\0`, repeated (no renames, so one path per entry). */
function parseRaw(output: Buffer): Omit<RawEntry, "decoded" | "mode">[] {
  const fields = splitNul(output);
  const entries: Omit<RawEntry, "decoded" | "mode">[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const meta = fields[i]!.toString("latin1");
    const match = /^:(\d{6}) (\d{6}) [0-9a-f]+ ([0-9a-f]+) ([AMDT])$/.exec(meta);
    if (!match) throw new Error(`unexpected git diff-index output: ${meta.slice(0, 100)}`);
    entries.push({
      oldMode: match[1]!,
      newMode: match[2]!,
      newSha: match[3]!,
      status: match[4] as RawEntry["status"],
      path: fields[i + 1]!,
    });
  }
  return entries;
}

/** `added\tremoved\tpath\0`, with `-\t-` for binary files; keyed by the path's raw bytes. */
function parseNumstat(
  output: Buffer,
): Map<string, { added: number; removed: number; binary: boolean }> {
  const counts = new Map<string, { added: number; removed: number; binary: boolean }>();
  for (const field of splitNul(output)) {
    const first = field.indexOf(9);
    const second = field.indexOf(9, first + 1);
    if (first < 0 || second < 0) continue;
    const added = field.subarray(0, first).toString("latin1");
    const removed = field.subarray(first + 1, second).toString("latin1");
    const binary = added === "-";
    counts.set(field.subarray(second + 1).toString("latin1"), {
      added: binary ? 0 : Number(added),
      removed: binary ? 0 : Number(removed),
      binary,
    });
  }
  return counts;
}

function splitNul(output: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = output.indexOf(0); i >= 0; i = output.indexOf(0, start)) {
    fields.push(output.subarray(start, i));
    start = i + 1;
  }
  if (start < output.length) fields.push(output.subarray(start));
  return fields;
}

function decodePath(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The text of a file when it is valid UTF-8 without NUL bytes; undefined means "send base64". */
function decodeText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Reads blobs with one `git cat-file --batch`, refusing early when they add up past the limit. */
async function readBlobs(
  dir: string,
  env: NodeJS.ProcessEnv,
  shas: string[],
  sandbox: GitSandbox | undefined,
): Promise<Map<string, Buffer>> {
  const unique = [...new Set(shas)];
  const blobs = new Map<string, Buffer>();
  if (unique.length === 0) return blobs;
  const input = `${unique.join("\n")}\n`;

  const check = (
    await gitWithInput(dir, env, ["cat-file", "--batch-check"], input, sandbox)
  ).toString("latin1");
  let total = 0;
  for (const line of check.split("\n")) {
    const size = Number(line.split(" ")[2] ?? 0);
    if (Number.isFinite(size)) total += size;
  }
  if (total > MAX_CHANGE_SET_BYTES) {
    throw new ChangeSetTooLargeError(`${total} bytes of content (at most ${MAX_CHANGE_SET_BYTES})`);
  }

  const output = await gitWithInput(dir, env, ["cat-file", "--batch"], input, sandbox);
  let offset = 0;
  while (offset < output.length) {
    const newline = output.indexOf(10, offset);
    if (newline < 0) break;
    const header = output.subarray(offset, newline).toString("latin1");
    const match = /^([0-9a-f]+) (\w+) (\d+)$/.exec(header);
    if (!match) throw new Error(`unexpected git cat-file output: ${header.slice(0, 100)}`);
    const size = Number(match[3]);
    const start = newline + 1;
    blobs.set(match[1]!, output.subarray(start, start + size));
    offset = start + size + 1;
  }
  return blobs;
}

async function gitWithInput(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: string[],
  input: string,
  sandbox: GitSandbox | undefined,
): Promise<Buffer> {
  const command = sandbox
    ? await sandbox(["git", ...args], env)
    : { argv: ["git", ...args], env, uid: undefined, gid: undefined };
  return new Promise((resolve, reject) => {
    const child = spawn(command.argv[0]!, command.argv.slice(1), {
      cwd,
      env: command.env,
      ...(command.uid === undefined ? {} : { uid: command.uid }),
      ...(command.gid === undefined ? {} : { gid: command.gid }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const stderr = Buffer.concat(err).toString("utf8").trim().slice(-4000);
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new GitError(`git ${args[0]} failed: ${stderr}`, args, code, stderr));
    });
    child.stdin.on("error", () => {
      // Reported through the exit code.
    });
    child.stdin.end(input);
  });
}
