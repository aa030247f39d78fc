/**
 * The ports: what the features need from the world outside the process, as interfaces (types only).
 * `src/github/` implements them; intake, commands and loops know only these, and tests hand in
 * fakes. Nothing here may import anything but other `src/core` modules and the wire protocol.
 */
import type { ChangeSet } from "../protocol/messages.ts";
import type { FileMode } from "./content-rules.ts";
import type { InstalledRepository, IssueSnapshot, LabelEvent, RepoRef } from "./github-objects.ts";
import type { Permission } from "./intake.ts";
import type { PrFacts } from "./merge-policy.ts";
import type { MergeQueueFact } from "./merge-queue.ts";
import type { HookDelivery } from "./redelivery.ts";
import type { RepoConfigResult } from "./repo-config.ts";

/**
 * What Conveyor's intake needs from GitHub, behind one small interface so background loops can use
 * it without a webhook context (they hold only the installation id stored on the task row).
 */
export interface GitHubGateway {
  permission(ref: RepoRef, login: string): Promise<Permission | undefined>;
  loadConfig(ref: RepoRef): Promise<RepoConfigResult>;
  getIssue(ref: RepoRef, issueNumber: number): Promise<IssueSnapshot | undefined>;
  listOpenIssuesWithLabel(ref: RepoRef, label: string): Promise<IssueSnapshot[]>;
  /** Whether the pull request was merged; undefined when it does not exist. */
  pullRequestMerged(ref: RepoRef, prNumber: number): Promise<boolean | undefined>;
  /**
   * Who most recently added `label` to the issue, and when (from the issue's events); undefined
   * when no such event is listed.
   */
  lastLabeller(ref: RepoRef, issueNumber: number, label: string): Promise<LabelEvent | undefined>;
  addReaction(ref: RepoRef, issueNumber: number, content: "eyes" | "+1" | "-1"): Promise<void>;
  /** A reaction on an issue or pull request comment (repeating one is harmless). */
  addCommentReaction(ref: RepoRef, commentId: number, content: "eyes" | "+1" | "-1"): Promise<void>;
  addLabels(ref: RepoRef, issueNumber: number, labels: string[]): Promise<void>;
  /** Finds a comment of Conveyor's whose body contains `marker`. */
  findComment(ref: RepoRef, issueNumber: number, marker: string): Promise<number | undefined>;
  createComment(ref: RepoRef, issueNumber: number, body: string): Promise<number>;
  updateComment(ref: RepoRef, commentId: number, body: string): Promise<void>;
  listInstallations(): Promise<number[]>;
  /**
   * Clone URL, default branch and its head commit: what a runner starts from. `marks`: the
   * repository's default branch and head as the caller just read them from Postgres
   * (`repositories`), which a gateway that caches heads checks its copy against instead of
   * reading them again.
   */
  repositoryHead(
    ref: RepoRef,
    marks?: { defaultBranch: string; headSha: string | null },
  ): Promise<{ cloneUrl: string; defaultBranch: string; headSha: string; htmlUrl: string }>;
  /**
   * A short-lived installation token that can only read this one repository's contents: what a
   * runner clones with. Runners never hold a token that can write.
   */
  readOnlyToken(ref: RepoRef): Promise<{ value: string; expiresAt: string }>;
  listInstallationRepositories(installationId: number): Promise<InstalledRepository[]>;
  /**
   * Reads the default branch's head again (conditionally) and records it where every instance's
   * config cache looks: reconciliation's resync for a `push` webhook that never arrived.
   * Optional: a gateway without caches has nothing to refresh.
   */
  refreshDefaultHead?(ref: RepoRef): Promise<void>;

  /**
   * Dispatches a workflow of the repository (`workflow_dispatch`, which needs `actions: write`).
   * GitHub refusing it (no permission, no such workflow or ref, wrong inputs) is a value with
   * GitHub's message; a server error throws.
   */
  dispatchWorkflow(
    ref: RepoRef,
    dispatch: { workflow: string; gitRef: string; inputs: Record<string, string> },
  ): Promise<{ ok: true } | { ok: false; status: number; message: string }>;
}

