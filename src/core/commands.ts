import { MAX_BEST_OF } from "./best-of.ts";

/**
 * The slash-command grammar (docs/commands.md): a command is a line that starts with `/<verb>` or
 * `/conveyor <verb>`, followed by its arguments, on a plain top-level line: lines inside block
 * quotes, fenced or indented code (four spaces or a tab), HTML comments, or inline code are never
 * commands, so quoting someone's `/retry`, or hiding one where readers do not see it, does nothing.
 */
export interface ParsedCommand {
  verb: string;
  /** The rest of the line, trimmed. */
  args: string;
  /** 1-based line number in the comment. */
  line: number;
}

/** Whether an HTML comment is still open at the end of `line`. */
function opensComment(line: string): boolean {
  return line.lastIndexOf("<!--") > line.lastIndexOf("-->");
}

export function parseCommands(body: string): ParsedCommand[] {
  const commands: ParsedCommand[] = [];
  let fence: string | undefined;
  let comment = false;
  const lines = body.replace(/\r\n?/g, "\n").split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trimEnd();
    // An HTML comment is invisible on GitHub: no line it touches holds a command.
    if (!fence) {
      if (comment) {
        if (line.includes("-->")) comment = opensComment(line);
        continue;
      }
      if (line.includes("<!--")) {
        comment = opensComment(line);
        continue;
      }
    }
    const fenceMatch = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fenceMatch) {
      const marker = fenceMatch[1]!;
      if (!fence) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      continue;
    }
    if (fence) continue;
    // Indented code (four spaces or a tab before the text) is shown as code, not run.
    if (/^( {4,}|\s*\t)/.test(line)) continue;
    const text = line.trimStart();
    if (text.startsWith(">")) continue;
    const match = /^\/(?:conveyor\s+)?([a-z][a-z-]*)(?:\s+(.*))?$/i.exec(text);
    if (!match) continue;
    commands.push({
      verb: match[1]!.toLowerCase(),
      args: (match[2] ?? "").trim(),
      line: index + 1,
    });
  }
  return commands;
}

/** Where a comment was written: on an issue, or on a pull request (comment or review body). */
export type CommandPlace = "issue" | "pr";

/** GitHub's repository roles, weakest first (the collaborator-permission API's `role_name`). */
/**
 * How a task event queued by `/queue` begins (`/queue by @login`). The command adds the intake
 * label only after the task is queued, so reconciliation gives such a task a minute before it
 * treats a missing label as a removed one.
 */
export const QUEUE_COMMAND_REASON = "/queue by @";

/** The reason of the task event `/queue` by `actor` records. */
export function queueCommandReason(actor: string): string {
  return `${QUEUE_COMMAND_REASON}${actor}`;
}

export const COMMAND_PERMISSIONS = ["read", "triage", "write", "maintain", "admin"] as const;
export type CommandPermission = (typeof COMMAND_PERMISSIONS)[number];

const LANE_NAMES = ["urgent", "high", "normal", "low"] as const;
type LaneName = (typeof LANE_NAMES)[number];

/** A command that passed the grammar: its verb and its parsed arguments. */
export type Command =
  | { verb: "queue" | "retry" | "unhold" | "status" | "help" | "unapprove" | "merge" }
  | { verb: "refresh" | "update" | "unfreeze" }
  | { verb: "cancel" | "hold"; reason: string }
  | { verb: "priority"; lane: LaneName }
  | { verb: "approve"; sha: string | undefined }
  | { verb: "fix"; text: string }
  | { verb: "freeze"; reason: string }
  | { verb: "budget"; usd: number }
  | { verb: "pick"; k: number };

export type Verb = Command["verb"];

type ArgsKind = "none" | "reason" | "lane" | "sha" | "text" | "usd" | "candidate";

interface VerbSpec {
  places: readonly CommandPlace[];
  permission: CommandPermission;
  args: ArgsKind;
  usage: string;
  summary: string;
}

const BOTH = ["issue", "pr"] as const;

