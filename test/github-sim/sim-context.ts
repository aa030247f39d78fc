import type { GitStore } from "./git-store.ts";
import { type Json, renderInstallationLite, renderRepo, renderUser } from "./github-objects.ts";
import { notFound } from "./http-error.ts";
import type { SimLogger } from "./sim-logger.ts";
import {
  installationFor,
  type SimApp,
  type SimCheckSuite,
  type SimIssue,
  type SimRepo,
  type SimState,
  type SimUser,
} from "./sim-state.ts";
import type { Delivery, WebhookSender } from "./webhook-sender.ts";

/** A webhook on its way: resolves once the app answered, or undefined if none is sent. */
export type PendingDelivery = Promise<Delivery | undefined>;

/** What actions and route handlers share: state, git, the app, and the way to send webhooks. */
export interface SimContext {
  readonly base: string;
  readonly state: SimState;
  readonly git: GitStore;
  /** The app under test (the one whose JWT and tokens the simulator accepts). */
  readonly app: SimApp;
  readonly webhooks: WebhookSender;
  readonly logger: SimLogger;
  /**
   * Sends `event` about `repo` to the app if it is installed there and subscribed to the event,
   * adding `repository`, `sender` and `installation` to `payload` as GitHub does.
   */
  emit(repo: SimRepo, event: string, payload: Json, sender: SimUser): PendingDelivery;
  /** Called whenever a branch points at a new commit (the CI provider runs on it). */
  onBranchHead?: (repo: SimRepo, branch: string, sha: string) => void;
  /** Called when a check suite is re-requested (the CI provider runs its commit again). */
  onCheckSuiteRerequested?: (repo: SimRepo, suite: SimCheckSuite) => void;
  /** Called when a check run concluded or a status was set on `sha` (the merge queue looks). */
  onChecksChanged?: (repo: SimRepo, sha: string) => void;
}

export function createSimContext(options: Omit<SimContext, "emit">): SimContext {
  return {
    ...options,
    emit(repo, event, payload, sender) {
      const installation = installationFor(options.state, repo, options.app);
      if (!installation || !options.app.events.includes(event)) return Promise.resolve(undefined);
      return options.webhooks.send(event, {
        ...payload,
        repository: renderRepoFor(options, repo),
        sender: renderUser(options.base, sender),
        installation: renderInstallationLite(installation),
      });
    },
  };
}

export function findRepo(ctx: Pick<SimContext, "state">, fullName: string): SimRepo | undefined {
  return ctx.state.repos.get(fullName.toLowerCase());
}

export function requireRepo(ctx: Pick<SimContext, "state">, fullName: string): SimRepo {
  const repo = findRepo(ctx, fullName);
  if (!repo) throw notFound();
  return repo;
}

export function requireIssue(repo: SimRepo, number: number | string): SimIssue {
  const issue = repo.issues.get(Number(number));
  if (!issue) throw notFound();
  return issue;
}

export function requirePull(repo: SimRepo, number: number | string): SimIssue {
  const issue = requireIssue(repo, number);
  if (!issue.pull) throw notFound();
  return issue;
}

export function renderRepoFor(ctx: Pick<SimContext, "base">, repo: SimRepo): Json {
  const open = [...repo.issues.values()].filter((issue) => issue.state === "open").length;
  return renderRepo(ctx.base, repo, open);
}
