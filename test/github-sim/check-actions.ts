import {
  type Json,
  renderCheckRun,
  renderCheckSuite,
  renderPullRef,
  renderRepoCommit,
  repoApiUrl,
} from "./github-objects.ts";
import { validationFailed } from "./http-error.ts";
import type { Acted } from "./issue-actions.ts";
import type { PendingDelivery, SimContext } from "./sim-context.ts";
import type {
  CheckStatus,
  CommitState,
  SimApp,
  SimCheckRun,
  SimCheckSuite,
  SimRepo,
  SimStatus,
  SimUser,
} from "./sim-state.ts";

export interface CheckRunInput {
  name?: string;
  head_sha?: string;
  status?: CheckStatus;
  conclusion?: string;
  started_at?: string;
  completed_at?: string;
  details_url?: string;
  external_id?: string;
  output?: { title?: string; summary?: string; text?: string };
}

/** Open pull requests whose head is `sha`, as check runs and suites list them. */
export function pullRefsForSha(ctx: SimContext, repo: SimRepo, sha: string): Json[] {
  return [...repo.issues.values()]
    .filter((issue) => issue.pull && issue.state === "open" && issue.pull.headSha === sha)
    .map((issue) => renderPullRef(ctx.base, repo, issue, issue.pull!.baseSha));
}

export function renderCheckRunFor(ctx: SimContext, repo: SimRepo, run: SimCheckRun): Json {
  return renderCheckRun(ctx.base, repo, run, pullRefsForSha(ctx, repo, run.headSha));
}

async function requireCommit(ctx: SimContext, repo: SimRepo, sha: string, field: string) {
  const commit = await ctx.git.resolveCommit(repo.fullName, sha);
  if (!commit) {
    throw validationFailed(
      [{ resource: "Commit", field, code: "invalid" }],
      `No commit found for SHA: ${sha}`,
    );
  }
  return commit;
}

