/**
 * An agent adapter knows one coding agent's command line: how to start it non-interactively with
 * edits allowed in the workspace, how it gets the prompt, the repository's instructions and the
 * model, and how to read its own machine-readable output back into progress, usage and errors.
 * Adapters are pure: they build argv arrays and parse lines, nothing else.
 */

/** The adapters `conveyor-runner start --agent <name>` knows; `command` is `--agent -- <argv…>`. */
export const ADAPTER_NAMES = ["claude", "codex", "gemini", "aider", "opencode", "command"] as const;
export type AdapterName = (typeof ADAPTER_NAMES)[number];

/** What a task's launch knows when the argv is built. */
export interface AdapterLaunch {
  /** The model to ask for (`--model`), when the runner was given one. */
  model?: string | undefined;
  /** The file that holds the prompt (also on stdin for adapters that read it there). */
  promptFile: string;
  /** The repository's instructions files present in the workspace, relative paths. */
  instructions: string[];
}

/** Usage figures an agent reported; every field is what the tool said, left out when it did not. */
export interface AgentUsage {
  /** Every token the model processed: input (cached or not) plus output. */
  tokens?: number;
  /** Input tokens, cache reads and writes included. */
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  cost_usd?: number;
  /** Model round trips (Claude Code's `num_turns`, Codex's turns, opencode's steps). */
  turns?: number;
}

/** What the agent's output said, once it ended. */
export interface AgentReport {
  usage: AgentUsage;
  /** The tool's own error message when it reported a failed run (an error result). */
  error?: string;
  /** The agent's final message, when its output has one. */
  summary?: string;
}

/** Reads one run's stdout, line by line. */
export interface OutputParser {
  /** Takes one complete stdout line; returns a line of progress when the line is a progress event. */
  line(line: string): string | undefined;
  /**
   * What the run reported, from the lines seen so far; `outputTail` is the end of the interleaved
   * stdout and stderr, for tools that report there. Pure: the runner also calls it while the agent
   * runs, for the usage so far its heartbeats carry.
   */
  finish(outputTail: string): AgentReport;
  /**
   * The usage the output has reported so far, read after every line: the runner stops the agent
   * the moment it passes the task's budget. Cumulative; tools that report usage only at the end
   * (Gemini CLI) or per message (Claude Code, before its result) give what they have.
   */
  usage(): AgentUsage;
}

export interface AgentAdapter {
  name: AdapterName;
  /** The program, as looked up on PATH (doctor and the sandbox need it before any task). */
  program: string;
  /** Whether the prompt goes to stdin; otherwise only the prompt file is given (in the argv). */
  promptOnStdin: boolean;
  argv(launch: AdapterLaunch): string[];
  createParser(): OutputParser;
}

/** A JSON object from one line of output, or undefined for anything else (text, arrays, junk). */
export function jsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A count (tokens, turns) as the protocol takes it, a non-negative safe integer, or undefined:
 * tool output is data, never trusted to be well formed, and a figure the server would refuse must
 * not cost the attempt its `complete`.
 */
export function count(value: unknown): number | undefined {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) return undefined;
  const whole = Math.round(value);
  return Number.isSafeInteger(whole) ? whole : undefined;
}

/** An amount (USD): a non-negative finite number, or undefined. */
export function amount(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

export function text(value: unknown, max = 300): string | undefined {
  if (typeof value !== "string") return undefined;
  const line = value.replace(/\s+/g, " ").trim();
  if (!line) return undefined;
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Adds `b` to `a` where both are known numbers; keeps whichever exists otherwise. */
export function add(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a + b;
}

/** Drops undefined fields, so reports compare and serialise cleanly. */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** `--model <name>` when a model was chosen. */
export function modelArgs(flag: string, model: string | undefined): string[] {
  return model ? [flag, model] : [];
}
