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
  /** Dispatch offers a task to lighter classes first (light, normal, heavy). */
  class: RunnerClass;
  /** @deprecated the old name of `class`, with the same value. */
  tier: RunnerClass;
  /** Repositories it may take tasks from (`owner/name`, `owner/*`); empty: every one. */
  repos: string[];
  /** A one-time credential (`conveyor runners jit`): one connection, at most one task. */
  one_time: boolean;
  /** When an unused one-time credential stops working; null for a long-lived token. */
  expires_at: string | null;
  /** When a one-time credential opened its one connection; null while unused. */
  used_at: string | null;
  /**
   * `revoked` also for a spent one-time credential; `expired` for one that expired unused;
   * `unused` for one still waiting for its connection.
   */
  status: "active" | "revoked" | "expired" | "unused";
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
    repos: runner.repos,
    one_time: runner.oneTime,
    expires_at: runner.expiresAt?.toISOString() ?? null,
    used_at: runner.usedAt?.toISOString() ?? null,
    status: statusOf(runner),
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

function statusOf(runner: Runner): RunnerJson["status"] {
  if (runner.revokedAt) return "revoked";
  if (!runner.oneTime || runner.usedAt) return "active";
  return runner.expiresAt && runner.expiresAt.getTime() <= Date.now() ? "expired" : "unused";
}
