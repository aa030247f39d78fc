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
  /**
   * A wake runs the body no sooner than this long after the previous run started (default 0, at
   * most `intervalMs`): a loop woken by every frame of a busy runner fleet runs a few times a
   * second, each run covering what the wakes meanwhile asked for, instead of back to back.
   */
  wakeGapMs?: number;
}): Loop {
  const { name, intervalMs, logger, body } = options;
  const wakeGapMs = Math.min(options.wakeGapMs ?? 0, intervalMs);
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let dueAt = Number.POSITIVE_INFINITY;
  let startedAt = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let markFirst: () => void;
  const firstRun = new Promise<void>((resolve) => {
    markFirst = resolve;
  });

  const cancel = () => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    immediate = undefined;
  };
  const schedule = (delay: number) => {
    if (stopped) return;
    cancel();
    dueAt = performance.now() + delay;
    // At once: right after the I/O being handled, not a timer turn (at least 1 ms) later; a task's
    // way to a runner passes through two loops.
    if (delay <= 0) {
      immediate = setImmediate(run);
      immediate.unref();
    } else {
      timer = setTimeout(run, delay);
      timer.unref();
    }
  };
  /** Soon, but not before the wake gap since the last run started, nor later than already due. */
  const soon = () => {
    const delay = Math.max(0, startedAt + wakeGapMs - performance.now());
    if (performance.now() + delay < dueAt) schedule(delay);
  };

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    dueAt = Number.POSITIVE_INFINITY;
    startedAt = performance.now();
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
          soon();
        } else {
          schedule(intervalMs);
        }
      });
  }

  schedule(options.initialDelayMs ?? 0);
  return {
    wake() {
      if (running) again = true;
      else soon();
    },
    firstRun,
    async stop() {
      stopped = true;
      cancel();
      await running;
    },
  };
}
