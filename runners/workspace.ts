import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, open, realpath, rm } from "node:fs/promises";
import { join } from "node:path";
import type { SandboxedCommand } from "./sandbox.ts";

/** What `prepareWorkspace` needs: where, which task, and what to check out. */
export interface PrepareWorkspaceOptions {
  /** The runner's work directory; each task gets a fresh directory inside it. */
  root: string;
  taskId: string;
  /** The repository URL without credentials (`https://github.com/o/r.git`, or `file://` in tests). */
  cloneUrl: string;
  baseSha: string;
  /** The branch to create at `baseSha`. */
  branch: string;
  /** The read-only installation token; it only ever reaches git through its environment. */
  token: string;
  /** The environment git runs with (default `process.env`); every `GIT_*` variable is dropped. */
  env?: NodeJS.ProcessEnv;
  /** Aborts the running git command. */
  signal?: AbortSignal;
  /** Per git command (default 10 minutes). */
  timeoutMs?: number;
}

/** A checked-out task workspace. */
export interface Workspace {
  dir: string;
  /** Removes the directory and everything in it; safe to call twice. */
  cleanup(): Promise<void>;
}

/** Options for one git command. */
export interface RunGitOptions {
  cwd: string;
  /** The environment; build it with `gitEnvironment`. */
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Bound on stdout (default 64 MiB). */
  maxBuffer?: number;
  /** Runs git inside a task's sandbox: turns `["git", …args]` and the env into the command to spawn. */
  sandbox?: GitSandbox;
}

/** A task sandbox's `command`, as git commands need it. */
export type GitSandbox = (
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
) => Promise<SandboxedCommand>;

/** A git command that failed; the message carries git's stderr with any secret removed. */
export class GitError extends Error {
  constructor(
    message: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "GitError";
  }
}

const DEFAULT_GIT_TIMEOUT_MS = 10 * 60_000;
const INSTRUCTION_FILES = ["AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md"] as const;

/**
 * The environment for git: `base` without any `GIT_*` variable (no inherited `GIT_DIR`,
 * `GIT_INDEX_FILE` or `GIT_TRACE_CURL`, which would print headers), with the user's and the system's
 * git config ignored and prompts disabled, plus the given `extra` variables.
 */
export function gitEnvironment(
  base: NodeJS.ProcessEnv = process.env,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (!key.toUpperCase().startsWith("GIT_")) env[key] = value;
  }
  return {
    ...env,
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    ...extra,
  };
}

/** The variables that hand git the token as an HTTP header, never as an argument or a file. */
export function tokenGitConfig(token: string): Record<string, string> {
  const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
  return {
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "http.extraHeader",
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}

/** Runs git with an argv array and returns its stdout as bytes; throws `GitError` on failure. */
export async function runGit(args: readonly string[], options: RunGitOptions): Promise<Buffer> {
  const command: SandboxedCommand = options.sandbox
    ? await options.sandbox(["git", ...args], options.env)
    : { argv: ["git", ...args], env: options.env };
  return new Promise((resolve, reject) => {
    execFile(
      command.argv[0]!,
      command.argv.slice(1),
      {
        cwd: options.cwd,
        env: command.env,
        ...(command.uid === undefined ? {} : { uid: command.uid }),
        ...(command.gid === undefined ? {} : { gid: command.gid }),
        encoding: "buffer",
        maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? DEFAULT_GIT_TIMEOUT_MS,
        signal: options.signal,
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve(stdout);
          return;
        }
        const text = stderr.toString("utf8").trim().slice(-4000);
        const code = typeof error.code === "number" ? error.code : null;
        const message = `git ${subcommand(args)} failed: ${text || error.message}`;
        reject(new GitError(message, args, code, text, { cause: error }));
      },
    );
  });
}

/** The git subcommand in `args`, skipping leading `-c key=value` and `-C dir` options. */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-c" || arg === "-C") i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return "";
}

/**
 * Creates a fresh directory for the task under `root` and checks out `baseSha` on a new `branch`
 * there, fetching only that commit when the server allows it (and everything otherwise). The token
 * travels in git's environment as an `http.extraHeader`: it is in no argv, no log, and not in the
 * workspace's `.git/config`. Errors never contain the token.
 */
