import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { repoRef } from "../core/github-objects.ts";
import type { GitHubGateway, RecordError } from "../core/ports.ts";
import type { RepoConfig } from "../core/repo-config.ts";
import {
  type ConnectionSupplyFacts,
  type RunnerSupply,
  runnersWanted,
  supplyOf,
} from "../core/runner-demand.ts";
import { tryAcquireLease } from "../store/leases.ts";
import {
  type ActionsCandidate,
  actionsCandidates,
  activeDispatches,
  failDispatch,
  type QueuedRepository,
  queuedRepositories,
  recordDispatch,
  settleDispatches,
} from "../store/runner-dispatches.ts";
import { createOneTimeRunner } from "../store/runners.ts";

/** What happened to a dispatch, for `conveyor_runner_dispatches_total{outcome}`. */
export type DispatchOutcome = "dispatched" | "connected" | "failed" | "expired";

export interface ActionsLauncherDeps {
  db: Db;
  gateway: Pick<GitHubGateway, "loadConfig" | "dispatchWorkflow">;
  logger: Logger;
  instanceId: string;
  recordError: RecordError;
  /** The runner connections of this instance: a free slot that could take a task means no dispatch. */
  connections: () => readonly ConnectionSupplyFacts[];
  /** How long a dispatched runner's one-time credential lasts unused (default 15 min). */
  credentialTtlSeconds?: number | undefined;
  /** How often the pass runs without being woken; the lease lasts three times that. */
  intervalMs: number;
  onOutcome?: (outcome: DispatchOutcome) => void;
}

const LEASE = "actions-launcher";

/**
 * GitHub Actions on demand (`runners.actions`). One instance at a time (a lease), each pass:
 * settles earlier dispatches (connected, or expired unused: counted, logged as an error so the
 * error alert sees it, and the task is not asked for more than twice), then, per repository with
 * the feature on, dispatches its workflow for the tasks that waited `after_seconds`, that its
 * runners could take, and that no free slot of a connected runner could take, at most one
 * dispatch per waiting task and within `max_parallel`.
 */
