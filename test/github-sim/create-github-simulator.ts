import { once } from "node:events";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { components } from "@octokit/openapi-types";
import { Hono } from "hono";
import {
  createActionsRoutes,
  type OnWorkflowDispatch,
  type WorkflowDispatch,
} from "./actions-routes.ts";
import { createApiRouter, type Fault, type RecordedRequest } from "./api-router.ts";
import { appRoutes, installationRepos, issueInstallationToken } from "./app-routes.ts";
import {
  createCheckRun,
  createStatus,
  renderCheckRunFor,
  updateCheckRun,
} from "./check-actions.ts";
import { checkRoutes } from "./check-routes.ts";
import { type CiProvider, type CiRunner, createCiRunner } from "./ci-provider.ts";
import { createGitHttpRouter } from "./git-http-router.ts";
import { gitRoutes } from "./git-routes.ts";
import { createGitStore, type GitIdentity } from "./git-store.ts";
import {
  combinedState,
  type Json,
  latestStatuses,
  nodeId,
  renderComment,
  renderInstallation,
  renderIssue,
  renderLabel,
  renderPull,
  renderReaction,
  renderStatus,
  renderUser,
} from "./github-objects.ts";
import { createGraphqlRouter } from "./graphql-router.ts";
import { hookRoutes } from "./hook-routes.ts";
import {
  addLabels,
  createComment,
  createIssue,
  createLabel,
  removeLabel,
  requireComment,
  updateComment,
  updateIssue,
} from "./issue-actions.ts";
import { issueRoutes } from "./issue-routes.ts";
import { createMergeQueue } from "./merge-queue.ts";
import { createOpenApiValidator } from "./openapi-validator.ts";
import { protectionRoutes } from "./protection.ts";
import {
  branchMoved,
  createPull,
  mergePull,
  noreplyIdentity,
  submitReview,
  updatePull,
} from "./pull-actions.ts";
import { pullFacts } from "./pull-facts.ts";
import { pullRoutes } from "./pull-routes.ts";
import {
  createSimRateLimits,
  type SecondaryLimit,
  type SimRateLimitOptions,
} from "./rate-limits.ts";
import { repoRoutes } from "./repo-routes.ts";
import { publicKeyFromPrivate } from "./sim-auth.ts";
import {
  createSimContext,
  type PendingDelivery,
  renderRepoFor,
  requireIssue,
  requirePull,
  requireRepo,
  type SimContext,
} from "./sim-context.ts";
import { type SimLogger, silentLogger } from "./sim-logger.ts";
import {
  type AppPermissions,
  type CommitState,
  createSimState,
  ensureUser,
  REPO_ROLES,
  type RepoRole,
  type SimApp,
  type SimInstallation,
  type SimMergeQueueRule,
  type SimRepo,
  type SimState,
  type SimUser,
  type UserType,
} from "./sim-state.ts";
import type { SimViolation } from "./sim-violation.ts";
import { createWebhookPayloadValidator } from "./webhook-payload-validator.ts";
import {
  createWebhookSender,
  type Delivery,
  type SendOptions,
  type WebhookTarget,
} from "./webhook-sender.ts";

type Schemas = components["schemas"];

/** Permissions the app gets unless told otherwise: what Conveyor asks for (never `workflows`). */
export const DEFAULT_APP_PERMISSIONS: AppPermissions = {
  metadata: "read",
  contents: "write",
  issues: "write",
  pull_requests: "write",
  checks: "write",
  statuses: "write",
  members: "read",
  actions: "write",
};

/** Every event the simulator can send; the app is subscribed to all unless `events` says otherwise. */
export const SIMULATED_EVENTS = [
  "installation",
  "installation_repositories",
  "issues",
  "issue_comment",
  "pull_request",
  "pull_request_review",
  "check_run",
  "check_suite",
  "status",
  "push",
  "member",
  "organization",
  "merge_group",
];

export interface GitHubSimulatorOptions {
  /** Where the bare repositories live (`<dataDir>/<owner>/<repo>.git`). */
  dataDir: string;
  /** Where webhooks go; can be set later with `setWebhook` (e.g. once the app listens). */
  webhook?: WebhookTarget;
  /** The app under test; default 1. */
  appId?: number;
  appSlug?: string;
  /** With it, app JWTs must carry a valid RS256 signature; without, only `iss` is checked. */
  privateKeyPem?: string;
  permissions?: AppPermissions;
  /** Events the app is subscribed to (default: all of `SIMULATED_EVENTS`). */
  events?: string[];
  logger?: SimLogger;
  /** Time source for timestamps and token expiry. */
  clock?: () => Date;
  host?: string;
  port?: number;
  /**
   * A CI system on every repository: each new head commit of a branch gets a check run from it
   * (`in_progress`, then the conclusion `conclude` gives). Off by default: tests post checks.
   */
  ciProvider?: CiProvider;
  /**
   * GitHub's primary rate limit: the window each installation (and the App) gets, and whether a
   * request past it is refused (default: 5,000 an hour, reported but not enforced).
   */
  rateLimit?: SimRateLimitOptions;
  /**
   * A fake GitHub Actions: called for every workflow dispatch GitHub accepts (e.g. to start the
   * runner the workflow would start). Can be set later with `setActions`.
   */
  actions?: OnWorkflowDispatch;
}

