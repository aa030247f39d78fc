import type { Db } from "../../db/client.ts";
import { renewLeases } from "../store/dispatch.ts";

type Fence = { taskId: string; generation: number; runnerId: string };

export interface LeaseRenewals {
  /** Queues a heartbeat's renewal; resolves with whether the runner still holds the task. */
  renew(fence: Fence): Promise<boolean>;
  /** Resolves once every renewal queued so far was carried out (at shutdown, and in tests). */
  flush(): Promise<void>;
}

/**
 * Heartbeats batched per instance, like a group commit: at most one renewal statement
 * (`renewLeases`) is in flight; every heartbeat that arrives meanwhile (from any runner on this
 * instance) waits for it to finish and is renewed by the next one, together with the others. So a
 * heartbeat waits at most about two statements, and under load one commit renews many leases.
 * Only tasks whose runner sent a heartbeat are renewed: a runner that stops heartbeating a task
 * still loses its lease. A task named twice in one batch is renewed once; both get the answer.
 */
export function createLeaseRenewals(options: {
  db: Db;
  leaseMs: number;
  onError: (error: unknown) => void;
}): LeaseRenewals {
  type Waiting = {
    fence: Fence;
    resolve: ((held: boolean) => void)[];
    reject: ((error: unknown) => void)[];
  };
  const keyOf = (f: Fence) => `${f.taskId}:${f.generation}:${f.runnerId}`;
  let pending = new Map<string, Waiting>();
  let running: Promise<void> | undefined;
  let scheduled = false;

  async function renewBatch(batch: Map<string, Waiting>): Promise<void> {
    let held: Set<string>;
    try {
      const renewed = await renewLeases(
        options.db,
        [...batch.values()].map((w) => w.fence),
        options.leaseMs,
      );
      held = new Set(renewed.map(keyOf));
    } catch (error) {
      // Each heartbeat is answered with an error and sent again; a lease that runs out
      // meanwhile requeues its task as any missed renewal would.
      options.onError(error);
      for (const waiting of batch.values()) for (const reject of waiting.reject) reject(error);
      return;
    }
    for (const [key, waiting] of batch) {
      for (const resolve of waiting.resolve) resolve(held.has(key));
    }
  }

  /** Renews what is pending, then whatever arrived meanwhile, until nothing is left. */
  function drain(): void {
    scheduled = false;
    if (running || pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    running = renewBatch(batch).finally(() => {
      running = undefined;
      drain();
    });
  }

  return {
    renew(fence) {
      return new Promise<boolean>((resolve, reject) => {
        const key = keyOf(fence);
        const waiting = pending.get(key);
        if (waiting) {
          waiting.resolve.push(resolve);
          waiting.reject.push(reject);
        } else pending.set(key, { fence, resolve: [resolve], reject: [reject] });
        // Heartbeats handled in the same turn of the event loop share the statement.
        if (!running && !scheduled) {
          scheduled = true;
          setImmediate(drain);
        }
      });
    },
    async flush() {
      drain();
      while (running) await running;
    },
  };
}
