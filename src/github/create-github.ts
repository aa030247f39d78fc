import { createNodeMiddleware as createWebhooksMiddleware, Webhooks } from "@octokit/webhooks";
import type { Logger } from "pino";
import { Probot, ProbotOctokit } from "probot";
import type { Database } from "../../db/client.ts";
import { type Config, displayHost } from "../config.ts";
import type { GitHubBudget } from "../core/github-budget.ts";
import type {
  AlertIssues,
  GitHubGateway,
  HookDeliveryLog,
  PullRequestFactsReader,
  PullRequestWriter,
  RecordError,
  Signals,
} from "../core/ports.ts";
import type { NodeHandler } from "../http/node-handler.ts";
import type { Lifecycle } from "../lifecycle.ts";
import type { ConveyorMetrics } from "../metrics/create-metrics.ts";
import { readRepositoryMarks, recordDefaultHead } from "../store/repository-marks.ts";
import { createDeliveryRecorder } from "../store/webhook-deliveries.ts";
import { createAlertIssues } from "./alert-issues.ts";
import { createBaseRulesCache } from "./base-rules-cache.ts";
import { createConditionalReads } from "./conditional-requests.ts";
import { createConveyorApp, type DeliveryHandOff } from "./conveyor-app.ts";
import { createBudgetPlugin } from "./github-budget-plugin.ts";
import { createGitHubGateway } from "./github-gateway.ts";
import { createHookDeliveryLog } from "./hook-delivery-log.ts";
import { createInstallationTokenCache } from "./installation-tokens.ts";
import { instrumentWebhooks, octokitMetricsPlugin } from "./instrument-github.ts";
import { collectPrFacts } from "./pr-facts.ts";
import {
  createCommitTrees,
  createRepositoryNodeIds,
  deleteBranch,
  writeBranch,
  writePullRequest,
} from "./pull-request-writer.ts";
import { createRetryPlugin } from "./retry-plugin.ts";
import { createSetupGuard } from "./setup-access.ts";
import { createSetupHandler } from "./setup-app.ts";
import { createWritePacer } from "./write-pacer.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** Where GitHub posts deliveries (Probot's default path, which the App's settings name). */
const WEBHOOK_PATH = "/api/github/webhooks";

export interface GitHubDeps {
  config: Pick<
    Config,
    "github" | "githubApiUrl" | "host" | "port" | "publicUrl" | "webhookProxyUrl"
  >;
  database: Database;
  logger: Logger;
  /** Counts every GitHub request and webhook delivery. */
  metrics: Pick<
    ConveyorMetrics,
    "githubRequest" | "githubRateLimit" | "githubRateLimited" | "webhook"
  >;
  /** Every client's answers update it; a rate limit holds that client's requests back. */
  githubBudget: GitHubBudget;
  recordError: RecordError;
  /** Webhooks emit `intake-owed` and `pull-request-activity`. */
  signals: Signals;
  options: GitHubOptions;
}

export interface GitHubOptions {
  /**
   * Extra Octokit options for Probot's clients. Tests turn retries and throttling off so a simulated
   * 500 answers at once instead of after minutes of backoff.
   */
  octokitOptions?: Record<string, unknown> | undefined;
  /** GitHub writes per minute across all installations (default 80, GitHub's secondary limit). */
  githubWritesPerMinute?: number | undefined;
  /**
   * How long a base branch's protection and rules are kept between pull requests (default five
   * minutes). Tests that change a branch's rules between pull requests shorten it.
   */
  baseRulesTtlMs?: number | undefined;
}

/** The ports GitHub implements, for the features that need them. */
export interface GitHubApp {
  appId: number;
  gateway: GitHubGateway;
  alertIssues: AlertIssues;
  pullRequests: PullRequestWriter;
  prFacts: PullRequestFactsReader;
  /** An installation's client, paced like every other (the merger writes checks and merges). */
  installationOctokit: (installationId: number) => Promise<Octokit>;
  /** The App's webhook delivery log (the redelivery loop brings lost deliveries back with it). */
  hookDeliveries: HookDeliveryLog;
  /**
   * Stopping refuses the paced writes still waiting (and later ones) with `GitHubWritesClosed`,
   * and ends the waits for a rate limit the same way.
   */
  writes: Lifecycle;
  /**
   * From now on deliveries with an effect are stored already claimed by `holder` and handed to
   * `take` once committed (the intake loop of this process), instead of waking the loop to claim
   * them.
   */
  handOffDeliveriesTo(handOff: DeliveryHandOff): void;
}

export interface GitHub {
  /** Absent until the App has credentials (APP_ID, PRIVATE_KEY). */
  app: GitHubApp | undefined;
  /** Probot's webhook middleware, with the App. */
  webhooks: NodeHandler | undefined;
  /** Probot's first-run setup flow, without the App. */
  setup: NodeHandler | undefined;
  /**
   * Without the App: the one-time code that lets a browser on another machine use the setup flow
   * (the start-up lines print it).
   */
  setupCode: string | undefined;
}

/**
 * The GitHub edge: the Probot app and its webhook handlers, the paced installation clients and the
 * ports built on them. Nothing to start: clients connect per request; stopping `writes` refuses the
 * paced writes still waiting. Without credentials it serves Probot's setup flow instead, and the
 * subsystems that need the App are left out.
 */
