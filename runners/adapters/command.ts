import { parseUsageLine } from "../scripted-agent.ts";
import type { AgentAdapter } from "./agent-adapter.ts";

/**
 * Any program, as `--agent -- <argv…>`: the prompt on stdin and in `CONVEYOR_PROMPT_FILE`, the
 * argv exactly as given (`--model` does not apply: put the model in the argv). Its output is not
 * parsed for progress (the heartbeat carries its last line); a final output line
 * `{"conveyor_usage": {"tokens": 1234, "cost_usd": 0.05}}` reports usage.
 */
export function createCommandAdapter(argv: readonly string[]): AgentAdapter {
  return {
    name: "command",
    program: argv[0] ?? "",
    promptOnStdin: true,
    argv: () => [...argv],
    createParser: () => ({
      line: () => undefined,
      finish: (outputTail) => ({ usage: parseUsageLine(outputTail) ?? {} }),
    }),
  };
}
