import { isRepoInScope } from "./runner-registration.ts";

/** Queued tasks due now that need exactly these capabilities, in one repository. */
export interface WaitingWork {
  capabilities: readonly string[];
  /** `owner/name`. */
  repo: string;
  count: number;
}

/** A connected runner as demand sees it: what it offers, where, and its free slots. */
export interface RunnerSupply {
  capabilities: readonly string[];
  /** Its repository scope; empty: every repository. */
  repos: readonly string[];
  /** Tasks it could take now (0 when draining, rate limited or a spent one-time runner). */
  freeSlots: number;
}

/** Demand for one capability set: what waits, what connected runners can take, what is missing. */
export interface CapabilityDemand {
  /** The set the waiting tasks need, sorted; empty: tasks that need nothing special. */
  capabilities: string[];
  waiting: number;
  /** Free slots of connected runners set against these tasks (each slot counted once). */
  freeSlots: number;
  /** Runners to start now: waiting minus those free slots, never below 0. */
  runnersWanted: number;
}

/** The label/key of a capability set: its names sorted and joined by commas (`""` for none). */
export function capabilityKey(capabilities: readonly string[]): string {
  return [...capabilities].sort().join(",");
}

/**
 * Runners wanted per capability set: every waiting task that a free slot of a connected runner
 * could take (capabilities covered, repository in scope) is set against that slot, each slot once;
 * the rest want a runner. Slots go first to the tasks needing the most capabilities and, for each,
 * to the runner offering the fewest extra capabilities, so a general runner is not spent on work
 * a special one could do.
 */
export function runnersWanted(
  waiting: readonly WaitingWork[],
  supply: readonly RunnerSupply[],
): CapabilityDemand[] {
  const free = supply
    .map((runner) => ({ ...runner, left: Math.max(0, runner.freeSlots) }))
    .sort((a, b) => a.capabilities.length - b.capabilities.length);
  const byKey = new Map<string, CapabilityDemand>();
  const ordered = [...waiting].sort((a, b) => b.capabilities.length - a.capabilities.length);
  for (const work of ordered) {
    const key = capabilityKey(work.capabilities);
    let demand = byKey.get(key);
    if (!demand) {
      demand = {
        capabilities: [...work.capabilities].sort(),
        waiting: 0,
        freeSlots: 0,
        runnersWanted: 0,
      };
      byKey.set(key, demand);
    }
    let unserved = work.count;
    for (const runner of free) {
      if (unserved === 0) break;
      if (runner.left === 0) continue;
      if (!work.capabilities.every((c) => runner.capabilities.includes(c))) continue;
      if (!isRepoInScope(work.repo, runner.repos)) continue;
      const taken = Math.min(runner.left, unserved);
      runner.left -= taken;
      unserved -= taken;
      demand.freeSlots += taken;
    }
    demand.waiting += work.count;
    demand.runnersWanted += unserved;
  }
  return [...byKey.values()].sort((a, b) =>
    capabilityKey(a.capabilities).localeCompare(capabilityKey(b.capabilities)),
  );
}

/**
 * The waiting work a fleet could take: tasks whose capabilities its runners all offer and whose
 * repository lies in its scope. Without `offers`, every capability set; without `repos`, every
 * repository.
 */
export function workForFleet(
  waiting: readonly WaitingWork[],
  fleet: { offers?: readonly string[] | undefined; repos?: readonly string[] | undefined },
): WaitingWork[] {
  return waiting.filter(
    (work) =>
      (fleet.offers === undefined || work.capabilities.every((c) => fleet.offers?.includes(c))) &&
      isRepoInScope(work.repo, fleet.repos ?? []),
  );
}

/** A live runner connection, as far as its supply goes (the dispatcher's connections fit). */
export interface ConnectionSupplyFacts {
  capabilities?: readonly string[] | undefined;
  repos?: readonly string[] | undefined;
  slots: number;
  tasks: { size: number };
  draining?: boolean | undefined;
  maxTasks?: number | undefined;
  taken?: number | undefined;
}

/** What a connection can still take: free slots, within a one-time runner's one task. */
export function supplyOf(connection: ConnectionSupplyFacts): RunnerSupply {
  const slotsLeft = connection.draining ? 0 : connection.slots - connection.tasks.size;
  const tasksLeft =
    connection.maxTasks === undefined ? slotsLeft : connection.maxTasks - (connection.taken ?? 0);
  return {
    capabilities: connection.capabilities ?? [],
    repos: connection.repos ?? [],
    freeSlots: Math.max(0, Math.min(slotsLeft, tasksLeft)),
  };
}
