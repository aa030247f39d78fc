import {
  type AgentAdapter,
  type AgentReport,
  type AgentUsage,
  add,
  amount,
  count,
  defined,
  isRecord,
  jsonObject,
  modelArgs,
  text,
} from "./agent-adapter.ts";

/**
 * Claude Code in print mode with `--output-format stream-json --verbose`: one JSON message per
 * line (documented at https://code.claude.com/docs/en/headless and, for the message types, the
 * Agent SDK reference https://docs.claude.com/en/docs/agent-sdk/typescript — `SDKAssistantMessage`,
 * `SDKResultMessage`). `assistant` messages carry `message.content[]` blocks; a `tool_use` block
 * (`name`, `input`) is progress. The last line is the `result` message: `subtype` (`success`,
 * `error_max_turns`, `error_during_execution`, …), `is_error`, `num_turns`, `result` (the final
 * text), `total_cost_usd` and `usage` (`input_tokens`, `output_tokens`,
 * `cache_read_input_tokens`, `cache_creation_input_tokens`).
 *
 * The prompt goes to stdin. `--permission-mode acceptEdits` lets it edit files without asking
 * (print mode never prompts: whatever would need a prompt is refused). Claude Code reads the
 * repository's `CLAUDE.md` itself; the prompt also carries `AGENTS.md` and the other instructions.
 */
export const claudeAdapter: AgentAdapter = {
  name: "claude",
  program: "claude",
  promptOnStdin: true,
  argv: ({ model }) => [
    "claude",
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--permission-mode",
    "acceptEdits",
    ...modelArgs("--model", model),
  ],
  createParser() {
    let result: Record<string, unknown> | undefined;
    let turns = 0;
    // Before the result: each assistant message's own `usage`, by message id (Claude Code may
    // print one message in several lines, each with the same usage).
    const messages = new Map<string, AgentUsage>();
    const parser = {
      line(line: string) {
        const event = jsonObject(line);
        if (!event) return undefined;
        if (event.type === "result") {
          result = event;
          return undefined;
        }
        if (event.type !== "assistant" || !isRecord(event.message)) return undefined;
        turns++;
        if (isRecord(event.message.usage)) {
          const id = text(event.message.id, 200) ?? `line-${turns}`;
          messages.set(id, usageOf(event.message.usage));
        }
        const content = Array.isArray(event.message.content) ? event.message.content : [];
        const tools = content.filter(
          (block): block is Record<string, unknown> => isRecord(block) && block.type === "tool_use",
        );
        const last = tools.at(-1);
        if (!last) return undefined;
        return describeToolUse(text(last.name, 60) ?? "tool", last.input);
      },
      usage(): AgentUsage {
        if (result) return parser.finish().usage;
        let sum: AgentUsage = {};
        for (const figures of messages.values()) {
          sum = defined({
            tokens: add(sum.tokens, figures.tokens),
            input_tokens: add(sum.input_tokens, figures.input_tokens),
            output_tokens: add(sum.output_tokens, figures.output_tokens),
            cache_read_tokens: add(sum.cache_read_tokens, figures.cache_read_tokens),
            cache_write_tokens: add(sum.cache_write_tokens, figures.cache_write_tokens),
          });
        }
        // A message split over several lines is one round trip.
        return defined({ ...sum, turns: messages.size || turns || undefined });
      },
      finish(): AgentReport {
        // Before the result (a run cut short, or a heartbeat asking): the usage so far, no cost
        // (Claude Code reports that only in the result).
        if (!result) return { usage: parser.usage() };
        const figures: AgentUsage = defined({
          ...usageOf(isRecord(result.usage) ? result.usage : {}),
          cost_usd: amount(result.total_cost_usd),
          turns: count(result.num_turns) ?? (turns || undefined),
        });
        const failed = result.is_error === true || (result.subtype ?? "success") !== "success";
        const message = text(result.result, 4000);
        if (!failed) return defined({ usage: figures, summary: message });
        const errors = Array.isArray(result.errors)
          ? result.errors.map((e) => text(typeof e === "string" ? e : JSON.stringify(e)))
          : [];
        const subtype = text(result.subtype, 80) ?? "error";
        const detail = [message, ...errors].filter(Boolean).join("; ");
        return {
          usage: figures,
          error: detail ? `${subtype}: ${detail}` : `${subtype} (no message)`,
        };
      },
    };
    return parser;
  },
};

/** Claude's `usage` object (of a message or the result) as Conveyor counts it. */
function usageOf(usage: Record<string, unknown>): AgentUsage {
  const input = count(usage.input_tokens);
  const output = count(usage.output_tokens);
  const cacheRead = count(usage.cache_read_input_tokens);
  const cacheWrite = count(usage.cache_creation_input_tokens);
  // Claude Code's input_tokens leave out the cache; Conveyor's input counts all three.
  const allInput = add(add(input, cacheRead), cacheWrite);
  return defined({
    tokens: add(allInput, output),
    input_tokens: allInput,
    output_tokens: output,
    cache_read_tokens: cacheRead,
    cache_write_tokens: cacheWrite,
  });
}

/** `Edit src/sizes.ts`, `Bash npm test`: a tool call as a line of progress. */
export function describeToolUse(name: string, input: unknown): string {
  const args = isRecord(input) ? input : {};
  const target =
    text(args.file_path, 200) ??
    text(args.filePath, 200) ??
    text(args.path, 200) ??
    text(args.command, 200) ??
    text(args.pattern, 200) ??
    text(args.url, 200) ??
    text(args.description, 200);
  return target ? `${name} ${target}` : name;
}
