/** Collaborator roles, highest first, as GitHub names them. */
export const REPO_ROLES = ["admin", "maintain", "write", "triage", "read", "none"] as const;
export type RepoRole = (typeof REPO_ROLES)[number];

export type AccessLevel = "read" | "write" | "admin";
/** App or token permissions, e.g. `{ issues: "write", contents: "read" }`. */
export type AppPermissions = Record<string, AccessLevel>;
export type UserType = "User" | "Bot" | "Organization";

export const REACTION_CONTENTS = [
  "+1",
  "-1",
  "laugh",
  "confused",
  "heart",
  "hooray",
  "rocket",
  "eyes",
] as const;
export type ReactionContent = (typeof REACTION_CONTENTS)[number];

export interface SimUser {
  id: number;
  login: string;
  type: UserType;
  name: string | null;
  email: string | null;
  createdAt: string;
}

export interface SimApp {
  id: number;
  slug: string;
  name: string;
  clientId: string;
  owner: SimUser;
  /** The `<slug>[bot]` user that acts for the app's installations. */
  bot: SimUser;
  permissions: AppPermissions;
  events: string[];
  createdAt: string;
}

export interface SimInstallation {
  id: number;
  app: SimApp;
  account: SimUser;
  repositorySelection: "all" | "selected";
  /** Repositories of a `selected` installation. */
  repositoryIds: Set<number>;
  permissions: AppPermissions;
  createdAt: string;
}

export interface SimToken {
  token: string;
  installation: SimInstallation;
  expiresAt: Date;
  permissions: AppPermissions;
  /** Narrowed repositories; undefined means every repository of the installation. */
  repositoryIds: Set<number> | undefined;
}

export interface SimLabel {
  id: number;
  name: string;
  color: string;
  description: string | null;
  isDefault: boolean;
}

export interface SimReaction {
  id: number;
  user: SimUser;
  content: ReactionContent;
  createdAt: string;
}

export interface SimReview {
  id: number;
  user: SimUser;
  state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" | "DISMISSED";
  body: string;
  commitId: string;
  submittedAt: string;
}

export interface SimPull {
  id: number;
  headRef: string;
  headSha: string;
  baseRef: string;
  /** The base branch tip when last looked at; frozen once the pull request is closed. */
  baseSha: string;
  draft: boolean;
  merged: boolean;
  mergedAt: string | null;
  mergedBy: SimUser | null;
  mergeCommitSha: string | null;
  maintainerCanModify: boolean;
  /** Forces `mergeable` (e.g. false to test a 405) instead of computing it with git. */
  mergeableOverride: boolean | undefined;
  reviews: SimReview[];
}

/** An issue, or the issue half of a pull request (`pull` set): they share one number sequence. */
export interface SimIssue {
  id: number;
  number: number;
  title: string;
  body: string | null;
  user: SimUser;
  /** Label names in the order they were added. */
  labels: string[];
  assignees: SimUser[];
  state: "open" | "closed";
  stateReason: "completed" | "not_planned" | "reopened" | null;
  locked: boolean;
  closedAt: string | null;
  closedBy: SimUser | null;
  createdAt: string;
  updatedAt: string;
  reactions: SimReaction[];
  /** What `GET …/issues/{n}/events` lists: labels added and removed, closes and reopens. */
  timeline: SimIssueEvent[];
  /** Set when the app or the simulator created the issue with an app token. */
  viaApp: SimApp | undefined;
  pull: SimPull | undefined;
}

export interface SimIssueEvent {
  id: number;
  event: "labeled" | "unlabeled" | "closed" | "reopened";
  actor: SimUser;
  label: { name: string; color: string } | undefined;
  createdAt: string;
}

export interface SimComment {
  id: number;
  issueNumber: number;
  body: string;
  user: SimUser;
  viaApp: SimApp | undefined;
  createdAt: string;
  updatedAt: string;
  reactions: SimReaction[];
}

export interface SimCheckSuite {
  id: number;
  headSha: string;
  headBranch: string | null;
  app: SimApp;
  createdAt: string;
  updatedAt: string;
}

export type CheckStatus =
  | "queued"
  | "in_progress"
  | "completed"
  | "waiting"
  | "requested"
  | "pending";

export interface SimCheckRun {
  id: number;
  suite: SimCheckSuite;
  app: SimApp;
  name: string;
  headSha: string;
  status: CheckStatus;
  conclusion: string | null;
  startedAt: string;
  completedAt: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  detailsUrl: string | null;
  externalId: string | null;
}

export type CommitState = "error" | "failure" | "pending" | "success";

