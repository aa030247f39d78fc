import type { CommitInfo, FileChange, TreeEntry } from "./git-store.ts";
import {
  REACTION_CONTENTS,
  roleOf,
  type SimApp,
  type SimCheckRun,
  type SimCheckSuite,
  type SimComment,
  type SimInstallation,
  type SimIssue,
  type SimIssueEvent,
  type SimLabel,
  type SimReaction,
  type SimRepo,
  type SimReview,
  type SimStatus,
  type SimUser,
} from "./sim-state.ts";

/**
 * Renderers that turn simulator state into the JSON GitHub sends: REST responses and webhook
 * payloads share them, as on GitHub. `base` is the simulator's URL; it serves both the API (no
 * `/api/v3` prefix, like api.github.com) and the "web" links.
 */
export type Json = Record<string, unknown>;

const NODE_PREFIXES: Record<string, string> = {
  User: "U_",
  Bot: "BOT_",
  Organization: "O_",
  Repository: "R_",
  Issue: "I_",
  PullRequest: "PR_",
  IssueComment: "IC_",
  Label: "LA_",
  Reaction: "REA_",
  CheckRun: "CR_",
  CheckSuite: "CS_",
  StatusContext: "SC_",
  Commit: "C_",
  Integration: "A_",
  Installation: "MDI_",
  PullRequestReview: "PRR_",
  IE: "IE_",
};

/** A stable, GitHub-looking global node id. */
export function nodeId(type: keyof typeof NODE_PREFIXES | string, id: number | string): string {
  return `${NODE_PREFIXES[type] ?? "X_"}${Buffer.from(`${type}:${id}`).toString("base64url")}`;
}

export function renderUser(base: string, user: SimUser): Json {
  // Bot logins (`conveyor[bot]`) need escaping to be valid URIs, as on GitHub.
  const login = encodeURIComponent(user.login);
  const api = `${base}/users/${login}`;
  return {
    login: user.login,
    id: user.id,
    node_id: nodeId(user.type, user.id),
    avatar_url: `${base}/avatars/u/${user.id}?v=4`,
    gravatar_id: "",
    url: api,
    html_url:
      user.type === "Bot"
        ? `${base}/apps/${user.login.replace(/\[bot\]$/, "")}`
        : `${base}/${login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: user.type,
    user_view_type: "public",
    site_admin: false,
  };
}

/**
 * Events the published webhook schemas do not list yet in an app's `events` (their enum is older
 * than these events), left out of `performed_via_github_app` so payloads still match them.
 */
const EVENTS_MISSING_FROM_WEBHOOK_SCHEMAS = new Set(["merge_group"]);

/** The app that acted on an issue or comment, as issue and comment objects embed it. */
export function renderPerformingApp(base: string, app: SimApp): Json {
  const rendered = renderApp(base, app);
  return {
    ...rendered,
    events: (rendered.events as string[]).filter(
      (e) => !EVENTS_MISSING_FROM_WEBHOOK_SCHEMAS.has(e),
    ),
  };
}

export function renderApp(base: string, app: SimApp): Json {
  return {
    id: app.id,
    slug: app.slug,
    client_id: app.clientId,
    node_id: nodeId("Integration", app.id),
    owner: renderUser(base, app.owner),
    name: app.name,
    description: `${app.name} (GitHub simulator)`,
    external_url: `${base}/apps/${app.slug}`,
    html_url: `${base}/apps/${app.slug}`,
    created_at: app.createdAt,
    updated_at: app.createdAt,
    permissions: app.permissions,
    // Installation events reach every app; they are not part of its subscription list.
    events: app.events.filter((event) => !event.startsWith("installation")),
  };
}

export function renderInstallation(base: string, installation: SimInstallation): Json {
  return {
    id: installation.id,
    account: renderUser(base, installation.account),
    access_tokens_url: `${base}/app/installations/${installation.id}/access_tokens`,
    repositories_url: `${base}/installation/repositories`,
    html_url: `${base}/settings/installations/${installation.id}`,
    app_id: installation.app.id,
    app_slug: installation.app.slug,
    client_id: installation.app.clientId,
    target_id: installation.account.id,
    target_type: installation.account.type === "Organization" ? "Organization" : "User",
    permissions: installation.permissions,
    events: installation.app.events.filter((event) => !event.startsWith("installation")),
    created_at: installation.createdAt,
    updated_at: installation.createdAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    repository_selection: installation.repositorySelection,
    suspended_at: null,
    suspended_by: null,
  };
}

/** `{ id, node_id }`: the installation reference every app webhook carries. */
export function renderInstallationLite(installation: SimInstallation): Json {
  return { id: installation.id, node_id: nodeId("Installation", installation.id) };
}

export function repoApiUrl(base: string, repo: SimRepo): string {
  return `${base}/repos/${repo.fullName}`;
}

export function renderRepo(base: string, repo: SimRepo, openIssues = 0): Json {
  const api = repoApiUrl(base, repo);
  const html = `${base}/${repo.fullName}`;
  return {
    id: repo.id,
    node_id: nodeId("Repository", repo.id),
    name: repo.name,
    full_name: repo.fullName,
    private: repo.isPrivate,
    owner: renderUser(base, repo.owner),
    html_url: html,
    description: repo.description,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `${html}.git`.replace(/^https?:/, "git:"),
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@127.0.0.1:${repo.fullName}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${html}.git`,
    mirror_url: null,
    hooks_url: `${api}/hooks`,
    svn_url: html,
    homepage: null,
    language: null,
    forks_count: 0,
    forks: 0,
    stargazers_count: 0,
    watchers_count: 0,
    watchers: 0,
    size: 0,
    default_branch: repo.defaultBranch,
    open_issues_count: openIssues,
    open_issues: openIssues,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: false,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: repo.isPrivate ? "private" : "public",
    pushed_at: repo.pushedAt,
    created_at: repo.createdAt,
    updated_at: repo.updatedAt,
    allow_squash_merge: true,
    allow_merge_commit: true,
    allow_rebase_merge: true,
    allow_auto_merge: false,
    delete_branch_on_merge: false,
    allow_forking: true,
    web_commit_signoff_required: false,
    license: null,
    permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
  };
}

