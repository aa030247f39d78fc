import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import { repoRef } from "../core/github-objects.ts";
import type { GitHubGateway, RecordError, Signals } from "../core/ports.ts";
import type { TierLimits } from "../core/rate-limit.ts";
import type { FinishedAttempt } from "../store/attempts.ts";
import { notePauseAfterAttempt } from "../store/budgets.ts";
import { authenticateRunner, spendOneTimeRunner } from "../store/runners.ts";
import { createDispatcher, type Dispatcher, type DispatchTimings } from "./dispatcher.ts";
import { createFramePolicies } from "./frame-policy.ts";
import {
  createRunnerRoutes,
  DEFAULT_RUNNER_MAX_SLOTS,
  DEFAULT_RUNNER_MAX_SOCKETS,
} from "./runner-routes.ts";

/** What dispatch counts, for the metrics. */
export interface DispatchMetrics {
  dispatchSent(lane: string, seconds: number): void;
  frameRateLimited(tier: string): void;
  frameInvalid(): void;
  /** An attempt ended (`complete` or `fail`) with what it used. */
  attemptFinished?(attempt: FinishedAttempt): void;
  violationDisconnect(): void;
}

export interface DispatchDeps {
  database: Database;
  logger: Logger;
  /** Where a task's runner clones from, at which commit, with which read-only token. */
  gateway: Pick<GitHubGateway, "repositoryHead" | "readOnlyToken">;
  config: Pick<Config, "agingMs"> &
    Partial<
      Pick<
        Config,
        | "runnerMaxSockets"
        | "runnerMaxSlots"
        | "webhookSecret"
        | "adminToken"
        | "maxRunningPerInstallation"
        | "installationDailyBudgetUsd"
      >
    >;
  /** The protocol's timings (heartbeat, lease, accept, sweep). */
  timings: DispatchTimings;
  options: DispatchOptions;
  metrics: DispatchMetrics;
  recordError: RecordError;
  /**
   * Dispatch offers work on `tasks-changed` and `work-available`; it emits `status-owed` when it
   * moved tasks and `runner-reported` when a runner's frame did.
   */
  signals: Signals;
}

export interface DispatchOptions {
  /** Per-tier frame limits per minute; tests and benchmarks raise them. */
  rateLimits?: TierLimits | undefined;
}

export interface Dispatch {
  dispatcher: Dispatcher;
  /** `/runners/v1` (the WebSocket) and the change-set upload, to be mounted at `/`. */
  routes: ReturnType<typeof createRunnerRoutes>;
  /** Listens for work and revocations announced by any instance. */
  start(): Promise<void>;
  /** Closes every runner socket with 1001 so runners reconnect elsewhere; their leases run on. */
  stop(): Promise<void>;
}

/** Runners' side of the server: the dispatcher and the socket routes runners connect to. */
export function createDispatch(deps: DispatchDeps): Dispatch {
  const { database, logger, gateway, metrics, signals, timings } = deps;
  const dispatcher = createDispatcher({
    database,
    logger,
    agingMs: deps.config.agingMs,
    maxRunningPerInstallation: deps.config.maxRunningPerInstallation,
    installationDailyBudgetUsd: deps.config.installationDailyBudgetUsd,
    timings,
    onChange: () => signals.emit("status-owed"),
    onAssignSent: (lane, seconds) => metrics.dispatchSent(lane, seconds),
    recordError: deps.recordError,
    async prepareAssignment(task, shared) {
      const ref = repoRef(task.installation_id, task.full_name);
      const [head, readToken] = await Promise.all([
        // The tasks of one batch in this repository start from the same head: read it once.
        // A pass read the repository's marks with the task: no second read to check the cache.
        shared(`head:${task.installation_id}:${task.full_name}`, () =>
          gateway.repositoryHead(
            ref,
            task.default_branch !== undefined && task.head_sha !== undefined
              ? { defaultBranch: task.default_branch, headSha: task.head_sha }
              : undefined,
          ),
        ),
        gateway.readOnlyToken(ref),
      ]);
      return {
        cloneUrl: head.cloneUrl,
        // A follow-up attempt continues on its pull request's branch.
        baseSha: task.pr_head_sha ?? head.headSha,
        issueUrl: `${head.htmlUrl}/issues/${task.issue_number}`,
        readToken,
      };
    },
  });
  signals.on("tasks-changed", () => dispatcher.announceWork());
  signals.on("work-available", () => dispatcher.announceWork());
  const routes = createRunnerRoutes({
    db: database.db,
    logger,
    dispatcher,
    timings,
    policies: createFramePolicies(deps.options.rateLimits, {
      rateLimited: (tier) => metrics.frameRateLimited(tier),
      invalidFrame: () => metrics.frameInvalid(),
      closedForViolations: () => metrics.violationDisconnect(),
    }),
    recordError: deps.recordError,
    maxSockets: deps.config.runnerMaxSockets ?? DEFAULT_RUNNER_MAX_SOCKETS,
    maxSlots: deps.config.runnerMaxSlots ?? DEFAULT_RUNNER_MAX_SLOTS,
    knownSecrets: [deps.config.webhookSecret, deps.config.adminToken].filter((s): s is string =>
      Boolean(s),
    ),
    async authenticate(token, options) {
      const found = await authenticateRunner(database.db, token, options);
      if ("refused" in found) return found;
      const { runner } = found;
      return {
        runnerId: runner.runnerId,
        name: runner.name,
        capabilities: runner.capabilities,
        repos: runner.repos,
        oneTime: runner.oneTime,
        runnerClass: runner.tier,
      };
    },
    spendOneTime: (runnerId) => spendOneTimeRunner(database.db, runnerId),
    // Only this instance's runners can take a slot a frame freed (the session wakes the
    // dispatcher): nothing to announce to the others, no NOTIFY (a commit) per frame.
    onChange: () => signals.emit("runner-reported"),
    async onAttempt(attempt) {
      metrics.attemptFinished?.(attempt);
      // A cost that used up a daily budget pauses the queue: the waiting tasks' comments say so.
      if (attempt.stats?.cost_usd) {
        await notePauseAfterAttempt(
          database.db,
          attempt.taskId,
          deps.config.installationDailyBudgetUsd,
        );
        signals.emit("status-owed");
      }
    },
  });
  return {
    dispatcher,
    routes,
    start: () => dispatcher.start(),
    stop: () => dispatcher.stop(),
  };
}
