import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { type CommentEvent, handleCommentCommands } from "../commands/command-service.ts";
import type { GitHubGateway, RecordError } from "../core/ports.ts";
import {
  handleInstallationEvent,
  handleIssuesEvent,
  type InstallationEvent,
  type IntakeDeps,
  type IssuesEvent,
  type SettleDelivery,
} from "../intake/intake-service.ts";
import {
  type ChangesRequestedEvent,
  type FailedCheckEvent,
  handleChangesRequested,
  handleFailedCheck,
  handleMergeQueueEvent,
  handlePullRequestClosed,
  type MergeQueueEvent,
  type PullRequestClosedEvent,
} from "../intake/pull-request-events.ts";
import {
  claimOwedDeliveries,
  deferOwedDelivery,
  issueSubject,
  type OwedDelivery,
  releaseOwedDeliveries,
  settleOwedDelivery,
} from "../store/webhook-deliveries.ts";

/**
 * What a webhook handler stores with a delivery when the delivery has an effect: the facts it took
 * from the payload, for the intake loop to act on. Stored as JSON (`webhook_deliveries.intent`).
 */
export type WebhookIntent =
  | { kind: "issues"; event: IssuesEvent }
  | { kind: "installation"; event: InstallationEvent }
  | { kind: "pull-request-closed"; event: PullRequestClosedEvent }
  | { kind: "failed-check"; event: FailedCheckEvent }
  | { kind: "changes-requested"; event: ChangesRequestedEvent }
  | { kind: "merge-queue"; event: MergeQueueEvent }
  | { kind: "comment"; event: CommentEvent };

export interface IntakeLoopDeps {
  db: Db;
  gateway: GitHubGateway;
  logger: Logger;
  /** Names this instance as the holder of its claims (its database connections carry the name). */
  instanceId: string;
  recordError: RecordError;
  /** Tasks or notices changed (wakes the notifier and the dispatcher). */
  onChange: () => void;
  /** A command changed something a merge verdict depends on. */
  onPullRequestActivity: () => void;
  /** Slash-command comments one person may write per minute (default 10). */
  commandsPerMinute?: number | undefined;
  /** The first retry of a failed effect waits this long, each later one 4× longer (default 5 s). */
  retryBaseMs?: number | undefined;
}

/** Owed deliveries claimed per pass; a full batch means there may be more. */
export const INTAKE_BATCH = 20;
/** How long a claim is held while acting on it: a holder that dies is taken over before that. */
export const INTAKE_LEASE_MS = 120_000;
const LEASE_MS = INTAKE_LEASE_MS;
/** Claims of one delivery before its effect is given up on (the last wait is 10 min). */
export const INTAKE_MAX_ATTEMPTS = 8;
const MAX_RETRY_MS = 10 * 60_000;

/**
 * The intake loop: acts on the deliveries the webhook handlers stored with an intent. It claims
 * them oldest first, reads what the effect needs from GitHub (the repository's config, the issue
 * as it is now unless a fresh payload stands for it, the sender's permission), and writes the effect and marks the delivery done in one
 * transaction (`settleOwedDelivery`). A delivery whose effect fails stays owed and is retried
 * later (5 s, 20 s, 80 s … at most 10 min); after `INTAKE_MAX_ATTEMPTS` it is given up on with the
 * error as its outcome, counted as a webhook failure either way.
 */