/** Every verb: where it works, who may use it, its arguments (docs/commands.md). */
export const VERBS: Record<Verb, VerbSpec> = {
  queue: {
    places: ["issue"],
    permission: "write",
    args: "none",
    usage: "/queue",
    summary: "queue this issue, or take the issue's current text as the task's snapshot",
  },
  cancel: {
    places: BOTH,
    permission: "write",
    args: "reason",
    usage: "/cancel [reason]",
    summary: "cancel the task (a runner working on it is told to stop)",
  },
  retry: {
    places: BOTH,
    permission: "write",
    args: "none",
    usage: "/retry",
    summary: "run the task again (also from dead); on a PR, another attempt on its branch",
  },
  priority: {
    places: ["issue"],
    permission: "write",
    args: "lane",
    usage: "/priority <urgent|high|normal|low>",
    summary: "move the task to another lane (urgent needs maintain)",
  },
  hold: {
    places: BOTH,
    permission: "triage",
    args: "reason",
    usage: "/hold [reason]",
    summary: "keep the task from being dispatched or merged until /unhold",
  },
  unhold: {
    places: BOTH,
    permission: "write",
    args: "none",
    usage: "/unhold",
    summary: "release a hold",
  },
  status: {
    places: BOTH,
    permission: "read",
    args: "none",
    usage: "/status",
    summary: "the task's state; on a PR the merge verdict, rule by rule",
  },
  help: {
    places: BOTH,
    permission: "read",
    args: "none",
    usage: "/help",
    summary: "this list",
  },
  approve: {
    places: ["pr"],
    permission: "write",
    args: "sha",
    usage: "/approve [sha]",
    summary: "approve the PR's current head (a given SHA must be the head)",
  },
  unapprove: {
    places: ["pr"],
    permission: "write",
    args: "none",
    usage: "/unapprove",
    summary: "withdraw your /approve",
  },
  merge: {
    places: ["pr"],
    permission: "write",
    args: "none",
    usage: "/merge",
    summary: "merge as soon as the policy allows (bypasses nothing)",
  },
  fix: {
    places: ["pr"],
    permission: "write",
    args: "text",
    usage: "/fix <what to change>",
    summary: "another attempt on the PR's branch with your text as feedback",
  },
  refresh: {
    places: ["pr"],
    permission: "read",
    args: "none",
    usage: "/refresh",
    summary: "re-evaluate the merge policy now",
  },
  update: {
    places: ["pr"],
    permission: "write",
    args: "none",
    usage: "/update",
    summary: "rebuild the change on the current default branch (replaces the branch)",
  },
  freeze: {
    places: BOTH,
    permission: "maintain",
    args: "reason",
    usage: "/freeze [reason]",
    summary: "stop all merges in this repository until /unfreeze",
  },
  unfreeze: {
    places: BOTH,
    permission: "maintain",
    args: "none",
    usage: "/unfreeze",
    summary: "allow merges again",
  },
  budget: {
    places: BOTH,
    permission: "maintain",
    args: "usd",
    usage: "/budget <usd>",
    summary:
      "this repository's daily cost budget for the rest of today (UTC), in place of the config's",
  },
  pick: {
    places: BOTH,
    permission: "maintain",
    args: "candidate",
    usage: "/pick <k>",
    summary: `best of N: put candidate k (1 to ${MAX_BEST_OF}) on the pull request instead (rewrites its branch)`,
  },
};

/** The most `/budget` accepts, as `tasks.daily_budget_usd` does. */
export const MAX_DAILY_BUDGET_USD = 1_000_000;

const isVerb = (verb: string): verb is Verb => Object.hasOwn(VERBS, verb);

/** The verbs that work in a place, in the table's order. */
export function verbsFor(place: CommandPlace): Verb[] {
  return (Object.keys(VERBS) as Verb[]).filter((v) => VERBS[v].places.includes(place));
}

/** The permission a command needs; `/priority urgent` needs more than other lanes. */
export function requiredPermission(command: Command): CommandPermission {
  if (command.verb === "priority" && command.lane === "urgent") return "maintain";
  return VERBS[command.verb].permission;
}

/** Whether `actual` (GitHub's role; `none` or undefined for strangers) is at least `needed`. */
export function allows(actual: string | undefined, needed: CommandPermission): boolean {
  const rank = COMMAND_PERMISSIONS.indexOf(actual as CommandPermission);
  return rank >= 0 && rank >= COMMAND_PERMISSIONS.indexOf(needed);
}

export type CommandLine =
  | { line: number; text: string; ok: true; command: Command }
  | { line: number; text: string; ok: false; error: string };

const words = (args: string) => args.split(/\s+/).filter(Boolean);

