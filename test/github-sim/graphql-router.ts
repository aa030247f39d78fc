import { buildSchema, type GraphQLError, graphql } from "graphql";
import type { RecordedRequest } from "./api-router.ts";
import { nodeId } from "./github-objects.ts";
import { HttpError } from "./http-error.ts";
import {
  QueueRefusal,
  queueEntryId,
  type SimMergeQueue,
  type SimQueueEntry,
} from "./merge-queue.ts";
import { type AppCredentials, authenticate, hasAccess, type Principal } from "./sim-auth.ts";
import { findRepo, type SimContext } from "./sim-context.ts";
import { installationFor, type SimIssue, type SimRepo } from "./sim-state.ts";
import type { SimViolation } from "./sim-violation.ts";

/**
 * The part of GitHub's GraphQL schema the simulator answers (names and types as in GitHub's
 * public schema: https://docs.github.com/en/graphql/reference). A document asking for anything
 * else fails validation and is recorded as a violation.
 */
const SCHEMA = buildSchema(`
  scalar GitObjectID
  scalar DateTime
  enum MergeQueueEntryState { AWAITING_CHECKS LOCKED MERGEABLE QUEUED UNMERGEABLE }
  enum PullRequestMergeMethod { MERGE REBASE SQUASH }
  enum PullRequestState { CLOSED MERGED OPEN }
  type Commit { oid: GitObjectID! }
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
    state: PullRequestState!
    merged: Boolean!
    headRefOid: GitObjectID!
    mergeCommit: Commit
    isInMergeQueue: Boolean!
    mergeQueueEntry: MergeQueueEntry
    autoMergeRequest: AutoMergeRequest
  }
  type Repository { id: ID! nameWithOwner: String! pullRequest(number: Int!): PullRequest }
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
  type Mutation {
    dequeuePullRequest(input: DequeuePullRequestInput!): DequeuePullRequestPayload
    enqueuePullRequest(input: EnqueuePullRequestInput!): EnqueuePullRequestPayload
    enablePullRequestAutoMerge(input: EnablePullRequestAutoMergeInput!): EnablePullRequestAutoMergePayload
  }
`);

type Installation = Extract<Principal, { kind: "installation" }>;

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
 * pull request) and `repository { pullRequest { isInMergeQueue mergeQueueEntry … } }`. Installation
 * tokens only; the token's repository access and permissions apply as on GitHub (the mutations need
 * `contents: write` and `pull_requests: write`). Answers `200` with `data` and `errors` like
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

  const entryView = (entry: SimQueueEntry) => ({
    id: queueEntryId(entry),
    position: queue.positionOf(entry),
    state: entry.group ? "AWAITING_CHECKS" : "QUEUED",
    enqueuedAt: entry.enqueuedAt,
    headCommit: { oid: entry.headSha },
    pullRequest: () => pullView(entry.repo, entry.issue),
  });

  const pullView = (repo: SimRepo, issue: SimIssue) => {
    const pull = issue.pull!;
    const entry = queue.entryOf(repo, issue.number);
    return {
      id: nodeId("PullRequest", pull.id),
      number: issue.number,
      state: pull.merged ? "MERGED" : issue.state === "open" ? "OPEN" : "CLOSED",
      merged: pull.merged,
      headRefOid: pull.headSha,
      mergeCommit: pull.mergeCommitSha ? { oid: pull.mergeCommitSha } : null,
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
