import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

/** Why the agent process stopped. The first cause wins; later ones never overwrite it. */
export type AgentStopReason =
  | "exited"
  | "timeout_wall"
  | "timeout_idle"
  | "cancelled"
  | "output_cap"
  | "spawn_failed";

/** What `runAgent` needs. Durations are in milliseconds; a missing limit means "no limit". */
export interface RunAgentOptions {
  /** The agent command as an argv array; never passed through a shell. */
  argv: readonly string[];
  cwd: string;
  /** The complete environment of the agent (nothing is inherited implicitly). */
  env: NodeJS.ProcessEnv;
  /** Run as this user and group (a sandbox's slot user); the runner's own when absent. */
  uid?: number;
  gid?: number;
  /** Written to the agent's stdin, which is then closed. */
  stdin?: string;
  /** Kill the agent after this long in total. */
  wallClockMs?: number;
  /** Kill the agent after this long without a byte on stdout or stderr. */
  idleMs?: number;
  /**
   * How much output is kept in memory (default 1 MiB): the first half and the last half, with a
   * marker where the middle was dropped. Bounds memory, never kills the agent.
   */
  outputCapBytes?: number;
  /** Kill the agent (reason `output_cap`) once it has written more than this many bytes in total. */
  maxOutputBytes?: number;
  /**
   * Called with every complete, non-empty line the agent writes to stdout (at most
   * {@link MAX_STDOUT_LINE_CHARS} characters; a longer line is cut), in order, the last one when
   * the stream ends: what an adapter parses the agent's machine-readable output from.
   */
  onStdoutLine?: (line: string) => void;
  /** Called with the last complete, non-empty output line (at most 1000 characters) as lines arrive. */
  onOutput?: (lastLine: string) => void;
  /** Every complete non-blank line of stderr, for the task's log (stdout's go to `onStdoutLine`). */
  onStderrLine?: (line: string) => void;
  /** Time between SIGTERM and SIGKILL when the process group is killed (default 2000). */
  killGraceMs?: number;
}

/** How the agent run ended. */
export interface AgentResult {
  /** The leader's exit code, or null when it was ended by a signal or never started. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  reason: AgentStopReason;
  /** The last ~4 KiB of the interleaved output. */
  outputTail: string;
  /** The interleaved output, at most `outputCapBytes` plus the omission marker. */
  output: string;
  /** Every byte the agent wrote, including the ones that were dropped. */
  outputBytes: number;
  durationMs: number;
  /** Only for `spawn_failed`: why the command could not be started. */
  error?: string;
}

/** A running agent. */
export interface AgentHandle {
  /** The process id, which is also the process-group id; undefined when spawning failed. */
  pid: number | undefined;
  /** Settles (never rejects) once the agent and its process group are gone. */
  done: Promise<AgentResult>;
  /** Kills the whole process group (grandchildren included); the result's reason is `cancelled`. */
  cancel(): void;
}

const DEFAULT_OUTPUT_CAP = 1024 * 1024;
const TAIL_BYTES = 4 * 1024;
const MAX_LINE_CHARS = 1000;
/** The longest stdout line an adapter sees: a final result object with its text fits. */
export const MAX_STDOUT_LINE_CHARS = 1024 * 1024;
const GROUP_POLL_MS = 50;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs the agent command in its own process group, feeds it the prompt on stdin, collects its
 * output into a bounded buffer and enforces the wall-clock, idle and output limits by killing the
 * whole group (SIGTERM, then SIGKILL after a grace period).
 */
