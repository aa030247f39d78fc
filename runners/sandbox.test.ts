import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectChangeSet } from "./change-set.ts";
import {
  type BwrapPlan,
  bwrapArguments,
  chooseIsolation,
  createSandbox,
  type HostFacts,
  pathsToRun,
  probeHost,
} from "./sandbox.ts";
import { gitEnvironment, runGit } from "./workspace.ts";

const usable: HostFacts["bwrap"] = { kind: "usable", path: "/usr/bin/bwrap" };
const missing: HostFacts["bwrap"] = { kind: "missing" };
const broken: HostFacts["bwrap"] = {
  kind: "broken",
  path: "/usr/bin/bwrap",
  reason: "setting up uid map: Permission denied",
};
const host = (bwrap: HostFacts["bwrap"], isRoot: boolean, platform: NodeJS.Platform = "linux") => ({
  bwrap,
  isRoot,
  platform,
});

describe("chooseIsolation", () => {
  it.each([
    ["auto", "host", host(usable, false), "bwrap", undefined],
    ["auto", "host", host(usable, true), "bwrap", undefined],
    ["auto", "none", host(usable, false), "bwrap", undefined],
    ["auto", "host", host(missing, true), "users", undefined],
    ["auto", "host", host(broken, true), "users", undefined],
    // Never a silent fallback to nothing.
    ["auto", "host", host(missing, false), undefined, "pass --unsandboxed"],
    ["auto", "host", host(broken, false), undefined, "setting up uid map"],
    ["auto", "host", host(missing, true, "darwin"), undefined, "needs Linux"],
    ["auto", "none", host(missing, true), undefined, "network: none needs bwrap"],
    ["bwrap", "host", host(missing, true), undefined, "apt-get install -y bubblewrap"],
    ["users", "host", host(usable, false), undefined, "needs the runner to run as root"],
    ["users", "host", host(usable, true), "users", undefined],
    ["users", "none", host(usable, true), undefined, "network: none needs bwrap"],
    ["none", "host", host(missing, false), "none", undefined],
  ] as const)("%s with network %s on %j → %s", (setting, network, facts, kind, reason) => {
    const choice = chooseIsolation(setting, network, facts);
    if (kind) {
      expect(choice).toMatchObject({ ok: true, kind });
    } else {
      expect(choice.ok).toBe(false);
      if (!choice.ok) expect(choice.reason).toContain(reason);
    }
  });
});

