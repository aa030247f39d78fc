import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ConveyorProcess {
  child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): string;
  /** Resolves with the URL from the "conveyor listening" log line. */
  listening: Promise<string>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

/**
 * Runs `conveyor <args>` as a real process from the checkout, as a user would with
 * `npx conveyor`, with exactly the environment given (plus PATH and HOME).
 */
export function spawnConveyor(args: string[], env: Record<string, string>): ConveyorProcess {
  const child = spawn(process.execPath, ["bin/conveyor.js", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let resolveUrl: (url: string) => void;
  let rejectUrl: (error: Error) => void;
  const listening = new Promise<string>((resolve, reject) => {
    resolveUrl = resolve;
    rejectUrl = reject;
  });
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    const match = /"url":"([^"]+)","msg":"conveyor listening"/.exec(output);
    if (match?.[1]) resolveUrl(match[1]);
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      rejectUrl(new Error(`conveyor exited (${code ?? signal}) before listening:\n${output}`));
      resolve(code ?? signal ?? "unknown");
    });
  });
  // The rejection is only interesting to callers that wait for `listening`.
  listening.catch(() => {});
  return { child, output: () => output, listening, exited };
}
