import type { Logger } from "pino";

export interface Loop {
  /** Runs the body soon (coalesced: many wakes before it runs cost one run). */
  wake(): void;
  /** Resolves after the first run finished (for start-up ordering and tests). */
  firstRun: Promise<void>;
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * A background loop: runs `body` every `intervalMs`, or sooner when woken, never twice at once.
 * A failing run is logged and retried at the next tick; it never stops the loop.
 */
export function createLoop(options: {
  name: string;
  intervalMs: number;
  logger: Logger;
  body: () => Promise<void>;
  /** Delay before the first run (default: at once). */
  initialDelayMs?: number;
  /** Told about every failed run (counted as an error for the alerter), besides the log. */
  onError?: (error: unknown) => void;
}): Loop {
  const { name, intervalMs, logger, body } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let markFirst: () => void;
  const firstRun = new Promise<void>((resolve) => {
    markFirst = resolve;
  });

  const schedule = (delay: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, delay);
    timer.unref();
  };

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = body()
      .catch((error: unknown) => {
        logger.error({ err: error, loop: name }, "background loop failed");
        options.onError?.(error);
      })
      .finally(() => {
        running = undefined;
        markFirst();
        if (again) {
          again = false;
          schedule(0);
        } else {
          schedule(intervalMs);
        }
      });
  }

  schedule(options.initialDelayMs ?? 0);
  return {
    wake() {
      if (running) again = true;
      else schedule(0);
    },
    firstRun,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