/**
 * GitHub's log of the App's webhook deliveries, read and acted on with the App's JWT
 * (`src/github/hook-delivery-log.ts`): what the redelivery loop needs to bring lost ones back.
 */
export interface HookDeliveryLog {
  /**
   * One page of the log, newest first (`GET /app/hook/deliveries`); `next` is the cursor of the
   * following page, absent on the last.
   */
  list(page: { cursor?: string | undefined; perPage: number }): Promise<{
    deliveries: HookDelivery[];
    next: string | undefined;
  }>;
  /** Asks GitHub to send that attempt's event again (`POST /app/hook/deliveries/{id}/attempts`). */
  redeliver(id: number): Promise<void>;
}

/** The repository alert issues go to, with the installation that may write there. */
export interface AlertIssueTarget {
  installationId: number;
  fullName: string;
}

/**
 * Writes the GitHub issues that mirror alerts. A port, so the alerter can be tested with a fake;
 * the real one uses the installation's client, whose writes go through the shared write pacer.
 */
export interface AlertIssues {
  /**
   * Opens the alert's issue, or finds the one a crashed earlier attempt opened (by its hidden
   * marker), so an alert never gets two issues.
   */
  open(
    target: AlertIssueTarget,
    alertId: number,
    issue: { title: string; body: string },
  ): Promise<number>;
  comment(target: AlertIssueTarget, issueNumber: number, body: string): Promise<void>;
  /** Comments and closes; an issue someone already closed or deleted is fine. */
  close(target: AlertIssueTarget, issueNumber: number, body: string): Promise<void>;
}

/** A change set to write as one commit on a branch (no pull request). */
export interface BranchWriteInput {
  owner: string;
  repo: string;
  branch: string;
  /** The commit the change was made on; the new commit's only parent. */
  baseSha: string;
  changeSet: ChangeSet;
  /**
   * No pull request was ever recorded for this issue: the branch and its pull request most likely
   * do not exist, so they are created without being looked up first (see `writePullRequest`).
   */
  firstWrite?: boolean;
}

export interface BranchWritten {
  /** Where the branch points after the call: always `commitSha`. */
  headSha: string;
  commitSha: string;
  /** True when the branch already held this exact change on `baseSha` (a retried write). */
  commitReused: boolean;
}

/** The branch write of {@link BranchWriteInput}, then the pull request from that branch. */
export interface PullRequestWriteInput extends BranchWriteInput {
  /** The pull request's base. */
  defaultBranch: string;
  issueNumber: number;
  issueTitle: string;
  /** `conveyor/issue-<N>`: one branch, and so one open pull request, per issue. */
  branch: string;
  body: string;
  title: string;
  labels: string[];
  /**
   * GitHub's id of the repository (`repositories.repository_id`). With it a first write of regular
   * files can go as one GraphQL request (see `writePullRequest`); without it, the REST path.
   */
  repositoryId?: number;
}

export interface PullRequestWritten {
  /** Where the branch points after the call: always `commitSha`. */
  headSha: string;
  prNumber: number;
  prUrl: string;
  /** True when this call opened the pull request; false when it updated an open one. */
  created: boolean;
  /** The commit holding the change set. */
  commitSha: string;
  /** True when the branch already held this exact change on `baseSha` (a retried publish). */
  commitReused: boolean;
}

/**
 * Writes a change set as one commit on the issue's branch and opens or updates its pull request
 * (`src/github/pull-request-writer.ts`). Throws `PullRequestRefused` (`change-set-rules.ts`) before
 * sending anything when the change may not be written at all.
 */
export interface PullRequestWriter {
  write(installationId: number, input: PullRequestWriteInput): Promise<PullRequestWritten>;
  /** Only the commit on the branch: a best-of-N candidate's `conveyor/issue-<N>-<k>`. */
  writeBranch(installationId: number, input: BranchWriteInput): Promise<BranchWritten>;
  /** Deletes a branch Conveyor wrote; a branch already gone is fine. */
  deleteBranch(
    installationId: number,
    input: { owner: string; repo: string; branch: string },
  ): Promise<void>;
}

