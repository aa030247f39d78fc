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

/**
 * Codex `exec --json`: one JSON event per line, documented in the openai/codex repository's
 * `docs/exec.md` ("JSON output mode") with the types in `sdk/typescript/src/events.ts` and
 * `items.ts` (from `codex-rs/exec/src/exec_events.rs`). Events: `thread.started`, `turn.started`,
 * `turn.completed` (`usage`: `input_tokens`, `cached_input_tokens`, `output_tokens`),
 * `turn.failed` (`error.message`), `item.started` / `item.updated` / `item.completed` (`item`
 * with `type` `agent_message` (`text`), `reasoning`, `command_execution` (`command`, `status`),
 * `file_change` (`changes[]` of `path`, `kind`), `mcp_tool_call`, `web_search`, `todo_list`,
 * `error`), and `error` (`message`, a fatal stream error).
 *
 * The prompt goes to stdin (`-` as the prompt argument). `--full-auto` lets it edit the workspace
 * and run commands there without asking; `exec` never prompts. Codex reads `AGENTS.md` itself;
 * the prompt also carries the other instructions files.
 */
export const codexAdapter: AgentAdapter = {
  name: "codex",
  program: "codex",
  promptOnStdin: true,
  argv: ({ model }) => [
    "codex",
    "exec",
    "--json",
    "--full-auto",
    "--skip-git-repo-check",
    ...modelArgs("--model", model),
    "-",
  ],
  createParser() {
    let input: number | undefined;
    let cached: number | undefined;
    let output: number | undefined;
    let turns = 0;
    let error: string | undefined;
    let summary: string | undefined;
    return {
      line(line) {
        const event = jsonObject(line);
        if (!event) return undefined;
        switch (event.type) {
          case "turn.completed": {
            // A turn that completes after an `error` event recovered from it.
            error = undefined;
            turns++;
            const usage = isRecord(event.usage) ? event.usage : {};
            input = add(input, count(usage.input_tokens));
            cached = add(cached, count(usage.cached_input_tokens));
            output = add(output, count(usage.output_tokens));
            return undefined;
          }
          case "turn.failed": {
            const failure = isRecord(event.error) ? event.error : {};
            error = text(failure.message, 4000) ?? "the turn failed (no message)";
            return undefined;
          }
          case "error":
            error = text(event.message, 4000) ?? "error (no message)";
            return undefined;
          case "item.started":
          case "item.completed": {
            if (!isRecord(event.item)) return undefined;
            const item = event.item;
            if (item.type === "agent_message" && event.type === "item.completed") {
              summary = text(item.text, 4000) ?? summary;
            }
            return describeItem(item, event.type === "item.started");
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
        return defined({
          usage: defined({
            // Codex counts cached input inside input_tokens.
            tokens: add(input, output),
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cached,
            turns: turns || undefined,
          }),
          error,
          summary: error ? undefined : summary,
        });
      },
    };
  },
};

function describeItem(item: Record<string, unknown>, started: boolean): string | undefined {
  switch (item.type) {
    case "command_execution":
      return started ? `running ${text(item.command, 200) ?? "a command"}` : undefined;
    case "file_change": {
      const changes = Array.isArray(item.changes) ? item.changes.filter(isRecord) : [];
      const paths = changes.map((c) => text(c.path, 200)).filter(Boolean);
      return `editing ${paths.join(", ") || "files"}`;
    }
    case "mcp_tool_call":
      return started
        ? `${text(item.server, 60) ?? "mcp"}.${text(item.tool, 60) ?? "tool"}`
        : undefined;
    case "web_search":
      return started ? `searching ${text(item.query, 200) ?? "the web"}` : undefined;
    case "reasoning":
      return started ? "thinking" : undefined;
    case "agent_message":
      return started ? undefined : text(item.text, 200);
    default:
      return undefined;
  }
}