export async function prepareWorkspace(options: PrepareWorkspaceOptions): Promise<Workspace> {
  const { baseSha, branch, token } = options;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(options.taskId)) {
    throw new Error("task id is not a safe directory name");
  }
  if (!/^[0-9a-f]{40}$/.test(baseSha)) throw new Error("base sha is not a full commit sha");
  if (hasCredentials(options.cloneUrl)) {
    throw new Error("clone URL must not contain credentials; the token is passed separately");
  }

  await mkdir(options.root, { recursive: true });
  const dir = await mkdtemp(join(options.root, `${options.taskId}-`));
  const workspace: Workspace = { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };

  const plain = gitEnvironment(options.env);
  const withToken = gitEnvironment(options.env, tokenGitConfig(token));
  const git = (args: string[], env = plain) =>
    runGit(args, { cwd: dir, env, signal: options.signal, timeoutMs: options.timeoutMs });

  try {
    // check-ref-format also refuses names starting with "-", so the branch is never read as a flag.
    await git(["check-ref-format", "--branch", branch]).catch((error: unknown) => {
      throw new Error("branch is not a valid git branch name", { cause: error });
    });
    await git(["init", "--quiet"]);
    await git(["remote", "add", "origin", options.cloneUrl]);
    try {
      await git(["fetch", "--quiet", "--no-tags", "--depth=1", "origin", baseSha], withToken);
    } catch {
      // Servers speaking protocol v0 refuse a want for an unadvertised sha: fetch the branches.
      await git(
        ["fetch", "--quiet", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*"],
        withToken,
      );
    }
    await git(["cat-file", "-e", `${baseSha}^{commit}`]).catch((error: unknown) => {
      throw new Error("base sha is not in the repository", { cause: error });
    });
    await git(["checkout", "--quiet", "-b", branch, baseSha, "--"]);
    const head = (await git(["rev-parse", "HEAD"])).toString("utf8").trim();
    if (head !== baseSha) throw new Error("checkout did not land on the base sha");
    return workspace;
  } catch (error) {
    await workspace.cleanup();
    throw redact(error, token);
  }
}

/** One repository instruction file given to the agent. */
export interface RepoInstruction {
  /** Relative to the workspace, e.g. `AGENTS.md`. */
  path: string;
  content: string;
  /** True when the file was longer than the limit and cut. */
  truncated: boolean;
}

/**
 * Reads `AGENTS.md`, `CLAUDE.md` and `.github/copilot-instructions.md` when they are regular files
 * inside the workspace, each cut to `maxBytes` (default 64 KiB). Symlinks are skipped: a
 * repository could point one at a file of the runner's host.
 */
export async function readRepoInstructions(
  dir: string,
  options: { maxBytes?: number } = {},
): Promise<RepoInstruction[]> {
  const maxBytes = options.maxBytes ?? 64 * 1024;
  const root = await realpath(dir);
  const found: RepoInstruction[] = [];
  for (const path of INSTRUCTION_FILES) {
    if (!(await isPlainPath(root, path))) continue;
    const handle = await open(join(root, path), "r");
    try {
      const buffer = Buffer.alloc(maxBytes + 1);
      const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
      const truncated = bytesRead > maxBytes;
      let bytes: Buffer = buffer.subarray(0, Math.min(bytesRead, maxBytes));
      if (truncated) bytes = trimPartialUtf8(bytes);
      found.push({ path, content: bytes.toString("utf8"), truncated });
    } finally {
      await handle.close();
    }
  }
  return found;
}

/** True when every component of `path` below `root` exists, is no symlink, and it ends in a file. */
async function isPlainPath(root: string, path: string): Promise<boolean> {
  const parts = path.split("/");
  let current = root;
  for (const [index, part] of parts.entries()) {
    current = join(current, part);
    const stats = await lstat(current).catch(() => undefined);
    if (!stats || stats.isSymbolicLink()) return false;
    const last = index === parts.length - 1;
    if (last ? !stats.isFile() : !stats.isDirectory()) return false;
  }
  return true;
}

function trimPartialUtf8(bytes: Buffer): Buffer {
  let end = bytes.length;
  // Step back over an incomplete trailing sequence (at most 3 bytes).
  for (let i = 1; i <= 3 && end - i >= 0; i++) {
    const byte = bytes[end - i] ?? 0;
    if ((byte & 0xc0) === 0x80) continue;
    if (byte >= 0xc0) {
      const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      if (length > i) end -= i;
    }
    break;
  }
  return bytes.subarray(0, end);
}

function hasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== "" || parsed.password !== "";
  } catch {
    // scp-like (git@host:o/r) or a plain path: only the user part could be there, never a secret.
    return false;
  }
}

/** The same error with the token (and its Basic-auth form) blanked out of every message. */
function redact(error: unknown, token: string): unknown {
  if (!(error instanceof Error) || !token) return error;
  const secrets = [token, Buffer.from(`x-access-token:${token}`).toString("base64")];
  const clean = (text: string) =>
    secrets.reduce((acc, secret) => acc.split(secret).join("[redacted]"), text);
  let current: unknown = error;
  for (let depth = 0; depth < 10 && current instanceof Error; depth++) {
    current.message = clean(current.message);
    if (current instanceof GitError) {
      (current as { stderr: string }).stderr = clean(current.stderr);
    }
    current = current.cause;
  }
  return error;
}
