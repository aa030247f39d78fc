import type { Logger } from "pino";

/** What a subsystem does at start-up and at shutdown; either may be absent. */
export interface Lifecycle {
  start?(): Promise<void> | void;
  /**
   * Undoes `start`. Also called after a `start` that failed part-way, so it must cope with
   * whatever was left half done.
   */
  stop?(): Promise<void> | void;
}

/** One line of the start-up order: a name (for logs and tests) and the subsystem, if it exists. */
export type Stage = readonly [name: string, subsystem: Lifecycle | undefined];

export interface Started {
  /** Stops every stage in the reverse of start-up; idempotent. Throws the first stop's error. */
  stop(): Promise<void>;
}

/**
 * Starts the stages in order. When one fails, the stages started so far and the failing one are
 * stopped in reverse order and the start's error is thrown. Shutdown is always the reverse of
 * start-up: the order is data (the list), not the order of statements.
 */
export async function startStages(stages: readonly Stage[], logger: Logger): Promise<Started> {
  const reached: Stage[] = [];
  try {
    for (const stage of stages) {
      if (!stage[1]) continue;
      reached.push(stage);
      await stage[1].start?.();
    }
  } catch (error) {
    await stopStages(reached, logger).catch(() => {});
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= stopStages(reached, logger);
      return stopping;
    },
  };
}

/** Stops every stage, last first; one failing stop does not keep the others from stopping. */
async function stopStages(stages: readonly Stage[], logger: Logger): Promise<void> {
  let failure: { error: unknown } | undefined;
  for (const [name, subsystem] of [...stages].reverse()) {
    try {
      await subsystem?.stop?.();
    } catch (error) {
      logger.error({ err: error, stage: name }, "a subsystem failed to stop");
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
}
