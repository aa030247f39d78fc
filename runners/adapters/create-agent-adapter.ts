import type { AdapterName, AgentAdapter } from "./agent-adapter.ts";
import { aiderAdapter } from "./aider.ts";
import { claudeAdapter } from "./claude.ts";
import { codexAdapter } from "./codex.ts";
import { createCommandAdapter } from "./command.ts";
import { geminiAdapter } from "./gemini.ts";
import { opencodeAdapter } from "./opencode.ts";

const NAMED: Record<Exclude<AdapterName, "command">, AgentAdapter> = {
  claude: claudeAdapter,
  codex: codexAdapter,
  gemini: geminiAdapter,
  aider: aiderAdapter,
  opencode: opencodeAdapter,
};

/** The adapter for `--agent <name>`, or the `command` adapter for `--agent -- <argv…>`. */
export function createAgentAdapter(name: AdapterName, argv: readonly string[]): AgentAdapter {
  if (name === "command") return createCommandAdapter(argv);
  return NAMED[name];
}