export function renderLabel(base: string, repo: SimRepo, label: SimLabel): Json {
  return {
    id: label.id,
    node_id: nodeId("Label", label.id),
    url: `${repoApiUrl(base, repo)}/labels/${encodeURIComponent(label.name)}`,
    name: label.name,
    color: label.color,
    default: label.isDefault,
    description: label.description,
  };
}

export function renderReactionRollup(url: string, reactions: SimReaction[]): Json {
  const rollup: Json = { url, total_count: reactions.length };
  for (const content of REACTION_CONTENTS) {
    rollup[content] = reactions.filter((reaction) => reaction.content === content).length;
  }
  return rollup;
}

export function renderReaction(base: string, reaction: SimReaction): Json {
  return {
    id: reaction.id,
    node_id: nodeId("Reaction", reaction.id),
    user: renderUser(base, reaction.user),
    content: reaction.content,
    created_at: reaction.createdAt,
  };
}

/** OWNER, COLLABORATOR or NONE, from the author's role on the repository. */
export function authorAssociation(repo: SimRepo, user: SimUser): string {
  if (user.type === "Bot") return "NONE";
  if (repo.owner.id === user.id) return "OWNER";
  return roleOf(repo, user.login) === "none" ? "NONE" : "COLLABORATOR";
}

function labelsOf(base: string, repo: SimRepo, issue: SimIssue): Json[] {
  return issue.labels.flatMap((name) => {
    const label = repo.labels.get(name.toLowerCase());
    return label ? [renderLabel(base, repo, label)] : [];
  });
}