/** A user action's outcome: the first webhook it sent and the app's answer to it, plus all of them. */
export interface WebhookOutcome {
  delivery: Delivery | undefined;
  status: number | undefined;
  deliveries: Delivery[];
}

export interface UserOptions {
  /** Who acts; created as a plain user on first mention. */
  user: string;
}

export interface SenderOptions {
  sender: string;
}

export type CheckRunConclusion =
  | "action_required"
  | "cancelled"
  | "failure"
  | "neutral"
  | "success"
  | "skipped"
  | "stale"
  | "timed_out";

export interface GitHubSimulator {
  /** `http://127.0.0.1:<port>`: the API base URL (`GITHUB_API_URL`) and the git HTTP host. */
  readonly url: string;
  readonly appId: number;
  readonly appSlug: string;
  /** `<slug>[bot]`: the login that the app's actions are attributed to. */
  readonly botLogin: string;
  /** Requests GitHub would refuse or the simulator cannot answer, and invalid webhook payloads. */
  readonly violations: SimViolation[];
  readonly requests: RecordedRequest[];
  readonly deliveries: Delivery[];
  /** Every workflow dispatch GitHub accepted, in order. */
  readonly workflowDispatches: WorkflowDispatch[];
  /** Sets (or clears) the fake Actions that runs dispatched workflows. */
  setActions(actions: OnWorkflowDispatch | undefined): void;
  close(): Promise<void>;
  setWebhook(target: WebhookTarget | undefined): void;
  /** Someone edits the App's settings page: its permissions and event subscriptions. */
  setAppSettings(settings: { permissions?: AppPermissions; events?: string[] }): void;

  createUser(
    login: string,
    options?: { type?: UserType; name?: string; email?: string },
  ): Schemas["simple-user"];
  createInstallation(options: {
    account: string;
    accountType?: "User" | "Organization";
    repositorySelection?: "all" | "selected";
    permissions?: AppPermissions;
  }): Promise<Schemas["installation"]>;
  createRepository(options: {
    owner: string;
    name: string;
    installationId?: number;
    files?: Record<string, string>;
    defaultBranch?: string;
    private?: boolean;
    description?: string;
  }): Promise<Schemas["full-repository"]>;
  /** A fresh installation token, as if the app had asked for one (for runners and tests). */
  createInstallationToken(
    installationId: number,
    options?: { permissions?: AppPermissions; repositories?: string[] },
  ): { token: string; expiresAt: string };
  setPermission(fullName: string, login: string, role: RepoRole): void;
  /**
   * A repository admin changes a collaborator's role (`none` removes them): the permission
   * changes and a `member` webhook (`added`, `edited` or `removed`) goes out.
   */
  changeCollaborator(
    fullName: string,
    login: string,
    role: RepoRole,
    options: SenderOptions,
  ): Promise<WebhookOutcome>;
  createLabel(
    fullName: string,
    label: { name: string; color?: string; description?: string },
  ): Schemas["label"];