function parseArgs(verb: Verb, args: string): Command | string {
  const spec = VERBS[verb];
  switch (spec.args) {
    case "none":
      return args
        ? `\`/${verb}\` takes no arguments (usage: \`${spec.usage}\`)`
        : ({ verb } as Command);
    case "reason":
      return { verb, reason: args } as Command;
    case "text":
      return args ? { verb: "fix", text: args } : `\`/${verb}\` needs text: \`${spec.usage}\``;
    case "lane": {
      const given = words(args).map((w) => w.toLowerCase());
      const lane = given[0];
      if (given.length !== 1 || !(LANE_NAMES as readonly string[]).includes(lane!)) {
        return `\`/priority\` takes exactly one lane: ${LANE_NAMES.map((l) => `\`${l}\``).join(", ")}`;
      }
      return { verb: "priority", lane: lane as LaneName };
    }
    case "usd": {
      const given = words(args);
      const amount = /^\$?(\d{1,7}(?:\.\d{1,2})?)$/.exec(given[0] ?? "");
      const usd = amount ? Number(amount[1]) : Number.NaN;
      if (given.length !== 1 || !(usd > 0) || usd > MAX_DAILY_BUDGET_USD) {
        return `\`/budget\` takes one amount in USD, more than 0 and at most ${MAX_DAILY_BUDGET_USD}, with at most two decimals: \`/budget 25\` or \`/budget $12.50\``;
      }
      return { verb: "budget", usd };
    }
    case "candidate": {
      const given = words(args);
      const k = /^[0-9]{1,2}$/.test(given[0] ?? "") ? Number(given[0]) : Number.NaN;
      if (given.length !== 1 || !(k >= 1 && k <= MAX_BEST_OF)) {
        return `\`/pick\` takes one candidate number from 1 to ${MAX_BEST_OF}: \`/pick 2\``;
      }
      return { verb: "pick", k };
    }
    case "sha": {
      const given = words(args);
      if (given.length === 0) return { verb: "approve", sha: undefined };
      if (given.length > 1 || !/^[0-9a-f]{7,40}$/i.test(given[0]!)) {
        return "`/approve` takes at most one commit SHA (7 to 40 hex characters): `/approve [sha]`";
      }
      return { verb: "approve", sha: given[0]!.toLowerCase() };
    }
  }
}

/**
 * Turns a comment into commands for a place: each command line becomes a parsed command or an
 * error that says what is valid. A command repeated with the same arguments counts once.
 */
export function interpretCommands(body: string, place: CommandPlace): CommandLine[] {
  const seen = new Set<string>();
  const out: CommandLine[] = [];
  for (const parsed of parseCommands(body)) {
    const text = `/${parsed.verb}${parsed.args ? ` ${parsed.args}` : ""}`;
    const key = text.toLowerCase().replace(/\s+/g, " ");
    if (seen.has(key)) continue;
    seen.add(key);
    const valid = verbsFor(place)
      .map((v) => `\`/${v}\``)
      .join(", ");
    // `/conveyor` alone asks for help.
    const verb = parsed.verb === "conveyor" && !parsed.args ? "help" : parsed.verb;
    if (!isVerb(verb)) {
      out.push({
        line: parsed.line,
        text,
        ok: false,
        error: `unknown command \`/${parsed.verb}\`; valid on ${place === "pr" ? "a pull request" : "an issue"}: ${valid}`,
      });
      continue;
    }
    if (!VERBS[verb].places.includes(place)) {
      const where = place === "pr" ? "an issue" : "a pull request";
      out.push({
        line: parsed.line,
        text,
        ok: false,
        error: `\`/${verb}\` works on ${where}, not here; valid here: ${valid}`,
      });
      continue;
    }
    const command = parseArgs(verb, parsed.args);
    if (typeof command === "string")
      out.push({ line: parsed.line, text, ok: false, error: command });
    else out.push({ line: parsed.line, text, ok: true, command });
  }
  return out;
}

/** The one-line refusal for someone without the permission a command needs: why, and who may. */
export function renderPermissionRefusal(
  command: Command,
  login: string,
  actual: string | undefined,
): string {
  const needed = requiredPermission(command);
  const has = actual && actual !== "none" ? `has ${actual} access` : "is not a collaborator";
  return `\`/${command.verb}\` needs ${needed} access or more; @${login} ${has}. Ask someone with ${needed} access.`;
}

/** `/help`: every verb valid in a place, with its usage, who may use it and what it does. */
export function renderHelp(place: CommandPlace): string {
  const rows = verbsFor(place).map((verb) => {
    const spec = VERBS[verb];
    const who = verb === "priority" ? "write (urgent: maintain)" : spec.permission;
    return `| \`${spec.usage}\` | ${who} | ${spec.summary} |`;
  });
  return [
    `Conveyor commands on ${place === "pr" ? "a pull request" : "an issue"} (a line starting with the command; \`/conveyor <verb>\` works too):`,
    "",
    "| command | who may | what it does |",
    "| --- | --- | --- |",
    ...rows,
  ].join("\n");
}
