/** pino's numeric levels and the names shown for them. */
const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};

/** ANSI colours per level (gray, blue, green, yellow, red, white on red). */
const LEVEL_COLOURS: Record<number, string> = {
  10: "90",
  20: "34",
  30: "32",
  40: "33",
  50: "31",
  60: "41;97",
};

/** Fields every record carries that a person reading a terminal does not need on each line. */
const HIDDEN_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "name", "v"]);

/** An error's fields that its stack already shows. */
const ERROR_FIELDS_IN_STACK = new Set(["type", "message", "stack"]);

/**
 * Control characters and bidirectional overrides. Logged values can come from hostile issue
 * authors; written raw they could move the cursor, recolour or reorder an operator's terminal.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A value that may stand bare after `key=`: no spaces, quotes, `=` or backslashes. */
const BARE = /^[^\s"'=\\]+$/;

function escapeUnsafe(text: string): string {
  return text.replace(UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function formatValue(value: unknown): string {
  if (typeof value === "string") {
    return BARE.test(value) ? escapeUnsafe(value) : escapeUnsafe(JSON.stringify(value));
  }
  if (value === null || typeof value !== "object") return String(value);
  return escapeUnsafe(JSON.stringify(value));
}

function hasStack(value: unknown): value is { stack: string } {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { stack?: unknown }).stack === "string"
  );
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function clockTime(epochMs: number): string {
  const t = new Date(epochMs);
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/**
 * Turns one pino JSON line into a line for a person: `HH:MM:SS.mmm LEVEL message key=value …`
 * (local time). Strings with spaces or quotes are JSON-quoted, objects are compact JSON, control
 * characters are escaped; an error's stack follows on indented lines. `pid`, `hostname` and `name`
 * are left out. A line that is not a JSON object is passed through unchanged.
 */
export function formatLogLine(line: string, options: { color?: boolean } = {}): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) return line;
  const fields = record as Record<string, unknown>;
  const level = typeof fields.level === "number" ? fields.level : 30;
  const levelName = (LEVEL_NAMES[level] ?? `L${level}`).padEnd(5);
  const time = typeof fields.time === "number" ? clockTime(fields.time) : "--:--:--.---";
  const message = typeof fields.msg === "string" ? escapeUnsafe(fields.msg) : "";
  const colour = options.color ? LEVEL_COLOURS[level] : undefined;

  const parts = [
    options.color ? `\x1b[2m${time}\x1b[22m` : time,
    colour ? `\x1b[${colour}m${levelName}\x1b[0m` : levelName,
  ];
  if (message) parts.push(message);
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (HIDDEN_FIELDS.has(key) || value === undefined) continue;
    if (hasStack(value)) {
      // The stack's first line is the error's type and message; other properties (code, status,
      // cause …) stay on the line.
      stacks.push(...value.stack.split("\n").map((l) => `    ${escapeUnsafe(l)}`));
      for (const [property, detail] of Object.entries(value)) {
        if (ERROR_FIELDS_IN_STACK.has(property) || detail === undefined) continue;
        parts.push(`${escapeUnsafe(`${key}.${property}`)}=${formatValue(detail)}`);
      }
      continue;
    }
    parts.push(`${escapeUnsafe(key)}=${formatValue(value)}`);
  }
  return `${[parts.join(" "), ...stacks].join("\n")}\n`;
}