export function renderIssue(base: string, repo: SimRepo, issue: SimIssue): Json {
  const api = `${repoApiUrl(base, repo)}/issues/${issue.number}`;
  const comments = [...repo.comments.values()].filter((c) => c.issueNumber === issue.number);
  const rendered: Json = {
    url: api,
    repository_url: repoApiUrl(base, repo),
    labels_url: `${api}/labels{/name}`,
    comments_url: `${api}/comments`,
    events_url: `${api}/events`,
    html_url: `${base}/${repo.fullName}/${issue.pull ? "pull" : "issues"}/${issue.number}`,
    id: issue.id,
    node_id: nodeId("Issue", issue.id),
    number: issue.number,
    title: issue.title,
    user: renderUser(base, issue.user),
    labels: labelsOf(base, repo, issue),
    state: issue.state,
    locked: issue.locked,
    assignee: issue.assignees[0] ? renderUser(base, issue.assignees[0]) : null,
    assignees: issue.assignees.map((user) => renderUser(base, user)),
    milestone: null,
    comments: comments.length,
    created_at: issue.createdAt,
    updated_at: issue.updatedAt,
    closed_at: issue.closedAt,
    closed_by: issue.closedBy ? renderUser(base, issue.closedBy) : null,
    author_association: authorAssociation(repo, issue.user),
    active_lock_reason: null,
    body: issue.body,
    reactions: renderReactionRollup(`${api}/reactions`, issue.reactions),
    timeline_url: `${api}/timeline`,
    performed_via_github_app: issue.viaApp ? renderPerformingApp(base, issue.viaApp) : null,
    state_reason: issue.stateReason,
  };
  if (issue.pull) {
    const pulls = `${repoApiUrl(base, repo)}/pulls/${issue.number}`;
    const html = `${base}/${repo.fullName}/pull/${issue.number}`;
    rendered.draft = issue.pull.draft;
    rendered.pull_request = {
      url: pulls,
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      merged_at: issue.pull.mergedAt,
    };
  }
  return rendered;
}

/** An issue event, as `GET /repos/{owner}/{repo}/issues/{issue_number}/events` lists it. */
export function renderIssueEvent(base: string, repo: SimRepo, event: SimIssueEvent): Json {
  return {
    id: event.id,
    node_id: nodeId("IE", event.id),
    url: `${base}/repos/${repo.fullName}/issues/events/${event.id}`,
    actor: renderUser(base, event.actor),
    event: event.event,
    commit_id: null,
    commit_url: null,
    created_at: event.createdAt,
    performed_via_github_app: null,
    ...(event.label ? { label: event.label } : {}),
  };
}

export function renderComment(base: string, repo: SimRepo, comment: SimComment): Json {
  const api = `${repoApiUrl(base, repo)}/issues/comments/${comment.id}`;
  const issue = repo.issues.get(comment.issueNumber);
  return {
    url: api,
    html_url: `${base}/${repo.fullName}/${issue?.pull ? "pull" : "issues"}/${comment.issueNumber}#issuecomment-${comment.id}`,
    issue_url: `${repoApiUrl(base, repo)}/issues/${comment.issueNumber}`,
    id: comment.id,
    node_id: nodeId("IssueComment", comment.id),
    user: renderUser(base, comment.user),
    created_at: comment.createdAt,
    updated_at: comment.updatedAt,
    author_association: authorAssociation(repo, comment.user),
    body: comment.body,
    reactions: renderReactionRollup(`${api}/reactions`, comment.reactions),
    performed_via_github_app: comment.viaApp ? renderPerformingApp(base, comment.viaApp) : null,
  };
}

/** Git facts about a pull request that need the repository on disk. */
export interface PullFacts {
  baseSha: string;
  mergeable: boolean | null;
  mergeableState: string;
  commits: number;
  additions: number;
  deletions: number;
  changedFiles: number;
}

function renderBranchRef(base: string, repo: SimRepo, ref: string, sha: string): Json {
  return {
    label: `${repo.owner.login}:${ref}`,
    ref,
    sha,
    user: renderUser(base, repo.owner),
    repo: renderRepo(base, repo),
  };
}

