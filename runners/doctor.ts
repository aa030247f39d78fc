import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, stat, unlink, writeFile } from "node:fs/promises";
import { delimiter, dirname, isAbsolute, join, resolve, sep } from "node:path";
import type { RunnerConfig } from "./runner-config.ts";
import { chooseIsolation, type HostFacts, probeHost } from "./sandbox.ts";

/** One thing `conveyor-runner doctor` looked at; a failing check says what to fix. */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DoctorResult {
  ok: boolean;
  checks: DoctorCheck[];
}

export interface DoctorDeps {
  fetch?: typeof globalThis.fetch;
  /** The git program to check; "git" (looked up on PATH) unless given. */
  git?: string;
  /** The environment whose PATH is searched for git and the agent; `process.env` unless given. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where a relative path is resolved; `process.cwd()` unless given. */
  cwd?: string;
  /** How long the server may take to answer each request; 5 s unless given. */
  timeoutMs?: number;
  /** What the machine offers for a sandbox; probed (bwrap on PATH, tried once) unless given. */
  host?: HostFacts;
}

export type DoctorConfig = Pick<
  RunnerConfig,
  "serverUrl" | "token" | "agent" | "workDir" | "journalPath"
> &
  Partial<Pick<RunnerConfig, "isolation" | "network">>;

/** Git reads `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n` (how the read token reaches git) since 2.31. */
export const MIN_GIT_VERSION = [2, 31] as const;

/**
 * What the server answers to `GET /runners/v1` without an upgrade: 401 for an unknown or revoked
 * token (checked before anything else); for a valid token the WebSocket route declines the plain
 * request and the server's not-found handler answers 404 (src/dispatch/runner-routes.ts,
 * src/http/create-http-app.ts). 429 means a valid token whose runner must wait before reconnecting.
 */
const TOKEN_REFUSED = 401;
const TOKEN_ACCEPTED = 404;
const TOKEN_ACCEPTED_BUT_WAIT = 429;
/**
 * A server in setup mode (no GitHub App credentials yet) answers every `/runners/v1` request 503
 * `{"error":"GitHub App not configured: open /probot"}`, before any token is looked at.
 */
const SETUP_MODE = 503;
/** Well-formed but never issued: the server must refuse it, or it does not check tokens here. */
const DECOY_TOKEN = "cvr_conveyor-doctor-probe-not-a-real-token";

/**
 * Checks what a runner needs before it can work: git ≥ 2.31, the agent command, a writable work
 * dir and journal directory, a reachable server, a token the server accepts and a sandbox for the
 * agent (which one `start` will use). Never throws for a failed check; the token never appears in
 * a detail.
 */
export async function runDoctor(
  config: DoctorConfig,
  deps: DoctorDeps = {},
): Promise<DoctorResult> {
  const env = deps.env ?? process.env;
  const cwd = deps.cwd ?? process.cwd();
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const doFetch = deps.fetch ?? globalThis.fetch;

  const [git, agent, workDir, journal, sandbox] = await Promise.all([
    checkGit(deps.git ?? "git", env, timeoutMs),
    checkAgent(config.agent, env, cwd),
    checkWritable("work dir", config.workDir, "--work-dir (CONVEYOR_RUNNER_WORK_DIR, work_dir)"),
    checkWritable(
      "journal",
      dirname(config.journalPath),
      "--journal (CONVEYOR_RUNNER_JOURNAL, journal)",
    ),
    checkSandbox(config, deps.host, env),
  ]);
  const server = await checkServer(config.serverUrl, doFetch, timeoutMs);
  const token = server.ok
    ? await checkToken(config, doFetch, timeoutMs)
    : {
        name: "token",
        ok: false,
        detail: "not checked: the server could not be reached (see above)",
      };
  const checks = [git, agent, workDir, journal, server, token, sandbox];
  return { ok: checks.every((c) => c.ok), checks };
}

