import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ConveyorProcess {
  child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): string;
  /** What it wrote to stderr (where Node prints an uncaught exception; the logs go to stdout). */
  errors(): string;
  /** Resolves with the URL from the "conveyor listening" log line (JSON or readable). */
  listening: Promise<string>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

/**
 * Runs `conveyor <args>` as a real process from the checkout, as a user would with
 * `npx conveyor`, with exactly the environment given (plus PATH and HOME). `cwd` defaults to the
 * checkout; another directory keeps a `.env` file in the checkout from being read.
 */
export function spawnConveyor(
  args: string[],
  env: Record<string, string>,
  options: {
    cwd?: string;
    /** A TypeScript entry point to run instead of `bin/conveyor.js` (e.g. the demo's server). */
    entry?: string;
  } = {},
): ConveyorProcess {
  const command = options.entry
    ? ["--import", import.meta.resolve("tsx"), options.entry]
    : [join(ROOT, "bin/conveyor.js")];
  const child = spawn(process.execPath, [...command, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let errors = "";
  let resolveUrl: (url: string) => void;
  let rejectUrl: (error: Error) => void;
  const listening = new Promise<string>((resolve, reject) => {
    resolveUrl = resolve;
    rejectUrl = reject;
  });
  let heard = false;
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    // Fault tests keep servers talking for a while: stop searching once the line was seen.
    if (heard) return;
    // The JSON line, or the readable one when LOG_FORMAT=pretty.
    const match =
      /"url":"([^"]+)","msg":"conveyor listening"/.exec(output) ??
      /INFO {2}conveyor listening url=(\S+)/.exec(output);
    if (match?.[1]) {
      heard = true;
      resolveUrl(match[1]);
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", (chunk: Buffer) => {
    errors += chunk.toString();
    onData(chunk);
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      rejectUrl(new Error(`conveyor exited (${code ?? signal}) before listening:\n${output}`));
      resolve(code ?? signal ?? "unknown");
    });
  });
  // The rejection is only interesting to callers that wait for `listening`.
  listening.catch(() => {});
  return { child, output: () => output, errors: () => errors, listening, exited };
}

/**
 * The server as a process of its own for fault tests (`conveyor-server-process.ts`): configured by
 * `env` like `conveyor start`, with test-only start options (short protocol timings) on top.
 */
export function spawnConveyorServer(
  env: Record<string, string>,
  startOptions: Record<string, unknown> = {},
): ConveyorProcess {
  return spawnConveyor(
    [],
    { ...env, CONVEYOR_TEST_START_OPTIONS: JSON.stringify(startOptions) },
    { entry: join(ROOT, "test/helpers/conveyor-server-process.ts") },
  );
}
