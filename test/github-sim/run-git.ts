import { spawn } from "node:child_process";

/** The outcome of one git invocation; `code` is the exit status. */
export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface RunGitOptions {
  /** Passed as `--git-dir`; omit for commands that do not need a repository (e.g. `clone`). */
  gitDir?: string;
  cwd?: string;
  input?: Buffer | string;
  env?: Record<string, string>;
  /** Exit codes that are answers rather than failures (e.g. 1 for `merge-tree` conflicts). */
  okCodes?: number[];
}

/**
 * Environment that isolates git from the user's and the system's configuration, so a developer's
 * `~/.gitconfig` (signing, hooks, default branch, aliases) never changes what the simulator does.
 */
export function isolatedGitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/nonexistent",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    // Paths from API requests are file names, never pathspec magic like `:(glob)`.
    GIT_LITERAL_PATHSPECS: "1",
    LANG: "C",
    LC_ALL: "C",
    ...extra,
  };
}

/** Runs git with an argv array (never a shell); rejects on an exit code not in `okCodes`. */
export function runGit(args: string[], options: RunGitOptions = {}): Promise<GitResult> {
  const argv = options.gitDir ? ["--git-dir", options.gitDir, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn("git", argv, {
      cwd: options.cwd,
      env: isolatedGitEnv(options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const result = {
        code: code ?? -1,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (result.code === 0 || options.okCodes?.includes(result.code)) resolve(result);
      else {
        reject(
          new Error(`git ${args[0]} failed with exit code ${result.code}: ${result.stderr.trim()}`),
        );
      }
    });
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
  });
}
