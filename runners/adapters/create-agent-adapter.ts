import type { AdapterName, AgentAdapter } from "./agent-adapter.ts";
import { claudeAdapter } from "./claude.ts";
import { codexAdapter } from "./codex.ts";
import { createCommandAdapter } from "./command.ts";

const NAMED: Partial<Record<AdapterName, AgentAdapter>> = {
  claude: claudeAdapter,
  codex: codexAdapter,
};

/** The adapter for `--agent <name>`, or the `command` adapter for `--agent -- <argv…>`. */
export function createAgentAdapter(name: AdapterName, argv: readonly string[]): AgentAdapter {
  if (name === "command") return createCommandAdapter(argv);
  const adapter = NAMED[name];
  if (!adapter) throw new Error(`no adapter named ${name}`);
  return adapter;
}
