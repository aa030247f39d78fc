import type { Logger } from "pino";
import type { ApplicationFunction, Context } from "probot";
import type { Db } from "../../db/client.ts";
import { handleCommentCommands } from "../commands/command-service.ts";
import { isRedConclusion } from "../core/follow-up.ts";
import { repoRef } from "../core/github-objects.ts";
import type { GitHubGateway } from "../core/ports.ts";
import {
  handleInstallationEvent,
  handleIssuesEvent,
  type IntakeDeps,
} from "../intake/intake-service.ts";
import {
  handleChangesRequested,
  handleFailedCheck,
  handlePullRequestClosed,
} from "../intake/pull-request-events.ts";
import { markPermissionsChanged, recordDefaultHead } from "../store/repository-marks.ts";
import { recordDelivery } from "../store/webhook-deliveries.ts";

export interface ConveyorAppDeps {
  db: Db;
  logger: Logger;
  gateway: GitHubGateway;
  onChange: () => void;
  /** This App's id: its own check runs never count as CI. */
  appId: number;
  /** Something happened on a pull request (checks, reviews, pushes): re-evaluate merges soon. */
  onPullRequestActivity: () => void;
  /** Slash-command comments one person may write per minute (default 10). */
  commandsPerMinute?: number | undefined;
  /** A handler threw (the delivery is answered 500): counted for the webhook-failure alert. */
  recordError?: (source: string, error: unknown, details?: Record<string, unknown>) => void;
}

/** Events with a handler of their own; every other delivery is only recorded. */
const HANDLED_EVENTS = new Set([
  "push",
  "member",
  "organization",
  "issues",
  "installation",
  "installation_repositories",
  "pull_request",
  "check_run",
  "status",
  "pull_request_review",
  "issue_comment",
  "check_suite",
]);

interface RepoPayload {
  installation?: { id: number };
  repository: { id: number; full_name: string };
}

/** The common facts of a repository event, or undefined without an installation. */
function delivery(context: { id: string; name: string; payload: unknown }) {
  const payload = context.payload as RepoPayload & { action?: string };
  const installationId = payload.installation?.id;
  if (!installationId || !payload.repository) return undefined;
  return {
    deliveryId: context.id,
    event: context.name,
    action: payload.action,
    installationId,
    repositoryId: payload.repository.id,
    ref: repoRef(installationId, payload.repository.full_name),
  };
}

type LabelLike = string | { name?: string };
const names = (labels: LabelLike[] | undefined) =>
  (labels ?? [])
    .map((l) => (typeof l === "string" ? l : l.name))
    .filter((n): n is string => Boolean(n));

/**
 * The Probot application: one handler per event. Each parses the payload into plain facts, calls
 * the intake service (which records in Postgres and returns), and lets loops do slow work. A
 * Probot Context never leaves this file.
 */
