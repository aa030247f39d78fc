/**
 * Something the app did that GitHub would not accept, or that the simulator cannot answer
 * faithfully: tests assert that `sim.violations` stays empty.
 */
export interface SimViolation {
  /** `request`: an API request; `webhook`: a payload the simulator sent failed its own schema. */
  kind: "request" | "webhook";
  /** HTTP method, or `WEBHOOK` for payloads. */
  method: string;
  /** Request path with query, or `event.action` for payloads. */
  path: string;
  message: string;
}
