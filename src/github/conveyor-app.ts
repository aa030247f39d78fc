import type { EmitterWebhookEvent, Webhooks } from "@octokit/webhooks";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { type CommentEvent, commentWithoutCommands } from "../commands/command-service.ts";
import { pushCarriesConfig } from "../core/config-carry.ts";
import { isRedConclusion } from "../core/follow-up.ts";
import { repoRef } from "../core/github-objects.ts";
import { mayAffectQueue } from "../core/intake.ts";
import { describeDequeueReason, parseMergeGroupRef } from "../core/merge-queue.ts";
import { deliverySubject, type WebhookIntent } from "../loops/intake-loop.ts";
import { markPermissionsChanged, recordPushedHead } from "../store/repository-marks.ts";
import type { DeliveryRecorder, OwedDelivery } from "../store/webhook-deliveries.ts";

export interface ConveyorAppDeps {
  logger: Logger;
  /** Stores each delivery once (batched with the others arriving at the same time). */
  recorder: DeliveryRecorder;
  /** Where cache invalidations are marked (a default branch's new head, changed permissions). */
  db: Db;
  /** A delivery was stored with an effect still owed: wakes the intake loop. */
  onIntentOwed: () => void;
  /**
   * Where this instance's intake loop takes deliveries stored already claimed by it, once wired
   * (`createGitHub`'s `handOffDeliveriesTo`); until then deliveries are stored unclaimed and the
   * loop is woken.
   */
  handOff?: () => DeliveryHandOff | undefined;
  /** This App's id: its own check runs never count as CI. */
  appId: number;
  /** Something happened on a pull request (checks, reviews, pushes): re-evaluate merges soon. */
  onPullRequestActivity: () => void;
  /** A handler threw (the delivery is answered 500): counted for the webhook-failure alert. */
  recordError?: (source: string, error: unknown, details?: Record<string, unknown>) => void;
}