export interface SimStatus {
  id: number;
  sha: string;
  state: CommitState;
  context: string;
  description: string | null;
  targetUrl: string | null;
  creator: SimUser;
  createdAt: string;
  updatedAt: string;
}

export interface SimRepo {
  id: number;
  owner: SimUser;
  name: string;
  fullName: string;
  defaultBranch: string;
  isPrivate: boolean;
  description: string | null;
  createdAt: string;
  updatedAt: string;
  pushedAt: string;
  /** Next issue/PR number. */
  nextNumber: number;
  /** Keyed by lower-cased name (GitHub label names are case-insensitive). */
  labels: Map<string, SimLabel>;
  /** Keyed by lower-cased login. */
  collaborators: Map<string, RepoRole>;
  issues: Map<number, SimIssue>;
  comments: Map<number, SimComment>;
  checkSuites: SimCheckSuite[];
  checkRuns: SimCheckRun[];
  statuses: SimStatus[];
  /** Commits created through the API with an app token; GitHub signs those. */
  signedCommits: Set<string>;
  /** Branch protection's required status checks, by branch name (set by tests). */
  branchProtection: Map<string, SimBranchProtection>;
  /** Active branch rulesets of the repository (set by tests). */
  rulesets: SimRuleset[];
}

/** The part of branch protection the simulator models: required status checks. */
export interface SimBranchProtection {
  /** "Require branches to be up to date before merging". */
  strict: boolean;
  contexts: string[];
  /** "Require merge queue" of classic branch protection (not listed by `…/rules/branches`). */
  mergeQueue?: SimMergeQueueRule | undefined;
}

/** A repository ruleset with a `required_status_checks` rule, targeting branches. */
export interface SimRuleset {
  id: number;
  name: string;
  /**
   * Branch names it applies to, as in `conditions.ref_name.include` without `refs/heads/`:
   * an exact name, `~DEFAULT_BRANCH` or `~ALL`.
   */
  branches: string[];
  strict: boolean;
  requiredChecks: { context: string; integrationId?: number }[];
  /** A `merge_queue` rule: merges into the branch must go through GitHub's merge queue. */
  mergeQueue?: SimMergeQueueRule | undefined;
}

/** The parameters of a ruleset's `merge_queue` rule, as `GET …/rules/branches/{b}` lists them. */
export interface SimMergeQueueRule {
  check_response_timeout_minutes: number;
  grouping_strategy: "ALLGREEN" | "HEADGREEN";
  max_entries_to_build: number;
  max_entries_to_merge: number;
  merge_method: "MERGE" | "SQUASH" | "REBASE";
  min_entries_to_merge: number;
  min_entries_to_merge_wait_minutes: number;
}

export interface SimState {
  /** Keyed by lower-cased login. */
  users: Map<string, SimUser>;
  apps: Map<number, SimApp>;
  installations: Map<number, SimInstallation>;
  /** Keyed by lower-cased `owner/name`. */
  repos: Map<string, SimRepo>;
  tokens: Map<string, SimToken>;
  nextId(): number;
  /** The current time as GitHub prints it: ISO 8601 without milliseconds. */
  now(): string;
  clock(): Date;
}

export function toGitHubTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function createSimState(clock: () => Date = () => new Date()): SimState {
  let lastId = 1000;
  return {
    users: new Map(),
    apps: new Map(),
    installations: new Map(),
    repos: new Map(),
    tokens: new Map(),
    nextId: () => {
      lastId += 1;
      return lastId;
    },
    now: () => toGitHubTime(clock()),
    clock,
  };
}

/** The user called `login`, created as a plain `User` on first mention. */
export function ensureUser(state: SimState, login: string, type: UserType = "User"): SimUser {
  const key = login.toLowerCase();
  let user = state.users.get(key);
  if (!user) {
    user = { id: state.nextId(), login, type, name: null, email: null, createdAt: state.now() };
    state.users.set(key, user);
  }
  return user;
}

/** A repository's role for `login`: the owner is admin, collaborators have theirs, others none. */
export function roleOf(repo: SimRepo, login: string): RepoRole {
  if (repo.owner.login.toLowerCase() === login.toLowerCase()) return "admin";
  return repo.collaborators.get(login.toLowerCase()) ?? "none";
}

/** The installation of `app` that covers `repo`, if any. */
export function installationFor(
  state: SimState,
  repo: SimRepo,
  app?: SimApp,
): SimInstallation | undefined {
  for (const installation of state.installations.values()) {
    if (app && installation.app.id !== app.id) continue;
    if (installation.account.id !== repo.owner.id) continue;
    if (installation.repositorySelection === "all" || installation.repositoryIds.has(repo.id)) {
      return installation;
    }
  }
  return undefined;
}