export function createActionsLauncher(deps: ActionsLauncherDeps) {
  const { db, logger, gateway } = deps;
  const ttl = deps.credentialTtlSeconds ?? 900;

  async function settle(): Promise<void> {
    const { connected, expired } = await settleDispatches(db);
    for (const _ of connected) deps.onOutcome?.("connected");
    for (const dispatch of expired) {
      deps.onOutcome?.("expired");
      logger.warn(
        { taskId: dispatch.task_id, dispatchId: dispatch.dispatch_id, workflow: dispatch.workflow },
        "dispatched runner never connected",
      );
      deps.recordError(
        "actions-dispatch",
        new Error("a runner dispatched through GitHub Actions never connected"),
        { task_id: dispatch.task_id, workflow: dispatch.workflow },
      );
    }
  }

  /**
   * One repository with queued tasks: when its config turns `runners.actions` on, dispatches its
   * workflow for the tasks that waited `after_seconds` and that its runners could take, less those
   * a free slot of a connected runner or a runner already on its way will serve, within
   * `max_parallel`. Reads no more of its queue than that could use.
   */
  async function launch(
    repository: QueuedRepository,
    dispatches: { pending: number; active: number },
    free: RunnerSupply[],
  ): Promise<void> {
    const ref = repoRef(repository.installation_id, repository.full_name);
    const loaded = await gateway.loadConfig(ref);
    const actions = loaded.config.runners.actions;
    if (!actions) return;
    const { pending, active } = dispatches;
    const room = Math.max(0, actions.max_parallel - active);
    if (room === 0) return;
    const freeSlots = free.reduce((n, supply) => n + supply.freeSlots, 0);
    const waiting = await actionsCandidates(db, {
      repositoryId: repository.repository_id,
      waitedSeconds: actions.after_seconds,
      capabilities: actions.capabilities,
      // Enough to dispatch `room` more after the free slots and the runners on their way.
      limit: room + pending + freeSlots,
    });
    if (waiting.length === 0) return;
    // Free slots of connected runners that could take these tasks: none of those is dispatched for.
    const served = runnersWanted(
      waiting.map((task) => ({ capabilities: task.capabilities, repo: task.full_name, count: 1 })),
      free,
    ).reduce((n, demand) => n + demand.freeSlots, 0);
    // Runners already on their way serve waiting tasks too.
    const wanted = Math.max(0, waiting.length - served - pending);
    // Oldest first; a task with a dispatch on its way is not a candidate at all.
    for (const task of waiting.slice(0, Math.min(wanted, room))) {
      await dispatchFor(task, actions, ref);
    }
  }

  async function dispatchFor(
    task: ActionsCandidate,
    actions: NonNullable<RepoConfig["runners"]["actions"]>,
    ref: ReturnType<typeof repoRef>,
  ): Promise<void> {
    const log = logger.child({ taskId: task.task_id, repo: task.full_name });
    const { runner, token } = await createOneTimeRunner(db, {
      capabilities: actions.capabilities,
      repos: [task.full_name],
      ttl_seconds: ttl,
    });
    const dispatchId = await recordDispatch(db, {
      repositoryId: task.repository_id,
      taskId: task.task_id,
      runnerId: runner.runnerId,
      workflow: actions.workflow,
    });
    let answer: Awaited<ReturnType<typeof gateway.dispatchWorkflow>>;
    try {
      answer = await gateway.dispatchWorkflow(ref, {
        workflow: actions.workflow,
        gitRef: actions.ref ?? task.default_branch,
        // The workflow masks it; it is good for one connection and expires unused.
        inputs: { runner_token: token },
      });
    } catch (error) {
      await failDispatch(db, dispatchId, `GitHub failed: ${(error as Error).message}`);
      deps.onOutcome?.("failed");
      throw error;
    }
    if (!answer.ok) {
      const hint =
        answer.status === 403
          ? " (the App needs the actions: write permission; see conveyor doctor)"
          : "";
      await failDispatch(
        db,
        dispatchId,
        `GitHub refused (${answer.status}): ${answer.message}${hint}`,
      );
      deps.onOutcome?.("failed");
      log.warn(
        { status: answer.status, message: answer.message, workflow: actions.workflow },
        "workflow dispatch refused",
      );
      deps.recordError(
        "actions-dispatch",
        new Error(`workflow dispatch refused (${answer.status}): ${answer.message}${hint}`),
        { task_id: task.task_id, workflow: actions.workflow },
      );
      return;
    }
    deps.onOutcome?.("dispatched");
    log.info(
      { workflow: actions.workflow, runnerId: runner.runnerId, dispatchId },
      "runner dispatched through GitHub Actions",
    );
  }

  return {
    /** One pass; false when another instance holds the lease. */
    async runOnce(): Promise<boolean> {
      if (!(await tryAcquireLease(db, LEASE, deps.instanceId, deps.intervalMs * 3))) return false;
      await settle();
      // Dispatches before tasks: a runner that takes its task between the two reads then counts
      // as on its way while its task no longer waits (one dispatch too few for a pass, never one
      // too many).
      const dispatches = await activeDispatches(db);
      const repositories = await queuedRepositories(db);
      // Dispatched runners that have not taken their task yet are counted as pending instead.
      const free = deps
        .connections()
        .filter((c) => c.maxTasks === undefined)
        .map(supplyOf)
        .filter((supply) => supply.freeSlots > 0);
      for (const repository of repositories) {
        try {
          await launch(
            repository,
            dispatches.get(repository.repository_id) ?? { pending: 0, active: 0 },
            free,
          );
        } catch (error) {
          logger.warn({ err: error, repo: repository.full_name }, "dispatching runners failed");
          deps.recordError("actions-dispatch", error);
        }
      }
      return true;
    },
  };
}
