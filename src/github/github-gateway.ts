import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { IssueSnapshot, RepoRef } from "../core/github-objects.ts";
import type { Permission } from "../core/intake.ts";
import { PERMISSIONS } from "../core/intake.ts";
import type { GitHubGateway } from "../core/ports.ts";
import { parseRepoConfig, REPO_CONFIG_PATH, type RepoConfigResult } from "../core/repo-config.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

export interface GitHubGatewayOptions {
  /**
   * How long a config that came partly from outside the repository (`_extends`, or the owner's
   * `.github` repository when this one has none) is kept (default 5 minutes).
   */
  outsideConfigTtlMs?: number;
  /** An Octokit authenticated as the App (JWT), or as one installation. */
  appOctokit: () => Promise<Octokit>;
  installationOctokit: (installationId: number) => Promise<Octokit>;
  logger: Logger;
  /**
   * The App's id: a status comment is only ever one this App wrote (`performed_via_github_app`),
   * never another bot's comment that carries the same marker.
   */
  appId: number;
  /** How long a collaborator permission is trusted before asking again. */
  permissionTtlMs?: number;
  /**
   * How long before its expiry a repository's read-only token stops being handed to new tasks
   * (default 10 minutes: a runner clones within seconds of its assignment).
   */
  readTokenMarginMs?: number;
  /**
   * How long a repository's head, as this instance last read it, is handed to new assignments
   * without asking GitHub again while Postgres's mark still names it (default 60 s). A `push` to
   * the default branch moves the mark at once (webhook), and the next assignment reads again; the
   * time bounds how old a head can be when that webhook was lost.
   */
  headTtlMs?: number;
  /**
   * Postgres's marks for the caches (`src/store/repository-marks.ts`), which every instance shares:
   * the default branch's head keys the config cache, the last permission change invalidates
   * cached permissions. Without them (tests of the gateway alone) config is read every time and
   * permissions live for their TTL.
   */
  marks?: GatewayMarks | undefined;
  now?: () => number;
}

/** The shared marks the gateway's caches are checked against. */
export interface GatewayMarks {
  read(ref: RepoRef): Promise<
    | {
        defaultBranch: string;
        headSha: string | null;
        /** An older commit with the config `headSha` has (`repositories.config_sha`), or null. */
        configSha?: string | null;
        permissionsChangedAt: Date | null;
      }
    | undefined
  >;
  recordHead(ref: RepoRef, defaultBranch: string, headSha: string): Promise<void>;
}

/** Parsed configs (and repository heads) kept per repository; more than this and the oldest go. */
const MAX_CONFIGS = 500;

const labelNames = (labels: unknown[]): string[] =>
  labels
    .map((l) => (typeof l === "string" ? l : (l as { name?: string }).name))
    .filter((n): n is string => Boolean(n));

function toIssue(raw: {
  number: number;
  title: string;
  body?: string | null;
  state: string;
  labels: unknown[];
  pull_request?: unknown;
  html_url: string;
  updated_at: string;
}): IssueSnapshot {
  return {
    number: raw.number,
    title: raw.title,
    body: raw.body ?? "",
    state: raw.state === "closed" ? "closed" : "open",
    labels: labelNames(raw.labels),
    isPullRequest: Boolean(raw.pull_request),
    htmlUrl: raw.html_url,
    updatedAt: raw.updated_at,
  };
}

const withoutFlag = ({ cacheable: _, ...result }: RepoConfigResult & { cacheable?: boolean }) =>
  result;

const isNotFound = (error: unknown) => (error as { status?: number }).status === 404;

