/** Counts fault and security tests record on themselves (`context.task.meta`), for the reporter. */
declare module "vitest" {
  interface TaskMeta {
    /** What a fault test put its system through and what came out. */
    faultCounts?: FaultCounts;
    /** A security test's case: refused as it should be, and the rows it managed to store (0). */
    securityCase?: { refused: boolean; stored: number };
  }
}

export interface FaultCounts {
  /** Tasks (issues) involved. */
  tasks: number;
  /** Faults injected: processes killed, restarts, deliveries dropped, duplicated or reordered. */
  faults: number;
  lost: number;
  duplicated: number;
}