async function suiteFor(
  ctx: SimContext,
  repo: SimRepo,
  sha: string,
  app: SimApp,
): Promise<SimCheckSuite> {
  let suite = repo.checkSuites.find((s) => s.headSha === sha && s.app.id === app.id);
  if (!suite) {
    const branches = await ctx.git.listRefs(repo.fullName, "refs/heads/");
    const branch =
      branches.find((ref) => ref.sha === sha)?.ref.replace(/^refs\/heads\//, "") ?? null;
    const now = ctx.state.now();
    suite = {
      id: ctx.state.nextId(),
      headSha: sha,
      headBranch: branch,
      app,
      createdAt: now,
      updatedAt: now,
    };
    repo.checkSuites.push(suite);
  }
  return suite;
}

async function suiteCompletedPayload(
  ctx: SimContext,
  repo: SimRepo,
  suite: SimCheckSuite,
): Promise<Json> {
  const commit = (await ctx.git.readCommit(repo.fullName, suite.headSha))!;
  const rendered = renderCheckSuite(ctx.base, repo, suite, repo.checkRuns);
  return {
    action: "completed",
    check_suite: {
      ...rendered,
      pull_requests: pullRefsForSha(ctx, repo, suite.headSha),
      head_commit: {
        id: commit.sha,
        tree_id: commit.tree,
        message: commit.message.trim(),
        timestamp: commit.committer.date,
        author: { name: commit.author.name, email: commit.author.email },
        committer: { name: commit.committer.name, email: commit.committer.email },
      },
    },
  };
}

async function emitCompletion(
  ctx: SimContext,
  repo: SimRepo,
  run: SimCheckRun,
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const deliveries = [
    ctx.emit(
      repo,
      "check_run",
      { action: "completed", check_run: renderCheckRunFor(ctx, repo, run) },
      sender,
    ),
  ];
  const siblings = repo.checkRuns.filter((other) => other.suite.id === run.suite.id);
  if (siblings.every((other) => other.status === "completed")) {
    run.suite.updatedAt = ctx.state.now();
    deliveries.push(
      ctx.emit(repo, "check_suite", await suiteCompletedPayload(ctx, repo, run.suite), sender),
    );
  }
  return deliveries;
}

export async function createCheckRun(
  ctx: SimContext,
  repo: SimRepo,
  input: CheckRunInput,
  app: SimApp,
): Promise<Acted<{ run: SimCheckRun }>> {
  if (!input.name)
    throw validationFailed([{ resource: "CheckRun", field: "name", code: "missing_field" }]);
  if (!input.head_sha) {
    throw validationFailed([{ resource: "CheckRun", field: "head_sha", code: "missing_field" }]);
  }
  const headSha = await requireCommit(ctx, repo, input.head_sha, "head_sha");
  const now = ctx.state.now();
  const status: CheckStatus = input.conclusion ? "completed" : (input.status ?? "queued");
  if (status === "completed" && !input.conclusion) {
    throw validationFailed([{ resource: "CheckRun", field: "conclusion", code: "missing_field" }]);
  }
  const run: SimCheckRun = {
    id: ctx.state.nextId(),
    suite: await suiteFor(ctx, repo, headSha, app),
    app,
    name: input.name,
    headSha,
    status,
    conclusion: input.conclusion ?? null,
    startedAt: input.started_at ?? now,
    completedAt: status === "completed" ? (input.completed_at ?? now) : null,
    output: {
      title: input.output?.title ?? null,
      summary: input.output?.summary ?? null,
      text: input.output?.text ?? null,
    },
    detailsUrl: input.details_url ?? null,
    externalId: input.external_id ?? null,
  };
  repo.checkRuns.push(run);
  if (status === "completed") ctx.onChecksChanged?.(repo, headSha);
  const deliveries = [
    ctx.emit(
      repo,
      "check_run",
      { action: "created", check_run: renderCheckRunFor(ctx, repo, run) },
      app.bot,
    ),
  ];
  if (status === "completed") {
    const siblings = repo.checkRuns.filter((other) => other.suite.id === run.suite.id);
    if (siblings.every((other) => other.status === "completed")) {
      deliveries.push(
        ctx.emit(repo, "check_suite", await suiteCompletedPayload(ctx, repo, run.suite), app.bot),
      );
    }
  }
  return { run, deliveries };
}

export async function updateCheckRun(
  ctx: SimContext,
  repo: SimRepo,
  run: SimCheckRun,
  input: CheckRunInput,
): Promise<PendingDelivery[]> {
  const wasCompleted = run.status === "completed";
  if (input.name !== undefined) run.name = input.name;
  if (input.details_url !== undefined) run.detailsUrl = input.details_url;
  if (input.external_id !== undefined) run.externalId = input.external_id;
  if (input.started_at !== undefined) run.startedAt = input.started_at;
  if (input.output) {
    run.output = {
      title: input.output.title ?? run.output.title,
      summary: input.output.summary ?? run.output.summary,
      text: input.output.text ?? run.output.text,
    };
  }
  if (input.conclusion !== undefined) {
    run.conclusion = input.conclusion;
    run.status = "completed";
  } else if (input.status !== undefined) {
    if (input.status === "completed" && !run.conclusion) {
      throw validationFailed([
        { resource: "CheckRun", field: "conclusion", code: "missing_field" },
      ]);
    }
    run.status = input.status;
  }
  if (run.status === "completed")
    run.completedAt = input.completed_at ?? run.completedAt ?? ctx.state.now();
  run.suite.updatedAt = ctx.state.now();
  if (!wasCompleted && run.status === "completed") {
    ctx.onChecksChanged?.(repo, run.headSha);
    return emitCompletion(ctx, repo, run, run.app.bot);
  }
  return [];
}

export interface StatusInput {
  state: CommitState;
  target_url?: string | null;
  description?: string | null;
  context?: string;
}

export async function createStatus(
  ctx: SimContext,
  repo: SimRepo,
  sha: string,
  input: StatusInput,
  creator: SimUser,
): Promise<Acted<{ status: SimStatus }>> {
  const commitSha = await requireCommit(ctx, repo, sha, "sha");
  const now = ctx.state.now();
  const status: SimStatus = {
    id: ctx.state.nextId(),
    sha: commitSha,
    state: input.state,
    context: input.context ?? "default",
    description: input.description ?? null,
    targetUrl: input.target_url ?? null,
    creator,
    createdAt: now,
    updatedAt: now,
  };
  repo.statuses.push(status);
  ctx.onChecksChanged?.(repo, commitSha);
  const commit = (await ctx.git.readCommit(repo.fullName, commitSha))!;
  const branches = (await ctx.git.listRefs(repo.fullName, "refs/heads/"))
    .filter((ref) => ref.sha === commitSha)
    .map((ref) => ({
      name: ref.ref.replace(/^refs\/heads\//, ""),
      commit: { sha: ref.sha, url: `${repoApiUrl(ctx.base, repo)}/commits/${ref.sha}` },
      protected: false,
    }));
  const payload: Json = {
    id: status.id,
    sha: commitSha,
    name: repo.fullName,
    target_url: status.targetUrl,
    avatar_url: `${ctx.base}/avatars/u/${creator.id}?v=4`,
    context: status.context,
    description: status.description,
    state: status.state,
    commit: renderRepoCommit(ctx.base, repo, commit),
    branches,
    created_at: now,
    updated_at: now,
  };
  return { status, deliveries: [ctx.emit(repo, "status", payload, creator)] };
}
