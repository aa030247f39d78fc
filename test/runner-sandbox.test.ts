import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { killUserProcesses, slotUserName } from "../runners/sandbox.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask, listTaskEvents } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { type RunnerProcess, spawnRunnerProcess } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/**
 * The agent is hostile: with the runner's token it could take every repository's tasks and read
 * tokens. A probe agent (test/helpers/sandbox-probe-agent.mjs) tries the runner's
 * /proc/<ppid>/environ and cmdline, every process in /proc, the runner's config file, token file,
 * .env and journal, and the workspace of a task running beside it, and reports what it got. Run
 * sandboxed it gets nothing; the same probe run --unsandboxed gets all of it, so the test can fail.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PROBE_AGENT = join(ROOT, "test/helpers/sandbox-probe-agent.mjs");
const isRoot = process.getuid?.() === 0;
/** The runner's command line, as the probe recognises it. */
const RUNNER_COMMAND = /conveyor-runner(?:\.js)? start/;

interface Attempt {
  ok: boolean;
  text?: string;
  error?: string;
}
interface ProbeReport {
  parentEnviron: Attempt;
  parentCmdline: Attempt;
  runnerProcesses: { pid: number; cmdline: string }[];
  files: Record<"config" | "tokenFile" | "envFile" | "journal" | "siblingSecret", Attempt>;
  workDirListing: Attempt;
  siblings: { entry: string; secret: Attempt; write: Attempt }[];
  writeOutside: Attempt;
  tokens: { where: string; token: string }[];
}

let h: Harness;
const homes: string[] = [];
const processes: RunnerProcess[] = [];
let count = 0;

beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.close();
  // Outside /tmp on purpose: the sandbox's private /tmp would hide these files by itself.
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});
afterEach(async () => {
  for (const p of processes.splice(0)) {
    p.child.kill("SIGKILL");
    await p.exited;
  }
  if (isRoot) for (const slot of [1, 2]) await killUserProcesses(uidOf(slotUserName(slot)));
  expect(h.sim.violations).toEqual([]);
});

/**
 * A runner in its own directory (not under /tmp) holding the token three ways besides its
 * environment: a token file, a config file and a .env, all mode 0600.
 */
async function startProbeRunner(args: string[]) {
  const name = `sandbox-${++count}`;
  const { token } = await createRunner(h.database.db, { name, capabilities: [], tier: "normal" });
  mkdirSync(join(ROOT, ".tmp"), { recursive: true });
  const home = mkdtempSync(join(ROOT, ".tmp", "sandbox-probe-"));
  homes.push(home);
  // Slot users (isolation users) pass through it to their workspaces; they cannot list it.
  chmodSync(home, 0o711);
  const paths = {
    config: join(home, "conveyor-runner.yml"),
    tokenFile: join(home, "runner-token"),
    envFile: join(home, ".env"),
    journal: join(home, "state", "journal.json"),
  };
  // The runner's state (made by the runner) beside its config: the sandbox hides the state
  // directory as a whole and covers the config, token file and .env one by one.
  writeFileSync(
    paths.config,
    `# runner config marker\ntoken: ${token}\nwork_dir: state/work\njournal: state/journal.json\nslots: 2\n`,
    { mode: 0o600 },
  );
  writeFileSync(paths.tokenFile, `${token}\n`, { mode: 0o600 });
  writeFileSync(paths.envFile, `CONVEYOR_RUNNER_TOKEN=${token}\n`, { mode: 0o600 });
  const runner = spawnRunnerProcess(
    [
      "start",
      ...["--server", h.conveyor.url, "--name", name, "--token-file", paths.tokenFile],
      ...args,
      ...["--agent", "--", process.execPath, PROBE_AGENT],
    ],
    { CONVEYOR_RUNNER_TOKEN: token },
    { cwd: home },
  );
  processes.push(runner);
  return { runner, token, home, paths };
}

