import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask, listTaskEvents } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { type RunnerProcess, SCRIPTED_AGENT, spawnRunnerProcess } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

let h: Harness;
const processes: RunnerProcess[] = [];
const dirs: string[] = [];
let count = 0;

beforeAll(async () => {
  h = await createHarness({
    files: {
      ".github/conveyor.yml": "version: 1\nverify:\n  commands:\n    - [test, -f, hello.txt]\n",
      "old.txt": "to be deleted\n",
    },
    // Leases of 6 s: a runner killed with -9 is started again (a Node process, slow on a loaded
    // machine) and says hello well within them.
    start: { dispatchTimings: { leaseMs: 6_000, acceptMs: 6_000 } },
  });
});
afterAll(async () => {
  await h?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(async () => {
  for (const p of processes.splice(0)) {
    p.child.kill("SIGKILL");
    await p.exited;
  }
  expect(h.sim.violations).toEqual([]);
});

async function startRunner(
  extra: string[] = [],
  reuse?: { token: string; workDir: string },
  serverUrl = h.conveyor.url,
) {
  const registered = reuse
    ? undefined
    : await createRunner(h.database.db, {
        name: `agent-${++count}`,
        capabilities: [],
        tier: "normal",
      });
  const token = reuse?.token ?? registered!.token;
  const workDir = reuse?.workDir ?? mkdtempSync(join(tmpdir(), "conveyor-runner-"));
  if (!reuse) dirs.push(workDir);
  const runner = spawnRunnerProcess(
    [
      "start",
      "--server",
      serverUrl,
      "--name",
      `agent-${count}`,
      "--work-dir",
      join(workDir, "work"),
      "--journal",
      join(workDir, "journal.json"),
      ...extra,
      "--agent",
      "--",
      ...SCRIPTED_AGENT,
    ],
    { CONVEYOR_RUNNER_TOKEN: token },
  );
  processes.push(runner);
  return { runner, token, workDir };
}

async function queue(title: string, script: string) {
  const body = `Please do this.\n\n\`\`\`conveyor-script\n${script}\n\`\`\`\n`;
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

const stateOf = async (taskId: string) => (await getTask(h.database.db, taskId))?.state;
/** The runner's result arrived (the task went `pushed`; the publisher may have moved it on since). */
const received = async (taskId: string) =>
  (await listTaskEvents(h.database.db, taskId)).some((e) => e.to_state === "pushed");

describe("conveyor-runner with the scripted agent", () => {
  it("clones, runs the agent, verifies and uploads the change with files and modes", async () => {
    const { runner } = await startRunner();
    const queued = await queue(
      "Say hello",
      [
        "write hello.txt",
        "<<<",
        "hello world",
        ">>>",
        "write bin/run.sh",
        "<<<",
        "#!/bin/sh",
        "echo hi",
        ">>>",
        "chmod +x bin/run.sh",
        "delete old.txt",
        "report-usage 1234 0.05",
      ].join("\n"),
    );
    await waitFor(async () => await received(queued.taskId), {
      timeoutMs: 30_000,
      message: `task pushed\n${runner.output()}`,
    });
    const [change] = resultRows<{
      files: { path: string; action: string; mode: string; content: string }[];
      base_sha: string;
    }>(
      await h.database.db.execute(
        sql`select files, base_sha from change_sets where task_id = ${queued.taskId}`,
      ),
    );
    const byPath = Object.fromEntries(change!.files.map((f) => [f.path, f]));
    expect(byPath["hello.txt"]).toMatchObject({
      action: "add",
      mode: "100644",
      content: "hello world\n",
    });
    expect(byPath["bin/run.sh"]).toMatchObject({ action: "add", mode: "100755" });
    expect(byPath["old.txt"]).toMatchObject({ action: "delete" });
    expect(Object.keys(byPath).sort()).toEqual(["bin/run.sh", "hello.txt", "old.txt"]);
    expect(change!.base_sha).toBe(await h.sim.getBranchSha(h.repo, "main"));
    const task = await getTask(h.database.db, queued.taskId);
    expect(task?.result).toMatchObject({
      stats: { files_changed: 3, tokens: 1234, cost_usd: 0.05 },
      verification: {
        passed: true,
        commands: [{ argv: ["test", "-f", "hello.txt"], passed: true }],
      },
    });
  });

  it("reports a non-zero exit with the output tail, and a hung agent as a timeout", async () => {
    await startRunner(["--idle-minutes", "0.05"]);
    const failing = await queue("Broken", 'print "about to fail"\nfail 3 "simulated failure"');
    await waitFor(async () => (await stateOf(failing.taskId)) === "retry_wait", {
      timeoutMs: 30_000,
    });
    const failed = await getTask(h.database.db, failing.taskId);
    expect(failed?.lastError).toMatch(/^agent_failed: agent exited with 3/);
    expect(failed?.lastError).toContain("simulated failure");
    // Close it so it is not retried while the next task runs.
    await h.sim.closeIssue(h.repo, failing.issueNumber, { sender: "octocat" });

    const hung = await queue("Hangs", 'print "thinking"\nhang');
    await waitFor(async () => (await stateOf(hung.taskId)) === "retry_wait", { timeoutMs: 30_000 });
    expect((await getTask(h.database.db, hung.taskId))?.lastError).toMatch(
      /^timeout: no output for too long/,
    );
    await h.sim.closeIssue(h.repo, hung.issueNumber, { sender: "octocat" });
  });

  it("kills the agent and its grandchild within 2 s of a cancel, and never leaks the read token", async () => {
    const { runner, workDir } = await startRunner();
    const queued = await queue("Sleepy", "spawn-sleeper");
    const tail = await waitFor(
      () => h.conveyor.dispatcher?.logTail(queued.taskId)?.match(/conveyor-sleeper-pid: (\d+)/),
      { timeoutMs: 30_000 },
    );
    // The agent runs in its own PID namespace, so the pid it prints is the sandbox's; find the
    // sleeper's pid on this side.
    const sleeper = await waitFor(() => hostPidOf(Number(tail[1]), "sleep\0" + "600\0"), {
      timeoutMs: 5_000,
      message: "the sleeper's host pid",
    });
    expect(() => process.kill(sleeper, 0)).not.toThrow();
    // While it runs: no installation token in the workspace, its git config or the runner's log.
    const files = listFiles(join(workDir, "work"));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(readFileSync(file, "latin1")).not.toMatch(/ghs_[A-Za-z0-9]/);
    await h.sim.closeIssue(h.repo, queued.issueNumber, { sender: "octocat" });
    const cancelledAt = Date.now();
    await waitFor(() => !isAlive(sleeper), { timeoutMs: 5_000, message: "sleeper gone" });
    expect(Date.now() - cancelledAt).toBeLessThan(2_500);
    expect(await stateOf(queued.taskId)).toBe("cancelled");
    expect(runner.output()).not.toMatch(/ghs_[A-Za-z0-9]/);
  });

  it("after a kill -9 mid-task, reports the task in hello, clones again from the re-sent assign and finishes it once", async () => {
    const first = await startRunner();
    const queued = await queue("Crash midway", "sleep 1500\nwrite crash.txt\n<<<\nok\n>>>");
    await waitFor(async () => (await stateOf(queued.taskId)) === "running", { timeoutMs: 30_000 });
    const journal = JSON.parse(readFileSync(join(first.workDir, "journal.json"), "utf8")) as {
      entries: { task_id: string; generation: number }[];
    };
    expect(journal.entries).toEqual([
      expect.objectContaining({ task_id: queued.taskId, generation: 1 }),
    ]);
    first.runner.child.kill("SIGKILL");
    await first.runner.exited;
    processes.splice(processes.indexOf(first.runner), 1);
    const second = await startRunner([], { token: first.token, workDir: first.workDir });
    await waitFor(async () => await received(queued.taskId), {
      timeoutMs: 30_000,
      message: `task pushed\n${second.runner.output()}`,
    });
    const events = await listTaskEvents(h.database.db, queued.taskId);
    const pushed = events.filter((e) => e.to_state === "pushed");
    expect(pushed).toHaveLength(1);
    // The same attempt, finished from a fresh clone: no failed attempt, no new generation.
    expect(pushed[0]!.generation).toBe(1);
    expect(events.some((e) => e.reason.startsWith("runner_restarted"))).toBe(false);
    expect((await getTask(h.database.db, queued.taskId))?.attempts).toBe(0);
    expect(second.runner.output()).toContain("resuming a task the previous runner process held");
    const [change] = resultRows<{ files: { path: string }[] }>(
      await h.database.db.execute(
        sql`select files from change_sets where task_id = ${queued.taskId}`,
      ),
    );
    expect(change!.files.map((f) => f.path)).toEqual(["crash.txt"]);
    // The first process's checkout is gone; only the journal file and the work dir remain.
    await waitFor(
      () => {
        const left = readdirSync(join(first.workDir, "work"));
        if (left.length) throw new Error(`left behind: ${left.join(", ")}`);
        return true;
      },
      { message: "workspaces cleaned up" },
    );
  });

  it("reconnects when its server restarts, and keeps working", async () => {
    const before = await h.startAnother();
    const { runner } = await startRunner([], undefined, before.url);
    await waitFor(() => runner.output().includes('"msg":"connected"'), { timeoutMs: 20_000 });
    await before.stop();
    // The same address comes back a moment later, as after a deploy.
    const after = await h.startAnother({ port: before.port });
    const queued = await queue("After the restart", "write restarted.txt\n<<<\nyes\n>>>");
    await waitFor(async () => await received(queued.taskId), {
      timeoutMs: 30_000,
      message: `task pushed after reconnect\n${runner.output().slice(-2000)}`,
    });
    expect(runner.output()).toContain('"msg":"runner disconnected"');
    await after.stop();
  });

  it("takes queued tasks back to back on one slot: the next assign waits for the last task's clean-up, none is rejected", async () => {
    const { runner } = await startRunner(["--slots", "1"]);
    const queued = [];
    for (let k = 1; k <= 4; k++) {
      queued.push(await queue(`Back to back ${k}`, `write back-${k}.txt\n<<<\n${k}\n>>>`));
    }
    for (const { taskId } of queued) {
      await waitFor(async () => await received(taskId), {
        timeoutMs: 30_000,
        message: `task ${taskId} pushed\n${runner.output().slice(-2000)}`,
      });
    }
    // A rejected assignment would have been offered again at the next generation.
    const generations = await Promise.all(
      queued.map(async ({ taskId }) => (await getTask(h.database.db, taskId))?.generation),
    );
    expect({ generations, rejected: runner.output().includes("assignment rejected") }).toEqual({
      generations: [1, 1, 1, 1],
      rejected: false,
    });
  });

  it("drains on SIGTERM: finishes the running task, then exits 0", async () => {
    const { runner } = await startRunner();
    const queued = await queue("Drain me", "sleep 1000\nwrite drained.txt\n<<<\nx\n>>>");
    await waitFor(async () => (await stateOf(queued.taskId)) === "running", { timeoutMs: 30_000 });
    runner.child.kill("SIGTERM");
    expect(await runner.exited).toBe(0);
    expect(await received(queued.taskId)).toBe(true);
  });
});

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const info = statSync(path, { throwIfNoEntry: false });
    if (!info) continue;
    if (info.isDirectory()) out.push(...listFiles(path));
    else if (info.isFile()) out.push(path);
  }
  return out;
}

/**
 * The host pid of the process whose pid in its own (innermost) PID namespace is `nsPid` and whose
 * command line is `cmdline`; the `NSpid` line of /proc/<pid>/status lists a process's pid in each
 * namespace, outermost first.
 */
function hostPidOf(nsPid: number, cmdline: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${entry}/status`, "utf8"))?.[1];
      if (Number(nspid?.trim().split(/\s+/).at(-1)) !== nsPid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "latin1") === cmdline) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
