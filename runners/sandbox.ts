import { execFile } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
} from "node:fs";
import { chmod, chown, mkdir, readFile, rm, stat } from "node:fs/promises";
import { delimiter, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { IsolationSetting, NetworkSetting } from "./runner-config.ts";

/**
 * The agent's sandbox. The agent (and the verify commands, and the git commands that read its
 * changes back) runs where it cannot see the runner: not its process (so not its environment or
 * command line), not its config file, token file or journal, and not the workspaces of other tasks.
 *
 * - `bwrap`: bubblewrap with its own PID, mount, IPC and UTS namespaces, no capabilities, a new
 *   session, killed with the runner (`--die-with-parent`). `/` is mounted read-only, `/proc` is the
 *   sandbox's own (only its processes), `/tmp` is a private tmpfs, the work dir is an empty tmpfs
 *   with only this task's workspace (writable) and prompt file (read-only) bound into it, and the
 *   runner's config, token file, `.env` and journal are covered by `/dev/null`.
 * - `users`: when bwrap is missing and the runner runs as root, each slot runs its commands as its
 *   own unprivileged user (`conveyor-slot-<n>`): the kernel refuses another user's
 *   `/proc/<pid>/environ`, `mem` and ptrace, and file modes keep the runner's private files and
 *   other slots' workspaces out of reach. What that user leaves running is killed after each command.
 * - `none`: `--unsandboxed`; the agent can read everything the runner can.
 */

export type IsolationKind = "bwrap" | "users" | "none";

/** What this machine offers, as gathered by {@link probeHost}. */
export interface HostFacts {
  bwrap:
    | { kind: "usable"; path: string }
    | { kind: "missing" }
    | { kind: "broken"; path: string; reason: string };
  isRoot: boolean;
  platform: NodeJS.Platform;
}

/** The isolation to use, with a sentence for `doctor` and the log; or why there is none. */
export type IsolationChoice =
  | { ok: true; kind: "bwrap"; bwrap: string; detail: string }
  | { ok: true; kind: "users" | "none"; detail: string }
  | { ok: false; reason: string };

/** The name of the user that runs slot `n`'s commands in `users` isolation. */
export const slotUserName = (slot: number) => `conveyor-slot-${slot}`;

const INSTALL_BWRAP =
  "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap; Fedora: dnf install bubblewrap)";

/**
 * Decides which isolation to use from the setting and the machine's facts. `auto` prefers bwrap,
 * then a user per slot (root only); it never silently falls back to `none`.
 */
export function chooseIsolation(
  setting: IsolationSetting,
  network: NetworkSetting,
  facts: HostFacts,
): IsolationChoice {
  const bwrapProblem =
    facts.bwrap.kind === "missing"
      ? `bwrap is not on PATH: ${INSTALL_BWRAP}`
      : facts.bwrap.kind === "broken"
        ? `${facts.bwrap.path} cannot create a sandbox here (${facts.bwrap.reason}); on Ubuntu 24.04 and later, unprivileged user namespaces may be restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns)`
        : undefined;
  const usersProblem =
    facts.platform !== "linux"
      ? "a user per slot needs Linux"
      : !facts.isRoot
        ? "a user per slot needs the runner to run as root (it starts each slot's commands as conveyor-slot-<n>)"
        : network === "none"
          ? "network: none needs bwrap (a user per slot cannot take the network away)"
          : undefined;
  const bwrapChoice = (path: string): IsolationChoice => ({
    ok: true,
    kind: "bwrap",
    bwrap: path,
    detail: `bwrap (${path}): own PID and mount namespaces, the workspace is the only writable path, private /tmp, the runner's process, config, token, journal and other tasks hidden${network === "none" ? ", no network" : ""}`,
  });
  const usersChoice: IsolationChoice = {
    ok: true,
    kind: "users",
    detail:
      "a user per slot (conveyor-slot-<n>): the agent cannot read the runner's process, private files or other slots' workspaces; /tmp is shared and the rest of the file system is as that user may see it",
  };
  switch (setting) {
    case "none":
      return {
        ok: true,
        kind: "none",
        detail:
          "none (--unsandboxed): the agent runs as the runner's own user and can read its token, config, journal and other tasks' workspaces",
      };
    case "bwrap":
      return facts.bwrap.kind === "usable"
        ? bwrapChoice(facts.bwrap.path)
        : { ok: false, reason: `isolation: bwrap was asked for, but ${bwrapProblem}` };
    case "users":
      return usersProblem
        ? { ok: false, reason: `isolation: users was asked for, but ${usersProblem}` }
        : usersChoice;
    case "auto":
      if (facts.bwrap.kind === "usable") return bwrapChoice(facts.bwrap.path);
      if (!usersProblem) {
        return {
          ...usersChoice,
          detail: `${usersChoice.detail} (bwrap unusable: ${bwrapProblem})`,
        };
      }
      return {
        ok: false,
        reason: `no sandbox for the agent: ${bwrapProblem}; ${usersProblem}. Without one the agent could read the runner's token; fix one of these, or pass --unsandboxed (isolation: none) to run the agent as the runner's own user anyway`,
      };
  }
}

/** The first executable called `name` in `PATH`. */
function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Looks for bwrap and tries it once with the namespaces the runner will ask for. */
export async function probeHost(
  options: { env?: NodeJS.ProcessEnv; network?: NetworkSetting } = {},
): Promise<HostFacts> {
  const env = options.env ?? process.env;
  const facts = { isRoot: process.getuid?.() === 0, platform: process.platform };
  const path = process.platform === "linux" ? findOnPath("bwrap", env) : undefined;
  if (!path) return { ...facts, bwrap: { kind: "missing" } };
  const args = [
    ...BWRAP_BASE,
    ...(options.network === "none" ? ["--unshare-net"] : []),
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--",
    "true",
  ];
  const failure = await new Promise<string | undefined>((done) => {
    execFile(path, args, { timeout: 10_000, env: { PATH: env.PATH } }, (error, _out, stderr) =>
      done(error ? (stderr.trim().split("\n")[0] || error.message).slice(0, 300) : undefined),
    );
  });
  return {
    ...facts,
    bwrap: failure ? { kind: "broken", path, reason: failure } : { kind: "usable", path },
  };
}

/** Namespaces and privileges every bwrap sandbox starts with. */
const BWRAP_BASE = [
  "--die-with-parent",
  "--new-session",
  "--unshare-pid",
  "--unshare-ipc",
  "--unshare-uts",
  "--unshare-cgroup-try",
  // As root, bwrap keeps every capability unless told: the agent could unmount what hides secrets.
  "--cap-drop",
  "ALL",
];

/** What one bwrap invocation mounts. Paths are absolute. */
export interface BwrapPlan {
  network: NetworkSetting;
  /** Writable paths the operator added (`sandbox_writable`), bound before the masks. */
  operatorWritable: readonly string[];
  /** Directories covered by an empty tmpfs: the work dir, the journal's own directory. */
  hiddenDirs: readonly string[];
  /** Files covered by `/dev/null`: config, token file, `.env`, journal. */
  hiddenFiles: readonly string[];
  /**
   * What the agent is given to run that the private `/tmp` would hide (see
   * {@link pathsToRun}): bound read-only over it, before the masks, as the rest of the file system is.
   */
  runPaths?: readonly string[];
  /** The task's workspace: writable, and the working directory. */
  workspace: string;
  /** Bound read-only after the masks (the prompt file). */
  readOnly: readonly string[];
  /** Bound writable after the masks, for this command only (the change set's index). */
  writable: readonly string[];
  argv: readonly string[];
}

const isInside = (path: string, dir: string) => {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
};

/**
 * The bwrap command line for a plan. Later mounts cover earlier ones, so the order is: the
 * read-only root, the sandbox's own /dev, /proc and /tmp, the operator's writable paths, the masks,
 * then the task's own paths (which the masks would otherwise hide), then the masks made read-only.
 */
export function bwrapArguments(plan: BwrapPlan): string[] {
  const runPaths = plan.runPaths ?? [];
  // A file under a tmpfs is hidden already (and /dev/null cannot be bound where no file is), but a
  // run path bound back over the private /tmp brings what is inside it back: mask that too.
  const underTmpfs = (path: string) =>
    plan.hiddenDirs.some((dir) => isInside(path, dir)) ||
    (isInside(path, "/tmp") && !runPaths.some((run) => isInside(path, run)));
  return [
    ...BWRAP_BASE,
    ...(plan.network === "none" ? ["--unshare-net"] : []),
    ...["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"],
    ...runPaths.flatMap((path) => ["--ro-bind", path, path]),
    ...plan.operatorWritable.flatMap((path) => ["--bind", path, path]),
    ...plan.hiddenDirs.flatMap((dir) => ["--tmpfs", dir]),
    ...plan.hiddenFiles
      .filter((file) => !underTmpfs(file))
      .flatMap((file) => ["--ro-bind", "/dev/null", file]),
    ...["--bind", plan.workspace, plan.workspace],
    ...plan.readOnly.flatMap((path) => ["--ro-bind", path, path]),
    ...plan.writable.flatMap((path) => ["--bind", path, path]),
    // The masks are empty and stay so: nothing the agent writes there outlives it anyway, but a
    // read-only mask leaves no doubt (the binds inside them are separate mounts, still writable).
    ...plan.hiddenDirs.flatMap((dir) => ["--remount-ro", dir]),
    ...["--chdir", plan.workspace, "--"],
    ...plan.argv,
  ];
}

/**
 * What the private `/tmp` would hide from the agent that it needs to run: its program (looked up
 * on its PATH), the absolute paths in its argv, and the directories on its PATH, when they live
 * under `/tmp` (a checkout or tool in a temporary directory, as in CI). Each is given as the
 * top-level entry of `/tmp` that holds it, so a script finds the packages beside it; that entry is
 * then as visible, read-only, as any directory outside `/tmp`, and the masks still cover the
 * runner's own files inside it.
 */
export function pathsToRun(argv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const pathDirs = (env.PATH ?? "").split(delimiter).filter((dir) => isAbsolute(dir));
  const program = argv[0];
  const found =
    program && !program.includes("/")
      ? pathDirs.map((dir) => join(dir, program)).find((file) => existsSync(file))
      : undefined;
  const candidates = [
    ...argv.filter((arg) => isAbsolute(arg)),
    ...pathDirs,
    ...(found ? [found] : []),
  ];
  const top = new Set<string>();
  for (const candidate of candidates) {
    for (const path of new Set([resolve(candidate), real(candidate)])) {
      const rel = relative("/tmp", path);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) continue;
      const entry = join("/tmp", rel.split("/")[0]!);
      if (existsSync(entry)) top.add(entry);
    }
  }
  return [...top].sort();
}

