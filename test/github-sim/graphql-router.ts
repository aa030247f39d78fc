import { buildSchema, type GraphQLError, graphql } from "graphql";
import type { RecordedRequest } from "./api-router.ts";
import { guardWorkflows } from "./git-routes.ts";
import type { TreeChange } from "./git-store.ts";
import { latestStatuses, nodeId } from "./github-objects.ts";
import { HttpError } from "./http-error.ts";
import {
  QueueRefusal,
  queueEntryId,
  type SimMergeQueue,
  type SimQueueEntry,
} from "./merge-queue.ts";
import { branchMoved, createPull, noreplyIdentity } from "./pull-actions.ts";
import { pullFacts } from "./pull-facts.ts";
import { type AppCredentials, authenticate, hasAccess, type Principal } from "./sim-auth.ts";
import { findRepo, type SimContext } from "./sim-context.ts";
import {
  installationFor,
  type SimCheckRun,
  type SimIssue,
  type SimRepo,
  type SimStatus,
  type SimUser,
} from "./sim-state.ts";
import type { SimViolation } from "./sim-violation.ts";

/**
 * The part of GitHub's GraphQL schema the simulator answers (names and types as in GitHub's
 * public schema: https://docs.github.com/en/graphql/reference). A document asking for anything
 * else fails validation and is recorded as a violation.
 */
