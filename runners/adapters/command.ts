import { parseUsageLine } from "../scripted-agent.ts";
import type { AgentAdapter, AgentUsage } from "./agent-adapter.ts";

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
    createParser: () => {
      // The latest `conveyor_usage` line on stdout: the figures so far.
      let latest: AgentUsage = {};
      return {
        line(line) {
          if (line.includes("conveyor_usage")) latest = parseUsageLine(line) ?? latest;
          return undefined;
        },
        usage: () => latest,
        finish: (outputTail) => ({ usage: parseUsageLine(outputTail) ?? latest }),
      };
    },
  };
}
