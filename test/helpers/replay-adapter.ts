import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentAdapter, AgentReport } from "../../runners/adapters/agent-adapter.ts";
import { runAgent } from "../../runners/supervisor.ts";

const REPLAY_AGENT = fileURLToPath(new URL("./replay-agent.mjs", import.meta.url));

/**
 * A directory holding a fake `<program>` (a script that starts test/helpers/replay-agent.mjs) for
 * each program named: put it first on PATH and the runner starts the fake instead of the tool.
 */
export function createFakeAgents(programs: string[], parent = tmpdir()): string {
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, "fake-agents-"));
  for (const program of programs) {
    const path = join(dir, program);
    writeFileSync(
      path,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(REPLAY_AGENT)} "$@"\n`,
    );
    chmodSync(path, 0o755);
  }
  return dir;
}

/**
 * Runs the adapter's argv against the fake of its program replaying `fixture` (through the
 * supervisor, as the runner does) and parses the output as the runner does.
 */
export async function replayThroughAdapter(
  adapter: AgentAdapter,
  fixture: string,
  options: { exit?: number; model?: string } = {},
): Promise<{ progress: string[]; report: AgentReport; exitCode: number | null; argv: string[] }> {
  const fakes = createFakeAgents([adapter.program]);
  const workspace = mkdtempSync(join(tmpdir(), "replay-workspace-"));
  const promptFile = join(fakes, "prompt.md");
  const prompt = `# Fix sizes\n\nreplay: ${fixture}\nreplay-exit: ${options.exit ?? 0}\n`;
  writeFileSync(promptFile, prompt);
  const argv = adapter.argv({ model: options.model, promptFile, instructions: [] });
  const parser = adapter.createParser();
  const progress: string[] = [];
  const run = runAgent({
    argv: [join(fakes, adapter.program), ...argv.slice(1)],
    cwd: workspace,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdin: adapter.promptOnStdin ? prompt : "",
    wallClockMs: 20_000,
    onStdoutLine: (line) => {
      const event = parser.line(line);
      if (event) progress.push(event);
    },
  });
  const result = await run.done;
  return { progress, report: parser.finish(result.outputTail), exitCode: result.exitCode, argv };
}
