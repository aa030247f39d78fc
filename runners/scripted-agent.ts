import { spawn } from "node:child_process";
import {
  appendFile,
  chmod,
  lstat,
  mkdir,
  readFile,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { z } from "zod";

/**
 * A deterministic "coding agent" for demos and tests. It reads the prompt from the file named by
 * `CONVEYOR_PROMPT_FILE` (stdin is ignored), works in the current directory and follows the first
 * fenced block tagged `conveyor-script` in the prompt:
 *
 *     write path/to/file.txt        append README.md         delete old.txt
 *     <<<                           <<<                      chmod +x scripts/run.sh
 *     content lines                 more                     chmod -x scripts/run.sh
 *     >>>                           >>>                      print "some output"
 *     fail 3 "simulated failure"    hang                     spawn-sleeper
 *     sleep 250                     report-usage 1234 0.05   # a comment
 *     copy-prompt PROMPT.md         (writes the prompt the agent was given into the workspace)
 *
 * Without a block it appends one line naming the issue to `CONVEYOR_NOTES.md`, so every issue
 * produces a change. Paths must stay inside the workspace; nothing is ever run through a shell.
 */

/** One instruction of a `conveyor-script` block. */
export type ScriptStep =
  | { op: "write" | "append"; path: string; content: string }
  | { op: "delete"; path: string }
  | { op: "copy-prompt"; path: string }
  | { op: "chmod"; path: string; executable: boolean }
  | { op: "fail"; code: number; message: string }
  | { op: "print"; text: string }
  | { op: "sleep"; ms: number }
  | { op: "hang" }
  | { op: "spawn-sleeper" }
  | { op: "report-usage"; tokens: number; costUsd: number };

/** A parsed script, or the first line that could not be understood. */
export type ParsedScript = { ok: true; steps: ScriptStep[] } | { ok: false; error: string };

/** Token and cost figures an agent reported on a `{"conveyor_usage": …}` line. */
export interface AgentUsage {
  tokens?: number;
  cost_usd?: number;
}

/** The printed line that announces the sleeper's pid, for tests and demos. */
export const SLEEPER_PID_PREFIX = "conveyor-sleeper-pid:";

const UsageLine = z.object({
  conveyor_usage: z.object({
    tokens: z.number().int().min(0).optional(),
    cost_usd: z.number().min(0).optional(),
  }),
});

/**
 * The usage from the last line of `outputTail` that is a JSON object with `conveyor_usage`
 * (`{"conveyor_usage":{"tokens":1234,"cost_usd":0.05}}`), or undefined when there is none.
 */
export function parseUsageLine(outputTail: string): AgentUsage | undefined {
  const lines = outputTail.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith("{") || !line.includes("conveyor_usage")) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = UsageLine.safeParse(json);
    if (!parsed.success) continue;
    const usage: AgentUsage = {};
    if (parsed.data.conveyor_usage.tokens !== undefined) {
      usage.tokens = parsed.data.conveyor_usage.tokens;
    }
    if (parsed.data.conveyor_usage.cost_usd !== undefined) {
      usage.cost_usd = parsed.data.conveyor_usage.cost_usd;
    }
    return usage;
  }
  return undefined;
}

/** The body of the first fenced block tagged `conveyor-script` (``` or ~~~), if any. */
export function findScriptBlock(prompt: string): string | undefined {
  const lines = prompt.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*conveyor-script\s*$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j]!;
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1]![0] === fence[0] && close[1]!.length >= fence.length) {
        return body.join("\n");
      }
      body.push(line);
    }
    return body.join("\n"); // An unclosed fence runs to the end, as in CommonMark.
  }
  return undefined;
}