export function createConveyorApp(deps: ConveyorAppDeps): ApplicationFunction {
  const intake: IntakeDeps = deps;
  return (app) => {
    app.onError((error) => {
      const event = (error as { event?: { id?: string; name?: string } }).event;
      // An AggregateError: the handlers' own errors say what went wrong.
      const causes = (error as { errors?: unknown[] }).errors;
      const first = causes?.[0] ?? error;
      deps.recordError?.("webhook", first, { deliveryId: event?.id, event: event?.name });
    });
    app.on("issues", async (context: Context<"issues">) => {
      const { payload } = context;
      const installationId = payload.installation?.id;
      if (!installationId) {
        deps.logger.warn({ deliveryId: context.id }, "issues event without installation ignored");
        return;
      }
      const issue = payload.issue;
      await handleIssuesEvent(intake, {
        deliveryId: context.id,
        action: payload.action,
        installationId,
        repository: {
          id: payload.repository.id,
          fullName: payload.repository.full_name,
          defaultBranch: payload.repository.default_branch,
          private: payload.repository.private,
        },
        ref: repoRef(installationId, payload.repository.full_name),
        issue: {
          number: issue.number,
          title: issue.title,
          body: issue.body ?? "",
          state: issue.state === "closed" ? "closed" : "open",
          labels: names(issue.labels as LabelLike[] | undefined),
          isPullRequest: Boolean((issue as { pull_request?: unknown }).pull_request),
          htmlUrl: issue.html_url,
          updatedAt: issue.updated_at,
        },
        label: "label" in payload ? payload.label?.name : undefined,
        sender: { login: payload.sender.login, type: payload.sender.type },
      });
    });

    app.on(["installation", "installation_repositories"], async (context) => {
      const payload = context.payload as {
        action: string;
        installation: { id: number };
        repositories?: { id: number; full_name: string; private?: boolean }[];
        repositories_added?: { id: number; full_name: string; private?: boolean }[];
        repositories_removed?: { id: number; full_name: string }[];
      };
      const toRepo = (r: { id: number; full_name: string; private?: boolean }) => ({
        id: r.id,
        fullName: r.full_name,
        private: r.private,
      });
      const removeAll = context.name === "installation" && payload.action === "deleted";
      const added =
        context.name === "installation"
          ? payload.action === "created" || payload.action === "unsuspend"
            ? (payload.repositories ?? [])
            : []
          : (payload.repositories_added ?? []);
      await handleInstallationEvent(intake, {
        deliveryId: context.id,
        event: context.name as "installation" | "installation_repositories",
        action: payload.action,
        installationId: payload.installation.id,
        added: added.map(toRepo),
        removed: (payload.repositories_removed ?? []).map(toRepo),
        removeAll,
      });
    });

    // Any of these may change a merge verdict; the merger re-reads GitHub, so a wake is enough.
    app.on(
      ["pull_request", "pull_request_review", "check_run", "check_suite", "status"],
      async () => deps.onPullRequestActivity(),
    );

    app.on("pull_request.closed", async (context) => {
      const d = delivery(context);
      if (!d) return;
      await handlePullRequestClosed(intake, {
        ...d,
        prNumber: context.payload.pull_request.number,
        merged: Boolean(context.payload.pull_request.merged),
        sender: { login: context.payload.sender.login, type: context.payload.sender.type },
      });
    });
    app.on("pull_request", async (context) => {
      if (context.payload.action === "closed") return;
      await recordOnly(context);
    });

    app.on("check_suite", async (context) => recordOnly(context));

    app.on("check_run", async (context) => {
      const run = context.payload.check_run;
      const d = delivery(context);
      if (!d) return;
      const ours = run.app?.id === deps.appId;
      if (context.payload.action !== "completed" || ours || !isRedConclusion(run.conclusion)) {
        return recordOnly(context);
      }
      await handleFailedCheck(intake, {
        ...d,
        headSha: run.head_sha,
        failed: [
          {
            name: run.name,
            summary: [run.output?.title, run.output?.summary, run.output?.text]
              .filter(Boolean)
              .join("\n\n"),
          },
        ],
      });
    });

    app.on("status", async (context) => {
      const { state, sha, context: name, description, target_url } = context.payload;
      const d = delivery(context);
      if (!d) return;
      if (state !== "failure" && state !== "error") return recordOnly(context);
      await handleFailedCheck(intake, {
        ...d,
        headSha: sha,
        failed: [{ name, summary: [description, target_url].filter(Boolean).join("\n") }],
      });
    });

    app.on("pull_request_review", async (context) => {
      const { review, pull_request: pr, action } = context.payload;
      const d = delivery(context);
      if (!d) return;
      const author = { login: review.user?.login ?? "ghost", type: review.user?.type };
      // A "changes requested" review's body is the feedback for a fix, never commands.
      if (action === "submitted" && review.state.toLowerCase() === "changes_requested") {
        await handleChangesRequested(intake, {
          ...d,
          prNumber: pr.number,
          reviewer: author,
          text: review.body ?? "",
        });
        return;
      }
      if (action !== "submitted" && action !== "edited") return recordOnly(context);
      await handleCommentCommands(deps, {
        ...d,
        action,
        source: "review",
        sourceId: review.id,
        number: pr.number,
        isPullRequest: true,
        author,
        sender: { login: context.payload.sender.login, type: context.payload.sender.type },
        body: review.body ?? "",
        issue: {
          title: pr.title,
          body: pr.body ?? "",
          labels: names(pr.labels as LabelLike[]),
          authorLogin: pr.user?.login ?? "",
        },
      });
    });

    // Slash commands in new comments on issues and pull requests (edits are logged, not run).
    app.on("issue_comment", async (context) => {
      const { comment, issue, action } = context.payload;
      const d = delivery(context);
      if (!d || (action !== "created" && action !== "edited")) return recordOnly(context);
      await handleCommentCommands(deps, {
        ...d,
        action,
        source: "issue_comment",
        sourceId: comment.id,
        number: issue.number,
        isPullRequest: Boolean(issue.pull_request),
        author: { login: comment.user?.login ?? "ghost", type: comment.user?.type },
        sender: { login: context.payload.sender.login, type: context.payload.sender.type },
        body: comment.body ?? "",
        issue: {
          title: issue.title,
          body: issue.body ?? "",
          labels: names(issue.labels as LabelLike[] | undefined),
          authorLogin: issue.user?.login ?? "",
        },
      });
    });

    /** Events without an effect are still recorded, so every delivery is accounted for. */
    async function recordOnly(context: { id: string; name: string; payload: unknown }) {
      const payload = context.payload as { action?: string; installation?: { id: number } };
      await recordDelivery(deps.db, {
        deliveryId: context.id,
        event: context.name,
        action: payload.action,
        installationId: payload.installation?.id,
        outcome: "received",
      });
    }

    // Cache invalidation, recorded in Postgres so every instance sees it (docs/architecture.md,
    // "Caches"): a push to the default branch moves the head the config is cached by; a
    // collaborator or organization member change makes cached permissions stale.
    app.on("push", async (context) => {
      const { payload } = context;
      const branch = payload.repository.default_branch;
      if (payload.installation && !payload.deleted && payload.ref === `refs/heads/${branch}`) {
        await recordDefaultHead(deps.db, {
          installationId: payload.installation.id,
          fullName: payload.repository.full_name,
          defaultBranch: branch,
          headSha: payload.after,
        });
      }
      await recordOnly(context);
    });
    app.on("member", async (context) => {
      await markPermissionsChanged(deps.db, { repositoryId: context.payload.repository.id });
      await recordOnly(context);
    });
    app.on("organization", async (context) => {
      const { payload } = context;
      const changes = payload.action === "member_added" || payload.action === "member_removed";
      if (changes && payload.installation) {
        await markPermissionsChanged(deps.db, { installationId: payload.installation.id });
      }
      await recordOnly(context);
    });

    app.onAny(async (event) => {
      if (!HANDLED_EVENTS.has(event.name)) await recordOnly(event);
    });
  };
}
