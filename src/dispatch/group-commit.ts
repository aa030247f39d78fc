/**
 * Writes batched per instance, like a database's group commit: at most one statement of a kind is
 * in flight, and every write that arrives meanwhile (from any runner on this instance) waits for it
 * and goes into the next statement, with the others. So a write waits at most about two
 * statements, and under load one commit carries many runners' frames. When the batch's statement
 * fails, each of its writes is tried alone, so one write the database refuses fails only its own
 * caller.
 */
export interface GroupCommit<I, O> {
  /** Queues a write; resolves with its own result once its batch committed. */
  submit(item: I): Promise<O>;
  /** Resolves once every write queued so far was carried out (at shutdown, and in tests). */
  flush(): Promise<void>;
}

export function createGroupCommit<I, O>(options: {
  /** Carries out a batch; results in the items' order. */
  run: (items: I[]) => Promise<O[]>;
  /**
   * Writes with the same key never share a batch (a statement may not change one row twice): a
   * second one waits for the next batch.
   */
  keyOf?: (item: I) => string;
  /**
   * How long a write that finds no statement in flight waits for others to join it (default 0:
   * the next turn of the event loop). A few milliseconds turn a busy fleet's frames, which arrive
   * spread out, into a few large statements instead of many small ones.
   */
  gatherMs?: number;
}): GroupCommit<I, O> {
  type Waiting = { item: I; resolve: (result: O) => void; reject: (error: unknown) => void };
  let pending: Waiting[] = [];
  let running: Promise<void> | undefined;
  let scheduled = false;

  async function runBatch(batch: Waiting[]): Promise<void> {
    let results: O[];
    try {
      results = await options.run(batch.map((w) => w.item));
    } catch (error) {
      if (batch.length === 1) batch[0]!.reject(error);
      else for (const waiting of batch) await runBatch([waiting]);
      return;
    }
    for (const [index, waiting] of batch.entries()) waiting.resolve(results[index]!);
  }

  /** The next batch: the pending writes, each key once; the repeats stay pending. */
  function take(): Waiting[] {
    if (!options.keyOf) {
      const batch = pending;
      pending = [];
      return batch;
    }
    const keys = new Set<string>();
    const batch: Waiting[] = [];
    const later: Waiting[] = [];
    for (const waiting of pending) {
      const key = options.keyOf(waiting.item);
      if (keys.has(key)) later.push(waiting);
      else {
        keys.add(key);
        batch.push(waiting);
      }
    }
    pending = later;
    return batch;
  }

  /** Runs what is pending, then whatever arrived meanwhile, until nothing is left. */
  function drain(): void {
    scheduled = false;
    if (running || pending.length === 0) return;
    running = runBatch(take()).finally(() => {
      running = undefined;
      drain();
    });
  }

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        // Writes handled in the same turn of the event loop share the statement.
        if (!running && !scheduled) {
          scheduled = true;
          if (options.gatherMs) setTimeout(drain, options.gatherMs);
          else setImmediate(drain);
        }
      });
    },
    async flush() {
      drain();
      while (running) await running;
    },
  };
}
