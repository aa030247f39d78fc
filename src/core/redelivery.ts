/**
 * Which of the App's webhook deliveries to ask GitHub to send again. GitHub never retries a failed
 * delivery by itself (https://docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-deliveries);
 * it keeps a log of every attempt for three days and redelivers one on request. A delivery is one
 * attempt (its own `id`); the original and every redelivery of it share the `guid`, which is the
 * `X-GitHub-Delivery` header Conveyor records the deliveries it handled by
 * (https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks#use-the-x-github-delivery-header).
 */

/** One attempt in GitHub's log of the App's webhook deliveries. */
export interface HookDelivery {
  /** GitHub's id of this attempt: the one to redeliver; every redelivery gets a new one. */
  id: number;
  /** `X-GitHub-Delivery`: the same for the original attempt and each redelivery of it. */
  guid: string;
  /** ISO 8601. */
  deliveredAt: string;
  redelivery: boolean;
  /** The answer GitHub got; 0 when it got none (connection refused, timeout). */
  statusCode: number;
  event: string;
  action: string | null;
}

/**
 * GitHub's own classification (`GET /app/hook/deliveries?status=success`): a status code from 200
 * to 399 is a delivery that arrived.
 */
export function isDelivered(statusCode: number): boolean {
  return statusCode >= 200 && statusCode <= 399;
}

export interface RedeliveryOptions {
  /** The GUIDs among these deliveries that Conveyor recorded as handled. */
  handled: ReadonlySet<string>;
  /** At most this many redeliveries asked for in one pass; the rest wait for the next. */
  limit: number;
  /** A GUID that failed this many redeliveries is given up (a delivery that always fails). */
  maxRedeliveries: number;
  /** Milliseconds: deliveries first attempted before this are too old to redeliver. */
  notBefore: number;
}

export interface RedeliveryDecision {
  guid: string;
  event: string;
  action: string | null;
  /** The newest attempt's id (any attempt of the GUID would do). */
  id: number;
  /** Attempts so far, the original included. */
  attempts: number;
}

export interface RedeliveryPlan {
  /** To redeliver now, oldest event first (so they arrive in the order they happened). */
  redeliver: RedeliveryDecision[];
  /** Failed and not handled, but over `limit`: the next pass gets them. */
  deferred: number;
  /** Failed `maxRedeliveries` redeliveries too: left alone, with a warning. */
  givenUp: RedeliveryDecision[];
  /** GUIDs that failed every attempt but that Conveyor handled (its answer was lost or late). */
  handled: number;
}

/**
 * Groups the attempts by GUID and picks the events that never arrived: every attempt failed and
 * Conveyor has no record of handling it. Pure; the redelivery loop reads the log and the records.
 */
export function planRedeliveries(
  deliveries: readonly HookDelivery[],
  options: RedeliveryOptions,
): RedeliveryPlan {
  const byGuid = new Map<string, HookDelivery[]>();
  for (const delivery of deliveries) {
    const attempts = byGuid.get(delivery.guid);
    if (attempts) attempts.push(delivery);
    else byGuid.set(delivery.guid, [delivery]);
  }
  const candidates: { decision: RedeliveryDecision; firstAt: number }[] = [];
  const givenUp: RedeliveryDecision[] = [];
  let handled = 0;
  for (const [guid, attempts] of byGuid) {
    if (attempts.some((a) => isDelivered(a.statusCode))) continue;
    if (options.handled.has(guid)) {
      handled++;
      continue;
    }
    const times = attempts.map((a) => Date.parse(a.deliveredAt));
    const firstAt = Math.min(...times);
    // GitHub refuses to redeliver what is older than its log keeps.
    if (!(firstAt >= options.notBefore)) continue;
    const newest = attempts[times.indexOf(Math.max(...times))] ?? attempts[0]!;
    const decision: RedeliveryDecision = {
      guid,
      event: newest.event,
      action: newest.action,
      id: newest.id,
      attempts: attempts.length,
    };
    const redeliveries = attempts.filter((a) => a.redelivery).length;
    if (redeliveries >= options.maxRedeliveries) givenUp.push(decision);
    else candidates.push({ decision, firstAt });
  }
  candidates.sort((a, b) => a.firstAt - b.firstAt || a.decision.id - b.decision.id);
  const limit = Math.max(0, options.limit);
  return {
    redeliver: candidates.slice(0, limit).map((c) => c.decision),
    deferred: Math.max(0, candidates.length - limit),
    givenUp,
    handled,
  };
}