const SCHEMA = buildSchema(`
  scalar GitObjectID
  scalar DateTime
  scalar URI
  scalar Base64String
  enum MergeQueueEntryState { AWAITING_CHECKS LOCKED MERGEABLE QUEUED UNMERGEABLE }
  enum PullRequestMergeMethod { MERGE REBASE SQUASH }
  enum PullRequestState { CLOSED MERGED OPEN }
  enum MergeableState { CONFLICTING MERGEABLE UNKNOWN }
  enum MergeStateStatus { BEHIND BLOCKED CLEAN DIRTY DRAFT HAS_HOOKS UNKNOWN UNSTABLE }
  enum PullRequestReviewState { APPROVED CHANGES_REQUESTED COMMENTED DISMISSED PENDING }
  enum StatusState { ERROR EXPECTED FAILURE PENDING SUCCESS }
  enum CheckStatusState { COMPLETED IN_PROGRESS PENDING QUEUED REQUESTED WAITING }
  enum CheckConclusionState {
    ACTION_REQUIRED CANCELLED FAILURE NEUTRAL SKIPPED STALE STARTUP_FAILURE SUCCESS TIMED_OUT
  }
  type PageInfo { endCursor: String hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String }
  interface Actor { login: String! }
  type User implements Actor { login: String! }
  type Bot implements Actor { login: String! }
  type Organization implements Actor { login: String! }
  interface GitObject { oid: GitObjectID! }
  type Commit implements GitObject { oid: GitObjectID! statusCheckRollup: StatusCheckRollup }
  type Ref { name: String! prefix: String! target: GitObject }
  type App { databaseId: Int name: String! slug: String! }
  type CheckSuite { databaseId: Int app: App }
  type CheckRun {
    databaseId: Int
    name: String!
    status: CheckStatusState!
    conclusion: CheckConclusionState
    completedAt: DateTime
    title: String
    summary: String
    checkSuite: CheckSuite!
  }
  type StatusContext { context: String! state: StatusState! }
  union StatusCheckRollupContext = CheckRun | StatusContext
  type StatusCheckRollupContextConnection {
    nodes: [StatusCheckRollupContext]
    pageInfo: PageInfo!
    totalCount: Int!
  }
  type StatusCheckRollup {
    state: StatusState!
    contexts(after: String, before: String, first: Int, last: Int): StatusCheckRollupContextConnection!
  }
  type Label { name: String! }
  type LabelConnection { nodes: [Label] pageInfo: PageInfo! totalCount: Int! }
  type PullRequestReview {
    author: Actor
    state: PullRequestReviewState!
    commit: Commit
    submittedAt: DateTime
  }
  type PullRequestReviewConnection { nodes: [PullRequestReview] pageInfo: PageInfo! totalCount: Int! }
  type MergeQueueEntry {
    id: ID!
    position: Int!
    state: MergeQueueEntryState!
    enqueuedAt: DateTime!
    headCommit: Commit
    pullRequest: PullRequest
  }
  type AutoMergeRequest { mergeMethod: PullRequestMergeMethod! enabledAt: DateTime }
  type PullRequest {
    id: ID!
    number: Int!
    url: URI!
    state: PullRequestState!
    merged: Boolean!
    title: String!
    isDraft: Boolean!
    author: Actor
    headRefOid: GitObjectID!
    baseRefName: String!
    baseRef: Ref
    mergeable: MergeableState!
    mergeStateStatus: MergeStateStatus!
    changedFiles: Int!
    labels(after: String, before: String, first: Int, last: Int): LabelConnection
    reviews(after: String, before: String, first: Int, last: Int): PullRequestReviewConnection
    mergeCommit: Commit
    isInMergeQueue: Boolean!
    mergeQueueEntry: MergeQueueEntry
    autoMergeRequest: AutoMergeRequest
  }
  type Repository {
    id: ID!
    databaseId: Int
    nameWithOwner: String!
    pullRequest(number: Int!): PullRequest
    object(oid: GitObjectID, expression: String): GitObject
  }
  type Query { repository(owner: String!, name: String!): Repository }
  input EnqueuePullRequestInput {
    clientMutationId: String
    pullRequestId: ID!
    expectedHeadOid: GitObjectID
    jump: Boolean
  }
  type EnqueuePullRequestPayload { clientMutationId: String mergeQueueEntry: MergeQueueEntry }
  input EnablePullRequestAutoMergeInput {
    clientMutationId: String
    pullRequestId: ID!
    expectedHeadOid: GitObjectID
    mergeMethod: PullRequestMergeMethod
    commitHeadline: String
    commitBody: String
    authorEmail: String
  }
  type EnablePullRequestAutoMergePayload { clientMutationId: String pullRequest: PullRequest }
  input DequeuePullRequestInput { clientMutationId: String id: ID! }
  type DequeuePullRequestPayload { clientMutationId: String mergeQueueEntry: MergeQueueEntry }
  input CreateRefInput { clientMutationId: String name: String! oid: GitObjectID! repositoryId: ID! }
  type CreateRefPayload { clientMutationId: String ref: Ref }
  input CommittableBranch { branchName: String id: ID repositoryNameWithOwner: String }
  input CommitMessage { body: String headline: String! }
  input FileAddition { contents: Base64String! path: String! }
  input FileDeletion { path: String! }
  input FileChanges { additions: [FileAddition!] = [] deletions: [FileDeletion!] = [] }
  input CreateCommitOnBranchInput {
    branch: CommittableBranch!
    clientMutationId: String
    expectedHeadOid: GitObjectID!
    fileChanges: FileChanges
    message: CommitMessage!
  }
  type CreateCommitOnBranchPayload { clientMutationId: String commit: Commit ref: Ref }
  input CreatePullRequestInput {
    baseRefName: String!
    body: String
    clientMutationId: String
    draft: Boolean = false
    headRefName: String!
    headRepositoryId: ID
    maintainerCanModify: Boolean = true
    repositoryId: ID!
    title: String!
  }
  type CreatePullRequestPayload { clientMutationId: String pullRequest: PullRequest }
  type Mutation {
    createCommitOnBranch(input: CreateCommitOnBranchInput!): CreateCommitOnBranchPayload
    createPullRequest(input: CreatePullRequestInput!): CreatePullRequestPayload
    createRef(input: CreateRefInput!): CreateRefPayload
    dequeuePullRequest(input: DequeuePullRequestInput!): DequeuePullRequestPayload
    enqueuePullRequest(input: EnqueuePullRequestInput!): EnqueuePullRequestPayload
    enablePullRequestAutoMerge(input: EnablePullRequestAutoMergeInput!): EnablePullRequestAutoMergePayload
  }
`);

type Installation = Extract<Principal, { kind: "installation" }>;

interface CreateRefInput {
  clientMutationId?: string | null;
  name: string;
  oid: string;
  repositoryId: string;
}

interface CreateCommitOnBranchInput {
  clientMutationId?: string | null;
  branch: {
    branchName?: string | null;
    id?: string | null;
    repositoryNameWithOwner?: string | null;
  };
  expectedHeadOid: string;
  fileChanges?: {
    additions?: { path: string; contents: string }[] | null;
    deletions?: { path: string }[] | null;
  } | null;
  message: { headline: string; body?: string | null };
}