describe("bwrapArguments", () => {
  const plan: BwrapPlan = {
    network: "host",
    operatorWritable: ["/home/runner/.claude"],
    hiddenDirs: ["/srv/runner/state"],
    hiddenFiles: ["/srv/runner/conveyor-runner.yml", "/srv/runner/state/journal.json", "/tmp/x"],
    workspace: "/srv/runner/state/work/t-1-abc",
    readOnly: ["/srv/runner/state/work/t-1.prompt.md"],
    writable: ["/tmp/conveyor-index-1"],
    argv: ["claude", "-p"],
  };
  const args = bwrapArguments(plan);
  const at = (...words: string[]) => {
    for (let i = 0; i < args.length; i++) {
      if (words.every((word, j) => args[i + j] === word)) return i;
    }
    return -1;
  };

  it("isolates the process: namespaces, no capabilities, a new session, dies with the runner", () => {
    for (const flag of ["--unshare-pid", "--new-session", "--die-with-parent", "--unshare-ipc"]) {
      expect(args).toContain(flag);
    }
    expect(at("--cap-drop", "ALL")).toBeGreaterThanOrEqual(0);
    expect(args).not.toContain("--unshare-net");
    expect(bwrapArguments({ ...plan, network: "none" })).toContain("--unshare-net");
    // The agent's argv comes last, after `--`, untouched.
    expect(args.slice(-3)).toEqual(["--", "claude", "-p"]);
  });

  it("mounts in an order where the masks hide the runner and the task's own paths stay reachable", () => {
    const root = at("--ro-bind", "/", "/");
    const proc = at("--proc", "/proc");
    const tmp = at("--tmpfs", "/tmp");
    const operator = at("--bind", "/home/runner/.claude", "/home/runner/.claude");
    const hideDir = at("--tmpfs", "/srv/runner/state");
    const hideConfig = at("--ro-bind", "/dev/null", "/srv/runner/conveyor-runner.yml");
    const workspace = at("--bind", plan.workspace, plan.workspace);
    const prompt = at("--ro-bind", plan.readOnly[0]!, plan.readOnly[0]!);
    const index = at("--bind", "/tmp/conveyor-index-1", "/tmp/conveyor-index-1");
    const readOnlyMask = at("--remount-ro", "/srv/runner/state");
    expect(root).toBeGreaterThanOrEqual(0);
    expect([root, proc, tmp, operator, hideDir, hideConfig, workspace, prompt, index]).toEqual(
      [root, proc, tmp, operator, hideDir, hideConfig, workspace, prompt, index].sort(
        (a, b) => a - b,
      ),
    );
    expect(Math.min(root, proc, tmp, operator, hideDir, hideConfig, workspace, prompt, index)).toBe(
      root,
    );
    expect(readOnlyMask).toBeGreaterThan(index);
    expect(at("--chdir", plan.workspace)).toBeGreaterThan(readOnlyMask);
    // Files inside a hidden directory or /tmp are already gone: no mask for them.
    expect(at("--ro-bind", "/dev/null", "/srv/runner/state/journal.json")).toBe(-1);
    expect(at("--ro-bind", "/dev/null", "/tmp/x")).toBe(-1);
  });
});

describe("a task's bwrap sandbox (bwrap is a test prerequisite)", () => {
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "conveyor-sandbox-"));
  });
  afterAll(() => rm(base, { recursive: true, force: true }));

  const run = (argv: string[], env: NodeJS.ProcessEnv, cwd: string) =>
    new Promise<{ code: number; out: string }>((done) => {
      execFile(argv[0]!, argv.slice(1), { cwd, env }, (error, stdout, stderr) =>
        done({ code: error ? Number(error.code ?? 1) : 0, out: `${stdout}${stderr}` }),
      );
    });

  it("contains the git the runner runs on the agent's .git: a clean filter cannot write outside", async () => {
    const choice = chooseIsolation("bwrap", "host", await probeHost());
    if (!choice.ok) throw new Error(choice.reason);
    const work = join(base, "state", "work");
    const workspace = join(work, "t-1-abc");
    await mkdir(workspace, { recursive: true });
    const promptFile = join(work, "t-1.prompt.md");
    await writeFile(promptFile, "the prompt\n");
    const journal = join(base, "state", "journal.json");
    await writeFile(journal, "{}\n");
    const git = (...args: string[]) =>
      runGit(args, {
        cwd: workspace,
        env: gitEnvironment(process.env, {
          GIT_AUTHOR_NAME: "a",
          GIT_AUTHOR_EMAIL: "a@example.com",
          GIT_COMMITTER_NAME: "a",
          GIT_COMMITTER_EMAIL: "a@example.com",
        }),
      });
    await git("init", "--quiet");
    await writeFile(join(workspace, "a.txt"), "one\n");
    await git("add", "a.txt");
    await git("commit", "--quiet", "-m", "base");
    const sha = (await git("rev-parse", "HEAD")).toString().trim();

    // What a hostile agent leaves: a clean filter that runs a command of its choosing on `git add`.
    const outside = join(base, "outside");
    await mkdir(outside);
    const pwned = join(outside, "pwned");
    await git("config", "filter.evil.clean", `sh -c 'echo escaped > ${pwned}; cat'`);
    await writeFile(join(workspace, ".gitattributes"), "* filter=evil\n");
    await writeFile(join(workspace, "a.txt"), "two\n");

    const sandbox = await createSandbox({
      choice,
      slots: 1,
      network: "host",
      workDir: work,
      journalPath: journal,
      agent: ["true"],
      sandboxWritable: [],
    });
    const jail = await sandbox.forTask({ slot: 1, key: "t-1", workspace, promptFile });
    // A writable path the masks would cover is refused rather than silently hidden.
    await expect(
      createSandbox({
        choice,
        slots: 1,
        network: "host",
        workDir: work,
        journalPath: journal,
        agent: ["true"],
        sandboxWritable: [workspace],
      }),
    ).rejects.toThrow(/sandbox_writable: .* is inside .*, which the sandbox hides/);
    const inside = await collectChangeSet(workspace, sha, "sandboxed", { sandbox: jail });
    expect(inside?.changeSet.files.map((f) => f.path).sort()).toEqual([".gitattributes", "a.txt"]);
    expect(existsSync(pwned)).toBe(false);

    // The same collection with the runner's rights runs the agent's command: the hole it closes.
    await collectChangeSet(workspace, sha, "unsandboxed");
    expect(await readFile(pwned, "utf8")).toBe("escaped\n");

    // Inside, the journal is gone and the prompt is there, read-only; the workspace is writable.
    const probe = await jail.command(
      [
        "sh",
        "-c",
        `cat ${journal} 2>&1; cat ${promptFile}; echo x >> ${promptFile} 2>&1; touch ok && echo wrote`,
      ],
      { PATH: process.env.PATH },
    );
    const result = await run(probe.argv, probe.env, workspace);
    expect(result.out).toContain("No such file or directory");
    expect(result.out).toContain("the prompt");
    expect(result.out).toContain("Read-only file system");
    expect(result.out).toContain("wrote");
    expect(existsSync(join(workspace, "ok"))).toBe(true);
  });
});