/** A command ready for `spawn`: program and arguments, environment, and the user to run as. */
export interface SandboxedCommand {
  argv: string[];
  env: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

/** The sandbox of one task, from its workspace being handed over to its end. */
export interface TaskSandbox {
  /**
   * How to run `argv` inside the task's sandbox. `writable` are directories the runner made for
   * this command (they become writable inside, and owned by the slot's user).
   */
  command(
    argv: readonly string[],
    env: NodeJS.ProcessEnv,
    writable?: readonly string[],
  ): Promise<SandboxedCommand>;
  /** Kills whatever the task's commands left running (users: every process of the slot's user). */
  sweep(): Promise<void>;
  /** Sweeps and removes what the sandbox made for the task; safe to call twice. */
  dispose(): Promise<void>;
}

export interface Sandbox {
  kind: IsolationKind;
  detail: string;
  /** Hands the workspace and the prompt file to the slot and returns the task's sandbox. */
  forTask(task: {
    slot: number;
    /** `<task id>-<generation>`: names what the sandbox makes for the task. */
    key: string;
    workspace: string;
    promptFile: string;
  }): Promise<TaskSandbox>;
}

export interface CreateSandboxOptions {
  choice: Extract<IsolationChoice, { ok: true }>;
  slots: number;
  network: NetworkSetting;
  workDir: string;
  journalPath: string;
  configFile?: string;
  tokenFile?: string;
  /** The `.env` the CLI loads from its working directory. */
  envFile?: string;
  /** The agent's argv: its program is never hidden. */
  agent: readonly string[];
  sandboxWritable: readonly string[];
  env?: NodeJS.ProcessEnv;
}

/** The checkout of Conveyor this runner runs from (the scripted agent lives here). */
const INSTALL_DIR = fileURLToPath(new URL("..", import.meta.url));

const real = (path: string) => {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
};

/**
 * Builds the sandbox chosen by {@link chooseIsolation}. For `users` it makes sure the slot users
 * exist (creating missing ones with `useradd`). Throws with a message for the operator when the
 * setup cannot work (a writable path that does not exist, `useradd` missing).
 */
export async function createSandbox(options: CreateSandboxOptions): Promise<Sandbox> {
  const { choice } = options;
  if (choice.kind === "none") {
    return {
      kind: "none",
      detail: choice.detail,
      async forTask() {
        return {
          command: async (argv, env) => ({ argv: [...argv], env }),
          sweep: async () => {},
          dispose: async () => {},
        };
      },
    };
  }
  const created: string[] = [];
  for (let dir = resolve(options.workDir); !existsSync(dir); dir = dirname(dir)) created.push(dir);
  await mkdir(options.workDir, { recursive: true });
  const workDir = real(options.workDir);
  if (choice.kind !== "bwrap") {
    if (options.sandboxWritable.length > 0) {
      throw new Error(
        "sandbox_writable is for bwrap only: with a user per slot, give the conveyor-slot-<n> users write access yourself",
      );
    }
    // Directories the runner made for the work dir (under its umask 077) let slot users pass.
    for (const dir of created) await chmod(dir, 0o711);
    return createUserSandbox(options, workDir);
  }

  for (const path of options.sandboxWritable) {
    if (!existsSync(path)) {
      throw new Error(
        `sandbox_writable: ${path} does not exist; create it or remove it from the setting`,
      );
    }
  }
  const journal = real(options.journalPath);
  const journalDir = dirname(journal);
  // The journal's directory is hidden as a whole (the journal is replaced through temporary files
  // next to it) when it is the runner's own: it holds the work dir and none of what the agent runs.
  const env = options.env ?? process.env;
  const program = options.agent[0] ?? "";
  const agentProgram = isAbsolute(program) ? program : findOnPath(program, env);
  const needed = [process.execPath, INSTALL_DIR, agentProgram, env.HOME].filter(
    (path): path is string => typeof path === "string" && path !== "",
  );
  const ownJournalDir =
    isInside(workDir, journalDir) && !needed.some((path) => isInside(real(path), journalDir));
  const hiddenDirs = ownJournalDir ? [journalDir, workDir] : [workDir];
  const secretFiles = [journal, options.configFile, options.tokenFile, options.envFile]
    .filter((path): path is string => typeof path === "string")
    .map(real);
  const operatorWritable = options.sandboxWritable.map(real);
  for (const path of operatorWritable) {
    const hidden = hiddenDirs.find((dir) => isInside(path, dir));
    if (hidden) {
      throw new Error(
        `sandbox_writable: ${path} is inside ${hidden}, which the sandbox hides from the agent; choose a path outside the runner's own directories`,
      );
    }
  }
  const bwrap = choice.bwrap;

  return {
    kind: "bwrap",
    detail: choice.detail,
    async forTask(task) {
      const workspace = real(task.workspace);
      const promptFile = real(task.promptFile);
      return {
        async command(argv, env, writable = []) {
          // A mask needs something to cover: files that do not exist (yet) have nothing to hide.
          const hiddenFiles = secretFiles.filter((file) => existsSync(file));
          return {
            argv: [
              bwrap,
              ...bwrapArguments({
                network: options.network,
                operatorWritable,
                hiddenDirs,
                hiddenFiles,
                runPaths: pathsToRun(argv, env),
                workspace,
                readOnly: [promptFile],
                writable: writable.map(real),
                argv,
              }),
            ],
            env: { ...env, TMPDIR: "/tmp" },
          };
        },
        // The PID namespace ends with its first process: nothing can be left behind.
        sweep: async () => {},
        dispose: async () => {},
      };
    },
  };
}

interface SlotUser {
  name: string;
  uid: number;
  gid: number;
}

async function createUserSandbox(options: CreateSandboxOptions, workDir: string): Promise<Sandbox> {
  // Slot users must pass through every directory above the work dir to reach their workspace.
  for (let dir = dirname(workDir); ; dir = dirname(dir)) {
    const mode = (await stat(dir)).mode & 0o777;
    if (!(mode & 0o001)) {
      throw new Error(
        `isolation users: the slot users cannot reach the work dir ${workDir}: ${dir} is mode ${mode.toString(8).padStart(4, "0")}; let others pass through it (chmod o+x ${dir}; they cannot list it) or choose a work dir elsewhere`,
      );
    }
    if (dir === dirname(dir)) break;
  }
  const users: SlotUser[] = [];
  for (let slot = 1; slot <= options.slots; slot++) users.push(await ensureSlotUser(slot));
  // Slot users may pass through the work dir to their own workspace, never list it.
  await chmod(workDir, 0o711);
  return {
    kind: "users",
    detail: options.choice.detail,
    async forTask(task) {
      const user = users[task.slot - 1];
      if (!user) throw new Error(`no user for slot ${task.slot}`);
      const home = join(workDir, `${task.key}.home`);
      await killUserProcesses(user.uid);
      await mkdir(home, { mode: 0o700 });
      await chown(home, user.uid, user.gid);
      await chownTree(task.workspace, user);
      await chown(task.promptFile, user.uid, user.gid);
      await chmod(task.promptFile, 0o600);
      let disposed = false;
      return {
        async command(argv, env, writable = []) {
          for (const dir of writable) await chownTree(dir, user);
          return {
            argv: [...argv],
            env: { ...env, HOME: home, TMPDIR: home, USER: user.name, LOGNAME: user.name },
            uid: user.uid,
            gid: user.gid,
          };
        },
        sweep: () => killUserProcesses(user.uid),
        async dispose() {
          if (disposed) return;
          disposed = true;
          await killUserProcesses(user.uid);
          await rm(home, { recursive: true, force: true });
        },
      };
    },
  };
}

/** The slot's user from /etc/passwd, created with `useradd` (a system user, no home) if missing. */
async function ensureSlotUser(slot: number): Promise<SlotUser> {
  const name = slotUserName(slot);
  const found = await lookupUser(name);
  if (found) return found;
  const useradd = findOnPath("useradd", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
  if (!useradd) {
    throw new Error(
      `the user ${name} does not exist and useradd is not available to create it: create it (a system user without a login shell), or install bubblewrap`,
    );
  }
  await new Promise<void>((done, fail) => {
    execFile(
      useradd,
      [
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
      ],
      { timeout: 30_000 },
      (error, _out, stderr) =>
        error
          ? fail(new Error(`could not create the user ${name}: ${stderr.trim() || error.message}`))
          : done(),
    );
  });
  const created = await lookupUser(name);
  if (!created) throw new Error(`useradd did not create the user ${name}`);
  return created;
}

async function lookupUser(name: string): Promise<SlotUser | undefined> {
  const passwd = await readFile("/etc/passwd", "utf8");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid && gid) {
      const id = { name, uid: Number(uid), gid: Number(gid) };
      if (id.uid === 0 || id.gid === 0) {
        throw new Error(`the user ${name} has uid or gid 0: give it its own unprivileged ids`);
      }
      return id;
    }
  }
  return undefined;
}