interface CreatePullRequestInput {
  clientMutationId?: string | null;
  repositoryId: string;
  headRepositoryId?: string | null;
  baseRefName: string;
  headRefName: string;
  title: string;
  body?: string | null;
  draft?: boolean | null;
  maintainerCanModify?: boolean | null;
}

/** GitHub's connection arguments; the simulator pages forwards (`first`/`after`) only. */
interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

/**
 * One page of a connection as GitHub answers it: `first` is required and at most 100, `after` is
 * the cursor of the last item seen (opaque to clients; here the item's index).
 */
function connection<T>(items: readonly T[], args: PageArgs, field: string) {
  if (args.last != null || args.before != null) {
    throw new Error(`the simulator pages \`${field}\` forwards only (first/after)`);
  }
  if (args.first == null) {
    throw new Error(
      `You must provide a \`first\` or \`last\` value to properly paginate the \`${field}\` connection.`,
    );
  }
  if (args.first < 0 || args.first > 100) {
    throw new Error(
      `Requesting ${args.first} records on the \`${field}\` connection exceeds the \`first\` limit of 100 records.`,
    );
  }
  const cursor = (index: number) => Buffer.from(`cursor:${index + 1}`).toString("base64");
  const start = args.after
    ? Number(
        Buffer.from(args.after, "base64")
          .toString()
          .replace(/^cursor:/, ""),
      )
    : 0;
  const page = items.slice(start, start + args.first);
  return {
    nodes: page,
    totalCount: items.length,
    pageInfo: {
      hasNextPage: start + page.length < items.length,
      hasPreviousPage: start > 0,
      startCursor: page.length > 0 ? cursor(start) : null,
      endCursor: page.length > 0 ? cursor(start + page.length - 1) : null,
    },
  };
}

/** An actor as GraphQL shows it: a bot's login without REST's `[bot]` suffix. */
function actorView(user: SimUser) {
  return {
    __typename: user.type,
    login: user.type === "Bot" ? user.login.replace(/\[bot\]$/, "") : user.login,
  };
}

const FAILING_CONCLUSIONS = new Set([
  "failure",
  "cancelled",
  "timed_out",
  "action_required",
  "startup_failure",
]);

/**
 * A commit's `statusCheckRollup`: the latest check run per app and name (REST's
 * `filter=latest`) and the latest status per context; null when nothing reported on it. Reading
 * it needs the `checks` and `statuses` read permissions.
 */
