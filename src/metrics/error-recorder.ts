import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { type ErrorEvent, insertErrorEvents } from "../store/error-events.ts";

/**
 * Counts an error where it happens: `conveyor_errors_total{source}` at once, and a row in
 * `error_events` (what the alerter's "errors per hour" and "webhook failures" count) written in
 * the background, batched, never throwing into the caller. When the database itself is down the
 * rows are dropped: the database alert covers that, and a growing buffer would not help.
 */
export interface ErrorRecorder {
  record(source: string, error: unknown, details?: Record<string, unknown>): void;
  /** Resolves when everything recorded so far is written (or given up). */
  flush(): Promise<void>;
}

const MAX_PENDING = 500;

export function createErrorRecorder(deps: {
  db: Db;
  logger: Logger;
  count?: (source: string) => void;
  now?: () => Date;
}): ErrorRecorder {
  const now = deps.now ?? (() => new Date());
  let pending: ErrorEvent[] = [];
  let writing: Promise<void> | undefined;
  let dropped = 0;

  async function drain(): Promise<void> {
    while (pending.length) {
      const batch = pending;
      pending = [];
      try {
        await insertErrorEvents(deps.db, batch);
      } catch (error) {
        dropped += batch.length;
        deps.logger.warn(
          { err: error, dropped: batch.length },
          "could not store error events; they are counted in conveyor_errors_total only",
        );
      }
    }
  }

  return {
    record(source, error, details) {
      deps.count?.(source);
      if (pending.length >= MAX_PENDING) {
        dropped++;
        return;
      }
      const err = error as { message?: unknown; name?: unknown; status?: unknown };
      const message = typeof err?.message === "string" && err.message ? err.message : String(error);
      pending.push({
        source,
        message,
        details: {
          ...(typeof err?.name === "string" ? { name: err.name } : {}),
          ...(typeof err?.status === "number" ? { status: err.status } : {}),
          ...details,
        },
        at: now(),
      });
      writing ??= drain().finally(() => {
        writing = undefined;
      });
    },
    async flush() {
      while (writing) await writing;
      if (dropped) deps.logger.debug({ dropped }, "error events dropped since start");
    },
  };
}
