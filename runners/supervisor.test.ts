import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../test/helpers/wait-for.ts";
import {
  type AgentHandle,
  isProcessAlive,
  killProcessGroup,
  type RunAgentOptions,
  runAgent,
} from "./supervisor.ts";

let cwd: string;
const handles: AgentHandle[] = [];

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), "conveyor-supervisor-"));
});
afterAll(async () => {
  for (const handle of handles) handle.cancel();
  await Promise.all(handles.map((h) => h.done));
  await rm(cwd, { recursive: true, force: true });
});

/** Runs a Node.js snippet as the agent. */
function node(code: string, options: Partial<RunAgentOptions> = {}): AgentHandle {
  const handle = runAgent({
    argv: [process.execPath, "-e", code],
    cwd,
    env: { PATH: process.env.PATH },
    killGraceMs: 500,
    ...options,
  });
  handles.push(handle);
  return handle;
}

/** The pid a snippet printed as `pid:<n>`, once it has. */
function printedPid(lines: string[]): number | undefined {
  const line = lines.find((l) => l.startsWith("pid:"));
  return line ? Number(line.slice(4)) : undefined;
}

// Starts `sleep 600` as a grandchild in the agent's process group, reports its pid, then waits.
const SPAWN_SLEEPER = `
  const { spawn } = require("node:child_process");
  const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
  console.log("pid:" + sleeper.pid);
  setInterval(() => {}, 1000);
`;

