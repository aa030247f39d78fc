import { Hono } from "hono";
import type { Db } from "../../db/client.ts";
import {
  type CapabilityDemand,
  type ConnectionSupplyFacts,
  runnersWanted,
  supplyOf,
  workForFleet,
} from "../core/runner-demand.ts";
import { RepoScope, RunnerCapability, toFieldErrors } from "../core/runner-registration.ts";
import { waitingWork } from "../store/runner-demand.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";

export interface ScalingRoutesDeps {
  db: Db;
  auth: ApiAuth;
  /** The runner connections of this instance (their free slots count against demand). */
  connections: () => readonly ConnectionSupplyFacts[];
}

/** `GET /api/scaling`, as KEDA's `metrics-api` scaler and people read it. */
export interface ScalingJson {
  /** Runners to start now for the work asked about: `valueLocation: runners_wanted`. */
  runners_wanted: number;
  /** Tasks queued and due that such runners could take. */
  waiting: number;
  /** Free slots of connected runners set against them. */
  free_slots: number;
  /** The same per capability set the waiting tasks need. */
  capability_sets: {
    capabilities: string[];
    waiting: number;
    free_slots: number;
    runners_wanted: number;
  }[];
}

/** The answer for some demand: totals and the per-set rows. */
export function toScalingJson(demand: readonly CapabilityDemand[]): ScalingJson {
  return {
    runners_wanted: demand.reduce((n, d) => n + d.runnersWanted, 0),
    waiting: demand.reduce((n, d) => n + d.waiting, 0),
    free_slots: demand.reduce((n, d) => n + d.freeSlots, 0),
    capability_sets: demand.map((d) => ({
      capabilities: d.capabilities,
      waiting: d.waiting,
      free_slots: d.freeSlots,
      runners_wanted: d.runnersWanted,
    })),
  };
}

const list = (value: string | undefined) =>
  value === undefined
    ? undefined
    : value
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean);

/**
 * `GET /api/scaling[?capabilities=a,b][&repos=owner/*,owner/name]` (read role): how many runners
 * the queue wants now. `capabilities` names what the fleet's runners offer (only tasks needing a
 * subset of it count); `repos` is the fleet's scope. Free slots are those of the runners connected
 * to the answering instance.
 */
export function createScalingRoutes(deps: ScalingRoutesDeps): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  routes.get("/scaling", deps.auth.read, async (c) => {
    const offers = list(c.req.query("capabilities"));
    const repos = RepoScope.safeParse(list(c.req.query("repos")) ?? []);
    const badCapability = offers?.find((cap) => !RunnerCapability.safeParse(cap).success);
    if (badCapability !== undefined || !repos.success) {
      const errors = [
        ...(badCapability === undefined
          ? []
          : [{ field: "capabilities", message: `not a capability name: ${badCapability}` }]),
        ...(repos.success
          ? []
          : toFieldErrors(repos.error).map((e) => ({ ...e, field: `repos.${e.field}` }))),
      ];
      return c.json(
        {
          error: `invalid request: ${errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`,
          fields: errors.map((e) => ({ path: e.field, message: e.message })),
        },
        422,
      );
    }
    const waiting = workForFleet(await waitingWork(deps.db), { offers, repos: repos.data });
    const demand = runnersWanted(waiting, deps.connections().map(supplyOf));
    c.header("Cache-Control", "no-store");
    return c.json(toScalingJson(demand));
  });
  return routes;
}
