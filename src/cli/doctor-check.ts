export type CheckStatus = "ok" | "warn" | "fail" | "skip";

/** One thing `conveyor doctor` looked at; a failed or doubtful one says exactly what to do. */
export interface Check {
  name: string;
  status: CheckStatus;
  message: string;
  fix?: string;
}