export function runAgent(options: RunAgentOptions): AgentHandle {
  const started = Date.now();
  const grace = duration(options.killGraceMs) ?? 2000;
  const wallClockMs = duration(options.wallClockMs);
  const idleMs = duration(options.idleMs);
  const cap = Math.max(2, finite(options.outputCapBytes) ?? DEFAULT_OUTPUT_CAP);
  const maxOutputBytes = finite(options.maxOutputBytes);
  const output = new BoundedOutput(cap);
  const tail = new TailBuffer(TAIL_BYTES);
  const [command, ...args] = options.argv;

  let resolveDone!: (result: AgentResult) => void;
  const done = new Promise<AgentResult>((resolve) => {
    resolveDone = resolve;
  });

  if (!command) {
    resolveDone(spawnFailed(started, "the agent command is empty"));
    return { pid: undefined, done, cancel: () => {} };
  }

  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const pid = child.pid;

  let reason: AgentStopReason | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let streamsClosed = false;
  let killing = false;
  let killSettled = true;
  let finished = false;
  let lastOutputAt = Date.now();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    return timer;
  };

  const finish = () => {
    if (finished || !streamsClosed || !killSettled || (!exit && reason !== "spawn_failed")) return;
    finished = true;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    resolveDone({
      exitCode: exit?.code ?? null,
      signal: exit?.signal ?? null,
      reason: reason ?? "exited",
      outputTail: tail.text(),
      output: output.text(),
      outputBytes: output.total,
      durationMs: Date.now() - started,
    });
  };

  /** SIGTERM to the group, then SIGKILL after the grace period unless the group is already gone. */
  const killGroup = () => {
    if (killing || pid === undefined) return;
    killing = true;
    killSettled = false;
    killProcessGroup(pid, "SIGTERM");
    const poll = setInterval(() => {
      if (!isProcessGroupAlive(pid)) settleKill();
    }, GROUP_POLL_MS);
    const settleKill = () => {
      clearInterval(poll);
      if (killSettled) return;
      killSettled = true;
      finish();
    };
    later(grace, () => {
      if (!killSettled) killProcessGroup(pid, "SIGKILL");
      settleKill();
    });
    // A process that left the group but still holds our pipes must not keep `done` pending.
    later(grace + 1000, () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      streamsClosed = true;
      finish();
    });
  };

  const stop = (why: AgentStopReason) => {
    if (reason || exit) return;
    reason = why;
    killGroup();
  };

  child.on("error", (error) => {
    // Only spawn failures reach here in practice (ENOENT, EACCES); the child never ran.
    if (pid !== undefined || finished) return;
    reason = "spawn_failed";
    finished = true;
    for (const timer of timers) clearTimeout(timer);
    resolveDone(spawnFailed(started, error.message));
  });
  if (pid === undefined) return { pid, done, cancel: () => {} };

  const lines = new LineTracker((line) => {
    try {
      options.onOutput?.(line);
    } catch {
      // A failing observer must not take the supervisor down with it.
    }
  });
  const stdoutLines = new LineSplitter((line) => {
    try {
      options.onStdoutLine?.(line);
    } catch {
      // A failing observer must not take the supervisor down with it.
    }
  });
  const stderrLines = new LineSplitter((line) => {
    try {
      options.onStderrLine?.(line);
    } catch {
      // A failing observer must not take the supervisor down with it.
    }
  });
  const onData = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
    lastOutputAt = Date.now();
    output.push(chunk);
    tail.push(chunk);
    lines.push(stream, chunk);
    if (stream === "stdout" && options.onStdoutLine) stdoutLines.push(chunk);
    if (stream === "stderr" && options.onStderrLine) stderrLines.push(chunk);
    if (maxOutputBytes !== undefined && output.total > maxOutputBytes) {
      stop("output_cap");
    }
  };
  child.stdout.on("data", onData("stdout"));
  child.stdout.on("end", () => stdoutLines.end());
  child.stderr.on("data", onData("stderr"));
  child.stderr.on("end", () => stderrLines.end());
  child.stdin.on("error", () => {
    // EPIPE when the agent exits (or closes stdin) before reading the prompt: not our problem.
  });
  child.stdin.end(options.stdin ?? "");

  child.on("exit", (code, signal) => {
    exit = { code, signal };
    // Leftovers of an agent that exited on its own are killed too; the workspace is about to go.
    if (!killing && isProcessGroupAlive(pid)) killGroup();
    if (!killing) {
      later(grace + 1000, () => {
        child.stdout.destroy();
        child.stderr.destroy();
        streamsClosed = true;
        finish();
      });
    }
    finish();
  });
  child.on("close", () => {
    streamsClosed = true;
    finish();
  });

  if (wallClockMs !== undefined) {
    const deadline = started + wallClockMs;
    // setTimeout fires at once for delays past 2^31-1 ms, so long limits are waited for in steps.
    const checkWall = () => {
      const left = deadline - Date.now();
      if (left <= 0) stop("timeout_wall");
      else later(Math.min(left, MAX_TIMER_MS), checkWall);
    };
    checkWall();
  }
  if (idleMs !== undefined) {
    const checkIdle = () => {
      const quietFor = Date.now() - lastOutputAt;
      if (quietFor >= idleMs) stop("timeout_idle");
      else if (!reason && !exit) later(Math.min(idleMs - quietFor, MAX_TIMER_MS), checkIdle);
    };
    later(Math.min(idleMs, MAX_TIMER_MS), checkIdle);
  }

  return { pid, done, cancel: () => stop("cancelled") };
}

