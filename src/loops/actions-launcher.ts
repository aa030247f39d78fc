import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { repoRef } from "../core/github-objects.ts";
import type { GitHubGateway, RecordError } from "../core/ports.ts";
import type { RepoConfig } from "../core/repo-config.ts";
import { type ConnectionSupplyFacts, runnersWanted, supplyOf } from "../core/runner-demand.ts";
import { tryAcquireLease } from "../store/leases.ts";
import {
  type ActionsCandidate,
  actionsCandidates,
  activeDispatches,
  failDispatch,
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
/** The lowest `after_seconds` a repository can set: a task younger than it is never a candidate. */
const MIN_AFTER_SECONDS = 0;

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

  /** The repository's candidates its Actions runners could take and that waited long enough. */
  function eligible(
    candidates: ActionsCandidate[],
    actions: NonNullable<RepoConfig["runners"]["actions"]>,
  ) {
    return candidates.filter(
      (task) =>
        task.waited_seconds >= actions.after_seconds &&
        task.capabilities.every((c) => actions.capabilities.includes(c)),
    );
  }

  async function launch(
    repoTasks: ActionsCandidate[],
    dispatches: { pending: number; active: number },
  ): Promise<void> {
    const first = repoTasks[0];
    if (!first) return;
    const ref = repoRef(first.installation_id, first.full_name);
    const loaded = await gateway.loadConfig(ref);
    const actions = loaded.config.runners.actions;
    if (!actions) return;
    const waiting = eligible(repoTasks, actions);
    if (waiting.length === 0) return;
    // Free slots of connected runners that could take these tasks: none of those is dispatched for.
    const served = runnersWanted(
      waiting.map((task) => ({ capabilities: task.capabilities, repo: task.full_name, count: 1 })),
      // Dispatched runners that have not taken their task yet are counted as pending below.
      deps
        .connections()
        .filter((c) => c.maxTasks === undefined)
        .map(supplyOf),
    ).reduce((n, demand) => n + demand.freeSlots, 0);
    const { pending, active } = dispatches;
    // Runners already on their way serve waiting tasks too.
    const wanted = Math.max(0, waiting.length - served - pending);
    const room = Math.max(0, actions.max_parallel - active);
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
      const candidates = await actionsCandidates(db, MIN_AFTER_SECONDS);
      const byRepository = new Map<number, ActionsCandidate[]>();
      for (const task of candidates) {
        const list = byRepository.get(task.repository_id) ?? [];
        list.push(task);
        byRepository.set(task.repository_id, list);
      }
      for (const tasks of byRepository.values()) {
        try {
          const repositoryId = tasks[0]?.repository_id ?? 0;
          await launch(tasks, dispatches.get(repositoryId) ?? { pending: 0, active: 0 });
        } catch (error) {
          logger.warn({ err: error, repo: tasks[0]?.full_name }, "dispatching runners failed");
          deps.recordError("actions-dispatch", error);
        }
      }
      return true;
    },
  };
}