export function renderPull(base: string, repo: SimRepo, issue: SimIssue, facts: PullFacts): Json {
  const pull = issue.pull;
  if (!pull) throw new Error(`#${issue.number} is not a pull request`);
  const api = `${repoApiUrl(base, repo)}/pulls/${issue.number}`;
  const html = `${base}/${repo.fullName}/pull/${issue.number}`;
  const issueApi = `${repoApiUrl(base, repo)}/issues/${issue.number}`;
  const statuses = `${repoApiUrl(base, repo)}/statuses/${pull.headSha}`;
  const comments = [...repo.comments.values()].filter((c) => c.issueNumber === issue.number);
  return {
    url: api,
    id: pull.id,
    node_id: nodeId("PullRequest", pull.id),
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: issueApi,
    commits_url: `${api}/commits`,
    review_comments_url: `${api}/comments`,
    review_comment_url: `${repoApiUrl(base, repo)}/pulls/comments{/number}`,
    comments_url: `${issueApi}/comments`,
    statuses_url: statuses,
    number: issue.number,
    state: issue.state,
    locked: issue.locked,
    title: issue.title,
    user: renderUser(base, issue.user),
    body: issue.body,
    labels: labelsOf(base, repo, issue),
    milestone: null,
    active_lock_reason: null,
    created_at: issue.createdAt,
    updated_at: issue.updatedAt,
    closed_at: issue.closedAt,
    merged_at: pull.mergedAt,
    merge_commit_sha: pull.mergeCommitSha,
    assignee: issue.assignees[0] ? renderUser(base, issue.assignees[0]) : null,
    assignees: issue.assignees.map((user) => renderUser(base, user)),
    requested_reviewers: [],
    requested_teams: [],
    head: renderBranchRef(base, repo, pull.headRef, pull.headSha),
    base: renderBranchRef(base, repo, pull.baseRef, facts.baseSha),
    _links: {
      self: { href: api },
      html: { href: html },
      issue: { href: issueApi },
      comments: { href: `${issueApi}/comments` },
      review_comments: { href: `${api}/comments` },
      review_comment: { href: `${repoApiUrl(base, repo)}/pulls/comments{/number}` },
      commits: { href: `${api}/commits` },
      statuses: { href: statuses },
    },
    author_association: authorAssociation(repo, issue.user),
    auto_merge: null,
    draft: pull.draft,
    merged: pull.merged,
    mergeable: facts.mergeable,
    rebaseable: facts.mergeable,
    mergeable_state: facts.mergeableState,
    merged_by: pull.mergedBy ? renderUser(base, pull.mergedBy) : null,
    comments: comments.length,
    review_comments: 0,
    maintainer_can_modify: pull.maintainerCanModify,
    commits: facts.commits,
    additions: facts.additions,
    deletions: facts.deletions,
    changed_files: facts.changedFiles,
  };
}

export function renderReview(base: string, repo: SimRepo, number: number, review: SimReview): Json {
  const pullUrl = `${repoApiUrl(base, repo)}/pulls/${number}`;
  const html = `${base}/${repo.fullName}/pull/${number}#pullrequestreview-${review.id}`;
  return {
    id: review.id,
    node_id: nodeId("PullRequestReview", review.id),
    user: renderUser(base, review.user),
    body: review.body,
    state: review.state,
    html_url: html,
    pull_request_url: pullUrl,
    _links: { html: { href: html }, pull_request: { href: pullUrl } },
    submitted_at: review.submittedAt,
    commit_id: review.commitId,
    author_association: authorAssociation(repo, review.user),
  };
}

export function renderPullFile(
  base: string,
  repo: SimRepo,
  headSha: string,
  file: FileChange,
): Json {
  const rendered: Json = {
    sha: file.sha,
    filename: file.filename,
    status: file.status,
    additions: file.additions,
    deletions: file.deletions,
    changes: file.additions + file.deletions,
    blob_url: `${base}/${repo.fullName}/blob/${headSha}/${file.filename}`,
    raw_url: `${base}/${repo.fullName}/raw/${headSha}/${file.filename}`,
    contents_url: `${repoApiUrl(base, repo)}/contents/${file.filename}?ref=${headSha}`,
  };
  if (file.patch !== undefined) rendered.patch = file.patch;
  if (file.previousFilename !== undefined) rendered.previous_filename = file.previousFilename;
  return rendered;
}