function rollupOf(repo: SimRepo, sha: string, principal: Installation) {
  const { permissions } = principal.token;
  if (!hasAccess(permissions, "checks", "read") || !hasAccess(permissions, "statuses", "read")) {
    throw new TypedError("FORBIDDEN", "Resource not accessible by integration");
  }
  const seen = new Set<string>();
  const runs = repo.checkRuns
    .filter((run) => run.headSha === sha)
    .reverse()
    .filter((run) => {
      const key = `${run.app.id}/${run.name}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  const statuses = latestStatuses(repo.statuses, sha);
  if (runs.length === 0 && statuses.length === 0) return null;
  const failing =
    runs.some((run) => FAILING_CONCLUSIONS.has(run.conclusion ?? "")) ||
    statuses.some((status) => status.state === "failure" || status.state === "error");
  const pending =
    runs.some((run) => run.status !== "completed") ||
    statuses.some((status) => status.state === "pending");
  const contexts = [
    ...runs.map((run: SimCheckRun) => ({
      __typename: "CheckRun",
      databaseId: run.id,
      name: run.name,
      status: run.status.toUpperCase(),
      conclusion: run.conclusion ? run.conclusion.toUpperCase() : null,
      completedAt: run.completedAt,
      title: run.output.title,
      summary: run.output.summary,
      checkSuite: {
        databaseId: run.suite.id,
        app: { databaseId: run.app.id, name: run.app.name, slug: run.app.slug },
      },
    })),
    ...statuses.map((status: SimStatus) => ({
      __typename: "StatusContext",
      context: status.context,
      state: status.state.toUpperCase(),
    })),
  ];
  return {
    state: failing ? "FAILURE" : pending ? "PENDING" : "SUCCESS",
    contexts: (args: PageArgs) => connection(contexts, args, "contexts"),
  };
}

/** An error GitHub reports in `errors[]` with a `type` (NOT_FOUND, FORBIDDEN, UNPROCESSABLE). */
class TypedError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `POST /graphql` for the documents Conveyor sends: `enqueuePullRequest`, `dequeuePullRequest`,
 * `enablePullRequestAutoMerge` (only on a branch that requires the merge queue, where it queues the
 * pull request), the first publish's `createRef`, `createCommitOnBranch` and `createPullRequest`,
 * and `repository { id databaseId pullRequest { isInMergeQueue mergeQueueEntry … } }`. Installation
 * tokens only; the token's repository access and permissions apply as on GitHub (the queue's
 * mutations need `contents: write` and `pull_requests: write`; `createRef` and
 * `createCommitOnBranch` contents write, `createPullRequest` pull_requests write). Answers `200` with `data` and `errors` like
 * GitHub; a document outside the schema is also recorded in `sim.violations`.
 */
export function createGraphqlRouter(options: {
  ctx: SimContext;
  queue: SimMergeQueue;
  credentials: AppCredentials;
  onViolation(violation: SimViolation): void;
}) {
  const { ctx, queue } = options;

  const visible = (principal: Installation, repo: SimRepo) => {
    const installation = installationFor(ctx.state, repo, principal.app);
    if (installation?.id !== principal.token.installation.id) return false;
    return !principal.token.repositoryIds || principal.token.repositoryIds.has(repo.id);
  };

  const pullByNodeId = (principal: Installation, id: string) => {
    for (const repo of ctx.state.repos.values()) {
      if (!visible(principal, repo)) continue;
      for (const issue of repo.issues.values()) {
        if (issue.pull && nodeId("PullRequest", issue.pull.id) === id) return { repo, issue };
      }
    }
    throw new TypedError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`);
  };

  const mayWrite = (principal: Installation) => {
    const { permissions } = principal.token;
    if (
      !hasAccess(permissions, "contents", "write") ||
      !hasAccess(permissions, "pull_requests", "write")
    ) {
      throw new TypedError("FORBIDDEN", "Resource not accessible by integration");
    }
  };

  /** Route handlers' errors, as GitHub's GraphQL API reports them: typed, in `errors[]`. */
  const typed = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      const type =
        error.status === 403 ? "FORBIDDEN" : error.status === 404 ? "NOT_FOUND" : "UNPROCESSABLE";
      throw new TypedError(type, error.errors?.find((e) => e.message)?.message ?? error.message);
    }
  };

  const mayWriteTo = (principal: Installation, permission: "contents" | "pull_requests") => {
    if (!hasAccess(principal.token.permissions, permission, "write")) {
      throw new TypedError("FORBIDDEN", "Resource not accessible by integration");
    }
  };

  const repoByNodeId = (principal: Installation, id: string) => {
    for (const repo of ctx.state.repos.values()) {
      if (visible(principal, repo) && nodeId("Repository", repo.id) === id) return repo;
    }
    throw new TypedError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`);
  };

  /** A `Ref`: `name` without its prefix (`main`, prefix `refs/heads/`), as GitHub shows it. */
  const refView = (repo: SimRepo, ref: string, sha: string) => {
    const prefix = ref.slice(0, ref.indexOf("/", "refs/".length) + 1);
    return { name: ref.slice(prefix.length), prefix, target: commitView(repo, sha) };
  };

  /** A commit object; its rollup is read when asked for, with the asking token's permissions. */
  const commitView = (repo: SimRepo, sha: string) => ({
    __typename: "Commit",
    oid: sha,
    statusCheckRollup: (_args: unknown, principal: Installation) => rollupOf(repo, sha, principal),
  });

  const entryView = (entry: SimQueueEntry) => ({
    id: queueEntryId(entry),
    position: queue.positionOf(entry),
    state: entry.group ? "AWAITING_CHECKS" : "QUEUED",
    enqueuedAt: entry.enqueuedAt,
    headCommit: commitView(entry.repo, entry.headSha),
    pullRequest: () => pullView(entry.repo, entry.issue),
  });

  const pullView = (repo: SimRepo, issue: SimIssue) => {
    const pull = issue.pull!;
    const entry = queue.entryOf(repo, issue.number);
    // What GitHub computes from git (mergeability, diff stats), once per pull request per query.
    let computed: ReturnType<typeof pullFacts> | undefined;
    const facts = () => {
      computed ??= pullFacts(ctx, repo, issue);
      return computed;
    };
    return {
      id: nodeId("PullRequest", pull.id),
      number: issue.number,
      url: `${ctx.base}/${repo.fullName}/pull/${issue.number}`,
      title: issue.title,
      isDraft: pull.draft,
      author: actorView(issue.user),
      state: pull.merged ? "MERGED" : issue.state === "open" ? "OPEN" : "CLOSED",
      merged: pull.merged,
      headRefOid: pull.headSha,
      baseRefName: pull.baseRef,
      baseRef: async () => {
        const tip = await ctx.git.readRef(repo.fullName, `refs/heads/${pull.baseRef}`);
        return tip
          ? { name: pull.baseRef, prefix: "refs/heads/", target: commitView(repo, tip) }
          : null;
      },
      mergeable: async () => {
        const { mergeable } = await facts();
        return mergeable === null ? "UNKNOWN" : mergeable ? "MERGEABLE" : "CONFLICTING";
      },
      mergeStateStatus: async () => (await facts()).mergeableState.toUpperCase(),
      changedFiles: async () => (await facts()).changedFiles,
      labels: (args: PageArgs) =>
        connection(
          issue.labels.map((name) => ({ name })),
          args,
          "labels",
        ),
      reviews: (args: PageArgs) =>
        connection(
          pull.reviews.map((review) => ({
            author: actorView(review.user),
            state: review.state,
            commit: review.commitId ? commitView(repo, review.commitId) : null,
            submittedAt: review.submittedAt,
          })),
          args,
          "reviews",
        ),
      mergeCommit: pull.mergeCommitSha ? commitView(repo, pull.mergeCommitSha) : null,
      isInMergeQueue: entry !== undefined,
      mergeQueueEntry: entry ? entryView(entry) : null,
      autoMergeRequest: null,
    };
  };

  const enqueue = async (
    principal: Installation,
    input: { pullRequestId: string; expectedHeadOid?: string; jump?: boolean },
  ) => {
    mayWrite(principal);
    const { repo, issue } = pullByNodeId(principal, input.pullRequestId);
    try {
      return await queue.enqueue(repo, issue, principal.actor, {
        expectedHeadOid: input.expectedHeadOid,
        jump: input.jump,
      });
    } catch (error) {
      if (error instanceof QueueRefusal) throw new TypedError(error.type, error.message);
      throw error;
    }
  };

  const root = {
    repository: (args: { owner: string; name: string }, principal: Installation) => {
      const repo = findRepo(ctx, `${args.owner}/${args.name}`);
      if (!repo || !visible(principal, repo)) {
        throw new TypedError(
          "NOT_FOUND",
          `Could not resolve to a Repository with the name '${args.owner}/${args.name}'.`,
        );
      }
      return {
        id: nodeId("Repository", repo.id),
        databaseId: repo.id,
        nameWithOwner: repo.fullName,
        pullRequest: ({ number }: { number: number }) => {
          const issue = repo.issues.get(number);
          if (!issue?.pull) {
            throw new TypedError(
              "NOT_FOUND",
              `Could not resolve to a PullRequest with the number of ${number}.`,
            );
          }
          return pullView(repo, issue);
        },
        // A commit by its id (what else `object` can name, trees and blobs, is not modelled).
        object: async ({ oid }: { oid?: string }) => {
          if (!oid) throw new Error("the simulator looks objects up by `oid` only");
          const commit = await ctx.git.readCommit(repo.fullName, oid).catch(() => undefined);
          return commit ? commitView(repo, oid) : null;
        },
      };
    },
    // What `POST /repos/{owner}/{repo}/git/refs` does: contents write; a ref that exists is refused.
    createRef: async ({ input }: { input: CreateRefInput }, principal: Installation) => {
      mayWriteTo(principal, "contents");
      const repo = repoByNodeId(principal, input.repositoryId);
      const ref = input.name;
      if (!/^refs\/[^/]+\/.+/.test(ref)) {
        throw new TypedError(
          "UNPROCESSABLE",
          "Reference name must start with 'refs/' and have at least two slashes.",
        );
      }
      if (!(await ctx.git.objectType(repo.fullName, input.oid))) {
        throw new TypedError("UNPROCESSABLE", "Object does not exist");
      }
      const exists = `A ref named "${ref}" already exists in the repository.`;
      if (await ctx.git.readRef(repo.fullName, ref).catch(() => undefined)) {
        throw new TypedError("UNPROCESSABLE", exists);
      }
      await typed(() => guardWorkflows(ctx, principal, repo, undefined, input.oid));
      if (!(await ctx.git.updateRef(repo.fullName, ref, input.oid, ""))) {
        throw new TypedError("UNPROCESSABLE", exists);
      }
      if (ref.startsWith("refs/heads/")) {
        ctx.onBranchHead?.(repo, ref.slice("refs/heads/".length), input.oid);
      }
      return {
        clientMutationId: input.clientMutationId ?? null,
        ref: refView(repo, ref, input.oid),
      };
    },
    // A commit on the branch's head with the files added (mode 100644) and deleted, made and
    // signed by GitHub for the App, the branch moved to it as `PATCH …/git/refs/{ref}` moves it
    // (https://docs.github.com/en/graphql/reference/mutations#createcommitonbranch).
    createCommitOnBranch: async (
      { input }: { input: CreateCommitOnBranchInput },
      principal: Installation,
    ) => {
      mayWriteTo(principal, "contents");
      const { branch } = input;
      if (branch.id != null || !branch.repositoryNameWithOwner || !branch.branchName) {
        throw new Error(
          "the simulator names a CommittableBranch by repositoryNameWithOwner and branchName only",
        );
      }
      const repo = findRepo(ctx, branch.repositoryNameWithOwner);
      if (!repo || !visible(principal, repo)) {
        throw new TypedError(
          "NOT_FOUND",
          `Could not resolve to a Repository with the name '${branch.repositoryNameWithOwner}'.`,
        );
      }
      const ref = `refs/heads/${branch.branchName}`;
      const head = await ctx.git.readRef(repo.fullName, ref).catch(() => undefined);
      if (!head) {
        throw new TypedError("NOT_FOUND", `Could not resolve to a Ref with the name '${ref}'.`);
      }
      const stale = `Expected branch to point to "${input.expectedHeadOid}" but it did not. Pull and try again.`;
      if (head !== input.expectedHeadOid) throw new TypedError("STALE_DATA", stale);
      const headCommit = (await ctx.git.readCommit(repo.fullName, head))!;
      const files = new Set(
        ((await ctx.git.readTree(repo.fullName, headCommit.tree, true))?.entries ?? [])
          .filter((entry) => entry.type === "blob")
          .map((entry) => entry.path),
      );
      const changes: TreeChange[] = [];
      for (const deletion of input.fileChanges?.deletions ?? []) {
        if (!files.has(deletion.path)) {
          throw new TypedError(
            "UNPROCESSABLE",
            `A path was requested for deletion which does not exist as of commit oid \`${head}\``,
          );
        }
        changes.push({ path: deletion.path, mode: "100644", type: "blob", sha: null });
      }
      for (const addition of input.fileChanges?.additions ?? []) {
        const data = Buffer.from(addition.contents, "base64");
        const sha = await ctx.git.writeBlob(repo.fullName, data);
        changes.push({ path: addition.path, mode: "100644", type: "blob", sha });
      }
      const tree = await typed(async () => {
        try {
          return await ctx.git.createTree(repo.fullName, headCommit.tree, changes);
        } catch (error) {
          throw new TypedError(
            "UNPROCESSABLE",
            `could not write the tree (${error instanceof Error ? error.message : String(error)})`,
          );
        }
      });
      const { headline, body } = input.message;
      const identity = noreplyIdentity(principal.actor, ctx.state.now());
      const sha = await ctx.git.createCommit(repo.fullName, {
        tree,
        parents: [head],
        message: body ? `${headline}\n\n${body}` : headline,
        author: identity,
        committer: identity,
      });
      repo.signedCommits.add(sha);
      await typed(() => guardWorkflows(ctx, principal, repo, head, sha));
      if (!(await ctx.git.updateRef(repo.fullName, ref, sha, head))) {
        throw new TypedError("STALE_DATA", stale);
      }
      await branchMoved(ctx, repo, branch.branchName, sha, principal.actor);
      return {
        clientMutationId: input.clientMutationId ?? null,
        commit: commitView(repo, sha),
        ref: refView(repo, ref, sha),
      };
    },
    // What `POST /repos/{owner}/{repo}/pulls` does (pull_requests write), with its refusals.
    createPullRequest: async (
      { input }: { input: CreatePullRequestInput },
      principal: Installation,
    ) => {
      mayWriteTo(principal, "pull_requests");
      const repo = repoByNodeId(principal, input.repositoryId);
      if (input.headRepositoryId != null && input.headRepositoryId !== input.repositoryId) {
        throw new Error(
          "the simulator does not model forks: headRepositoryId must be the repository",
        );
      }
      const { issue } = await typed(() =>
        createPull(ctx, repo, {
          title: input.title,
          body: input.body ?? null,
          head: input.headRefName,
          base: input.baseRefName,
          draft: input.draft ?? false,
          maintainerCanModify: input.maintainerCanModify ?? true,
          user: principal.actor,
          viaApp: principal.app,
        }),
      );
      return {
        clientMutationId: input.clientMutationId ?? null,
        pullRequest: pullView(repo, issue),
      };
    },
    enqueuePullRequest: async (
      { input }: { input: { clientMutationId?: string; pullRequestId: string } },
      principal: Installation,
    ) => {
      const entry = await enqueue(principal, input);
      return {
        clientMutationId: input.clientMutationId ?? null,
        mergeQueueEntry: entryView(entry),
      };
    },
    dequeuePullRequest: async (
      { input }: { input: { clientMutationId?: string; id: string } },
      principal: Installation,
    ) => {
      mayWrite(principal);
      const { repo, issue } = pullByNodeId(principal, input.id);
      const entry = queue.entryOf(repo, issue.number);
      if (!entry) {
        throw new TypedError("UNPROCESSABLE", "Pull request is not in the merge queue");
      }
      const view = entryView(entry);
      await queue.dequeue(repo, issue.number, principal.actor);
      return { clientMutationId: input.clientMutationId ?? null, mergeQueueEntry: view };
    },
    enablePullRequestAutoMerge: async (
      { input }: { input: { clientMutationId?: string; pullRequestId: string } },
      principal: Installation,
    ) => {
      const entry = await enqueue(principal, input);
      return {
        clientMutationId: input.clientMutationId ?? null,
        pullRequest: pullView(entry.repo, entry.issue),
      };
    },
  };

  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json; charset=utf-8" },
    });

  return async function handle(
    request: Request,
    url: URL,
  ): Promise<{ response: Response; record: RecordedRequest } | undefined> {
    if (url.pathname !== "/graphql") return undefined;
    const record: RecordedRequest = {
      method: request.method.toUpperCase(),
      path: url.pathname,
      route: "/graphql",
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      status: 0,
      auth: "none",
      at: Date.now(),
    };
    const answer = (status: number, body: unknown) => {
      record.status = status;
      return { response: json(status, body), record };
    };
    const refuse = (status: number, message: string) => {
      options.onViolation({ kind: "request", method: record.method, path: url.pathname, message });
      return answer(status, { message });
    };
    if (record.method !== "POST") return refuse(404, `${record.method} /graphql: only POST`);
    let body: { query?: unknown; variables?: unknown };
    try {
      body = JSON.parse(await request.text()) as typeof body;
      record.body = body;
    } catch {
      return refuse(400, "Problems parsing JSON");
    }
    let principal: Principal;
    try {
      principal = authenticate(
        ctx.state,
        options.credentials,
        request.headers.get("authorization") ?? undefined,
      );
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return answer(error.status, { message: error.message });
    }
    record.auth = principal.kind;
    if (principal.kind !== "installation") {
      return refuse(403, "simulator answers GraphQL for installation tokens only");
    }
    record.installationId = principal.token.installation.id;
    if (typeof body.query !== "string") return refuse(400, "A query attribute must be specified");
    const result = await graphql({
      schema: SCHEMA,
      source: body.query,
      rootValue: root,
      contextValue: principal,
      variableValues: (body.variables ?? {}) as Record<string, unknown>,
    });
    const errors = (result.errors ?? []).map((error: GraphQLError) => {
      const typed = error.originalError instanceof TypedError ? error.originalError : undefined;
      if (!typed) {
        // Not an answer GitHub would give on purpose: a document outside the modelled schema,
        // bad variables or a simulator crash.
        options.onViolation({
          kind: "request",
          method: "POST",
          path: url.pathname,
          message: `POST /graphql: ${error.message}`,
        });
      }
      return {
        ...(typed ? { type: typed.type } : {}),
        ...(error.path ? { path: error.path } : {}),
        ...(error.locations ? { locations: error.locations } : {}),
        message: error.message,
      };
    });
    return answer(200, {
      ...(result.data !== undefined ? { data: result.data } : {}),
      ...(errors.length > 0 ? { errors } : {}),
    });
  };
}