/** Parses a script; the whole script is checked before any step runs. */
export function parseScript(script: string): ParsedScript {
  const lines = script.split(/\r?\n/);
  const steps: ScriptStep[] = [];
  for (let i = 0; i < lines.length; i++) {
    const where = `line ${i + 1}`;
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const words = tokenize(line);
    if (!words) return { ok: false, error: `${where}: unbalanced quotes` };
    const [op, ...args] = words;
    const arity = (n: number) => args.length === n;
    const pathError = (path: string) => {
      const problem = unsafePath(path);
      return problem ? { ok: false as const, error: `${where}: ${path}: ${problem}` } : undefined;
    };
    switch (op) {
      case "write":
      case "append": {
        if (!arity(1)) return { ok: false, error: `${where}: ${op} takes one path` };
        const bad = pathError(args[0]!);
        if (bad) return bad;
        if (lines[i + 1]?.trim() !== "<<<") {
          return { ok: false, error: `${where}: ${op} must be followed by a <<< line` };
        }
        const end = lines.findIndex((l, j) => j > i + 1 && l.trim() === ">>>");
        if (end < 0) return { ok: false, error: `${where}: no >>> line closes the content` };
        const body = lines.slice(i + 2, end);
        steps.push({
          op,
          path: args[0]!,
          content: body.length ? `${body.join("\n")}\n` : "",
        });
        i = end;
        break;
      }
      case "copy-prompt":
      case "delete": {
        if (!arity(1)) return { ok: false, error: `${where}: ${op} takes one path` };
        const bad = pathError(args[0]!);
        if (bad) return bad;
        steps.push({ op, path: args[0]! });
        break;
      }
      case "chmod": {
        if (!arity(2) || (args[0] !== "+x" && args[0] !== "-x")) {
          return { ok: false, error: `${where}: use chmod +x PATH or chmod -x PATH` };
        }
        const bad = pathError(args[1]!);
        if (bad) return bad;
        steps.push({ op, path: args[1]!, executable: args[0] === "+x" });
        break;
      }
      case "fail": {
        const code = Number(args[0]);
        if (args.length > 2 || !Number.isInteger(code) || code < 1 || code > 255) {
          return { ok: false, error: `${where}: use fail CODE "message" with CODE 1-255` };
        }
        steps.push({ op, code, message: args[1] ?? "scripted failure" });
        break;
      }
      case "print":
        if (!arity(1)) return { ok: false, error: `${where}: use print "text"` };
        steps.push({ op, text: args[0]! });
        break;
      case "sleep": {
        const ms = Number(args[0]);
        if (!arity(1) || !Number.isInteger(ms) || ms < 0 || ms > 3_600_000) {
          return { ok: false, error: `${where}: use sleep MILLISECONDS (at most an hour)` };
        }
        steps.push({ op, ms });
        break;
      }
      case "hang":
      case "spawn-sleeper":
        if (!arity(0)) return { ok: false, error: `${where}: ${op} takes no arguments` };
        steps.push({ op });
        break;
      case "report-usage": {
        const tokens = Number(args[0]);
        const costUsd = Number(args[1]);
        if (!arity(2) || !Number.isInteger(tokens) || tokens < 0 || !(costUsd >= 0)) {
          return { ok: false, error: `${where}: use report-usage TOKENS COST_USD` };
        }
        steps.push({ op, tokens, costUsd });
        break;
      }
      default:
        return { ok: false, error: `${where}: unknown instruction ${JSON.stringify(op)}` };
    }
  }
  return { ok: true, steps };
}

/**
 * The issue title from the prompt: its first Markdown heading (the runner's prompt starts with
 * `# <title>`), else a `Title: …` line, else undefined.
 */
