import type { RunnerClass } from "../core/task-states.ts";
import type { Runner } from "../store/runners.ts";

/** A live socket session of a runner, as the socket server reports it. */
export interface ConnectedRunner {
  runnerId: string;
  connectedAt: string;
  busySlots: number;
}

/** A runner as `GET /api/runners` and `conveyor runners list --json` show it. */
export interface RunnerJson {
  runner_id: string;
  name: string;
  capabilities: string[];
  /** A label for operators; Conveyor decides nothing by it. */
  class: RunnerClass;
  /** @deprecated the old name of `class`, with the same value. */
  tier: RunnerClass;
  status: "active" | "revoked";
  created_at: string;
  revoked_at: string | null;
  last_seen_at: string | null;
  last_assigned_at: string | null;
  /** Present when the server knows who is connected: null means not connected now. */
  connected?: { connected_at: string; busy_slots: number } | null;
}

export function toRunnerJson(runner: Runner, connected?: ConnectedRunner | null): RunnerJson {
  return {
    runner_id: runner.runnerId,
    name: runner.name,
    capabilities: runner.capabilities,
    class: runner.tier,
    tier: runner.tier,
    status: runner.revokedAt ? "revoked" : "active",
    created_at: runner.createdAt.toISOString(),
    revoked_at: runner.revokedAt?.toISOString() ?? null,
    last_seen_at: runner.lastSeenAt?.toISOString() ?? null,
    last_assigned_at: runner.lastAssignedAt?.toISOString() ?? null,
    ...(connected === undefined
      ? {}
      : {
          connected: connected
            ? { connected_at: connected.connectedAt, busy_slots: connected.busySlots }
            : null,
        }),
  };
}
