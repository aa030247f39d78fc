import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import type { Clock, HookDeliveryLog, RecordError } from "../core/ports.ts";
import { type HookDelivery, planRedeliveries } from "../core/redelivery.ts";
import type { Lifecycle } from "../lifecycle.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import { recordedDeliveryIds } from "../store/webhook-deliveries.ts";
import { createLoop, type Loop } from "./create-loop.ts";

export type RedeliveryOutcome = "requested" | "refused" | "given_up";

export interface RedeliveryDeps {
  database: Pick<Database, "db">;
  logger: Logger;
  /** Names this instance as the holder of the redelivery lease. */
  instanceId: string;
  /** How often a pass runs (with `CONVEYOR_RECONCILE_MINUTES`, reconciliation's interval). */
  config: Pick<Config, "reconcileIntervalMs">;
  options: RedeliveryOptions;
  hookDeliveries: HookDeliveryLog;
  recordError: RecordError;
  /** Counts `conveyor_webhook_redeliveries_total`. */
  metrics: { webhookRedelivery(outcome: RedeliveryOutcome): void };
}

export interface RedeliveryOptions {
  /** Run a pass at start-up (default) or only on the interval (tests that run it themselves). */
  redeliverOnStart?: boolean | undefined;
  /** Milliseconds between passes (default: reconciliation's interval). */
  redeliveryIntervalMs?: number | undefined;
  /** Redeliveries asked for per pass at most (default 20); the rest wait for the next pass. */
  redeliveriesPerPass?: number | undefined;
  /** Pages of 100 deliveries read per pass at most (default 10), newest first. */
  redeliveryPages?: number | undefined;
  /** The clock the three-day window is measured on (tests move it). */
  now?: Clock | undefined;
}

export interface RedeliveryReport {
  /** Another instance holds the lease and does this pass. */
  skipped: boolean;
  /** Attempts read from GitHub's log, and how many pages that took. */
  listed: number;
  pages: number;
  /** The page limit ended the reading before the three-day window did. */
  cutShort: boolean;
  redelivered: number;
  refused: number;
  deferred: number;
  givenUp: number;
  /** Failed in GitHub's log, but Conveyor handled them (the answer was lost or late). */
  handled: number;
}

export interface Redelivery extends Lifecycle {
  /** Runs a pass now (also runs at start-up and on the interval). */
  runOnce(): Promise<RedeliveryReport>;
}

const LEASE = "webhook-redelivery";
const LEASE_MS = 10 * 60_000;
/** GitHub redelivers only what it delivered in the past three days. */
export const REDELIVERY_WINDOW_MS = 3 * 24 * 60 * 60_000;
/** A delivery that failed this many redeliveries always fails: GitHub is not asked again. */
export const MAX_REDELIVERIES = 3;
const PER_PAGE = 100;

/**
 * Lost deliveries come back: GitHub never retries a failed webhook delivery, so a slash command
 * sent while Conveyor was down, restarting or failing would never be seen. At start-up and every
 * few minutes, one instance (a lease) reads the App's delivery log, newest first, back three days
 * (bounded by pages), and asks GitHub to redeliver each event whose every attempt failed and that
 * Conveyor has no record of handling (`webhook_deliveries`, keyed by `X-GitHub-Delivery`, which a
 * redelivery keeps). Handlers are idempotent, so an event redelivered twice acts once.
 *
 * Started after the HTTP listener, so a redelivery GitHub sends at once finds it accepting.
 */
export function createRedelivery(deps: RedeliveryDeps): Redelivery {
  const { logger, hookDeliveries, options, metrics } = deps;
  const { db } = deps.database;
  const now = options.now ?? Date.now;
  const limit = options.redeliveriesPerPass ?? 20;
  const maxPages = options.redeliveryPages ?? 10;
  const intervalMs = options.redeliveryIntervalMs ?? deps.config.reconcileIntervalMs;
  /** GUIDs already reported as given up by this instance: warned about once, not every pass. */
  const warned = new Set<string>();
  let loop: Loop | undefined;

  async function readLog(notBefore: number) {
    const deliveries: HookDelivery[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await hookDeliveries.list({ cursor, perPage: PER_PAGE });
      pages++;
      deliveries.push(...page.deliveries);
      const oldest = Math.min(...page.deliveries.map((d) => Date.parse(d.deliveredAt)));
      if (!page.next || page.deliveries.length === 0 || oldest < notBefore) {
        return { deliveries, pages, cutShort: false };
      }
      if (pages >= maxPages) return { deliveries, pages, cutShort: true };
      cursor = page.next;
    }
  }

  async function pass(report: RedeliveryReport): Promise<void> {
    const notBefore = now() - REDELIVERY_WINDOW_MS;
    const { deliveries, pages, cutShort } = await readLog(notBefore);
    Object.assign(report, { listed: deliveries.length, pages, cutShort });
    const guids = [...new Set(deliveries.map((d) => d.guid))];
    const handled = await recordedDeliveryIds(db, guids);
    const plan = planRedeliveries(deliveries, {
      handled,
      limit,
      maxRedeliveries: MAX_REDELIVERIES,
      notBefore,
    });
    report.deferred = plan.deferred;
    report.handled = plan.handled;
    for (const lost of plan.redeliver) {
      const fields = { deliveryId: lost.guid, event: lost.event, action: lost.action };
      try {
        await hookDeliveries.redeliver(lost.id);
        report.redelivered++;
        metrics.webhookRedelivery("requested");
        logger.info(
          { ...fields, attempts: lost.attempts },
          "asked GitHub to redeliver a lost webhook delivery",
        );
      } catch (error) {
        report.refused++;
        metrics.webhookRedelivery("refused");
        logger.warn({ ...fields, err: error }, "GitHub refused to redeliver a webhook delivery");
      }
    }
    for (const lost of plan.givenUp) {
      report.givenUp++;
      if (warned.has(lost.guid)) continue;
      if (warned.size > 10_000) warned.clear();
      warned.add(lost.guid);
      metrics.webhookRedelivery("given_up");
      logger.warn(
        { deliveryId: lost.guid, event: lost.event, action: lost.action, attempts: lost.attempts },
        "webhook delivery failed every redelivery; not asking GitHub again",
      );
    }
    if (cutShort) {
      logger.warn(
        { pages, listed: deliveries.length },
        "webhook redelivery read its page limit before the three-day window ended; older deliveries were not checked",
      );
    }
  }

  async function runOnce(): Promise<RedeliveryReport> {
    const report: RedeliveryReport = {
      skipped: false,
      listed: 0,
      pages: 0,
      cutShort: false,
      redelivered: 0,
      refused: 0,
      deferred: 0,
      givenUp: 0,
      handled: 0,
    };
    if (!(await tryAcquireLease(db, LEASE, deps.instanceId, LEASE_MS))) {
      return { ...report, skipped: true };
    }
    try {
      await pass(report);
    } finally {
      await releaseLease(db, LEASE, deps.instanceId);
    }
    const acted = report.redelivered + report.refused + report.deferred > 0;
    logger[acted ? "info" : "debug"](report, "webhook redelivery pass done");
    return report;
  }

  return {
    runOnce,
    start() {
      loop = createLoop({
        name: "redelivery",
        intervalMs,
        initialDelayMs: options.redeliverOnStart === false ? intervalMs : 0,
        logger,
        onError: (error) => deps.recordError("loop:redelivery", error),
        body: async () => {
          await runOnce();
        },
      });
    },
    async stop() {
      const running = loop;
      loop = undefined;
      await running?.stop();
    },
  };
}
