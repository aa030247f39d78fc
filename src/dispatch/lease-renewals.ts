import type { Db } from "../../db/client.ts";
import { renewLeases } from "../store/dispatch.ts";
import { createGroupCommit } from "./group-commit.ts";

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
 * Heartbeats group-committed per instance (`createGroupCommit`): one renewal statement
 * (`renewLeases`) renews the leases of every heartbeat that arrived while the last one ran. Only
 * tasks whose runner sent a heartbeat are renewed: a runner that stops heartbeating a task still
 * loses its lease. A task named twice in one batch is renewed once; both get the answer.
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
  const keyOf = (f: Fence) => `${f.taskId}:${f.generation}:${f.runnerId}`;
  const batches = createGroupCommit({
    async run(fences: Fence[]): Promise<boolean[]> {
      const at = now();
      let renewed: Fence[];
      try {
        renewed = await renewLeases(options.db, fences, options.leaseMs);
      } catch (error) {
        // Each heartbeat is answered with an error and sent again; a lease that runs out
        // meanwhile requeues its task as any missed renewal would.
        options.onError(error);
        throw error;
      }
      const held = new Set(renewed.map(keyOf));
      return fences.map((fence) => {
        const key = keyOf(fence);
        if (freshMs > 0 && held.has(key)) noteSet(key, at);
        return held.has(key);
      });
    },
  });

  return {
    renew(fence) {
      const at = setAt.get(keyOf(fence));
      if (at !== undefined && now() - at < freshMs) return Promise.resolve(true);
      return batches.submit(fence);
    },
    extended(fence) {
      if (freshMs > 0) noteSet(keyOf(fence), now());
    },
    flush: () => batches.flush(),
  };
}