describe("runAgent", () => {
  it.each([
    [0, "process.exit(0)"],
    [3, "process.exit(3)"],
    [1, "throw new Error('boom')"],
  ])("reports exit code %i", async (code, snippet) => {
    const result = await node(snippet).done;
    expect(result).toMatchObject({ exitCode: code, signal: null, reason: "exited" });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("delivers stdin and closes it", async () => {
    const prompt = "line one\nünïcödé prompt\n".repeat(5000);
    const result = await node(
      `let s = ""; process.stdin.setEncoding("utf8");
       process.stdin.on("data", (d) => { s += d; });
       process.stdin.on("end", () => { console.log("got " + s.length + " " + s.slice(0, 8)); });`,
      { stdin: prompt },
    ).done;
    expect(result.reason).toBe("exited");
    expect(result.output).toBe(`got ${prompt.length} line one\n`);
  });

  it("survives an agent that never reads stdin", async () => {
    const result = await node("process.exit(0)", { stdin: "x".repeat(1024 * 1024) }).done;
    expect(result).toMatchObject({ exitCode: 0, reason: "exited" });
  });

  it("interleaves stdout and stderr and reports the last line as it arrives", async () => {
    const seen: string[] = [];
    const result = await node(
      `process.stdout.write("one\\n");
       setTimeout(() => process.stderr.write("two\\n"), 50);
       setTimeout(() => process.stdout.write("three\\n\\n"), 100);`,
      { onOutput: (line) => seen.push(line) },
    ).done;
    expect(result.output).toBe("one\ntwo\nthree\n\n");
    expect(seen).toEqual(["one", "two", "three"]);
    expect(result.outputTail).toBe(result.output);
  });

  it("hands every stdout line to onStdoutLine, in order, the unterminated last one too", async () => {
    const lines: string[] = [];
    const long = "x".repeat(200_000);
    await node(
      `process.stdout.write("a\\nb\\r\\n\\n  c  \\n" + "x".repeat(200000) + "\\n");
       process.stderr.write("not stdout\\n");
       setTimeout(() => process.stdout.write("last, no newline"), 50);`,
      { onStdoutLine: (line) => lines.push(line) },
    ).done;
    expect(lines).toEqual(["a", "b", "c", long, "last, no newline"]);
  });

  it("kills an agent that stays silent for idleMs", async () => {
    const started = Date.now();
    const result = await node(`console.log("starting"); setInterval(() => {}, 1000);`, {
      idleMs: 400,
      wallClockMs: 20_000,
    }).done;
    expect(result.reason).toBe("timeout_idle");
    expect(result.signal).toBe("SIGTERM");
    expect(result.outputTail).toContain("starting");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("does not count a chatty agent as idle", async () => {
    const result = await node(
      // Talks for about 3 s, twice the idle limit, which leaves the child's own start-up (slow on a
      // loaded machine) well inside the limit.
      `let n = 0; const t = setInterval(() => { console.log("tick " + n); if (++n === 30) { clearInterval(t); } }, 100);`,
      { idleMs: 1_500 },
    ).done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 0 });
    expect(result.output).toContain("tick 29");
  });

  it("kills an agent that runs past wallClockMs even while it keeps talking", async () => {
    const started = Date.now();
    const result = await node(`setInterval(() => console.log("busy"), 20);`, {
      idleMs: 10_000,
      wallClockMs: 500,
    }).done;
    expect(result.reason).toBe("timeout_wall");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result.durationMs).toBeGreaterThanOrEqual(500);
  });

  it("treats Infinity as no limit rather than an immediate timeout", async () => {
    const result = await node(`setTimeout(() => console.log("done"), 100);`, {
      idleMs: Number.POSITIVE_INFINITY,
      wallClockMs: Number.POSITIVE_INFINITY,
      outputCapBytes: Number.POSITIVE_INFINITY,
    }).done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 0, output: "done\n" });
  });

  it("SIGKILLs an agent that ignores SIGTERM after the grace period", async () => {
    const seen: string[] = [];
    const handle = node(
      `process.on("SIGTERM", () => console.log("ignoring SIGTERM")); console.log("ready"); setInterval(() => {}, 1000);`,
      { onOutput: (line) => seen.push(line) },
    );
    await waitFor(() => seen.includes("ready"));
    handle.cancel();
    const result = await handle.done;
    expect(result.reason).toBe("cancelled");
    expect(result.signal).toBe("SIGKILL");
    expect(result.output).toContain("ignoring SIGTERM");
  });

  it("keeps the head and the tail of a large output and drops the middle", async () => {
    const result = await node(
      `process.stdout.write("HEAD-MARK\\n");
       for (let i = 0; i < 2000; i++) process.stdout.write("middle " + i + " " + "x".repeat(500) + "\\n");
       process.stdout.write("TAIL-MARK\\n");`,
      { outputCapBytes: 64 * 1024 },
    ).done;
    expect(result.reason).toBe("exited");
    expect(result.outputBytes).toBeGreaterThan(1_000_000);
    expect(result.output.startsWith("HEAD-MARK\n")).toBe(true);
    expect(result.output.endsWith("TAIL-MARK\n")).toBe(true);
    expect(result.output).toMatch(/\[… \d+ bytes of output omitted …\]/);
    expect(result.output).not.toContain("middle 1000 ");
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(64 * 1024 + 100);
    expect(Buffer.byteLength(result.outputTail)).toBeLessThanOrEqual(4096);
    expect(result.outputTail.endsWith("TAIL-MARK\n")).toBe(true);
  });

  it("kills an agent that writes more than maxOutputBytes", async () => {
    const result = await node(`setInterval(() => process.stdout.write("y".repeat(10000)), 1);`, {
      maxOutputBytes: 200_000,
      outputCapBytes: 16 * 1024,
    }).done;
    expect(result.reason).toBe("output_cap");
    expect(result.outputBytes).toBeGreaterThan(200_000);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(16 * 1024 + 100);
  });

  it("cancel kills the whole process group, grandchildren included, within 2 s", async () => {
    const seen: string[] = [];
    const handle = node(SPAWN_SLEEPER, { killGraceMs: 2000, onOutput: (l) => seen.push(l) });
    const sleeper = await waitFor(() => printedPid(seen));
    expect(isProcessAlive(sleeper)).toBe(true);
    const cancelledAt = Date.now();
    handle.cancel();
    await waitFor(() => !isProcessAlive(sleeper) && !isProcessAlive(handle.pid!), {
      timeoutMs: 2000,
      message: "agent and grandchild gone",
    });
    const result = await handle.done;
    expect(result.reason).toBe("cancelled");
    expect(Date.now() - cancelledAt).toBeLessThan(2500);
  });

  it("also removes what an agent leaves running when it exits on its own", async () => {
    const seen: string[] = [];
    const handle = node(
      `const { spawn } = require("node:child_process");
       const sleeper = spawn("sleep", ["600"], { stdio: ["ignore", "inherit", "ignore"] });
       console.log("pid:" + sleeper.pid);
       setTimeout(() => process.exit(0), 100);`,
      { onOutput: (l) => seen.push(l) },
    );
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 0 });
    const sleeper = printedPid(seen)!;
    expect(sleeper).toBeGreaterThan(1);
    await waitFor(() => !isProcessAlive(sleeper), { timeoutMs: 2000 });
  });

  it("reports a command that cannot start as spawn_failed", async () => {
    const handle = runAgent({ argv: [join(cwd, "no-such-agent")], cwd, env: {} });
    const result = await handle.done;
    expect(result.reason).toBe("spawn_failed");
    expect(result.error).toMatch(/ENOENT/);
    expect(handle.pid).toBeUndefined();
    const empty = await runAgent({ argv: [], cwd, env: {} }).done;
    expect(empty.reason).toBe("spawn_failed");
  });

  it("passes only the given environment", async () => {
    const result = await node(`console.log(JSON.stringify(Object.keys(process.env).sort()))`, {
      env: { PATH: process.env.PATH, CONVEYOR_TASK_ID: "t1" },
    }).done;
    expect(JSON.parse(result.output)).toEqual(["CONVEYOR_TASK_ID", "PATH"]);
  });
});

describe("killProcessGroup and isProcessAlive", () => {
  it("kills a group and reports a missing one", async () => {
    const seen: string[] = [];
    const handle = node(SPAWN_SLEEPER, { onOutput: (l) => seen.push(l) });
    const sleeper = await waitFor(() => printedPid(seen));
    expect(killProcessGroup(handle.pid!, "SIGKILL")).toBe(true);
    await waitFor(() => !isProcessAlive(sleeper), { timeoutMs: 2000 });
    const result = await handle.done;
    expect(result.signal).toBe("SIGKILL");
    // A pid that leads no group (a finished, reaped process) cannot be signalled.
    expect(killProcessGroup(spawnSync("true").pid!)).toBe(false);
    expect(killProcessGroup(0)).toBe(false);
    expect(killProcessGroup(1)).toBe(false);
    expect(isProcessAlive(process.pid)).toBe(true);
  });
});