  openIssue(
    fullName: string,
    issue: { title: string; body?: string; labels?: string[]; user: string },
  ): Promise<WebhookOutcome & { issue: Schemas["issue"] }>;
  addLabel(
    fullName: string,
    number: number,
    label: string,
    options: SenderOptions,
  ): Promise<WebhookOutcome>;
  removeLabel(
    fullName: string,
    number: number,
    label: string,
    options: SenderOptions,
  ): Promise<WebhookOutcome>;
  closeIssue(
    fullName: string,
    number: number,
    options: SenderOptions & { reason?: "completed" | "not_planned" },
  ): Promise<WebhookOutcome>;
  reopenIssue(fullName: string, number: number, options: SenderOptions): Promise<WebhookOutcome>;
  editIssue(
    fullName: string,
    number: number,
    changes: { title?: string; body?: string },
    options: SenderOptions,
  ): Promise<WebhookOutcome>;
  comment(
    fullName: string,
    number: number,
    body: string,
    options: UserOptions,
  ): Promise<WebhookOutcome & { comment: Schemas["issue-comment"] }>;
  editComment(
    fullName: string,
    commentId: number,
    body: string,
    options: UserOptions,
  ): Promise<WebhookOutcome>;
  /** Commits files to a branch as a user (creating it from `from`, default branch by default). */
  push(
    fullName: string,
    push: {
      branch: string;
      files: Record<string, string | null>;
      message?: string;
      user: string;
      from?: string;
    },
  ): Promise<WebhookOutcome & { sha: string }>;
  openPullRequest(
    fullName: string,
    pull: {
      title: string;
      body?: string;
      head: string;
      base?: string;
      user: string;
      draft?: boolean;
    },
  ): Promise<WebhookOutcome & { pull: Schemas["pull-request"] }>;
  submitReview(
    fullName: string,
    number: number,
    review: { user: string; state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED"; body?: string },
  ): Promise<WebhookOutcome>;
  mergePullRequest(
    fullName: string,
    number: number,
    options: UserOptions & { method?: "merge" | "squash" | "rebase" },
  ): Promise<WebhookOutcome & { sha: string }>;
  /** Forces `mergeable` (undefined: compute it with git again). */
  setMergeable(fullName: string, number: number, mergeable: boolean | undefined): void;
  /**
   * Branch protection's required status checks on `branch` (null removes it): required checks
   * must pass before a merge (`blocked`), `strict` requires the branch to be up to date (`behind`).
   */
  /**
   * Branch protection's required status checks; with `mergeQueue`, also "Require merge queue"
   * (which, as on GitHub, `GET …/rules/branches/{b}` does not list).
   */
  setBranchProtection(
    fullName: string,
    branch: string,
    protection: {
      strict?: boolean;
      contexts: string[];
      mergeQueue?: Partial<SimMergeQueueRule> | boolean;
    } | null,
  ): void;
  /** Deletes a ruleset `addRuleset` made. */
  removeRuleset(fullName: string, id: number): void;
  /**
   * A ruleset with a `required_status_checks` rule on `branches` (names, `~DEFAULT_BRANCH`,
   * `~ALL`); with `mergeQueue` also a `merge_queue` rule (GitHub's defaults, `merge_method`
   * MERGE, unless given): merges into those branches must then go through the merge queue.
   */
  addRuleset(
    fullName: string,
    ruleset: {
      name?: string;
      branches: string[];
      requiredChecks: string[];
      strict?: boolean;
      mergeQueue?: Partial<SimMergeQueueRule> | boolean;
    },
  ): { id: number };
  /** The merge queue of a branch, first entry first: pull request numbers and their groups. */
  mergeQueueOf(
    fullName: string,
    branch: string,
  ): { number: number; headSha: string; group?: { branch: string; headSha: string } }[];
  /** A person removes a pull request from the merge queue (`pull_request.dequeued` MANUAL). */
  dequeuePullRequest(fullName: string, number: number, options: SenderOptions): Promise<void>;
  /** A person edits a pull request (e.g. moves it to another base): `pull_request.edited`. */
  editPullRequest(
    fullName: string,
    number: number,
    changes: { base?: string; title?: string },
    options: SenderOptions,
  ): Promise<WebhookOutcome>;
  /** A check run from another app (a CI), which sends `check_run` events to the app under test. */
  createCheckRun(
    fullName: string,
    run: {
      name: string;
      headSha: string;
      status?: "queued" | "in_progress" | "completed";
      conclusion?: CheckRunConclusion;
      appSlug?: string;
    },
  ): Promise<WebhookOutcome & { checkRun: Schemas["check-run"] }>;
  completeCheckRun(
    fullName: string,
    checkRunId: number,
    conclusion: CheckRunConclusion,
  ): Promise<WebhookOutcome>;
  setStatus(
    fullName: string,
    sha: string,
    status: {
      state: CommitState;
      context: string;
      description?: string;
      targetUrl?: string;
      user?: string;
    },
  ): Promise<WebhookOutcome>;

  getIssue(fullName: string, number: number): Schemas["issue"];
  listIssues(fullName: string): Schemas["issue"][];
  listComments(fullName: string, number: number): Schemas["issue-comment"][];
  listReactions(
    fullName: string,
    target: { issue: number } | { comment: number },
  ): Schemas["reaction"][];
  listLabels(fullName: string): Schemas["label"][];
  getPull(fullName: string, number: number): Promise<Schemas["pull-request"]>;
  listPulls(fullName: string): Promise<Schemas["pull-request"][]>;
  listCheckRuns(fullName: string, ref: string): Promise<Schemas["check-run"][]>;
  getCombinedStatus(
    fullName: string,
    ref: string,
  ): Promise<{ state: string; statuses: Schemas["status"][] }>;
  /** The tip of a branch, or undefined. */
  getBranchSha(fullName: string, branch: string): Promise<string | undefined>;
  /** A file's UTF-8 content at a ref (default: the default branch), or undefined. */
  readFile(fullName: string, path: string, ref?: string): Promise<string | undefined>;
  gitDir(fullName: string): string;
  cloneUrl(fullName: string): string;

  sendWebhook(
    event: string,
    payload: Record<string, unknown>,
    options?: SendOptions,
  ): Promise<Delivery>;
  redeliver(deliveryId: string): Promise<Delivery>;
  /**
   * Resolves when every webhook sent so far (including those the app's own calls caused) is
   * answered, and every CI run started so far has concluded.
   */
  idle(): Promise<void>;
  /**
   * Makes the next `times` (default 1) requests to a route fail with `status`: `before` handling
   * (nothing changes) or `after` (the change is made, the answer lost). E.g.
   * `injectFault("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", 502, {when: "after"})`.
   */
  injectFault(
    route: string,
    status: number,
    options?: { when?: "before" | "after"; times?: number; message?: string },
  ): void;
  /** Changes the primary rate limit (and starts every window afresh). */
  setRateLimit(options: SimRateLimitOptions): void;
  /** Spends `count` requests of an installation's current window (its other work, elsewhere). */
  spendRateLimit(installationId: number, count: number): void;
  /**
   * The next `times` authenticated API requests are refused for a secondary rate limit (`429`
   * unless `status` says `403`), with `retry-after` when `retryAfterSeconds` is given.
   */
  injectSecondaryLimit(limit: SecondaryLimit): void;
  /** Requests refused for a rate limit so far, by kind. */
  readonly rateLimited: { primary: number; secondary: number };
}

async function outcome(pending: PendingDelivery[]): Promise<WebhookOutcome> {
  const deliveries = (await Promise.all(pending)).filter((d): d is Delivery => d !== undefined);
  return { delivery: deliveries[0], status: deliveries[0]?.status, deliveries };
}

function createApp(
  state: SimState,
  id: number,
  slug: string,
  owner: SimUser,
  permissions: AppPermissions,
  events: string[],
): SimApp {
  const app: SimApp = {
    id,
    slug,
    name: slug,
    clientId: `Iv1.sim${id}`,
    owner,
    bot: ensureUser(state, `${slug}[bot]`, "Bot"),
    permissions,
    events,
    createdAt: state.now(),
  };
  state.apps.set(app.id, app);
  return app;
}

/**
 * A stateful fake of GitHub for tests and demos: REST API (validated against GitHub's OpenAPI
 * description), App authentication, webhooks (signed and schema-checked), and real bare git
 * repositories served over smart HTTP.
 */
export async function createGitHubSimulator(
  options: GitHubSimulatorOptions,
): Promise<GitHubSimulator> {
  const logger = options.logger ?? silentLogger;
  const state = createSimState(options.clock);
  const git = createGitStore(options.dataDir);
  const violations: SimViolation[] = [];
  const requests: RecordedRequest[] = [];
  const onViolation = (violation: SimViolation) => {
    violations.push(violation);
    logger.warn({ violation }, "github simulator violation");
  };
  const appId = options.appId ?? 1;
  const appSlug = options.appSlug ?? "conveyor";
  const app = createApp(
    state,
    appId,
    appSlug,
    ensureUser(state, "sim-app-owner"),
    options.permissions ?? DEFAULT_APP_PERMISSIONS,
    options.events ?? SIMULATED_EVENTS,
  );
  const webhooks = createWebhookSender({
    target: options.webhook,
    appId,
    validator: createWebhookPayloadValidator(),
    onViolation,
    logger,
    now: state.now,
  });

  // Rendered URLs need the port, so the server starts first and the routers are wired after.
  let handle: (request: Request) => Promise<Response> = async () =>
    new Response(null, { status: 503 });
  const hono = new Hono();
  hono.all("*", (c) => handle(c.req.raw));
  const server = serve({
    fetch: hono.fetch,
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
  }) as Server;
  if (!server.listening) await once(server, "listening");
  const address = server.address();
  if (!address || typeof address === "string")
    throw new Error("github simulator did not get a TCP port");
  const base = `http://${options.host ?? "127.0.0.1"}:${address.port}`;

  let ci: CiRunner | undefined;
  const workflowDispatches: WorkflowDispatch[] = [];
  let actions = options.actions;
  const ctx: SimContext = createSimContext({
    base,
    state,
    git,
    app,
    webhooks,
    logger,
    onBranchHead: (repo, branch, sha) => ci?.headMoved(repo, branch, sha),
    onCheckSuiteRerequested: (repo, suite) => ci?.rerequested(repo, suite),
    onChecksChanged: (repo, sha) => mergeQueue.checksChanged(repo, sha),
  });
  const mergeQueue = createMergeQueue(ctx);
  const credentials = {
    app,
    publicKey: options.privateKeyPem ? publicKeyFromPrivate(options.privateKeyPem) : undefined,
  };
  const faults: Fault[] = [];
  const rateLimits = createSimRateLimits(state.clock, options.rateLimit);
  const api = createApiRouter({
    faults,
    rateLimits,
    ctx,
    validator: createOpenApiValidator(),
    routes: {
      ...appRoutes,
      ...hookRoutes,
      ...repoRoutes,
      ...issueRoutes,
      ...pullRoutes,
      ...protectionRoutes,
      ...gitRoutes,
      ...checkRoutes,
      ...createActionsRoutes(() => (dispatch) => {
        workflowDispatches.push(dispatch);
        actions?.(dispatch);
      }),
    },
    credentials,
    onViolation,
  });

  const gitHttp = createGitHttpRouter(ctx, options.dataDir);
  const graphqlApi = createGraphqlRouter({ ctx, queue: mergeQueue, credentials, onViolation });

  handle = async (request) => {
    const url = new URL(request.url);
    const answered =
      (await gitHttp(request, url)) ??
      (await graphqlApi(request, url)) ??
      (await api(request, url));
    requests.push(answered.record);
    return answered.response;
  };

  const user = (login: string) => ensureUser(state, login);
  /** A merge queue's parameters: GitHub's defaults, `merge_method` MERGE, unless given. */
  const mergeQueueRule = (
    given: Partial<SimMergeQueueRule> | boolean | undefined,
  ): SimMergeQueueRule | undefined =>
    given
      ? {
          check_response_timeout_minutes: 60,
          grouping_strategy: "ALLGREEN",
          max_entries_to_build: 5,
          max_entries_to_merge: 5,
          merge_method: "MERGE",
          min_entries_to_merge: 1,
          min_entries_to_merge_wait_minutes: 5,
          ...(given === true ? {} : given),
        }
      : undefined;
  const repoOf = (fullName: string) => requireRepo(ctx, fullName);
  const installationOf = (id: number): SimInstallation => {
    const installation = state.installations.get(id);
    if (!installation) throw new Error(`no installation ${id}`);
    return installation;
  };
  const identityOf = (login: string): GitIdentity => noreplyIdentity(user(login), state.now());
  const ciApps = new Map<string, SimApp>();
  const ciApp = (slug: string) => {
    let ci = ciApps.get(slug);
    if (!ci) {
      ci = createApp(
        state,
        state.nextId(),
        slug,
        user("sim-app-owner"),
        { checks: "write", statuses: "write" },
        [],
      );
      ciApps.set(slug, ci);
    }
    return ci;
  };
  if (options.ciProvider) {
    ci = createCiRunner(ctx, options.ciProvider, ciApp(options.ciProvider.appSlug ?? "ci"));
  }
  const sendInstallationEvent = (installation: SimInstallation, event: string, payload: Json) =>
    installation.app.events.includes(event)
      ? webhooks.send(event, {
          ...payload,
          installation: renderInstallation(base, installation),
          sender: renderUser(base, installation.account),
        })
      : Promise.resolve(undefined);

  /** A `push` event for one new commit on `ref`, as GitHub sends it. */
  const pushPayload = async (
    fullName: string,
    ref: string,
    before: string,
    after: string,
    files: Record<string, string | null>,
  ): Promise<Json> => {
    const commit = await git.readCommit(fullName, after);
    if (!commit) throw new Error(`pushed commit ${after} is missing`);
    const html = `${base}/${fullName}`;
    const person = (who: { name: string; email: string }) => ({ name: who.name, email: who.email });
    const headCommit = {
      id: after,
      tree_id: commit.tree,
      distinct: true,
      message: commit.message,
      timestamp: commit.committer.date,
      url: `${html}/commit/${after}`,
      author: person(commit.author),
      committer: person(commit.committer),
      added: [],
      removed: Object.keys(files).filter((f) => files[f] === null),
      modified: Object.keys(files).filter((f) => files[f] !== null),
    };
    return {
      ref,
      before,
      after,
      created: /^0+$/.test(before),
      deleted: false,
      forced: false,
      base_ref: null,
      compare: `${html}/compare/${before.slice(0, 12)}...${after.slice(0, 12)}`,
      commits: [headCommit],
      head_commit: headCommit,
      pusher: person(commit.author),
    };
  };

  const sim: GitHubSimulator = {
    url: base,
    appId,
    appSlug,
    botLogin: app.bot.login,
    violations,
    requests,
    deliveries: webhooks.deliveries,
    workflowDispatches,
    setActions(next) {
      actions = next;
    },

    async close() {
      await ci?.idle();
      await mergeQueue.idle();
      await webhooks.idle();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },

    setWebhook: (target) => webhooks.setTarget(target),

    setAppSettings(settings) {
      if (settings.permissions) app.permissions = settings.permissions;
      if (settings.events) app.events = settings.events;
    },

    createUser(login, userOptions = {}) {
      const created = ensureUser(state, login, userOptions.type ?? "User");
      created.type = userOptions.type ?? created.type;
      created.name = userOptions.name ?? created.name;
      created.email = userOptions.email ?? created.email;
      return renderUser(base, created) as Schemas["simple-user"];
    },

    async createInstallation(input) {
      const account = ensureUser(state, input.account, input.accountType ?? "Organization");
      const installation: SimInstallation = {
        id: state.nextId(),
        app,
        account,
        repositorySelection: input.repositorySelection ?? "all",
        repositoryIds: new Set(),
        permissions: input.permissions ?? app.permissions,
        createdAt: state.now(),
      };
      state.installations.set(installation.id, installation);
      const repositories = installationRepos(ctx, installation).map((repo) => ({
        id: repo.id,
        node_id: nodeId("Repository", repo.id),
        name: repo.name,
        full_name: repo.fullName,
        private: repo.isPrivate,
      }));
      await sendInstallationEvent(installation, "installation", {
        action: "created",
        repositories,
      });
      return renderInstallation(base, installation) as Schemas["installation"];
    },

    async createRepository(input) {
      const owner = ensureUser(state, input.owner, "Organization");
      const fullName = `${owner.login}/${input.name}`;
      if (state.repos.has(fullName.toLowerCase())) throw new Error(`repository ${fullName} exists`);
      const defaultBranch = input.defaultBranch ?? "main";
      const now = state.now();
      const repo: SimRepo = {
        id: state.nextId(),
        owner,
        name: input.name,
        fullName,
        defaultBranch,
        isPrivate: input.private ?? false,
        description: input.description ?? null,
        createdAt: now,
        updatedAt: now,
        pushedAt: now,
        nextNumber: 1,
        labels: new Map(),
        collaborators: new Map(),
        issues: new Map(),
        comments: new Map(),
        checkSuites: [],
        checkRuns: [],
        statuses: [],
        signedCommits: new Set(),
        branchProtection: new Map(),
        rulesets: [],
      };
      await git.init(fullName, defaultBranch);
      await git.commitFiles(fullName, {
        branch: defaultBranch,
        files: input.files ?? { "README.md": `# ${input.name}\n` },
        message: "Initial commit",
        author: noreplyIdentity(owner, now),
      });
      state.repos.set(fullName.toLowerCase(), repo);
      if (input.installationId !== undefined) {
        const installation = installationOf(input.installationId);
        if (installation.account.id !== owner.id) {
          throw new Error(
            `installation ${installation.id} belongs to ${installation.account.login}, not ${owner.login}`,
          );
        }
        installation.repositoryIds.add(repo.id);
        if (installation.repositorySelection === "selected") {
          await sendInstallationEvent(installation, "installation_repositories", {
            action: "added",
            repository_selection: "selected",
            repositories_added: [
              {
                id: repo.id,
                node_id: nodeId("Repository", repo.id),
                name: repo.name,
                full_name: fullName,
                private: repo.isPrivate,
              },
            ],
            repositories_removed: [],
            requester: null,
          });
        }
      }
      return renderRepoFor(ctx, repo) as Schemas["full-repository"];
    },

    createInstallationToken(installationId, tokenOptions = {}) {
      const token = issueInstallationToken(ctx, installationOf(installationId), tokenOptions);
      return { token: token.token, expiresAt: token.expiresAt.toISOString() };
    },

    setPermission(fullName, login, role) {
      if (!REPO_ROLES.includes(role)) throw new Error(`unknown role ${role}`);
      const repo = repoOf(fullName);
      user(login);
      if (role === "none") repo.collaborators.delete(login.toLowerCase());
      else repo.collaborators.set(login.toLowerCase(), role);
    },

    async changeCollaborator(fullName, login, role, options) {
      const repo = repoOf(fullName);
      const before = repo.collaborators.get(login.toLowerCase());
      sim.setPermission(fullName, login, role);
      if (!before && role === "none") return outcome([]);
      // `permission` folds roles into GitHub's legacy three: maintain is write, triage is read.
      const legacy = (r: string) =>
        r === "maintain" ? "write" : r === "triage" ? "read" : (r as "read" | "write" | "admin");
      const member = renderUser(base, user(login));
      const payload: Json =
        role === "none"
          ? { action: "removed", member }
          : before
            ? {
                action: "edited",
                member,
                changes: { permission: { from: legacy(before), to: legacy(role) } },
              }
            : {
                action: "added",
                member,
                changes: { permission: { to: legacy(role) }, role_name: { to: role } },
              };
      return outcome([ctx.emit(repo, "member", payload, user(options.sender))]);
    },

    createLabel(fullName, label) {
      const repo = repoOf(fullName);
      return renderLabel(base, repo, createLabel(ctx, repo, label)) as Schemas["label"];
    },

    async openIssue(fullName, input) {
      const repo = repoOf(fullName);
      const { issue, deliveries } = await createIssue(ctx, repo, {
        ...input,
        user: user(input.user),
      });
      return {
        issue: renderIssue(base, repo, issue) as Schemas["issue"],
        ...(await outcome(deliveries)),
      };
    },

    async addLabel(fullName, number, label, { sender }) {
      const repo = repoOf(fullName);
      return outcome(await addLabels(ctx, repo, requireIssue(repo, number), [label], user(sender)));
    },

    async removeLabel(fullName, number, label, { sender }) {
      const repo = repoOf(fullName);
      return outcome(await removeLabel(ctx, repo, requireIssue(repo, number), label, user(sender)));
    },

    async closeIssue(fullName, number, { sender, reason }) {
      const repo = repoOf(fullName);
      const patch = { state: "closed" as const, state_reason: reason ?? "completed" };
      return outcome(await updateIssue(ctx, repo, requireIssue(repo, number), patch, user(sender)));
    },

    async reopenIssue(fullName, number, { sender }) {
      const repo = repoOf(fullName);
      return outcome(
        await updateIssue(ctx, repo, requireIssue(repo, number), { state: "open" }, user(sender)),
      );
    },

    async editIssue(fullName, number, changes, { sender }) {
      const repo = repoOf(fullName);
      return outcome(
        await updateIssue(ctx, repo, requireIssue(repo, number), changes, user(sender)),
      );
    },

    async comment(fullName, number, body, { user: login }) {
      const repo = repoOf(fullName);
      const { comment, deliveries } = createComment(ctx, repo, requireIssue(repo, number), {
        body,
        user: user(login),
      });
      return {
        comment: renderComment(base, repo, comment) as Schemas["issue-comment"],
        ...(await outcome(deliveries)),
      };
    },

    async editComment(fullName, commentId, body, { user: login }) {
      const repo = repoOf(fullName);
      return outcome(updateComment(ctx, repo, requireComment(repo, commentId), body, user(login)));
    },

    async push(fullName, input) {
      const repo = repoOf(fullName);
      const ref = `refs/heads/${input.branch}`;
      if (!(await git.readRef(fullName, ref))) {
        const from = await git.resolveCommit(fullName, input.from ?? repo.defaultBranch);
        if (!from)
          throw new Error(`cannot branch ${input.branch} from ${input.from ?? repo.defaultBranch}`);
        await git.updateRef(fullName, ref, from, "");
      }
      const before = (await git.readRef(fullName, ref)) ?? "0".repeat(40);
      const sha = await git.commitFiles(fullName, {
        branch: input.branch,
        files: input.files,
        message: input.message ?? `Update ${Object.keys(input.files).join(", ")}`,
        author: identityOf(input.user),
      });
      const pushed = ctx.emit(
        repo,
        "push",
        await pushPayload(fullName, ref, before, sha, input.files),
        user(input.user),
      );
      const moved = await branchMoved(ctx, repo, input.branch, sha, user(input.user));
      return { sha, ...(await outcome([pushed, ...moved])) };
    },

    async openPullRequest(fullName, input) {
      const repo = repoOf(fullName);
      const { issue, deliveries } = await createPull(ctx, repo, {
        ...input,
        base: input.base ?? repo.defaultBranch,
        user: user(input.user),
      });
      const pull = renderPull(
        base,
        repo,
        issue,
        await pullFacts(ctx, repo, issue),
      ) as Schemas["pull-request"];
      return { pull, ...(await outcome(deliveries)) };
    },

    async submitReview(fullName, number, input) {
      const repo = repoOf(fullName);
      const { deliveries } = await submitReview(ctx, repo, requirePull(repo, number), {
        ...input,
        user: user(input.user),
      });
      return outcome(deliveries);
    },

    async mergePullRequest(fullName, number, input) {
      const repo = repoOf(fullName);
      const { sha, deliveries } = await mergePull(
        ctx,
        repo,
        requirePull(repo, number),
        { merge_method: input.method ?? "merge" },
        user(input.user),
      );
      return { sha, ...(await outcome(deliveries)) };
    },

    setMergeable(fullName, number, mergeable) {
      requirePull(repoOf(fullName), number).pull!.mergeableOverride = mergeable;
    },

    setBranchProtection(fullName, branch, protection) {
      const repo = repoOf(fullName);
      if (protection === null) repo.branchProtection.delete(branch);
      else {
        repo.branchProtection.set(branch, {
          strict: protection.strict ?? false,
          contexts: [...protection.contexts],
          mergeQueue: mergeQueueRule(protection.mergeQueue),
        });
      }
    },

    removeRuleset(fullName, id) {
      const repo = repoOf(fullName);
      repo.rulesets = repo.rulesets.filter((r) => r.id !== id);
    },

    addRuleset(fullName, input) {
      const repo = repoOf(fullName);
      const id = state.nextId();
      repo.rulesets.push({
        id,
        name: input.name ?? `ruleset-${id}`,
        branches: [...input.branches],
        strict: input.strict ?? false,
        requiredChecks: input.requiredChecks.map((context) => ({ context })),
        mergeQueue: mergeQueueRule(input.mergeQueue),
      });
      return { id };
    },

    mergeQueueOf(fullName, branch) {
      const repo = repoOf(fullName);
      return [...repo.issues.values()]
        .map((issue) => mergeQueue.entryOf(repo, issue.number))
        .filter((entry) => entry !== undefined && entry.baseRef === branch)
        .sort((a, b) => mergeQueue.positionOf(a!) - mergeQueue.positionOf(b!))
        .map((entry) => ({
          number: entry!.issue.number,
          headSha: entry!.headSha,
          ...(entry!.group
            ? { group: { branch: entry!.group.branch, headSha: entry!.group.headSha } }
            : {}),
        }));
    },

    async dequeuePullRequest(fullName, number, options) {
      await mergeQueue.dequeue(repoOf(fullName), number, user(options.sender));
    },

    async editPullRequest(fullName, number, changes, options) {
      const repo = repoOf(fullName);
      const deliveries = await updatePull(
        ctx,
        repo,
        requirePull(repo, number),
        changes,
        user(options.sender),
      );
      return outcome(deliveries);
    },

    async createCheckRun(fullName, input) {
      const repo = repoOf(fullName);
      const { run, deliveries } = await createCheckRun(
        ctx,
        repo,
        {
          name: input.name,
          head_sha: input.headSha,
          status: input.status,
          conclusion: input.conclusion,
        },
        ciApp(input.appSlug ?? "ci"),
      );
      return {
        checkRun: renderCheckRunFor(ctx, repo, run) as Schemas["check-run"],
        ...(await outcome(deliveries)),
      };
    },

    async completeCheckRun(fullName, checkRunId, conclusion) {
      const repo = repoOf(fullName);
      const run = repo.checkRuns.find((candidate) => candidate.id === checkRunId);
      if (!run) throw new Error(`no check run ${checkRunId} in ${fullName}`);
      return outcome(await updateCheckRun(ctx, repo, run, { conclusion }));
    },

    async setStatus(fullName, sha, input) {
      const repo = repoOf(fullName);
      const creator = input.user ? user(input.user) : ciApp("ci").bot;
      const { deliveries } = await createStatus(
        ctx,
        repo,
        sha,
        {
          state: input.state,
          context: input.context,
          description: input.description,
          target_url: input.targetUrl,
        },
        creator,
      );
      return outcome(deliveries);
    },

    getIssue(fullName, number) {
      const repo = repoOf(fullName);
      return renderIssue(base, repo, requireIssue(repo, number)) as Schemas["issue"];
    },

    listIssues(fullName) {
      const repo = repoOf(fullName);
      return [...repo.issues.values()].map(
        (issue) => renderIssue(base, repo, issue) as Schemas["issue"],
      );
    },

    listComments(fullName, number) {
      const repo = repoOf(fullName);
      return [...repo.comments.values()]
        .filter((comment) => comment.issueNumber === number)
        .map((comment) => renderComment(base, repo, comment) as Schemas["issue-comment"]);
    },

    listReactions(fullName, target) {
      const repo = repoOf(fullName);
      const reactions =
        "issue" in target
          ? requireIssue(repo, target.issue).reactions
          : requireComment(repo, target.comment).reactions;
      return reactions.map((reaction) => renderReaction(base, reaction) as Schemas["reaction"]);
    },

    listLabels(fullName) {
      const repo = repoOf(fullName);
      return [...repo.labels.values()].map(
        (label) => renderLabel(base, repo, label) as Schemas["label"],
      );
    },

    async getPull(fullName, number) {
      const repo = repoOf(fullName);
      const issue = requirePull(repo, number);
      return renderPull(
        base,
        repo,
        issue,
        await pullFacts(ctx, repo, issue),
      ) as Schemas["pull-request"];
    },

    async listPulls(fullName) {
      const repo = repoOf(fullName);
      const pulls = [...repo.issues.values()].filter((issue) => issue.pull);
      return Promise.all(
        pulls.map(
          async (issue) =>
            renderPull(
              base,
              repo,
              issue,
              await pullFacts(ctx, repo, issue),
            ) as Schemas["pull-request"],
        ),
      );
    },

    async listCheckRuns(fullName, ref) {
      const repo = repoOf(fullName);
      const sha = await git.resolveCommit(fullName, ref);
      return repo.checkRuns
        .filter((run) => run.headSha === sha)
        .map((run) => renderCheckRunFor(ctx, repo, run) as Schemas["check-run"]);
    },

    async getCombinedStatus(fullName, ref) {
      const repo = repoOf(fullName);
      const sha = (await git.resolveCommit(fullName, ref)) ?? ref;
      const statuses = latestStatuses(repo.statuses, sha);
      return {
        state: combinedState(statuses),
        statuses: statuses.map((status) => renderStatus(base, repo, status) as Schemas["status"]),
      };
    },

    getBranchSha: (fullName, branch) =>
      git.readRef(repoOf(fullName).fullName, `refs/heads/${branch}`),

    async readFile(fullName, path, ref) {
      const repo = repoOf(fullName);
      const sha = await git.resolveCommit(repo.fullName, ref ?? repo.defaultBranch);
      if (!sha) return undefined;
      return (await git.readFile(repo.fullName, sha, path))?.content?.toString("utf8");
    },

    gitDir: (fullName) => git.gitDir(repoOf(fullName).fullName),
    cloneUrl: (fullName) => `${base}/${repoOf(fullName).fullName}.git`,

    sendWebhook: (event, payload, sendOptions = {}) =>
      webhooks.send(event, payload, { validate: false, ...sendOptions }),
    redeliver: (deliveryId) => webhooks.redeliver(deliveryId),
    async idle() {
      // A webhook's answer may start a CI run (the app pushed), and a run sends webhooks.
      do {
        await ci?.idle();
        await mergeQueue.idle();
        await webhooks.idle();
      } while (ci?.busy() || mergeQueue.busy());
    },
    injectFault(route, status, { when = "before", times = 1, message } = {}) {
      faults.push({
        route,
        status,
        when,
        times,
        message: message ?? (status >= 500 ? "Server Error" : "Simulated failure"),
      });
    },
    setRateLimit: (next) => rateLimits.configure(next),
    spendRateLimit: (installationId, count) => rateLimits.spend(installationId, count),
    injectSecondaryLimit: (limit) => rateLimits.injectSecondary(limit),
    rateLimited: rateLimits.refused,
  };
  return sim;
}
