import type { Db } from "../../db/client.ts";
import { renewLeases } from "../store/dispatch.ts";

type Fence = { taskId: string; generation: number; runnerId: string };

export interface LeaseRenewals {
  /**
   * Queues a heartbeat's renewal; resolves with whether the runner still holds the task. A lease
   * this instance set or renewed less than `freshMs` ago is not written again: it still has
   * `leaseMs − freshMs` to run, and the next heartbeat renews it.
   */
  renew(fence: Fence): Promise<boolean>;
  /** The lease was just set in full (an `accept`): heartbeats within `freshMs` write nothing. */
  extended(fence: Fence): void;
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
  /** How long a lease set in full needs no renewal (a tenth of the lease; 0: always renew). */
  freshMs?: number;
  onError: (error: unknown) => void;
  now?: () => number;
}): LeaseRenewals {
  const freshMs = Math.min(options.freshMs ?? 0, options.leaseMs / 10);
  const now = options.now ?? (() => performance.now());
  /** When this instance last set each lease in full, by fence. */
  const setAt = new Map<string, number>();
  const noteSet = (key: string, at: number) => {
    setAt.delete(key);
    setAt.set(key, at);
    // Insertion order is age order: drop the entries no heartbeat can use any more.
    for (const [old, when] of setAt) {
      if (at - when < freshMs) break;
      setAt.delete(old);
    }
  };
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
    const at = now();
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
      if (freshMs > 0 && held.has(key)) noteSet(key, at);
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
      const key = keyOf(fence);
      const at = setAt.get(key);
      if (at !== undefined && now() - at < freshMs) return Promise.resolve(true);
      return new Promise<boolean>((resolve, reject) => {
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
    extended(fence) {
      if (freshMs > 0) noteSet(keyOf(fence), now());
    },
    async flush() {
      drain();
      while (running) await running;
    },
  };
}
