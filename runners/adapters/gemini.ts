import {
  type AgentAdapter,
  add,
  count,
  defined,
  isRecord,
  jsonObject,
  modelArgs,
  text,
} from "./agent-adapter.ts";
import { describeToolUse } from "./claude.ts";

/**
 * Gemini CLI in headless mode, documented in google-gemini/gemini-cli `docs/cli/headless.md`.
 * With `--output-format stream-json` it prints one event per line: `init` (`session_id`,
 * `model`), `message` (`role`, `content`, `delta`), `tool_use` (`tool_name`, `tool_id`,
 * `parameters`), `tool_result` (`tool_id`, `status`, `output` or `error`), `error` (`severity`,
 * `message`: non-fatal) and `result` (`status` `success` or `error`, `error` {`type`,
 * `message`}, `stats` {`total_tokens`, `input_tokens`, `output_tokens`, `cached`, `input`,
 * `duration_ms`, `tool_calls`}). With `--output-format json` it prints one object: `response`,
 * `stats` (`models.<name>.tokens` {`prompt`, `candidates`, `total`, `cached`, `thoughts`,
 * `tool`}, `tools.totalCalls`) and, on failure, `error` {`type`, `message`, `code`}; both are read.
 *
 * The prompt goes to stdin (headless mode, no TTY). `--approval-mode auto_edit` lets it edit files
 * without asking. Gemini CLI reads `GEMINI.md` itself (its `context.fileName` setting can name
 * `AGENTS.md`); the prompt also carries the repository's instructions files.
 */
export const geminiAdapter: AgentAdapter = {
  name: "gemini",
  program: "gemini",
  promptOnStdin: true,
  argv: ({ model }) => [
    "gemini",
    "--output-format",
    "stream-json",
    "--approval-mode",
    "auto_edit",
    ...modelArgs("--model", model),
  ],
  createParser() {
    let result: Record<string, unknown> | undefined;
    let reply = "";
    // `--output-format json` prints one (pretty-printed) object: kept to parse at the end.
    let whole = "";
    return {
      line(line) {
        if (whole.length < 1024 * 1024) whole += `${line}\n`;
        const event = jsonObject(line);
        if (!event) return undefined;
        if (event.type === "result") result = event;
        if (event.type === "message" && event.role === "assistant") {
          reply =
            event.delta === true
              ? reply + String(event.content ?? "")
              : String(event.content ?? "");
        }
        if (event.type === "tool_use") {
          return describeToolUse(text(event.tool_name, 60) ?? "tool", event.parameters);
        }
        return undefined;
      },
      usage() {
        // Gemini CLI reports its stats once, in the final result.
        return result ? fromStreamResult(result, reply).usage : {};
      },
      finish() {
        if (result) return fromStreamResult(result, reply);
        const single = jsonObject(whole.trim());
        return single ? fromJsonOutput(single) : { usage: {} };
      },
    };
  },
};

function fromStreamResult(result: Record<string, unknown>, reply: string) {
  const stats = isRecord(result.stats) ? result.stats : {};
  const input = count(stats.input_tokens);
  const output = count(stats.output_tokens);
  const usage = defined({
    tokens: count(stats.total_tokens) ?? add(input, output),
    input_tokens: input,
    output_tokens: output,
    cache_read_tokens: count(stats.cached),
  });
  if (result.status === "error" || isRecord(result.error)) {
    return { usage, error: errorText(result.error) };
  }
  return defined({ usage, summary: text(reply, 4000) });
}

function fromJsonOutput(output: Record<string, unknown>) {
  const stats = isRecord(output.stats) ? output.stats : {};
  const models = isRecord(stats.models) ? Object.values(stats.models).filter(isRecord) : [];
  let prompt: number | undefined;
  let candidates: number | undefined;
  let total: number | undefined;
  let cached: number | undefined;
  for (const model of models) {
    const tokens = isRecord(model.tokens) ? model.tokens : {};
    prompt = add(prompt, count(tokens.prompt));
    candidates = add(candidates, count(tokens.candidates));
    total = add(total, count(tokens.total));
    cached = add(cached, count(tokens.cached));
  }
  const usage = defined({
    tokens: total ?? add(prompt, candidates),
    input_tokens: prompt,
    output_tokens: candidates,
    cache_read_tokens: cached,
  });
  if (isRecord(output.error)) return { usage, error: errorText(output.error) };
  return defined({ usage, summary: text(output.response, 4000) });
}

function errorText(error: unknown): string {
  const fields = isRecord(error) ? error : {};
  const message = text(fields.message, 4000) ?? "the run failed (no message)";
  const type = text(fields.type, 80);
  return type ? `${type}: ${message}` : message;
}