describe("what the private /tmp would hide from the agent", () => {
  let checkout: string;
  beforeAll(async () => {
    // A checkout in a temporary directory, as CI makes one: the agent's script and its packages.
    checkout = await mkdtemp("/tmp/conveyor-checkout-");
    await mkdir(join(checkout, "bin"), { recursive: true });
    await writeFile(join(checkout, "bin", "agent"), "#!/bin/sh\n", { mode: 0o755 });
  });
  afterAll(() => rm(checkout, { recursive: true, force: true }));

  it("binds back the top of /tmp that holds the program, an argv path or a PATH directory", () => {
    const script = join(checkout, "runners", "agent.js");
    expect(pathsToRun(["/usr/bin/node", script], { PATH: "/usr/bin" })).toEqual([checkout]);
    expect(pathsToRun(["agent"], { PATH: `/usr/bin:${join(checkout, "bin")}` })).toEqual([
      checkout,
    ]);
    expect(pathsToRun(["node", "-e", "1"], { PATH: "/usr/bin:/bin" })).toEqual([]);
    // Nothing that does not exist, and never /tmp itself.
    expect(pathsToRun(["/tmp/no-such-dir-here/x", "/tmp"], { PATH: "" })).toEqual([]);
  });

  it("masks the runner's files inside a bound-back directory, and leaves those under /tmp hidden", () => {
    const token = join(checkout, "token");
    const args = bwrapArguments({
      network: "host",
      operatorWritable: [],
      hiddenDirs: [],
      hiddenFiles: [token, "/tmp/elsewhere/token"],
      runPaths: [checkout],
      workspace: "/srv/work/t-1",
      readOnly: [],
      writable: [],
      argv: ["true"],
    });
    const bind = args.indexOf(checkout);
    const mask = args.indexOf(token);
    expect(args.slice(bind - 1, bind + 2)).toEqual(["--ro-bind", checkout, checkout]);
    expect(args.slice(mask - 2, mask + 1)).toEqual(["--ro-bind", "/dev/null", token]);
    expect(mask).toBeGreaterThan(bind);
    expect(args).not.toContain("/tmp/elsewhere/token");
  });
});
