import {
  type AgentAdapter,
  add,
  amount,
  count,
  defined,
  isRecord,
  jsonObject,
  modelArgs,
  text,
} from "./agent-adapter.ts";
import { describeToolUse } from "./claude.ts";

/**
 * opencode `run --format json` (https://opencode.ai/docs/cli/#run; the events are written by
 * `packages/opencode/src/cli/cmd/run.ts` in sst/opencode): one JSON event per line, each with
 * `type`, `timestamp` and `sessionID`. `tool_use` carries a tool `part` (`tool`, `callID`,
 * `state` {`status`, `input`, `output`}); `text` a text `part` (`text`); `step_start` and
 * `step_finish` a step part, the finish with `reason`, `cost` and `tokens` {`input`, `output`,
 * `reasoning`, `cache` {`read`, `write`}}; `error` an `error` {`name`, `data` {`message`}}.
 *
 * The prompt goes to stdin (`run` reads it when stdin is not a terminal). `run` never prompts; let
 * it edit with `"permission": {"edit": "allow"}` in its `opencode.json`. opencode reads
 * `AGENTS.md` itself; the prompt also carries the other instructions files. `--model` takes
 * `provider/model`.
 */
export const opencodeAdapter: AgentAdapter = {
  name: "opencode",
  program: "opencode",
  promptOnStdin: true,
  argv: ({ model }) => ["opencode", "run", "--format", "json", ...modelArgs("--model", model)],
  createParser() {
    let input: number | undefined;
    let output: number | undefined;
    let cacheRead: number | undefined;
    let cacheWrite: number | undefined;
    let cost: number | undefined;
    let steps = 0;
    let error: string | undefined;
    let reply = "";
    return {
      line(line) {
        const event = jsonObject(line);
        if (!event) return undefined;
        const part = isRecord(event.part) ? event.part : {};
        switch (event.type) {
          case "tool_use": {
            const state = isRecord(part.state) ? part.state : {};
            return describeToolUse(text(part.tool, 60) ?? "tool", state.input);
          }
          case "text":
            reply = typeof part.text === "string" ? part.text : reply;
            return undefined;
          case "step_finish": {
            steps++;
            const tokens = isRecord(part.tokens) ? part.tokens : {};
            const cache = isRecord(tokens.cache) ? tokens.cache : {};
            input = add(input, count(tokens.input));
            output = add(add(output, count(tokens.output)), count(tokens.reasoning));
            cacheRead = add(cacheRead, count(cache.read));
            cacheWrite = add(cacheWrite, count(cache.write));
            cost = add(cost, amount(part.cost));
            return undefined;
          }
          case "error": {
            const failure = isRecord(event.error) ? event.error : {};
            const data = isRecord(failure.data) ? failure.data : {};
            const name = text(failure.name, 80);
            const message = text(data.message, 4000) ?? text(failure.message, 4000);
            error = [name, message].filter(Boolean).join(": ") || "error (no message)";
            return undefined;
          }
          default:
            return undefined;
        }
      },
      usage() {
        // Each usage event adds to the running totals the final report gives.
        return this.finish("").usage;
      },
      finish() {
        // opencode's input leaves out the cache; Conveyor's input counts it.
        const allInput = add(add(input, cacheRead), cacheWrite);
        return defined({
          usage: defined({
            tokens: add(allInput, output),
            input_tokens: allInput,
            output_tokens: output,
            cache_read_tokens: cacheRead,
            cache_write_tokens: cacheWrite,
            cost_usd: cost,
            turns: steps || undefined,
          }),
          error,
          summary: error ? undefined : text(reply, 4000),
        });
      },
    };
  },
};