export interface FactsRequest {
  owner: string;
  repo: string;
  prNumber: number;
  /** The commit Conveyor wrote: the only head it may merge. */
  conveyorHeadSha: string;
  /** The branch the task was made for: Conveyor merges into no other. */
  expectedBaseRef: string;
  /**
   * The commit the runner started from. The checks that reported on it are expected on the head
   * too, so a repository without branch protection still waits for its usual CI. Omitted: none.
   */
  baseSha?: string | undefined;
  /** When that commit was written (checks time out relative to it). */
  waitingSince: string;
  appId: number;
  held: boolean;
  frozen: { reason: string } | null;
  verification: PrFacts["verification"];
  /** `/approve` approvals recorded by the commands module. */
  approvals: PrFacts["approvals"];
  permission: (login: string) => Promise<Permission | undefined>;
  /** The modes Conveyor wrote the change's files with, by path (see `changeSetModes`). */
  modes?: ReadonlyMap<string, FileMode> | undefined;
  now?: () => Date;
}

/** What the collector read besides the policy's facts (the merger adopts update-branch commits with it). */
export interface CollectedFacts extends PrFacts {
  /** The tip of the pull request's base branch as read now; "" when unknown. */
  baseTipSha: string;
  /** The pull request's GraphQL node id (`node_id`); "" when unread. Enqueuing needs it. */
  nodeId: string;
  /**
   * The base branch requires GitHub's merge queue (a `merge_queue` rule in its rulesets): Conveyor
   * enqueues instead of merging. Null when no such rule applies or the rules could not be read.
   */
  mergeQueue: MergeQueueFact | null;
}

/**
 * Reads everything the merge policy looks at for one pull request's current head
 * (`src/github/pr-facts.ts`). An API error becomes an entry of `errors` instead of a throw, so the
 * policy fails closed with the reason shown.
 */
export interface PullRequestFactsReader {
  read(installationId: number, request: FactsRequest): Promise<CollectedFacts>;
}

/** Milliseconds since the epoch; tests hand in a clock they move. */
export type Clock = () => number;

/**
 * Counts an error where it happens (`conveyor_errors_total{source}`, and a row the alerter reads).
 * Never throws into the caller.
 */
export type RecordError = (
  source: string,
  error: unknown,
  details?: Record<string, unknown>,
) => void;

/**
 * What one part of the server tells the others, without knowing who listens: each subsystem's
 * builder says which signals it emits and which it reacts to (`src/core/signals.ts`).
 */
export type Signal =
  /** Tasks changed: every stage looks again (status comments, dispatch, publishing, merging). */
  | "tasks-changed"
  /**
   * A runner's frame moved or updated a task it holds (accepted, progress, result): status
   * comments, publishing and merging look again. No new work for other instances: a slot it freed
   * wakes this instance's dispatcher directly.
   */
  | "runner-reported"
  /** A status comment, a notice or a command's feedback is owed on GitHub. */
  | "status-owed"
  /** There may be work to offer runners, on any instance. */
  | "work-available"
  /** Something happened on a pull request (checks, reviews, pushes): review merges soon. */
  | "pull-request-activity"
  /** A webhook delivery was stored with an effect still owed: the intake loop acts on it. */
  | "intake-owed"
  /** An operator changed tasks through the admin API (retry, cancel, import). */
  | "operator-changed-tasks"
  /** Alerts, alert settings or metric samples changed, on this instance or another. */
  | "monitoring-changed";

export interface Signals {
  emit(signal: Signal): void;
  /** Calls `listener` on every later `emit(signal)`, in the order listeners were added. */
  on(signal: Signal, listener: () => void): void;
}

/**
 * Thrown by a GitHub write that was still waiting for its turn (the write pacer) when the server
 * began to shut down. Nothing was sent: the loops leave the work in Postgres for the next instance
 * instead of counting it as a failed write.
 */
export class GitHubWritesClosed extends Error {
  override name = "GitHubWritesClosed";
  constructor() {
    super("the server is shutting down: the GitHub write was not sent");
  }
}

/** Whether `error` (or its `cause`) is a write refused because the server is shutting down. */
export function isWritesClosed(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause)
    if (e instanceof GitHubWritesClosed) return true;
  return false;
}
