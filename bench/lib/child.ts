import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout's root: children run from here so `--import tsx` resolves. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

type Request = { id: number; method: string; params: unknown };
type Reply =
  | { type: "ready"; info: unknown }
  | { type: "fatal"; message: string }
  | { id: number; result: unknown }
  | { id: number; error: string };

/**
 * A benchmark process (the server under test, a peer, the GitHub simulator) started by the driver.
 * It runs in a process of its own so its memory and CPU can be measured alone, and so the load the
 * driver generates does not share its event loop.
 */
export interface BenchChild<Ready> {
  readonly pid: number;
  readonly info: Ready;
  readonly logPath: string;
  /** Calls a handler the child registered with `serveParent`. */
  call<T>(method: string, params?: unknown): Promise<T>;
  /** CPU time the process used so far (user + system, seconds), from /proc. */
  cpuSeconds(): number;
  /** Asks the child to stop (its `stop` handler), then waits for it to exit; kills it after 15 s. */
  stop(): Promise<void>;
}

/**
 * Starts `script` (a TypeScript module that calls `serveParent`) as `node --import tsx`, with its
 * open-file limit raised to `nofile` (the shell's `ulimit`, since Node cannot raise its own), its
 * output in `<logDir>/<name>.log`, and resolves once it reported ready.
 */
export async function startChild<Ready>(options: {
  name: string;
  script: URL;
  logDir: string;
  env?: Record<string, string>;
  nofile?: number;
  readyTimeoutMs?: number;
}): Promise<BenchChild<Ready>> {
  const logPath = join(options.logDir, `${options.name}.log`);
  const log = openSync(logPath, "a");
  // CONVEYOR_BENCH_NODE_ARGS adds flags to every child, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
  // to see where a benchmark's time goes.
  const extra = process.env.CONVEYOR_BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const nodeArgs = ["--import", "tsx", "--expose-gc", ...extra, fileURLToPath(options.script)];
  // `ulimit -n` as high as allowed (root may raise the hard limit too), then exec node in place, so
  // the IPC channel's descriptor is inherited unchanged.
  const nofile = options.nofile ?? 4096;
  const shell = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const child: ChildProcess = spawn("sh", ["-c", shell, process.execPath, ...nodeArgs], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", log, log, "ipc"],
  });
  closeSync(log);
  let nextId = 1;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = true;
      const reason = new Error(
        `${options.name} exited (${code ?? signal}); its log: ${logPath}\n${tail(logPath)}`,
      );
      for (const waiter of pending.values()) waiter.reject(reason);
      pending.clear();
      resolve();
    });
  });
  const info = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${options.name} did not start within the deadline; its log: ${logPath}`));
    }, options.readyTimeoutMs ?? 60_000);
    child.on("message", (raw: Reply) => {
      if ("type" in raw && raw.type === "ready") {
        clearTimeout(timer);
        resolve(raw.info as Ready);
      } else if ("type" in raw && raw.type === "fatal") {
        clearTimeout(timer);
        reject(new Error(`${options.name} failed to start: ${raw.message}`));
      } else if ("id" in raw) {
        const waiter = pending.get(raw.id);
        pending.delete(raw.id);
        if ("error" in raw) waiter?.reject(new Error(`${options.name}: ${raw.error}`));
        else waiter?.resolve(raw.result);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(
          `${options.name} exited (${code ?? signal}) before it was ready; its log: ${logPath}\n${tail(logPath)}`,
        ),
      );
    });
  });
  const pid = child.pid!;
  const call = <T>(method: string, params?: unknown): Promise<T> => {
    if (exited) return Promise.reject(new Error(`${options.name} is not running`));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      child.send({ id, method, params } satisfies Request);
    });
  };
  return {
    pid,
    info,
    logPath,
    call,
    cpuSeconds: () => processCpuSeconds(pid),
    async stop() {
      if (exited) return;
      // A graceful stop waits for background loops; one blocked on GitHub's write pacing can take
      // minutes, which measures nothing: after the grace period the process is killed.
      const killer = setTimeout(() => {
        process.stderr.write(
          `${options.name} did not stop within ${STOP_GRACE_MS / 1000} s; killed\n`,
        );
        child.kill("SIGKILL");
      }, STOP_GRACE_MS);
      await call("stop").catch(() => {});
      await exit;
      clearTimeout(killer);
    },
  };
}

const STOP_GRACE_MS = 3_000;

/** The last lines of a log, for error messages. */
function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux Node runs on). */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of a process, from /proc (Linux). NaN elsewhere. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: fields start after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * In a child: answers the driver's calls with `handlers`, reports ready with `info`, and exits when
 * the driver goes away. A `stop` handler runs before the process exits on request.
 */
export function serveParent(
  handlers: Record<string, (params: never) => unknown>,
  info: unknown,
): void {
  if (!process.send) throw new Error("this script is started by bench/run.ts, not directly");
  process.on("message", async (raw: Request) => {
    if (raw.method === "stop") {
      try {
        await handlers.stop?.(undefined as never);
      } finally {
        process.send?.({ id: raw.id, result: null });
        process.disconnect?.();
        process.exit(0);
      }
    }
    const handler = handlers[raw.method];
    try {
      if (!handler) throw new Error(`no handler for ${raw.method}`);
      const result = await handler(raw.params as never);
      process.send?.({ id: raw.id, result: result ?? null });
    } catch (error) {
      process.send?.({ id: raw.id, error: (error as Error).stack ?? String(error) });
    }
  });
  // The driver died or disconnected: nothing will ever stop this process otherwise.
  process.on("disconnect", () => process.exit(0));
  process.send({ type: "ready", info });
}

/** In a child: reports a start-up failure to the driver, then exits. */
export function failStart(error: unknown): never {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.send?.({ type: "fatal", message });
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** In a child: memory and CPU of this process after a full garbage collection. */
export function processStats() {
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    arrayBuffersBytes: memory.arrayBuffers,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

export type ProcessStats = ReturnType<typeof processStats>;