export function findIssueTitle(prompt: string): string | undefined {
  const lines = prompt.split(/\r?\n/);
  for (const pattern of [/^#{1,6}\s+(.+)$/, /^\s*(?:issue\s+)?title:\s*(.+)$/i]) {
    for (const line of lines) {
      const match = pattern.exec(line);
      if (match?.[1]?.trim()) return match[1].trim();
    }
  }
  return undefined;
}

/** Runs the scripted agent and resolves to its exit code (never, for `hang`). */
export async function main(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const err = (text: string) => process.stderr.write(`${text}\n`);
  const promptFile = env.CONVEYOR_PROMPT_FILE;
  if (!promptFile) {
    err("scripted-agent: CONVEYOR_PROMPT_FILE is not set");
    return 2;
  }
  let prompt: string;
  try {
    prompt = await readFile(promptFile, "utf8");
  } catch (error) {
    err(`scripted-agent: cannot read the prompt file: ${(error as Error).message}`);
    return 2;
  }

  const block = findScriptBlock(prompt);
  if (block === undefined) {
    const title = findIssueTitle(prompt) ?? "(untitled)";
    const issue = env.CONVEYOR_ISSUE_NUMBER ? ` #${env.CONVEYOR_ISSUE_NUMBER}` : "";
    await appendFile(join(cwd, "CONVEYOR_NOTES.md"), `- Worked on issue${issue}: ${title}\n`);
    out(`appended a note about issue${issue} to CONVEYOR_NOTES.md`);
    return 0;
  }

  const parsed = parseScript(block);
  if (!parsed.ok) {
    err(`scripted-agent: ${parsed.error}`);
    return 2;
  }
  for (const step of parsed.steps) {
    try {
      const code = await runStep(step, cwd, out, err, prompt);
      if (code !== undefined) return code;
    } catch (error) {
      err(`scripted-agent: ${describe(step)} failed: ${(error as Error).message}`);
      return 2;
    }
  }
  return 0;
}

async function runStep(
  step: ScriptStep,
  cwd: string,
  out: (text: string) => void,
  err: (text: string) => void,
  prompt: string,
): Promise<number | undefined> {
  switch (step.op) {
    case "copy-prompt": {
      // Shows what the agent was told (feedback included) in the change itself.
      const target = await safeTarget(cwd, step.path, { createParents: true });
      await writeFile(target, prompt);
      out(`copied the prompt to ${step.path}`);
      return undefined;
    }
    case "write":
    case "append": {
      const target = await safeTarget(cwd, step.path, { createParents: true });
      if (step.op === "write") await writeFile(target, step.content);
      else await appendFile(target, step.content);
      out(`${step.op === "write" ? "wrote" : "appended to"} ${step.path}`);
      return undefined;
    }
    case "delete": {
      const target = await safeTarget(cwd, step.path, { allowSymlink: true });
      await unlink(target);
      out(`deleted ${step.path}`);
      return undefined;
    }
    case "chmod": {
      const target = await safeTarget(cwd, step.path);
      const { mode } = await stat(target);
      await chmod(target, step.executable ? mode | 0o111 : mode & ~0o111);
      out(`chmod ${step.executable ? "+x" : "-x"} ${step.path}`);
      return undefined;
    }
    case "fail":
      err(step.message);
      return step.code;
    case "print":
      out(step.text);
      return undefined;
    case "sleep":
      await new Promise((resolve) => setTimeout(resolve, step.ms));
      return undefined;
    case "hang":
      out("hanging");
      return hang();
    case "spawn-sleeper": {
      // Same process group as the agent (not detached), so killing the group must take it too.
      const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
      out(`${SLEEPER_PID_PREFIX} ${sleeper.pid}`);
      return hang();
    }
    case "report-usage":
      out(JSON.stringify({ conveyor_usage: { tokens: step.tokens, cost_usd: step.costUsd } }));
      return undefined;
  }
}

function hang(): Promise<never> {
  // A pending timer keeps the event loop (and so the process) alive until it is killed.
  setInterval(() => {}, 60_000);
  return new Promise<never>(() => {});
}

/** Why a script path is unacceptable, or undefined when it is a plain relative path. */
function unsafePath(path: string): string | undefined {
  if (path === "" || path.includes("\0")) return "is empty or contains a NUL byte";
  if (isAbsolute(path) || path.startsWith("/") || /^[a-zA-Z]:/.test(path)) return "is absolute";
  if (path.includes("\\")) return "contains a backslash";
  const parts = path.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) {
    return "has an empty, . or .. segment";
  }
  if (parts.some((p) => p.toLowerCase() === ".git")) return "is inside .git";
  return undefined;
}

/**
 * The absolute path for `path` inside `cwd`, refusing any existing component that is a symlink
 * (it could lead out of the workspace); the last component may be one only with `allowSymlink`.
 */
async function safeTarget(
  cwd: string,
  path: string,
  options: { createParents?: boolean; allowSymlink?: boolean } = {},
): Promise<string> {
  const problem = unsafePath(path);
  if (problem) throw new Error(`${path} ${problem}`);
  const parts = path.split("/");
  let current = cwd;
  for (const [index, part] of parts.entries()) {
    current = join(current, part);
    const last = index === parts.length - 1;
    const stats = await lstat(current).catch(() => undefined);
    if (!stats) {
      if (!last && options.createParents) await mkdir(current);
      continue;
    }
    if (stats.isSymbolicLink() && !(last && options.allowSymlink)) {
      throw new Error(
        `${path}: refusing to follow the symlink ${parts.slice(0, index + 1).join("/")}`,
      );
    }
  }
  return current;
}

/** Splits on whitespace; double-quoted words may contain spaces and JSON escapes. */
function tokenize(line: string): string[] | undefined {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (/\s/.test(line[i]!)) {
      i++;
      continue;
    }
    if (line[i] === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
      if (j >= line.length) return undefined;
      try {
        words.push(JSON.parse(line.slice(i, j + 1)) as string);
      } catch {
        return undefined;
      }
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < line.length && !/\s/.test(line[j]!)) j++;
    words.push(line.slice(i, j));
    i = j;
  }
  return words;
}

function describe(step: ScriptStep): string {
  return "path" in step ? `${step.op} ${step.path}` : step.op;
}