/** chown -R without following symlinks (a symlink's own owner changes, not its target's). */
function chownTree(path: string, user: SlotUser): Promise<void> {
  return new Promise((done, fail) => {
    execFile("chown", ["-hR", `${user.uid}:${user.gid}`, "--", path], (error, _out, stderr) =>
      error
        ? fail(new Error(`chown of ${path} failed: ${stderr.trim() || error.message}`))
        : done(),
    );
  });
}

/**
 * SIGKILLs every process of `uid`, until none is left (a process may fork while we look; the
 * rounds are bounded). A slot's user runs nothing but the slot's commands, so nothing else dies.
 */
export async function killUserProcesses(uid: number): Promise<void> {
  for (let round = 0; round < 20; round++) {
    let found = 0;
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let status: string;
      try {
        status = readFileSync(`/proc/${entry}/status`, "utf8");
      } catch {
        continue;
      }
      const ids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
      const state = /^State:\s+(\S)/m.exec(status)?.[1];
      if (!ids || state === "Z" || state === "X") continue;
      if (ids.slice(1).some((id) => Number(id) === uid)) {
        found++;
        try {
          process.kill(Number(entry), "SIGKILL");
        } catch {
          // Gone already.
        }
      }
    }
    if (found === 0) return;
    await new Promise((done) => setTimeout(done, 20));
  }
}
