import pino, { type Logger } from "pino";
import type { LogFormat, LogLevel } from "./config.ts";
import { formatLogLine } from "./format-log-line.ts";

/** Paths pino blanks out wherever they appear in a log record. */
export const REDACT_PATHS = [
  "token",
  "*.token",
  "secret",
  "*.secret",
  "privateKey",
  "*.privateKey",
  "password",
  "*.password",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "request.headers.authorization",
  "*.headers.authorization",
  "headers.cookie",
  "*.headers.cookie",
  'headers["x-hub-signature-256"]',
  "read_token",
  "*.read_token",
];

/** `auto` means readable lines for a terminal and JSON lines for anything else. */
export function resolveLogFormat(format: LogFormat, terminal: boolean): "json" | "pretty" {
  if (format === "auto") return terminal ? "pretty" : "json";
  return format;
}

/**
 * The one root logger; Probot and every module get `child()` loggers of it. Records are redacted
 * and serialised as JSON first, so the readable format shows exactly what JSON would, secrets
 * included as `[redacted]`.
 */
export function createLogger(
  options: {
    level?: LogLevel;
    /** Default `auto`. */
    format?: LogFormat;
    /** Where lines go (default stdout). */
    destination?: pino.DestinationStream;
    /** Whether the destination is a terminal: picks `auto`'s format and colours (default: stdout's). */
    terminal?: boolean;
  } = {},
): Logger {
  const terminal = options.terminal ?? (!options.destination && process.stdout.isTTY === true);
  const pretty = resolveLogFormat(options.format ?? "auto", terminal) === "pretty";
  let destination = options.destination;
  if (pretty) {
    const out = destination ?? pino.destination(1);
    // pino writes one JSON line per record; each becomes one readable line (plus a stack).
    destination = { write: (line: string) => out.write(formatLogLine(line, { color: terminal })) };
  }
  return pino(
    {
      name: "conveyor",
      level: options.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}

export type { Logger };