/**
 * Sends `signal` to every process in the group led by `pid`. Returns false when the group no
 * longer exists (or may not be signalled), true otherwise.
 */
export function killProcessGroup(pid: number, signal: NodeJS.Signals = "SIGTERM"): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a process exists and can still run: a zombie (dead, waiting for a parent that may never
 * reap it, e.g. under a PID 1 that does not reap orphans) counts as gone.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  const state = procState(pid);
  return state === undefined || (state.state !== "Z" && state.state !== "X");
}

/** Whether any process of the group led by `pgid` can still run (zombies do not count). */
export function isProcessGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return true; // No /proc: the group exists and we cannot tell zombies apart.
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const state = procState(Number(entry));
    if (state && state.pgrp === pgid && state.state !== "Z" && state.state !== "X") return true;
  }
  return false;
}

function procState(pid: number): { state: string; pgrp: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", pgrp: Number(fields[2]) };
}

/** A finite, non-negative number, or undefined ("no limit") for anything else, Infinity included. */
function finite(value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function duration(value: number | undefined): number | undefined {
  const ms = finite(value);
  return ms === undefined ? undefined : Math.floor(ms);
}

function spawnFailed(started: number, error: string): AgentResult {
  return {
    exitCode: null,
    signal: null,
    reason: "spawn_failed",
    outputTail: "",
    output: "",
    outputBytes: 0,
    durationMs: Date.now() - started,
    error,
  };
}

/** Keeps the first half and the last half of a byte stream. */
class BoundedOutput {
  total = 0;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private readonly tail: TailBuffer;
  private readonly headCap: number;

  constructor(cap: number) {
    this.headCap = Math.floor(cap / 2);
    this.tail = new TailBuffer(cap - this.headCap);
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.headCap - this.headBytes;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.head.push(part);
      this.headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (chunk.length > 0) this.tail.push(chunk);
  }

  text(): string {
    const head = Buffer.concat(this.head).toString("utf8");
    const dropped = this.total - this.headBytes - this.tail.size;
    if (dropped <= 0) return head + this.tail.text();
    return `${head}\n[… ${dropped} bytes of output omitted …]\n${this.tail.text()}`;
  }
}

/** The last `cap` bytes of a byte stream. */
class TailBuffer {
  size = 0;
  private chunks: Buffer[] = [];

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.cap) {
      this.chunks = [Buffer.from(chunk.subarray(chunk.length - this.cap))];
      this.size = this.cap;
      return;
    }
    this.chunks.push(Buffer.from(chunk));
    this.size += chunk.length;
    while (this.size > this.cap) {
      const first = this.chunks[0]!;
      const excess = this.size - this.cap;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    const bytes = Buffer.concat(this.chunks);
    // The cut may fall inside a UTF-8 sequence: skip its continuation bytes.
    let start = 0;
    while (start < 3 && start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
    return bytes.subarray(start).toString("utf8");
  }
}

/** Splits each stream into lines and reports the last complete, non-empty one. */
class LineTracker {
  private readonly state = {
    stdout: { decoder: new StringDecoder("utf8"), partial: "" },
    stderr: { decoder: new StringDecoder("utf8"), partial: "" },
  };

  constructor(private readonly report: (line: string) => void) {}

  push(stream: "stdout" | "stderr", chunk: Buffer): void {
    const state = this.state[stream];
    const parts = (state.partial + state.decoder.write(chunk)).split(/\r\n|\n|\r/);
    // Bound a line that never ends; its start is enough to show progress.
    state.partial = (parts.pop() ?? "").slice(0, 4 * MAX_LINE_CHARS);
    for (let i = parts.length - 1; i >= 0; i--) {
      const line = parts[i]!.trim();
      if (line) {
        this.report(line.slice(0, MAX_LINE_CHARS));
        return;
      }
    }
  }
}

/** Splits a stream into every complete line, each cut at {@link MAX_STDOUT_LINE_CHARS}. */
class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";

  constructor(private readonly report: (line: string) => void) {}

  push(chunk: Buffer): void {
    const parts = (this.partial + this.decoder.write(chunk)).split(/\r\n|\n|\r/);
    // A line that never ends is cut, not kept growing.
    this.partial = (parts.pop() ?? "").slice(0, MAX_STDOUT_LINE_CHARS);
    for (const part of parts) this.emit(part);
  }

  end(): void {
    this.emit(this.partial + this.decoder.end());
    this.partial = "";
  }

  private emit(part: string): void {
    const line = part.trim();
    if (line) this.report(line.slice(0, MAX_STDOUT_LINE_CHARS));
  }
}
