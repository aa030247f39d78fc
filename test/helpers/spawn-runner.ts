import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface RunnerProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
}

/** `conveyor-runner <args>` as a real process, with the scripted agent unless told otherwise. */
export function spawnRunnerProcess(
  args: string[],
  env: Record<string, string> = {},
): RunnerProcess {
  const child = spawn(process.execPath, ["bin/conveyor-runner.js", ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      LOG_LEVEL: "debug",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return { child, output: () => output, exited };
}

/** The scripted agent's argv, for `--agent -- …`. */
export const SCRIPTED_AGENT = [process.execPath, `${ROOT}runners/scripted-agent-bin.js`];