export function createGitHubGateway(options: GitHubGatewayOptions): GitHubGateway {
  const ttl = options.permissionTtlMs ?? 3 * 60_000;
  const now = options.now ?? Date.now;
  const readTokenMarginMs = options.readTokenMarginMs ?? 10 * 60_000;
  const permissions = new Map<
    string,
    { value: Permission | undefined; until: number; mark: number | null }
  >();
  /** By repository and head; `until` for a config read from outside the repository (see below). */
  const configs = new Map<string, { result: RepoConfigResult; until?: number }>();
  const outsideTtlMs = options.outsideConfigTtlMs ?? 5 * 60_000;
  const configReads = new Map<string, Promise<RepoConfigResult>>();
  /** Permission reads in flight, by login and mark: callers asking at once share one. */
  const permissionReads = new Map<string, Promise<Permission | undefined>>();
  const readTokens = new Map<string, Promise<{ value: string; expiresAt: string }>>();
  const headTtlMs = options.headTtlMs ?? 60_000;
  /** What an assignment starts from, per repository, with when this instance read it. */
  const heads = new Map<
    string,
    {
      head: { cloneUrl: string; defaultBranch: string; headSha: string; htmlUrl: string };
      readAt: number;
    }
  >();
  const client = options.installationOctokit;
  const fullName = (ref: RepoRef) => `${ref.owner}/${ref.repo}`;

  /** The default branch's head, read conditionally (unchanged: a 304 GitHub does not count). */
  async function readHead(ref: RepoRef, branch: string): Promise<string> {
    const octokit = await client(ref.installationId);
    const { data } = await octokit.request("GET /repos/{owner}/{repo}/git/ref/{ref}", {
      owner: ref.owner,
      repo: ref.repo,
      ref: `heads/${branch}`,
    });
    return data.object.sha;
  }

  /**
   * The config at `atSha` (default: the default branch), and whether it may be kept per head: not
   * when it `_extends` a file elsewhere, whose changes no head of this repository shows.
   */
  async function readConfig(
    ref: RepoRef,
    atSha: string | undefined,
  ): Promise<RepoConfigResult & { cacheable?: boolean }> {
    const octokit = await client(ref.installationId);
    try {
      const { config, files } = await octokit.config.get({
        owner: ref.owner,
        repo: ref.repo,
        path: REPO_CONFIG_PATH,
        ...(atSha ? { branch: atSha } : {}),
      });
      return {
        ...parseRepoConfig(Object.keys(config).length ? config : undefined),
        cacheable: files.length <= 1,
      };
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status && status >= 500) throw error;
      // YAML syntax errors and unreadable files are the user's to fix: show them, use defaults.
      const result = parseRepoConfig(undefined);
      return {
        ok: false,
        config: result.config,
        problems: [{ key: "", message: (error as Error).message }],
      };
    }
  }

  return {
    async permission(ref, login) {
      const key = `${ref.owner}/${ref.repo}:${login}`.toLowerCase();
      // A `member` or `organization` webhook on any instance moves the mark: read again.
      const marks = await options.marks?.read(ref);
      const mark = marks?.permissionsChangedAt?.getTime() ?? null;
      const cached = permissions.get(key);
      if (cached && cached.until > now() && cached.mark === mark) return cached.value;
      // Label events handed off side by side ask for the same labeller at once: one read.
      const flight = `${key}@${mark}`;
      const inFlight = permissionReads.get(flight);
      if (inFlight) return inFlight;
      const read = (async () => {
        const octokit = await client(ref.installationId);
        let value: Permission | undefined;
        try {
          const { data } = await octokit.request(
            "GET /repos/{owner}/{repo}/collaborators/{username}/permission",
            { owner: ref.owner, repo: ref.repo, username: login },
          );
          // role_name carries triage/maintain; `permission` folds them into read/write.
          const role = (data.role_name ?? data.permission) as string;
          value = (PERMISSIONS as readonly string[]).includes(role)
            ? (role as Permission)
            : (data.permission as Permission);
        } catch (error) {
          // Not a collaborator at all: GitHub answers 404. Anything else is not cached.
          if (!isNotFound(error)) throw error;
          value = "none";
        }
        permissions.set(key, { value, until: now() + ttl, mark });
        return value;
      })();
      permissionReads.set(flight, read);
      return read.finally(() => permissionReads.delete(flight));
    },

    async loadConfig(ref) {
      // The config is read at the default branch's head as Postgres knows it, and kept per head:
      // a push to the default branch (webhook), a dispatch or reconciliation moves the head, and
      // every instance then reads the config again. Where the moves since an older commit left
      // the file alone (`config_sha`: a clean push, a merge Conveyor made), it is read and kept
      // at that commit instead, so one read serves every head until the file changes.
      const marks = await options.marks?.read(ref);
      if (!marks) return withoutFlag(await readConfig(ref, undefined));
      let atSha = (marks.headSha && marks.configSha) || marks.headSha;
      if (!atSha) {
        try {
          atSha = await readHead(ref, marks.defaultBranch);
          await options.marks?.recordHead(ref, marks.defaultBranch, atSha);
        } catch (error) {
          const status = (error as { status?: number }).status;
          if (status && status >= 500) throw error;
          // An empty repository, or a default branch renamed since: read without caching.
          return withoutFlag(await readConfig(ref, undefined));
        }
      }
      const key = `${fullName(ref)}@${atSha}`.toLowerCase();
      const cached = configs.get(key);
      if (cached && (cached.until === undefined || cached.until > now())) return cached.result;
      // Callers asking at once (the intake loop, the Actions launcher, the merger) share one read.
      const inFlight = configReads.get(key);
      if (inFlight) return inFlight;
      const read = readConfig(ref, atSha);
      const shared = read.then(withoutFlag);
      shared.catch(() => {});
      configReads.set(key, shared);
      const { cacheable, ...loaded } = await read.finally(() => configReads.delete(key));
      // A config that also came from elsewhere (`_extends`, or the owner's `.github` repository
      // looked at when this one has no file) can change with no new head here: kept a few minutes.
      configs.delete(key);
      configs.set(
        key,
        cacheable ? { result: loaded } : { result: loaded, until: now() + outsideTtlMs },
      );
      while (configs.size > MAX_CONFIGS) {
        const oldest = configs.keys().next().value;
        if (oldest === undefined) break;
        configs.delete(oldest);
      }
      return loaded;
    },

    async getIssue(ref, issueNumber) {
      const octokit = await client(ref.installationId);
      try {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/issues/{issue_number}", {
          owner: ref.owner,
          repo: ref.repo,
          issue_number: issueNumber,
        });
        return toIssue(data);
      } catch (error) {
        if (isNotFound(error) || (error as { status?: number }).status === 410) return undefined;
        throw error;
      }
    },

    async pullRequestMerged(ref, prNumber) {
      const octokit = await client(ref.installationId);
      try {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
          owner: ref.owner,
          repo: ref.repo,
          pull_number: prNumber,
        });
        return data.merged;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async listOpenIssuesWithLabel(ref, label) {
      const octokit = await client(ref.installationId);
      const issues = await octokit.paginate("GET /repos/{owner}/{repo}/issues", {
        owner: ref.owner,
        repo: ref.repo,
        state: "open",
        labels: label,
        per_page: 100,
      });
      return issues.map(toIssue).filter((i) => !i.isPullRequest);
    },

    async lastLabeller(ref, issueNumber, label) {
      const octokit = await client(ref.installationId);
      const events = await octokit.paginate(
        "GET /repos/{owner}/{repo}/issues/{issue_number}/events",
        {
          owner: ref.owner,
          repo: ref.repo,
          issue_number: issueNumber,
          per_page: 100,
        },
      );
      const labelled = events.filter(
        (e) =>
          e.event === "labeled" &&
          (e as { label?: { name?: string } }).label?.name?.toLowerCase() === label.toLowerCase(),
      );
      const last = labelled.at(-1);
      if (!last?.actor) return undefined;
      return {
        actor: { login: last.actor.login, type: last.actor.type },
        labelledAt: last.created_at,
      };
    },

    async addReaction(ref, issueNumber, content) {
      const octokit = await client(ref.installationId);
      // GitHub answers 200 instead of 201 when the reaction exists: safe to repeat.
      await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/reactions", {
        owner: ref.owner,
        repo: ref.repo,
        issue_number: issueNumber,
        content,
      });
    },

    async addCommentReaction(ref, commentId, content) {
      const octokit = await client(ref.installationId);
      await octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", {
        owner: ref.owner,
        repo: ref.repo,
        comment_id: commentId,
        content,
      });
    },

    async addLabels(ref, issueNumber, labels) {
      const octokit = await client(ref.installationId);
      await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
        owner: ref.owner,
        repo: ref.repo,
        issue_number: issueNumber,
        labels,
      });
    },

    async findComment(ref, issueNumber, marker) {
      const octokit = await client(ref.installationId);
      const comments = await octokit.paginate(
        "GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
        { owner: ref.owner, repo: ref.repo, issue_number: issueNumber, per_page: 100 },
      );
      const found = comments.find(
        (c) =>
          c.body?.includes(marker) &&
          c.user?.type === "Bot" &&
          c.performed_via_github_app?.id === options.appId,
      );
      return found ? Number(found.id) : undefined;
    },

    async createComment(ref, issueNumber, body) {
      const octokit = await client(ref.installationId);
      const { data } = await octokit.request(
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
        { owner: ref.owner, repo: ref.repo, issue_number: issueNumber, body },
      );
      return Number(data.id);
    },

    async updateComment(ref, commentId, body) {
      const octokit = await client(ref.installationId);
      await octokit.request("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", {
        owner: ref.owner,
        repo: ref.repo,
        comment_id: commentId,
        body,
      });
    },

    async listInstallations() {
      const octokit = await options.appOctokit();
      const installations = await octokit.paginate("GET /app/installations", { per_page: 100 });
      return installations.filter((i) => !i.suspended_at).map((i) => i.id);
    },

    async repositoryHead(ref, known) {
      // Kept while young and while Postgres's mark (moved by `push` webhooks, on any instance, and
      // by every read of the head) still names the same branch and commit.
      const key = `${ref.installationId}:${fullName(ref)}`.toLowerCase();
      const kept = heads.get(key);
      if (kept && now() - kept.readAt < headTtlMs && options.marks) {
        const marks = known ?? (await options.marks.read(ref));
        if (
          marks?.defaultBranch === kept.head.defaultBranch &&
          marks.headSha === kept.head.headSha
        ) {
          return { ...kept.head };
        }
      }
      const readAt = now();
      const octokit = await client(ref.installationId);
      const { data: repo } = await octokit.request("GET /repos/{owner}/{repo}", {
        owner: ref.owner,
        repo: ref.repo,
      });
      const { data: head } = await octokit.request("GET /repos/{owner}/{repo}/git/ref/{ref}", {
        owner: ref.owner,
        repo: ref.repo,
        ref: `heads/${repo.default_branch}`,
      });
      await options.marks?.recordHead(ref, repo.default_branch, head.object.sha);
      const fresh = {
        cloneUrl: repo.clone_url,
        defaultBranch: repo.default_branch,
        headSha: head.object.sha,
        htmlUrl: repo.html_url,
      };
      heads.delete(key);
      heads.set(key, { head: fresh, readAt });
      while (heads.size > MAX_CONFIGS) {
        const oldest = heads.keys().next().value;
        if (oldest === undefined) break;
        heads.delete(oldest);
      }
      return { ...fresh };
    },

    async readOnlyToken(ref) {
      // One token per repository, shared by its tasks until it nears expiry: it reads only this
      // repository's contents, so sharing it gives no task more than its own token would.
      const key = `${ref.installationId}:${fullName(ref)}`.toLowerCase();
      const kept = readTokens.get(key);
      if (kept) {
        const token = await kept.catch(() => undefined);
        if (token && Date.parse(token.expiresAt) - now() > readTokenMarginMs) return token;
        if (readTokens.get(key) === kept) readTokens.delete(key);
      }
      const fresh = (async () => {
        const octokit = await options.appOctokit();
        const { data } = await octokit.request(
          "POST /app/installations/{installation_id}/access_tokens",
          {
            installation_id: ref.installationId,
            repositories: [ref.repo],
            permissions: { contents: "read", metadata: "read" },
          },
        );
        return { value: data.token, expiresAt: data.expires_at };
      })();
      readTokens.set(key, fresh);
      fresh.catch(() => {
        if (readTokens.get(key) === fresh) readTokens.delete(key);
      });
      return fresh;
    },

    async refreshDefaultHead(ref) {
      const marks = await options.marks?.read(ref);
      if (!marks) return;
      const headSha = await readHead(ref, marks.defaultBranch);
      await options.marks?.recordHead(ref, marks.defaultBranch, headSha);
    },

    async dispatchWorkflow(ref, dispatch) {
      const octokit = await client(ref.installationId);
      try {
        // https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event
        await octokit.request(
          "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
          {
            owner: ref.owner,
            repo: ref.repo,
            workflow_id: dispatch.workflow,
            ref: dispatch.gitRef,
            inputs: dispatch.inputs,
          },
        );
        return { ok: true };
      } catch (error) {
        const status = (error as { status?: number }).status;
        if (!status || status >= 500) throw error;
        const message =
          (error as { response?: { data?: { message?: string } } }).response?.data?.message ??
          (error as Error).message;
        return { ok: false, status, message };
      }
    },

    async listInstallationRepositories(installationId) {
      const octokit = await client(installationId);
      const repos = await octokit.paginate("GET /installation/repositories", { per_page: 100 });
      return repos.map((r) => ({
        repositoryId: r.id,
        fullName: r.full_name,
        defaultBranch: r.default_branch,
        private: r.private,
      }));
    },
  };
}
