import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import type {
  GitHubGateway,
  PullRequestFactsReader,
  PullRequestWriter,
  RecordError,
  Signals,
} from "../core/ports.ts";
import type { ConnectionSupplyFacts } from "../core/runner-demand.ts";
import type { OwedDelivery } from "../store/webhook-deliveries.ts";
import { createActionsLauncher, type DispatchOutcome } from "./actions-launcher.ts";
import { createBestOf } from "./best-of.ts";
import { createLoop, type Loop } from "./create-loop.ts";
import { createIntakeLoop, INTAKE_BATCH } from "./intake-loop.ts";
import { createMergeWatcher } from "./merge-watcher.ts";
import { createMerger } from "./merger.ts";
import { createNotifier, type StatusCommentPacing } from "./notifier.ts";
import { createPublisher } from "./publisher.ts";
import { createReconciler, type ReconcileReport } from "./reconciler.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

export interface LoopsDeps {
  database: Pick<Database, "db">;
  logger: Logger;
  /** Names this instance as the holder of the publisher's, merger's and reconciler's leases. */
  instanceId: string;
  /**
   * The queue's aging interval (for the positions status comments show), and how often
   * reconciliation runs.
   */
  config: Pick<Config, "agingMs" | "reconcileIntervalMs"> &
    Partial<Pick<Config, "publicUrl" | "installationDailyBudgetUsd">>;
  options: LoopsOptions;
  // The GitHub ports.
  appId: number;
  gateway: GitHubGateway;
  pullRequests: PullRequestWriter;
  prFacts: PullRequestFactsReader;
  installationOctokit: (installationId: number) => Promise<Octokit>;
  recordError: RecordError;
  /** Status comments and reconciliation wait while an installation's budget is under the reserve. */
  githubBudget?: Pick<GitHubBudget, "deferredUntil" | "shouldDefer"> | undefined;
  /** Counts work put off for the GitHub budget, and what happened to workflow dispatches. */
  metrics?:
    | {
        githubDeferred(work: "status_comment" | "reconciliation"): void;
        runnerDispatch(outcome: DispatchOutcome): void;
      }
    | undefined;
  /**
   * The loops wake on `tasks-changed` and `runner-reported`, the notifier on `status-owed`, the merger on
   * `pull-request-activity`, the intake loop on `intake-owed`; they emit `status-owed`,
   * `work-available`, `tasks-changed` and `pull-request-activity`.
   */
  signals: Signals;
  /** This instance's runner connections (GitHub Actions on demand counts their free slots). */
  connections?: () => readonly ConnectionSupplyFacts[];
}

/**
 * The least time between two runs of a loop that wakes are allowed to ask for (never more than the
 * loop's interval). A fleet finishing tasks every few milliseconds wakes these on every frame; each
 * run covers everything that changed meanwhile, so a few runs a second lose nothing and keep their
 * statements (each a commit) from growing with the frames. The intake loop and the dispatcher are
 * on a task's way to a runner and run at once.
 */
export const WAKE_GAP_MS = { notifier: 250, publisher: 250, merger: 1_000, actions: 1_000 };

export interface LoopsOptions {
  /** Reconcile at start-up (default) or only on the interval (tests that seed tasks directly). */
  reconcileOnStart?: boolean | undefined;
  /** How often the notifier and the publisher look for work without being woken (default 2 s). */
  notifierIntervalMs?: number | undefined;
  /** How often open Conveyor PRs are re-evaluated without an event (default 60 s). */
  mergerIntervalMs?: number | undefined;
  /**
   * How often the intake loop looks for webhook effects still owed without being woken (default
   * 2 s): deliveries another instance stored, and retries of failed ones.
   */
  intakeIntervalMs?: number | undefined;
  /** The first retry of a webhook effect that failed waits this long, each later one 4× longer (default 5 s). */
  intakeRetryMs?: number | undefined;
  /** Slash-command comments one person may write per minute (default 10). */
  commandsPerMinute?: number | undefined;
  /**
   * Write pull requests from results (default). Off leaves results in `pushed`: for measuring or
   * testing dispatch alone.
   */
  publishPullRequests?: boolean | undefined;
  /**
   * How status-comment edits are spaced and queue positions refreshed (defaults in
   * `DEFAULT_STATUS_PACING`); tests shorten them.
   */
  statusPacing?: Partial<StatusCommentPacing> | undefined;
  /** How often GitHub Actions on demand looks for waiting tasks without being woken (default 15 s). */
  actionsIntervalMs?: number | undefined;
  /** How long a dispatched runner's one-time credential lasts unused (default 900 s). */
  actionsCredentialTtlSeconds?: number | undefined;
  /**
   * How soon a best-of round whose candidates' checks are still running reads them again
   * (default 15 s); the demo, whose CI takes a second, shortens it.
   */
  bestOfChecksRecheckMs?: number | undefined;
}

