import pino, { type Logger } from "pino";
import type { LogLevel } from "./config.ts";

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

/** The one root logger; Probot and every module get `child()` loggers of it. */
export function createLogger(
  options: { level?: LogLevel; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      name: "conveyor",
      level: options.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination,
  );
}

export type { Logger };