/** An intake loop in this process that acts on the deliveries it is handed. */
export interface DeliveryHandOff {
  /** The instance id its claims are held under. */
  holder: string;
  leaseMs: number;
  /** Whether the next delivery may be stored claimed (false: the loop is busy or stopping). */
  reserve(): boolean;
  /** Acts on a delivery stored claimed after `reserve`. */
  take(claim: OwedDelivery): void;
  /** Gives a reservation back: the delivery was a repeat, or could not be stored. */
  release(): void;
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
  "merge_group",
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

/** Where the handlers are registered: `@octokit/webhooks` (what Probot's app API wraps). */
export type WebhookReceiver = Pick<Webhooks, "on" | "onAny" | "onError">;

/**
 * The webhook handlers: one per event. Each parses the payload into plain facts (the delivery's
 * intent), stores the delivery with them in Postgres and returns; the intake loop reads GitHub and
 * carries the effect out (`src/loops/intake-loop.ts`). No handler calls GitHub, so the handlers
 * are registered on a bare `@octokit/webhooks` receiver (signature check and routing), without
 * the authenticated client Probot would build for every delivery. A webhook event never leaves
 * this file.
 */
export function createConveyorApp(deps: ConveyorAppDeps): (app: WebhookReceiver) => void {
  /**
   * Stores the delivery with its intent and hands it to this instance's intake loop (or, when
   * that is busy, wakes the loop to claim it); the answer waits for the commit, so a delivery
   * answered 2xx is never lost. A delivery without an effect (its outcome
   * known from the payload) has nothing to lose: it is answered at once and its record joins the
   * next batch.
   */
  async function record(
    context: { id: string; name: string; payload: unknown },
    intent?: WebhookIntent,
    outcome = intent ? "owed" : "received",
  ) {
    const payload = context.payload as { action?: string; installation?: { id: number } };
    // Stored already claimed by this instance's intake loop and handed to it once committed: no
    // claim of its own (a commit) and no wait for the loop to wake.
    const candidate = intent ? deps.handOff?.() : undefined;
    const handOff = candidate?.reserve() ? candidate : undefined;
    const entry = {
      deliveryId: context.id,
      event: context.name,
      action: payload.action,
      installationId: payload.installation?.id,
      outcome,
      intent,
      subject: intent ? deliverySubject(intent) : undefined,
      claim: handOff && { holder: handOff.holder, leaseMs: handOff.leaseMs },
    };
    const stored = deps.recorder.record(entry);
    if (!intent) {
      stored.catch((error: unknown) =>
        deps.recordError?.("webhook", error, { deliveryId: context.id, event: context.name }),
      );
      return;
    }
    let fresh: boolean;
    try {
      fresh = await stored;
    } catch (error) {
      handOff?.release();
      throw error;
    }
    if (!fresh) handOff?.release();
    else if (handOff) handOff.take({ ...entry, attempts: 1, holder: handOff.holder });
    else deps.onIntentOwed();
  }
  /** Events without an effect are still recorded, so every delivery is accounted for. */
  const recordOnly = (context: { id: string; name: string; payload: unknown }) => record(context);
  /** A comment or review body: stored with an intent only when it has commands to run. */
  const recordComment = (
    context: { id: string; name: string; payload: unknown },
    event: CommentEvent,
  ) => {
    const skipped = commentWithoutCommands(event, deps.logger);
    return skipped === undefined
      ? record(context, { kind: "comment", event })
      : record(context, undefined, skipped);
  };

  return (app) => {
    app.onError((error) => {
      const event = (error as { event?: { id?: string; name?: string } }).event;
      // An AggregateError: the handlers' own errors say what went wrong.
      const causes = (error as { errors?: unknown[] }).errors;
      const first = causes?.[0] ?? error;
      deps.recordError?.("webhook", first, { deliveryId: event?.id, event: event?.name });
    });
    app.on("issues", async (context: EmitterWebhookEvent<"issues">) => {
      const { payload } = context;
      const installationId = payload.installation?.id;
      if (!installationId) {
        deps.logger.warn({ deliveryId: context.id }, "issues event without installation ignored");
        return;
      }
      const issue = payload.issue;
      const labels = names(issue.labels as LabelLike[] | undefined);
      const label = "label" in payload ? payload.label?.name : undefined;
      const issueState: "open" | "closed" = issue.state === "closed" ? "closed" : "open";
      const isPullRequest = Boolean((issue as { pull_request?: unknown }).pull_request);
      const facts = {
        action: payload.action,
        label,
        issueLabels: labels,
        issueState,
        isPullRequest,
      };
      // An edit, an assignment, a pin …: ignored whatever the intake label, so nothing is owed.
      if (!mayAffectQueue(facts)) return record(context, undefined, "ignored");
      await record(context, {
        kind: "issues",
        event: {
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
            state: issueState,
            labels,
            isPullRequest,
            htmlUrl: issue.html_url,
            updatedAt: issue.updated_at,
          },
          label,
          sender: { login: payload.sender.login, type: payload.sender.type },
        },
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
      await record(context, {
        kind: "installation",
        event: {
          deliveryId: context.id,
          event: context.name as "installation" | "installation_repositories",
          action: payload.action,
          installationId: payload.installation.id,
          added: added.map(toRepo),
          removed: (payload.repositories_removed ?? []).map(toRepo),
          removeAll,
        },
      });
    });

    // Any of these may change a merge verdict; the merger re-reads GitHub, so a wake is enough.
    app.on(
      ["pull_request", "pull_request_review", "check_run", "check_suite", "status", "merge_group"],
      async () => deps.onPullRequestActivity(),
    );

    app.on("pull_request.closed", async (context) => {
      const d = delivery(context);
      if (!d) return;
      await record(context, {
        kind: "pull-request-closed",
        event: {
          ...d,
          prNumber: context.payload.pull_request.number,
          merged: Boolean(context.payload.pull_request.merged),
          mergeCommitSha: context.payload.pull_request.merge_commit_sha,
          sender: { login: context.payload.sender.login, type: context.payload.sender.type },
        },
      });
    });
    app.on("pull_request", async (context) => {
      if (context.payload.action === "closed") return;
      const d = delivery(context);
      if (context.payload.action === "dequeued" && d) {
        // Removed from the merge queue without merging: why, for the task (if Conveyor queued it).
        await record(context, {
          kind: "merge-queue",
          event: {
            ...d,
            prNumber: context.payload.pull_request.number,
            outcome: "dequeued",
            headSha: context.payload.pull_request.head.sha,
            reason: describeDequeueReason(context.payload.reason),
            sender: { login: context.payload.sender.login, type: context.payload.sender.type },
          },
        });
        return;
      }
      await recordOnly(context);
    });

    // GitHub's merge queue: the group's head_ref names the pull request. A group that merged
    // finishes the task; one invalidated is noted; `dequeued` comes with `pull_request.dequeued`,
    // which says why. checks_requested is CI's business (the queue's checks are the last gate).
    app.on("merge_group", async (context) => {
      const d = delivery(context);
      const payload = context.payload;
      const group = payload.merge_group;
      const parsed = parseMergeGroupRef(group.head_ref);
      const reason = payload.action === "destroyed" ? payload.reason : undefined;
      if (!d || !parsed || (reason !== "merged" && reason !== "invalidated")) {
        return recordOnly(context);
      }
      await record(context, {
        kind: "merge-queue",
        event: {
          ...d,
          prNumber: parsed.prNumber,
          outcome: reason,
          headSha: group.head_sha,
          baseRef: group.base_ref.replace(/^refs\/heads\//, ""),
          sender: { login: payload.sender?.login ?? "github-merge-queue[bot]", type: "Bot" },
        },
      });
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
      await record(context, {
        kind: "failed-check",
        event: {
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
        },
      });
    });

    app.on("status", async (context) => {
      const { state, sha, context: name, description, target_url } = context.payload;
      const d = delivery(context);
      if (!d) return;
      if (state !== "failure" && state !== "error") return recordOnly(context);
      await record(context, {
        kind: "failed-check",
        event: {
          ...d,
          headSha: sha,
          failed: [{ name, summary: [description, target_url].filter(Boolean).join("\n") }],
        },
      });
    });

    app.on("pull_request_review", async (context) => {
      const { review, pull_request: pr, action } = context.payload;
      const d = delivery(context);
      if (!d) return;
      const author = { login: review.user?.login ?? "ghost", type: review.user?.type };
      // A "changes requested" review's body is the feedback for a fix, never commands.
      if (action === "submitted" && review.state.toLowerCase() === "changes_requested") {
        await record(context, {
          kind: "changes-requested",
          event: { ...d, prNumber: pr.number, reviewer: author, text: review.body ?? "" },
        });
        return;
      }
      if (action !== "submitted" && action !== "edited") return recordOnly(context);
      await recordComment(context, {
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
      await recordComment(context, {
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

    // Cache invalidation, recorded in Postgres so every instance sees it (docs/architecture.md,
    // "Caches"): a push to the default branch moves the head the config is cached by; a
    // collaborator or organization member change makes cached permissions stale.
    app.on("push", async (context) => {
      const { payload } = context;
      const branch = payload.repository.default_branch;
      if (payload.installation && !payload.deleted && payload.ref === `refs/heads/${branch}`) {
        // The config is carried to the new head only when the push itself shows it unchanged.
        await recordPushedHead(deps.db, {
          installationId: payload.installation.id,
          fullName: payload.repository.full_name,
          defaultBranch: branch,
          before: payload.before,
          after: payload.after,
          carries: pushCarriesConfig(payload).carry,
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