export interface Loops {
  /** Runs reconciliation now (also runs at start-up and on its interval). */
  reconcile(): Promise<ReconcileReport>;
  /** Starts the intake, notifier, publisher, merger and reconciler loops; each runs at once. */
  start(): void;
  /** Stops scheduling and waits for the runs in progress. */
  stop(): Promise<void>;
  /**
   * Deliveries the webhook handler stores already claimed by this instance (`INTAKE_LEASE_MS`),
   * which the intake loop acts on at once, in-process: `reserve` before storing (false: store it
   * unclaimed), then `take` the stored claim or `release` the reservation.
   */
  deliveryHandOff: {
    reserve(): boolean;
    take(claim: OwedDelivery): void;
    release(): void;
  };
}

/**
 * The background work that talks to GitHub: the effects of webhook deliveries (intake), status
 * comments and notices (notifier), pull requests from results (publisher), merge reviews (merger),
 * the post-merge watch (watcher) and reconciliation. Signals wake a loop sooner;
 * each loop's interval is the resync that makes a missed signal harmless.
 */
export function createLoops(deps: LoopsDeps): Loops {
  const { logger, gateway, instanceId, recordError, signals, config, options } = deps;
  const { db } = deps.database;
  const notifier = createNotifier({
    db,
    gateway,
    logger,
    agingMs: config.agingMs,
    publicUrl: config.publicUrl,
    budget: deps.githubBudget,
    onDeferred: (work) => deps.metrics?.githubDeferred(work),
    pacing: options.statusPacing,
    installationDailyBudgetUsd: config.installationDailyBudgetUsd,
    describePullRequest: (repositoryId, prNumber) => merger.describe(repositoryId, prNumber),
  });
  const publisher = createPublisher({
    db,
    logger,
    pullRequests: deps.pullRequests,
    instanceId,
    recordError,
    onChange: () => {
      signals.emit("status-owed");
      signals.emit("work-available");
    },
  });
  const bestOf = createBestOf({
    db,
    logger,
    gateway,
    pullRequests: deps.pullRequests,
    installationOctokit: deps.installationOctokit,
    instanceId,
    recordError,
    checksRecheckMs: options.bestOfChecksRecheckMs,
    onChange: () => {
      signals.emit("status-owed");
      signals.emit("work-available");
    },
  });
  const merger = createMerger({
    db,
    logger,
    gateway,
    prFacts: deps.prFacts,
    installationOctokit: deps.installationOctokit,
    appId: deps.appId,
    instanceId,
    recordError,
    onChange: () => signals.emit("status-owed"),
    onRequeue: () => signals.emit("work-available"),
    onWatch: () => running?.watcher?.wake(),
  });
  const watcher = createMergeWatcher({
    db,
    logger,
    gateway,
    installationOctokit: deps.installationOctokit,
    appId: deps.appId,
    instanceId,
    recordError,
    onChange: () => signals.emit("status-owed"),
    onRequeue: () => {
      signals.emit("tasks-changed");
      signals.emit("work-available");
    },
  });
  const reconciler = createReconciler({
    db,
    gateway,
    logger,
    instanceId,
    recordError,
    budget: deps.githubBudget,
    onDeferred: (work) => deps.metrics?.githubDeferred(work),
    onChange: () => signals.emit("tasks-changed"),
  });

  const actionsIntervalMs = options.actionsIntervalMs ?? 15_000;
  const launcher = createActionsLauncher({
    db,
    gateway,
    logger,
    instanceId,
    recordError,
    connections: deps.connections ?? (() => []),
    credentialTtlSeconds: options.actionsCredentialTtlSeconds,
    intervalMs: actionsIntervalMs,
    onOutcome: (outcome) => deps.metrics?.runnerDispatch(outcome),
  });

  const intake = createIntakeLoop({
    db,
    gateway,
    logger,
    instanceId,
    recordError,
    onChange: () => signals.emit("tasks-changed"),
    onPullRequestActivity: () => signals.emit("pull-request-activity"),
    commandsPerMinute: options.commandsPerMinute,
    retryBaseMs: options.intakeRetryMs,
  });

  let running:
    | {
        intake: Loop;
        notifier: Loop;
        publisher?: Loop;
        merger: Loop;
        watcher: Loop;
        reconciler: Loop;
        actions: Loop;
      }
    | undefined;
  const wake = (name: "intake" | "notifier" | "publisher" | "merger" | "watcher") => () =>
    running?.[name]?.wake();
  signals.on("intake-owed", wake("intake"));
  signals.on("tasks-changed", wake("notifier"));
  signals.on("tasks-changed", wake("publisher"));
  signals.on("tasks-changed", wake("merger"));
  signals.on("status-owed", wake("notifier"));
  signals.on("pull-request-activity", wake("merger"));
  signals.on("pull-request-activity", wake("watcher"));
  signals.on("tasks-changed", () => running?.actions.wake());
  signals.on("runner-reported", wake("notifier"));
  signals.on("runner-reported", wake("publisher"));
  signals.on("runner-reported", wake("merger"));
  signals.on("runner-reported", () => running?.actions.wake());

  const loop = (name: string, intervalMs: number, body: () => Promise<unknown>, wakeGapMs = 0) =>
    createLoop({
      name,
      intervalMs,
      wakeGapMs,
      logger,
      onError: (error) => recordError(`loop:${name}`, error),
      body: async () => {
        await body();
      },
    });
  const notifierIntervalMs = options.notifierIntervalMs ?? 2_000;

  return {
    reconcile: () => reconciler.runOnce(),
    deliveryHandOff: {
      reserve: () => intake.reserveHandOff(),
      take: (claim) => intake.handOff(claim),
      release: () => intake.releaseHandOff(),
    },
    start() {
      const notifierLoop: Loop = loop(
        "notifier",
        notifierIntervalMs,
        async () => {
          // A full batch means there is more: go again soon.
          if ((await notifier.runOnce()) >= 20) notifierLoop.wake();
        },
        WAKE_GAP_MS.notifier,
      );
      const intakeLoop: Loop = loop("intake", options.intakeIntervalMs ?? 2_000, async () => {
        // A full batch means there is more: go again at once.
        if ((await intake.runOnce()) >= INTAKE_BATCH) intakeLoop.wake();
      });
      running = {
        intake: intakeLoop,
        notifier: notifierLoop,
        ...(options.publishPullRequests === false
          ? {}
          : {
              // Best of N first: a round it decides is published in the same pass.
              publisher: loop(
                "publisher",
                notifierIntervalMs,
                async () => {
                  await bestOf.runOnce();
                  await publisher.runOnce();
                },
                WAKE_GAP_MS.publisher,
              ),
            }),
        // The periodic pass is the resync: a missed webhook never leaves a PR stuck for long.
        merger: loop(
          "merger",
          options.mergerIntervalMs ?? 60_000,
          () => merger.runOnce(),
          WAKE_GAP_MS.merger,
        ),
        // The post-merge watch: checks on merge commits, reverts, re-queued issues.
        watcher: loop("merge-watcher", options.mergerIntervalMs ?? 60_000, () => watcher.runOnce()),
        actions: loop(
          "actions-launcher",
          actionsIntervalMs,
          () => launcher.runOnce(),
          WAKE_GAP_MS.actions,
        ),
        reconciler: createLoop({
          name: "reconciler",
          intervalMs: config.reconcileIntervalMs,
          initialDelayMs: options.reconcileOnStart === false ? config.reconcileIntervalMs : 0,
          logger,
          onError: (error) => recordError("loop:reconciler", error),
          body: async () => {
            await reconciler.runOnce();
          },
        }),
      };
    },
    async stop() {
      intake.stop();
      const loops = Object.values(running ?? {});
      running = undefined;
      await Promise.all([...loops.map((l) => l.stop()), intake.drain()]);
    },
  };
}