export function renderCheckSuite(
  base: string,
  repo: SimRepo,
  suite: SimCheckSuite,
  runs: SimCheckRun[],
): Json {
  const mine = runs.filter((run) => run.suite.id === suite.id);
  const completed = mine.length > 0 && mine.every((run) => run.status === "completed");
  return {
    id: suite.id,
    node_id: nodeId("CheckSuite", suite.id),
    head_branch: suite.headBranch,
    head_sha: suite.headSha,
    status: mine.length === 0 ? "queued" : completed ? "completed" : "in_progress",
    conclusion: completed ? suiteConclusion(mine) : null,
    url: `${repoApiUrl(base, repo)}/check-suites/${suite.id}`,
    before: null,
    after: suite.headSha,
    pull_requests: [],
    app: renderApp(base, suite.app),
    repository: renderRepo(base, repo),
    created_at: suite.createdAt,
    updated_at: suite.updatedAt,
    head_commit: null,
    latest_check_runs_count: mine.length,
    check_runs_url: `${repoApiUrl(base, repo)}/check-suites/${suite.id}/check-runs`,
    rerequestable: true,
    runs_rerequestable: true,
  };
}

/** The worst conclusion wins, in GitHub's order. */
function suiteConclusion(runs: SimCheckRun[]): string {
  const order = [
    "action_required",
    "cancelled",
    "timed_out",
    "failure",
    "stale",
    "startup_failure",
    "neutral",
    "success",
    "skipped",
  ];
  const conclusions = runs.map((run) => run.conclusion ?? "neutral");
  return order.find((conclusion) => conclusions.includes(conclusion)) ?? "success";
}

export function renderCheckRun(
  base: string,
  repo: SimRepo,
  run: SimCheckRun,
  pullRequests: Json[] = [],
): Json {
  const api = `${repoApiUrl(base, repo)}/check-runs/${run.id}`;
  return {
    id: run.id,
    node_id: nodeId("CheckRun", run.id),
    head_sha: run.headSha,
    external_id: run.externalId ?? "",
    url: api,
    html_url: `${base}/${repo.fullName}/runs/${run.id}`,
    details_url: run.detailsUrl ?? `${base}/${repo.fullName}/runs/${run.id}`,
    status: run.status,
    conclusion: run.conclusion,
    started_at: run.startedAt,
    completed_at: run.completedAt,
    output: {
      title: run.output.title,
      summary: run.output.summary,
      text: run.output.text,
      annotations_count: 0,
      annotations_url: `${api}/annotations`,
    },
    name: run.name,
    check_suite: { id: run.suite.id },
    app: renderApp(base, run.app),
    pull_requests: pullRequests,
  };
}

/** The minimal `{url, id, number, head, base}` pull request entries of a check run. */
export function renderPullRef(base: string, repo: SimRepo, issue: SimIssue, baseSha: string): Json {
  const pull = issue.pull!;
  const repoRef = { id: repo.id, url: repoApiUrl(base, repo), name: repo.name };
  return {
    url: `${repoApiUrl(base, repo)}/pulls/${issue.number}`,
    id: pull.id,
    number: issue.number,
    head: { ref: pull.headRef, sha: pull.headSha, repo: repoRef },
    base: { ref: pull.baseRef, sha: baseSha, repo: repoRef },
  };
}

export function renderStatus(base: string, repo: SimRepo, status: SimStatus): Json {
  return {
    url: `${repoApiUrl(base, repo)}/statuses/${status.sha}`,
    avatar_url: `${base}/avatars/u/${status.creator.id}?v=4`,
    id: status.id,
    node_id: nodeId("StatusContext", status.id),
    state: status.state,
    description: status.description,
    target_url: status.targetUrl,
    context: status.context,
    created_at: status.createdAt,
    updated_at: status.updatedAt,
    creator: renderUser(base, status.creator),
  };
}

/** Latest status per context, newest first, as the combined-status endpoint lists them. */
export function latestStatuses(statuses: SimStatus[], sha: string): SimStatus[] {
  const latest = new Map<string, SimStatus>();
  for (const status of statuses) {
    if (status.sha === sha) latest.set(status.context, status);
  }
  return [...latest.values()].reverse();
}

/** failure/error if any is, pending if any is or there are none, else success. */
export function combinedState(statuses: SimStatus[]): string {
  if (statuses.some((s) => s.state === "failure" || s.state === "error")) return "failure";
  if (statuses.length === 0 || statuses.some((s) => s.state === "pending")) return "pending";
  return "success";
}