export function createIntakeLoop(deps: IntakeLoopDeps) {
  const { db, logger, instanceId } = deps;
  const retryBaseMs = deps.retryBaseMs ?? 5_000;
  let stopping = false;
  /**
   * The last delivery queued per subject: a delivery is acted on after the one before it about
   * the same issue, pull request, commit or installation, whether a pass claimed it or the
   * webhook handler handed it over.
   */
  const tails = new Map<string, Promise<void>>();
  /** Hand-offs not yet settled, for `drain`. */
  const handedOff = new Set<Promise<void>>();
  /** Hand-offs reserved (stored or being stored) and not yet settled: at most `INTAKE_BATCH`. */
  let reserved = 0;

  /** Runs `work` after the work queued before it about the same subject. */
  function inOrder(subject: string, work: () => Promise<void>): Promise<void> {
    // After the one before, however it ended (its own failure is its caller's to report).
    const next = (tails.get(subject) ?? Promise.resolve()).catch(() => {}).then(work);
    tails.set(subject, next);
    void next.finally(() => {
      if (tails.get(subject) === next) tails.delete(subject);
    });
    return next;
  }

  async function act(claim: OwedDelivery): Promise<void> {
    let settled = false;
    const settle: SettleDelivery = (_delivery, effect) => {
      settled = true;
      return settleOwedDelivery(db, claim, effect);
    };
    const intake: IntakeDeps & { onPullRequestActivity: () => void } = {
      db,
      gateway: deps.gateway,
      logger,
      onChange: deps.onChange,
      onPullRequestActivity: deps.onPullRequestActivity,
      settle,
    };
    try {
      const result = await carryOut(intake, claim);
      const outcome = typeof result === "string" ? result : result.outcome;
      // Decided without writing anything (a reviewer without write access, say): only the
      // outcome is stored.
      if (!settled) await settleOwedDelivery(db, claim, async () => outcome);
    } catch (error) {
      const details = { deliveryId: claim.deliveryId, event: claim.event };
      deps.recordError("webhook", error, details);
      const message = error instanceof Error ? error.message : String(error);
      if (claim.attempts >= INTAKE_MAX_ATTEMPTS) {
        logger.error({ ...details, err: error }, "webhook effect given up");
        await settleOwedDelivery(db, claim, async () =>
          `gave up after ${claim.attempts} attempts: ${message}`.slice(0, 2_000),
        );
        return;
      }
      const waitMs = Math.min(retryBaseMs * 4 ** (claim.attempts - 1), MAX_RETRY_MS);
      logger.warn({ ...details, err: error, retryInMs: waitMs }, "webhook effect failed");
      await deferOwedDelivery(
        db,
        claim,
        waitMs,
        `failed (attempt ${claim.attempts}): ${message}`.slice(0, 2_000),
      );
    }
  }

  function carryOut(
    intake: IntakeDeps & { onPullRequestActivity: () => void },
    claim: OwedDelivery,
  ): Promise<string | { outcome: string }> {
    const intent = claim.intent as WebhookIntent;
    // The row's delivery id is the one the effect is recorded under, whatever the JSON says.
    const deliveryId = claim.deliveryId;
    switch (intent.kind) {
      case "issues":
        return handleIssuesEvent(intake, { ...intent.event, deliveryId });
      case "installation":
        return handleInstallationEvent(intake, { ...intent.event, deliveryId });
      case "pull-request-closed":
        return handlePullRequestClosed(intake, { ...intent.event, deliveryId });
      case "failed-check":
        return handleFailedCheck(intake, { ...intent.event, deliveryId });
      case "changes-requested":
        return handleChangesRequested(intake, { ...intent.event, deliveryId });
      case "merge-queue":
        // A merge through the queue starts a post-merge watch: wake the watcher after it.
        return handleMergeQueueEvent(intake, { ...intent.event, deliveryId }).then((outcome) => {
          deps.onPullRequestActivity();
          return outcome;
        });
      case "comment":
        return handleCommentCommands(
          { ...intake, commandsPerMinute: deps.commandsPerMinute },
          { ...intent.event, deliveryId },
        );
      default:
        throw new Error("unknown webhook intent", {
          cause: { kind: (intent as { kind: unknown }).kind },
        });
    }
  }

  return {
    /**
     * One pass: claims a batch of owed deliveries and acts on them, those about one issue or pull
     * request in the order they arrived, the others side by side (as webhook handlers ran when
     * they called GitHub themselves); returns how many it claimed.
     */
    async runOnce(): Promise<number> {
      if (stopping) return 0;
      const claims = await claimOwedDeliveries(db, {
        holder: instanceId,
        limit: INTAKE_BATCH,
        leaseMs: LEASE_MS,
      });
      const unacted: OwedDelivery[] = [];
      await Promise.all(
        claims.map((claim) =>
          inOrder(subjectOf(claim), async () => {
            if (stopping) unacted.push(claim);
            else await act(claim);
          }),
        ),
      );
      // Stopping: another instance (or this one after a restart) takes them at once.
      await releaseOwedDeliveries(db, unacted);
      return claims.length;
    },
    /**
     * Acts at once on a delivery the webhook handler stored already claimed by this instance
     * (`DeliveryEntry.claim`, after `reserveHandOff`): no claim of its own and no wait for a
     * pass. Deliveries about the
     * same subject still go in the order they were stored. Stopping, it gives the claim back.
     */
    handOff(claim: OwedDelivery): void {
      const done: Promise<void> = inOrder(subjectOf(claim), async () => {
        if (stopping) await releaseOwedDeliveries(db, [claim]);
        else await act(claim);
      })
        .catch((error: unknown) => {
          // Not acted on and not deferred (the database failed): the lease runs out and a pass
          // claims it again.
          logger.warn({ err: error, deliveryId: claim.deliveryId }, "handed-off delivery failed");
          deps.recordError("webhook", error, { deliveryId: claim.deliveryId, event: claim.event });
        })
        .finally(() => {
          handedOff.delete(done);
          reserved--;
        });
      handedOff.add(done);
    },
    /**
     * Whether a delivery being stored may be stored claimed and handed over (`handOff`, or
     * `releaseHandOff` if it turns out a repeat or cannot be stored): at most `INTAKE_BATCH` at
     * once, as a pass claims, so a burst of webhooks does not start hundreds of effects at once;
     * the rest are stored unclaimed for the passes.
     */
    reserveHandOff(): boolean {
      if (stopping || reserved >= INTAKE_BATCH) return false;
      reserved++;
      return true;
    },
    releaseHandOff(): void {
      reserved--;
    },
    /** Ends the pass in progress after the deliveries it is acting on. */
    stop() {
      stopping = true;
    },
    /** Resolves once the handed-off deliveries in progress are settled (or given back). */
    async drain(): Promise<void> {
      while (handedOff.size) await Promise.all([...handedOff]);
    },
  };
}

/**
 * What a delivery with this intent is about: deliveries about the same issue or pull request
 * (whose numbers share one sequence on GitHub), the same commit or the same installation are
 * acted on in order. Undefined for a malformed intent (it fails on its own when acted on).
 */
export function deliverySubject(intent: WebhookIntent): string | undefined {
  if (typeof intent?.event !== "object" || intent.event === null) return undefined;
  switch (intent.kind) {
    case "issues":
      return issueSubject(intent.event.repository?.id, intent.event.issue?.number);
    case "comment":
      return issueSubject(intent.event.repositoryId, intent.event.number);
    case "pull-request-closed":
    case "changes-requested":
    case "merge-queue":
      return issueSubject(intent.event.repositoryId, intent.event.prNumber);
    case "failed-check":
      return `commit:${intent.event.repositoryId}:${intent.event.headSha}`;
    case "installation":
      return `installation:${intent.event.installationId}`;
    default:
      return undefined;
  }
}

function subjectOf(claim: OwedDelivery): string {
  return deliverySubject(claim.intent as WebhookIntent) ?? `delivery:${claim.deliveryId}`;
}