/** Which isolation `start` would use; none (without --unsandboxed) fails, as `start` refuses. */
async function checkSandbox(
  config: DoctorConfig,
  host: HostFacts | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<DoctorCheck> {
  const network = config.network ?? "host";
  const facts = host ?? (await probeHost({ env: { PATH: env.PATH }, network }));
  const choice = chooseIsolation(config.isolation ?? "auto", network, facts);
  if (!choice.ok) return { name: "sandbox", ok: false, detail: choice.reason };
  return {
    name: "sandbox",
    ok: true,
    detail: choice.kind === "none" ? `WARNING: ${choice.detail}` : choice.detail,
  };
}

async function checkGit(
  git: string,
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs: number,
): Promise<DoctorCheck> {
  const name = "git";
  const need = `${MIN_GIT_VERSION.join(".")}`;
  let output: string;
  try {
    output = await new Promise<string>((resolvePromise, reject) => {
      execFile(
        git,
        ["--version"],
        { env: { ...env, LC_ALL: "C" }, timeout: timeoutMs, windowsHide: true },
        (error, stdout) => (error ? reject(error) : resolvePromise(stdout)),
      );
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      name,
      ok: false,
      detail:
        code === "ENOENT"
          ? `${git} not found${git.includes(sep) ? "" : " on PATH"}: install git ${need} or newer`
          : `\`${git} --version\` failed (${(error as Error).message.split("\n")[0]}): install git ${need} or newer`,
    };
  }
  const match = /git version (\d+)\.(\d+)(?:\.(\d+))?/.exec(output);
  if (!match) {
    return {
      name,
      ok: false,
      detail: `could not read git's version from ${JSON.stringify(output.trim().slice(0, 80))}: install git ${need} or newer`,
    };
  }
  const version = [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] as const;
  const [major, minor] = version;
  const recent =
    major > MIN_GIT_VERSION[0] || (major === MIN_GIT_VERSION[0] && minor >= MIN_GIT_VERSION[1]);
  return recent
    ? { name, ok: true, detail: `git ${version.join(".")}` }
    : {
        name,
        ok: false,
        detail: `git ${version.join(".")} is too old: the runner hands git its read-only token through GIT_CONFIG_COUNT, which needs git ${need} or newer; upgrade git`,
      };
}

async function checkAgent(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): Promise<DoctorCheck> {
  const name = "agent command";
  const program = argv[0] ?? "";
  const fix =
    "fix agent (--agent <adapter>, --agent -- …, CONVEYOR_AGENT_COMMAND or agent in conveyor-runner.yml)";
  if (!program) return { name, ok: false, detail: `the agent command is empty: ${fix}` };
  const hasSlash = program.includes("/") || program.includes(sep);
  if (hasSlash && !isAbsolute(program)) {
    return {
      name,
      ok: false,
      detail: `${JSON.stringify(program)} is a relative path, which would be looked up inside each task's workspace (the repository's files), not here: give its absolute path, e.g. ${JSON.stringify(resolve(cwd, program))}`,
    };
  }
  if (hasSlash) {
    const problem = await notExecutable(program);
    return problem
      ? { name, ok: false, detail: `${program} ${problem}: ${fix}` }
      : { name, ok: true, detail: `${program} (${argv.length} argv elements)` };
  }
  const dirs = (env.PATH ?? "").split(delimiter).filter(Boolean);
  const extensions =
    process.platform === "win32" ? ["", ...(env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";")] : [""];
  for (const dir of dirs) {
    for (const extension of extensions) {
      const candidate = join(dir, program + extension);
      if (!(await notExecutable(candidate))) {
        return { name, ok: true, detail: `${program} → ${candidate}` };
      }
    }
  }
  return {
    name,
    ok: false,
    detail: `${JSON.stringify(program)} is not on PATH (searched ${dirs.length} directories): install it, add its directory to PATH, or give its absolute path in agent`,
  };
}

/** Undefined when `path` is an executable file; otherwise why not. */
async function notExecutable(path: string): Promise<string | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return "is not a file";
    await access(path, constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return "does not exist";
    if (code === "EACCES") return "is not executable (chmod +x)";
    return `cannot be used (${code ?? (error as Error).message})`;
  }
}

async function checkWritable(name: string, dir: string, setting: string): Promise<DoctorCheck> {
  const probe = join(dir, `.conveyor-doctor-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, "probe\n", { flag: "wx" });
    await unlink(probe);
    return { name, ok: true, detail: `${dir} is writable` };
  } catch (error) {
    await unlink(probe).catch(() => {});
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      name,
      ok: false,
      detail: `cannot write to ${dir} (${code}): fix its permissions or choose another directory with ${setting}`,
    };
  }
}

function isLoopback(url: URL): boolean {
  return (
    ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname) || url.hostname.startsWith("127.")
  );
}

async function request(
  doFetch: typeof globalThis.fetch,
  url: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; retryAfter: string | null } | { error: string }> {
  try {
    const response = await doFetch(url, {
      headers,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel().catch(() => {});
    return { status: response.status, retryAfter: response.headers.get("retry-after") };
  } catch (error) {
    const err = error as Error & { cause?: { code?: string; message?: string } };
    if (err.name === "TimeoutError" || err.name === "AbortError") {
      return { error: `no answer within ${Math.round(timeoutMs / 100) / 10} s` };
    }
    return { error: err.cause?.code ?? err.cause?.message ?? err.message };
  }
}

async function checkServer(
  serverUrl: string,
  doFetch: typeof globalThis.fetch,
  timeoutMs: number,
): Promise<DoctorCheck> {
  const name = "server";
  const url = `${serverUrl}/healthz`;
  const answer = await request(doFetch, url, timeoutMs);
  if ("error" in answer) {
    return {
      name,
      ok: false,
      detail: `cannot reach ${url} (${answer.error}): check the server URL (--server, CONVEYOR_SERVER_URL, server_url) and that the server is running and reachable from here`,
    };
  }
  if (answer.status !== 200) {
    return {
      name,
      ok: false,
      detail: `${url} answered ${answer.status}, not 200: is ${serverUrl} the Conveyor server's base URL (without /runners/v1)?`,
    };
  }
  const plain = new URL(serverUrl).protocol === "http:" && !isLoopback(new URL(serverUrl));
  return {
    name,
    ok: true,
    detail: `${url} answered 200${plain ? "; note: plain http sends the runner token unencrypted, use https beyond this machine" : ""}`,
  };
}