async function queueProbeIssue(title: string, order: unknown) {
  const body = `\`\`\`conveyor-probe\n${JSON.stringify(order)}\n\`\`\`\n`;
  const { issue } = await h.sim.openIssue(h.repo, { title, body, user: "octocat" });
  await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
  // The webhook is answered once stored; the intake loop queues the task just after.
  await h.sim.idle();
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(
      sql`select task_id from tasks where issue_number = ${issue.number} and state not in ('merged', 'cancelled')`,
    ),
  );
  return { issueNumber: issue.number, taskId: row!.task_id };
}

/**
 * Two tasks at once on one runner: a sibling that keeps a secret in its workspace, and the probe.
 * Returns the probe's report, as uploaded in its change set.
 */
async function probe(runner: Awaited<ReturnType<typeof startProbeRunner>>) {
  const marker = `sibling-secret-${randomUUID()}`;
  const sibling = await queueProbeIssue("Sibling", { role: "sibling", marker });
  const work = join(runner.home, "state", "work");
  const siblingSecret = await waitFor(
    () => {
      const dir = readdirSafe(work).find((entry) => entry.startsWith(`${sibling.taskId}-`));
      return dir && readdirSafe(join(work, dir)).includes("sibling-secret.txt")
        ? { dir, path: join(work, dir, "sibling-secret.txt") }
        : undefined;
    },
    { timeoutMs: 30_000, message: `the sibling's secret\n${runner.runner.output()}` },
  );
  const probeTask = await queueProbeIssue("Probe", {
    role: "probe",
    paths: { ...runner.paths, siblingSecret: siblingSecret.path },
  });
  await waitFor(
    async () =>
      (await listTaskEvents(h.database.db, probeTask.taskId)).some((e) => e.to_state === "pushed"),
    { timeoutMs: 30_000, message: `the probe's change set\n${runner.runner.output()}` },
  );
  const [change] = resultRows<{ files: { path: string; content: string }[] }>(
    await h.database.db.execute(
      sql`select files from change_sets where task_id = ${probeTask.taskId}`,
    ),
  );
  const file = change!.files.find((f) => f.path === "probe-report.json");
  const report = JSON.parse(file!.content) as ProbeReport;
  // The sibling is cancelled, and its agent killed, before the runner goes.
  await h.sim.closeIssue(h.repo, sibling.issueNumber, { sender: "octocat" });
  await waitFor(async () => (await getTask(h.database.db, sibling.taskId))?.state === "cancelled", {
    timeoutMs: 10_000,
  });
  return { report, marker, siblingTaskId: sibling.taskId, siblingDir: siblingSecret.dir };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function uidOf(user: string): number {
  try {
    const id = execFileSync("id", ["-u", user], { encoding: "utf8", stdio: "pipe" });
    return Number(id.trim());
  } catch {
    return -1;
  }
}

/** What no sandboxed agent may get: the token anywhere, the runner's files, the sibling. */
function expectNothingLeaked(result: Awaited<ReturnType<typeof probe>>, runner: { token: string }) {
  const { report, marker, siblingTaskId } = result;
  // Only this runner's token counts: with a user per slot the agent sees every command line on
  // the machine, including other programs' (other test runs) that have nothing to do with it.
  expect(report.tokens.filter((t) => t.token === runner.token)).toEqual([]);
  expect(JSON.stringify(report)).not.toContain(runner.token);
  expect(report.parentEnviron.text ?? "").not.toContain("CONVEYOR_RUNNER_TOKEN=");
  for (const name of ["config", "tokenFile", "envFile", "journal"] as const) {
    const file = report.files[name];
    // Unreadable, or an empty stand-in: never the file's content.
    expect(file.ok ? file.text : "", name).toBe("");
  }
  expect(JSON.stringify(report.files)).not.toContain("runner config marker");
  expect(JSON.stringify(report.files)).not.toContain(siblingTaskId);
  expect(report.files.siblingSecret.ok).toBe(false);
  expect(JSON.stringify(report)).not.toContain(marker);
  expect(report.siblings.filter((s) => s.secret.ok || s.write.ok)).toEqual([]);
  expect(report.writeOutside.ok).toBe(false);
}

describe("the agent's sandbox", () => {
  it("bwrap (the default here): the probe gets neither the token nor the runner nor its sibling", async () => {
    const runner = await startProbeRunner([]);
    await waitFor(() => runner.runner.output().includes('"msg":"agent sandbox"'), {
      timeoutMs: 20_000,
      message: `runner started sandboxed\n${runner.runner.output()}`,
    });
    expect(runner.runner.output()).toContain('"isolation":"bwrap"');
    const result = await probe(runner);
    expectNothingLeaked(result, runner);
    const { report, siblingDir } = result;
    // Nothing outside the sandbox is visible at all: not a single token of any process.
    expect(report.tokens).toEqual([]);
    // Its own PID namespace: the parent is bwrap's init, and no process of the runner is visible.
    expect(report.parentCmdline.text).toMatch(/^\/\S*bwrap /);
    expect(report.parentCmdline.text).not.toMatch(RUNNER_COMMAND);
    expect(report.runnerProcesses).toEqual([]);
    // The work dir holds its own workspace and prompt, not the sibling's.
    expect(report.workDirListing.ok).toBe(true);
    expect(report.workDirListing.text).not.toContain(siblingDir);
    expect(runner.runner.output()).not.toContain("running the agent unsandboxed");
  });

  it("--unsandboxed: the same probe gets the token, the runner's files and the sibling, with a warning per task", async () => {
    const runner = await startProbeRunner(["--unsandboxed"]);
    const { report, marker, siblingTaskId } = await probe(runner);
    const where = new Set(
      report.tokens.filter((t) => t.token === runner.token).map((t) => t.where),
    );
    expect([...where]).toEqual(
      expect.arrayContaining(["parent environ", "config", "tokenFile", "envFile"]),
    );
    expect(report.parentCmdline.text).toMatch(RUNNER_COMMAND);
    expect(report.runnerProcesses.length).toBeGreaterThan(0);
    expect(report.files.journal.text).toContain(siblingTaskId);
    expect(report.files.siblingSecret.text).toContain(marker);
    expect(report.siblings.some((s) => s.write.ok)).toBe(true);
    expect(report.writeOutside.ok).toBe(true);
    const output = runner.runner.output();
    expect(output).toContain('"msg":"the agent is not sandboxed"');
    expect(output.match(/running the agent unsandboxed/g)?.length).toBe(2);
  });

  it("a user per slot: the probe sees the runner's process but not its environment, files or sibling", async () => {
    const runner = await startProbeRunner(["--isolation", "users"]);
    if (!isRoot) {
      // Only root can start commands as other users: the runner refuses, saying so.
      expect(await runner.runner.exited).toBe(2);
      expect(runner.runner.output()).toContain("a user per slot needs the runner to run as root");
      return;
    }
    const result = await probe(runner);
    expectNothingLeaked(result, runner);
    const { report } = result;
    // No PID namespace: the runner's command line is visible (it holds no secret), its
    // environment is not (another user's /proc/<pid>/environ).
    expect(report.parentCmdline.text).toMatch(RUNNER_COMMAND);
    expect(report.parentEnviron).toMatchObject({ ok: false, error: "EACCES" });
    expect(report.workDirListing).toMatchObject({ ok: false, error: "EACCES" });
    expect(report.files.tokenFile).toMatchObject({ ok: false, error: "EACCES" });
  });

  it("refuses to start without a sandbox, and takes no token from the command line", async () => {
    const bare = spawnRunnerProcess(
      ["start", "--server", h.conveyor.url, "--isolation", "bwrap", "--agent", "--", "true"],
      { PATH: "/nonexistent", CONVEYOR_RUNNER_TOKEN: `cvr_${"x".repeat(32)}` },
    );
    expect(await bare.exited).toBe(2);
    expect(bare.output()).toContain("isolation: bwrap was asked for, but bwrap is not on PATH");
    const token = `cvr_${"y".repeat(32)}`;
    const argv = spawnRunnerProcess([
      "start",
      ...["--server", h.conveyor.url, "--token", token, "--agent", "--", "true"],
    ]);
    expect(await argv.exited).toBe(2);
    expect(argv.output()).toContain(
      "--token: the runner token is never taken from the command line",
    );
    expect(argv.output()).not.toContain(token);
  });
});