export async function createGitHub(deps: GitHubDeps): Promise<GitHub> {
  const { config, logger, metrics, signals, options } = deps;
  if (!config.github) {
    const guard = createSetupGuard();
    const setup = await createSetupHandler({
      host: displayHost(config.host),
      port: config.port,
      log: logger.child({ component: "setup" }),
      publicUrl: config.publicUrl,
      webhookProxyUrl: config.webhookProxyUrl,
      guard,
    });
    return { app: undefined, webhooks: undefined, setup, setupCode: guard.code };
  }
  // Outermost of the request hooks (added last): a rate limit the client library could not wait
  // out itself is waited out here, and the requests behind it wait instead of being refused.
  const budget = createBudgetPlugin({
    budget: deps.githubBudget,
    onLimited: (kind) => metrics.githubRateLimited(kind),
  });
  const probot = new Probot({
    appId: config.github.appId,
    privateKey: config.github.privateKey,
    secret: config.github.webhookSecret,
    baseUrl: config.githubApiUrl,
    log: logger.child({ component: "probot" }),
    // A function, not an object: Probot merges its own throttle options over object defaults, so
    // only a function can switch throttling off (tests do).
    // Probot's retry plugin is replaced by one without a Bottleneck limiter per request (same
    // `retry` options): see `retry-plugin.ts`.
    Octokit: ProbotOctokit.defaults((defaults: Record<string, unknown>) => {
      const merged = { ...defaults, ...options.octokitOptions };
      return {
        ...merged,
        retry: { enabled: false },
        conveyorRetry: merged.conveyorRetry ?? merged.retry ?? {},
      };
    })
      .plugin(createRetryPlugin() as never)
      .plugin(octokitMetricsPlugin(metrics) as never)
      .plugin(budget.plugin as never) as typeof ProbotOctokit,
  });
  // Every installation client shares one pacer for writes (GitHub's secondary rate limit).
  const pacer = createWritePacer({ perMinute: options.githubWritesPerMinute });
  // Installation tokens: auth-app's own cache, in a store that drops a token five minutes before
  // GitHub's expiry. Repeated reads: conditional requests, whose 304s GitHub does not count.
  const tokenCache = createInstallationTokenCache();
  const conditionalReads = createConditionalReads();
  // Base branches' protection and rules, kept a few minutes between pull requests.
  const baseRules = createBaseRulesCache({ ttlMs: options.baseRulesTtlMs });
  // The trees of the commits tasks were assigned on (immutable: kept until crowded out).
  const commitTrees = createCommitTrees();
  // Repositories' GraphQL node ids, for a first publish in one request (they never change).
  const repositoryNodeIds = createRepositoryNodeIds();
  const installationOctokit = async (installationId: number): Promise<Octokit> => {
    const app = await probot.auth();
    // Probot's own installation factory (probot.auth(id)), with the token store replaced.
    const octokit = (await app.auth({
      type: "installation",
      installationId,
      factory: ({ octokitOptions }: { octokitOptions: Record<string, unknown> }) => {
        const Client = app.constructor as new (o: Record<string, unknown>) => Octokit;
        const throttle = octokitOptions.throttle as { enabled?: boolean } | undefined;
        return new Client({
          ...octokitOptions,
          throttle: throttle?.enabled
            ? { ...throttle, id: String(installationId) }
            : { enabled: false },
          auth: {
            ...(octokitOptions.auth as Record<string, unknown>),
            installationId,
            cache: tokenCache,
          },
        });
      },
    })) as Octokit;
    octokit.hook.before("request", pacer.hook);
    conditionalReads.attach(octokit as never, String(installationId));
    return octokit;
  };
  const gateway = createGitHubGateway({
    appId: config.github.appId,
    appOctokit: () => probot.auth(),
    installationOctokit,
    logger,
    marks: {
      read: (ref) =>
        readRepositoryMarks(deps.database.db, ref.installationId, `${ref.owner}/${ref.repo}`),
      recordHead: (ref, defaultBranch, headSha) =>
        recordDefaultHead(deps.database.db, {
          installationId: ref.installationId,
          fullName: `${ref.owner}/${ref.repo}`,
          defaultBranch,
          headSha,
        }),
    },
  });
  // Verified and routed by @octokit/webhooks (as inside Probot), without Probot's per-delivery
  // installation client: the handlers only store deliveries, the loops talk to GitHub.
  const webhookLog = logger.child({ component: "webhooks" });
  const receiver = new Webhooks({ secret: config.github.webhookSecret, log: webhookLog });
  let handOff: DeliveryHandOff | undefined;
  createConveyorApp({
    logger,
    recorder: createDeliveryRecorder(deps.database.db),
    db: deps.database.db,
    onIntentOwed: () => signals.emit("intake-owed"),
    handOff: () => handOff,
    appId: config.github.appId,
    onPullRequestActivity: () => signals.emit("pull-request-activity"),
    recordError: deps.recordError,
  })(receiver);
  const webhooks = instrumentWebhooks(
    createWebhooksMiddleware(receiver, { path: WEBHOOK_PATH, log: webhookLog }),
    metrics,
  );
  return {
    app: {
      appId: config.github.appId,
      gateway,
      alertIssues: createAlertIssues({ installationOctokit }),
      pullRequests: {
        write: async (id, input) =>
          writePullRequest(await installationOctokit(id), input, commitTrees, repositoryNodeIds),
        writeBranch: async (id, input) =>
          writeBranch(await installationOctokit(id), input, commitTrees),
        deleteBranch: async (id, input) => deleteBranch(await installationOctokit(id), input),
      },
      prFacts: {
        read: async (id, request) =>
          collectPrFacts(await installationOctokit(id), request, baseRules),
      },
      installationOctokit,
      hookDeliveries: createHookDeliveryLog(() => probot.auth()),
      handOffDeliveriesTo: (to) => {
        handOff = to;
      },
      writes: {
        stop: () => {
          pacer.close();
          budget.close();
        },
      },
    },
    webhooks,
    setup: undefined,
    setupCode: undefined,
  };
}