async function checkToken(
  config: DoctorConfig,
  doFetch: typeof globalThis.fetch,
  timeoutMs: number,
): Promise<DoctorCheck> {
  const name = "token";
  const url = `${config.serverUrl}/runners/v1`;
  // A token nobody was issued must be refused first, or a 404 below would prove nothing (a server
  // whose GitHub App is not set up yet has no runner routes and answers 404 to every token).
  const decoy = await request(doFetch, url, timeoutMs, {
    authorization: `Bearer ${DECOY_TOKEN}`,
  });
  if ("error" in decoy) {
    return { name, ok: false, detail: `cannot reach ${url} (${decoy.error})` };
  }
  if (decoy.status === SETUP_MODE || decoy.status === TOKEN_ACCEPTED) {
    return {
      name,
      ok: false,
      detail: `${url} is not served: the server does not take runners yet (its GitHub App is not configured; finish the setup at ${config.serverUrl}/probot)`,
    };
  }
  if (decoy.status !== TOKEN_REFUSED) {
    return {
      name,
      ok: false,
      detail: `${url} answered ${decoy.status} to an unknown token instead of 401: is a proxy in front of the server changing /runners/v1?`,
    };
  }
  const real = await request(doFetch, url, timeoutMs, {
    authorization: `Bearer ${config.token}`,
  });
  if ("error" in real) {
    return { name, ok: false, detail: `cannot reach ${url} (${real.error})` };
  }
  switch (real.status) {
    case TOKEN_ACCEPTED:
      return { name, ok: true, detail: "the server accepts the runner token" };
    case TOKEN_ACCEPTED_BUT_WAIT:
      return {
        name,
        ok: true,
        detail: `the server accepts the runner token, but asks this runner to wait ${real.retryAfter ?? "a while"} s before connecting (too many invalid frames)`,
      };
    case TOKEN_REFUSED:
      return {
        name,
        ok: false,
        detail:
          "the server refused the runner token (unknown or revoked): register the runner with `npx conveyor runners add <name>` on the server side and use the cvr_… token it prints (CONVEYOR_RUNNER_TOKEN)",
      };
    default:
      return {
        name,
        ok: false,
        detail: `${url} answered ${real.status} to the runner token (expected ${TOKEN_ACCEPTED} for an accepted token or ${TOKEN_REFUSED} for a refused one): check the server URL and any proxy in front of it`,
      };
  }
}

/** The doctor's findings as text for the terminal. */
export function formatDoctorReport(result: DoctorResult): string {
  const width = Math.max(...result.checks.map((c) => c.name.length));
  const lines = result.checks.map(
    (c) => `  ${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(width)}  ${c.detail}`,
  );
  const failed = result.checks.filter((c) => !c.ok).length;
  lines.push(
    "",
    result.ok
      ? "All checks passed."
      : `${failed} of ${result.checks.length} checks failed: fix them and run \`conveyor-runner doctor\` again.`,
  );
  return `${lines.join("\n")}\n`;
}
