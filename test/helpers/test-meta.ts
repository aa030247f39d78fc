/** Counts fault and security tests record on themselves (`context.task.meta`), for the reporter. */
declare module "vitest" {
  interface TaskMeta {
    /** What a fault test put its system through and what came out. */
    faultCounts?: FaultCounts;
    /**
     * A security test's case: whether the defence held (refused, or nothing ran), and the rows
     * (or, for issue text, the commands) the attack managed to store (0).
     */
    securityCase?: { defended: boolean; stored: number };
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