function renderIdentity(identity: CommitInfo["author"]): Json {
  return { name: identity.name, email: identity.email, date: identity.date };
}

export function renderVerification(signed: boolean, at: string): Json {
  return {
    verified: signed,
    reason: signed ? "valid" : "unsigned",
    signature: signed
      ? "-----BEGIN PGP SIGNATURE-----\n(simulated)\n-----END PGP SIGNATURE-----"
      : null,
    payload: null,
    verified_at: signed ? at : null,
  };
}

/** A Git Data API commit (`GET /repos/{owner}/{repo}/git/commits/{sha}`). */
export function renderGitCommit(base: string, repo: SimRepo, commit: CommitInfo): Json {
  const api = repoApiUrl(base, repo);
  return {
    sha: commit.sha,
    node_id: nodeId("Commit", commit.sha),
    url: `${api}/git/commits/${commit.sha}`,
    html_url: `${base}/${repo.fullName}/commit/${commit.sha}`,
    author: renderIdentity(commit.author),
    committer: renderIdentity(commit.committer),
    message: commit.message.replace(/\n$/, ""),
    tree: { sha: commit.tree, url: `${api}/git/trees/${commit.tree}` },
    parents: commit.parents.map((sha) => ({
      sha,
      url: `${api}/git/commits/${sha}`,
      html_url: `${base}/${repo.fullName}/commit/${sha}`,
    })),
    verification: renderVerification(repo.signedCommits.has(commit.sha), commit.committer.date),
  };
}

/** A REST commit (`GET /repos/{owner}/{repo}/commits/{ref}`); `files` only when given. */
export function renderRepoCommit(
  base: string,
  repo: SimRepo,
  commit: CommitInfo,
  files?: FileChange[],
): Json {
  const api = repoApiUrl(base, repo);
  const rendered: Json = {
    url: `${api}/commits/${commit.sha}`,
    sha: commit.sha,
    node_id: nodeId("Commit", commit.sha),
    html_url: `${base}/${repo.fullName}/commit/${commit.sha}`,
    comments_url: `${api}/commits/${commit.sha}/comments`,
    commit: {
      url: `${api}/git/commits/${commit.sha}`,
      author: renderIdentity(commit.author),
      committer: renderIdentity(commit.committer),
      message: commit.message.replace(/\n$/, ""),
      tree: { sha: commit.tree, url: `${api}/git/trees/${commit.tree}` },
      comment_count: 0,
      verification: renderVerification(repo.signedCommits.has(commit.sha), commit.committer.date),
    },
    author: null,
    committer: null,
    parents: commit.parents.map((sha) => ({
      sha,
      url: `${api}/commits/${sha}`,
      html_url: `${base}/${repo.fullName}/commit/${sha}`,
    })),
  };
  if (files) {
    const additions = files.reduce((sum, file) => sum + file.additions, 0);
    const deletions = files.reduce((sum, file) => sum + file.deletions, 0);
    rendered.stats = { total: additions + deletions, additions, deletions };
    rendered.files = files.map((file) => renderPullFile(base, repo, commit.sha, file));
  }
  return rendered;
}

/** A tree as the git trees API answers for it (never truncated: the simulator lists it all). */
export function renderTree(base: string, repo: SimRepo, sha: string, entries: TreeEntry[]): Json {
  return {
    sha,
    url: `${repoApiUrl(base, repo)}/git/trees/${sha}`,
    tree: entries.map((entry) => renderTreeEntry(base, repo, entry)),
    truncated: false,
  };
}

export function renderTreeEntry(base: string, repo: SimRepo, entry: TreeEntry): Json {
  const kind = entry.type === "tree" ? "trees" : entry.type === "blob" ? "blobs" : "commits";
  const rendered: Json = {
    path: entry.path,
    mode: entry.mode,
    type: entry.type,
    sha: entry.sha,
    url: `${repoApiUrl(base, repo)}/git/${kind}/${entry.sha}`,
  };
  if (entry.size !== undefined) rendered.size = entry.size;
  return rendered;
}
