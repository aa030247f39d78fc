import type { Logger } from "pino";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Database } from "../../db/client.ts";
import type { BudgetSnapshot } from "../core/github-budget.ts";
import { adapterLabel } from "../core/outcome-analytics.ts";
import {
  type ConnectionSupplyFacts,
  capabilityKey,
  runnersWanted,
  supplyOf,
} from "../core/runner-demand.ts";
import { LANES, TASK_STATES } from "../core/task-states.ts";
import { BUDGET_EXCEEDED } from "../protocol/messages.ts";
import type { FinishedAttempt } from "../store/attempts.ts";
import {
  countFiringAlerts,
  countPullRequests,
  countRunners,
  countTasksByStateAndLane,
  oldestQueuedByLane,
  type TailEvent,
} from "../store/metrics.ts";
import { waitingWork } from "../store/runner-demand.ts";

/*
 * Every Prometheus metric of one server, on a registry of its own (tests run several servers in
 * one process). Three kinds, and how to add them up across instances:
 *
 * - database facts (tasks, runners, pull requests, alerts): read at scrape time, cached briefly;
 *   every instance reports the same numbers, so take `max` across instances, never `sum`;
 * - this instance's own work (webhooks, GitHub calls, sockets, dispatch, errors): `sum`;
 * - task durations and transitions: observed once per transition by whichever instance holds the
 *   event tail's lease (see the metrics loop), so `sum` across instances is exact.
 */

const DURATION_BUCKETS = {
  wait: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400],
  run: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
  endToEnd: [30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800],
  request: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
};

/** A runner socket as the metrics see it: its slots, and what it offers (runners wanted). */
export type ConnectionFacts = ConnectionSupplyFacts;

export interface MetricsOptions {
  database: Database;
  logger: Logger;
  /** How long database facts are reused between scrapes (default 2 s). */
  factsTtlMs?: number;
  /** A runner counts as online when an instance saw its socket this recently (default 30 s). */
  onlineWindowMs?: number;
  /** Node's process metrics (default on; off in unit tests that count series). */
  processMetrics?: boolean;
  /**
   * How long a scrape waits for the database facts (default 3 s): an unreachable database makes
   * `conveyor_database_up` 0 quickly instead of running into Prometheus's scrape timeout.
   */
  factsTimeoutMs?: number;
  /** Each GitHub client's budget as this instance last saw it, read at scrape time. */
  githubBudget?: () => BudgetSnapshot[];
}

export type ConveyorMetrics = ReturnType<typeof createMetrics>;

/** Label values an unauthenticated sender cannot multiply: anything unknown becomes `other`. */
const WEBHOOK_EVENTS = new Set([
  "check_run",
  "check_suite",
  "github_app_authorization",
  "installation",
  "installation_repositories",
  "installation_target",
  "issue_comment",
  "issues",
  "label",
  "merge_group",
  "meta",
  "ping",
  "pull_request",
  "pull_request_review",
  "pull_request_review_comment",
  "pull_request_review_thread",
  "push",
  "repository",
  "status",
]);

export function webhookEventLabel(event: string | undefined): string {
  return event && WEBHOOK_EVENTS.has(event) ? event : "other";
}

const runOutcome = (toState: string) =>
  toState === "pushed"
    ? "succeeded"
    : ["retry_wait", "dead", "failed"].includes(toState)
      ? "failed"
      : toState === "cancelled"
        ? "cancelled"
        : "other";

export function createMetrics(options: MetricsOptions) {
  const registry = new Registry();
  const { database, logger } = options;
  const ttl = options.factsTtlMs ?? 2_000;
  const onlineWindowMs = options.onlineWindowMs ?? 30_000;
  const registers = [registry];
  let connections: () => readonly ConnectionFacts[] = () => [];

  if (options.processMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: "conveyor_" });
    // prom-client also reports these gauges a second time as `…_total`, a suffix Prometheus
    // reserves for counters (`promtool check metrics` refuses them); the plain names stay.
    for (const name of ["active_handles", "active_requests", "active_resources"]) {
      registry.removeSingleMetric(`conveyor_nodejs_${name}_total`);
    }
  }

  // ----- database facts, read at scrape time (one set of queries per `ttl`, shared) -----
  type Facts = Awaited<ReturnType<typeof queryFacts>>;
  let facts: { at: number; value: Promise<Facts | undefined> } | undefined;
  const factsTimeoutMs = options.factsTimeoutMs ?? 3_000;
  async function readFacts() {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        queryFacts(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${factsTimeoutMs} ms`)),
            factsTimeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
  async function queryFacts() {
    const [tasks, oldest, runners, pulls, alerts, waiting] = await Promise.all([
      countTasksByStateAndLane(database.db),
      oldestQueuedByLane(database.db),
      countRunners(database.db, new Date(Date.now() - onlineWindowMs)),
      countPullRequests(database.db),
      countFiringAlerts(database.db),
      waitingWork(database.db),
    ]);
    return { tasks, oldest, runners, pulls, alerts, waiting };
  }
  function currentFacts(): Promise<Facts | undefined> {
    if (!facts || Date.now() - facts.at > ttl) {
      facts = {
        at: Date.now(),
        value: readFacts().catch((error: unknown) => {
          logger.warn({ err: error }, "metrics: reading database facts failed");
          return undefined;
        }),
      };
    }
    return facts.value;
  }

  new Gauge({
    name: "conveyor_database_up",
    help: "1 when the database answered the last scrape's queries, else 0.",
    registers,
    async collect() {
      this.set((await currentFacts()) ? 1 : 0);
    },
  });
  new Gauge({
    name: "conveyor_tasks",
    help: "Tasks by state and lane (database; the same on every instance).",
    labelNames: ["state", "lane"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      // Every combination is present (0 included), so a dashboard line does not vanish at zero.
      for (const state of TASK_STATES) for (const lane of LANES) this.set({ state, lane }, 0);
      for (const row of f.tasks) this.set({ state: row.state, lane: row.lane }, row.n);
    },
  });
  new Gauge({
    name: "conveyor_queue_oldest_task_age_seconds",
    help: "How long the oldest queued task of each lane has waited (database).",
    labelNames: ["lane"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      for (const lane of LANES) this.set({ lane }, f.oldest[lane] ?? 0);
    },
  });
  new Gauge({
    name: "conveyor_runners",
    help: "Registered runners by state: online (a socket seen recently), offline, revoked (database).",
    labelNames: ["state"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      this.set({ state: "online" }, f.runners.online);
      this.set({ state: "offline" }, f.runners.registered - f.runners.online);
      this.set({ state: "revoked" }, f.runners.revoked);
    },
  });
  new Gauge({
    name: "conveyor_pull_requests",
    help: "Conveyor's pull requests by state and by the verdict and tier of their safety check (database).",
    labelNames: ["state", "verdict", "tier"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      for (const row of f.pulls) {
        this.set({ state: row.state, verdict: row.verdict, tier: row.tier }, row.n);
      }
    },
  });
  new Gauge({
    name: "conveyor_alerts_firing",
    help: "Alerts firing, by rule and severity (database).",
    labelNames: ["rule", "severity"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      for (const row of f.alerts) this.set({ rule: row.rule, severity: row.severity }, row.n);
    },
  });

  new Gauge({
    name: "conveyor_runners_wanted",
    help: 'Runners to start now, by the capabilities the waiting tasks need (comma-separated, "" for none): queued tasks due minus the free slots of the runners connected to this instance that could take them. For KEDA\'s Prometheus scaler or a Horizontal Pod Autoscaler.',
    labelNames: ["capabilities"],
    registers,
    async collect() {
      this.reset();
      const f = await currentFacts();
      if (!f) return;
      // Tasks that need nothing special: always present, so the series does not vanish at 0.
      this.set({ capabilities: "" }, 0);
      for (const demand of runnersWanted(f.waiting, connections().map(supplyOf))) {
        this.set({ capabilities: capabilityKey(demand.capabilities) }, demand.runnersWanted);
      }
    },
  });

  // ----- this instance -----
  new Gauge({
    name: "conveyor_runners_connected",
    help: "Runner sockets open on this instance.",
    registers,
    collect() {
      this.set(connections().length);
    },
  });
  new Gauge({
    name: "conveyor_runner_slots",
    help: "Task slots offered by the runners connected to this instance.",
    registers,
    collect() {
      this.set(connections().reduce((sum, c) => sum + c.slots, 0));
    },
  });
  new Gauge({
    name: "conveyor_runner_slots_busy",
    help: "Task slots in use on the runners connected to this instance.",
    registers,
    collect() {
      this.set(connections().reduce((sum, c) => sum + c.tasks.size, 0));
    },
  });

  const dispatchLatency = new Histogram({
    name: "conveyor_dispatch_latency_seconds",
    help: "From a task entering the queue to its assign frame being sent to a runner.",
    labelNames: ["lane"],
    buckets: DURATION_BUCKETS.wait,
    registers,
  });
  // Attempts by agent: `adapter` is one of the known adapters or `other` (never a model or a
  // runner name, which are open-ended); the per-model view is `GET /api/analytics`.
  const agentAttempts = new Counter({
    name: "conveyor_agent_attempts_total",
    help: "Attempts that ended, by adapter and outcome (complete, fail, budget_exceeded).",
    labelNames: ["adapter", "outcome"],
    registers,
  });
  const agentCost = new Counter({
    name: "conveyor_agent_cost_usd_total",
    help: "What attempts that ended cost, in USD as the runners reported it, by adapter.",
    labelNames: ["adapter"],
    registers,
  });
  const agentTokens = new Counter({
    name: "conveyor_agent_tokens_total",
    help: "Model tokens (input, cached or not, plus output) of attempts that ended, by adapter.",
    labelNames: ["adapter"],
    registers,
  });
  const webhookDeliveries = new Counter({
    name: "conveyor_webhook_deliveries_total",
    help: 'Webhook deliveries by event and outcome (handled, rejected: bad signature or payload, failed: the delivery could not be stored; effects that fail later count in conveyor_errors_total{source="webhook"}).',
    labelNames: ["event", "outcome"],
    registers,
  });
  const webhookSeconds = new Histogram({
    name: "conveyor_webhook_handling_seconds",
    help: "Time from receiving a webhook delivery to answering it.",
    labelNames: ["event"],
    buckets: DURATION_BUCKETS.request,
    registers,
  });
  const webhookRedeliveries = new Counter({
    name: "conveyor_webhook_redeliveries_total",
    help: "Lost webhook deliveries this instance asked GitHub to send again (requested), GitHub refused to (refused), or that failed every redelivery and were left alone (given_up).",
    labelNames: ["outcome"],
    registers,
  });
  const githubRequests = new Counter({
    name: "conveyor_github_requests_total",
    help: "GitHub API calls by method, route template and status (0: no answer).",
    labelNames: ["method", "route", "status"],
    registers,
  });
  const githubSeconds = new Histogram({
    name: "conveyor_github_request_duration_seconds",
    help: "GitHub API call duration.",
    labelNames: ["method"],
    buckets: DURATION_BUCKETS.request,
    registers,
  });
  const rateLimitRemaining = new Gauge({
    name: "conveyor_github_rate_limit_remaining",
    help: "Requests left in the current GitHub rate-limit window, by client (app or installation id) and resource.",
    labelNames: ["client", "resource"],
    registers,
  });
  const rateLimitLimit = new Gauge({
    name: "conveyor_github_rate_limit_limit",
    help: "Size of the GitHub rate-limit window, by client and resource.",
    labelNames: ["client", "resource"],
    registers,
  });
  /** The budget gauges, set from the budget's snapshot at scrape time (a client that left drops). */
  const budgetGauge = (name: string, help: string, value: (row: BudgetSnapshot) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["client"],
      registers,
      collect() {
        this.reset();
        for (const row of options.githubBudget?.() ?? [])
          this.set({ client: row.client }, value(row));
      },
    });
  budgetGauge(
    "conveyor_github_rate_limit_used",
    "Requests spent in the current GitHub rate-limit window (core resource), by client (app or installation id).",
    (row) => row.used ?? row.limit - row.remaining,
  );
  budgetGauge(
    "conveyor_github_rate_limit_reset_timestamp_seconds",
    "When the client's current GitHub rate-limit window resets, Unix seconds.",
    (row) => Date.parse(row.reset_at) / 1000,
  );
  budgetGauge(
    "conveyor_github_budget_reserve",
    "Requests of the client's window kept for essential work (CONVEYOR_GITHUB_RESERVE_PERCENT of its limit).",
    (row) => row.reserve,
  );
  budgetGauge(
    "conveyor_github_budget_deferring",
    "1 while the client's optional GitHub work (status comments, reconciliation) waits: under the reserve or rate-limited.",
    (row) => (row.deferring ? 1 : 0),
  );
  budgetGauge(
    "conveyor_github_rate_limited_until_timestamp_seconds",
    "Until when a rate limit GitHub answered holds every request of the client back, Unix seconds (0: none).",
    (row) => (row.limited_until ? Date.parse(row.limited_until) / 1000 : 0),
  );
  const githubRateLimited = new Counter({
    name: "conveyor_github_rate_limited_total",
    help: "GitHub answers refusing a request for a rate limit, by kind (primary: the hourly window is empty; secondary: retry-after or GitHub's secondary limits).",
    labelNames: ["kind"],
    registers,
  });
  const githubDeferred = new Counter({
    name: "conveyor_github_deferred_total",
    help: "Optional GitHub work put off because the installation's budget was under the reserve, by work (status_comment, reconciliation).",
    labelNames: ["work"],
    registers,
  });
  const framesRateLimited = new Counter({
    name: "conveyor_runner_frames_rate_limited_total",
    help: "Runner frames answered rate_limited, by tier.",
    labelNames: ["tier"],
    registers,
  });
  const framesInvalid = new Counter({
    name: "conveyor_runner_frames_invalid_total",
    help: "Runner frames that failed validation (bad JSON, unknown type, bad fields).",
    registers,
  });
  const violationCloses = new Counter({
    name: "conveyor_runner_violation_disconnects_total",
    help: "Runner sockets closed (1008) for too many invalid frames.",
    registers,
  });
  const errors = new Counter({
    name: "conveyor_errors_total",
    help: "Errors recorded (the alerter counts them per hour), by where they happened.",
    labelNames: ["source"],
    registers,
  });
  const alertNotifications = new Counter({
    name: "conveyor_alert_notifications_total",
    help: "Alerts fired, reminded and cleared by this instance's alerter.",
    labelNames: ["rule", "severity", "kind"],
    registers,
  });

  // ----- transitions, observed once (the event tail) -----
  const waitSeconds = new Histogram({
    name: "conveyor_task_wait_seconds",
    help: "Queue wait: a task entering the queue to its assignment.",
    labelNames: ["lane"],
    buckets: DURATION_BUCKETS.wait,
    registers,
  });
  const runSeconds = new Histogram({
    name: "conveyor_task_run_seconds",
    help: "Run time of an accepted attempt: assignment to its end, by outcome.",
    labelNames: ["outcome"],
    buckets: DURATION_BUCKETS.run,
    registers,
  });
  const endToEndSeconds = new Histogram({
    name: "conveyor_task_end_to_end_seconds",
    help: "A task's creation to its pull request being merged.",
    buckets: DURATION_BUCKETS.endToEnd,
    registers,
  });
  const transitions = new Counter({
    name: "conveyor_task_transitions_total",
    help: "Task state transitions, by from and to state (`none`: the task was created).",
    labelNames: ["from", "to"],
    registers,
  });
  const merges = new Counter({
    name: "conveyor_merges_total",
    help: "Conveyor pull requests merged (by Conveyor or by a person).",
    registers,
  });

  const runnerDispatches = new Counter({
    name: "conveyor_runner_dispatches_total",
    help: "Runners dispatched through GitHub Actions (runners.actions), by outcome: dispatched, connected, failed (GitHub refused), expired (never connected).",
    labelNames: ["outcome"],
    registers,
  });
  for (const outcome of ["dispatched", "connected", "failed", "expired"]) {
    runnerDispatches.inc({ outcome }, 0);
  }

  return {
    registry,
    runnerDispatch(outcome: string) {
      runnerDispatches.inc({ outcome });
    },
    /** Where the per-instance socket gauges read from (the dispatcher, once it exists). */
    setConnections(read: () => readonly ConnectionFacts[]) {
      connections = read;
    },
    /** Prometheus text: every metric of this server. */
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
    dispatchSent(lane: string, seconds: number) {
      if (Number.isFinite(seconds) && seconds >= 0) dispatchLatency.observe({ lane }, seconds);
    },
    webhook(event: string | undefined, status: number, seconds: number) {
      const label = webhookEventLabel(event);
      const outcome = status < 400 ? "handled" : status < 500 ? "rejected" : "failed";
      webhookDeliveries.inc({ event: label, outcome });
      webhookSeconds.observe({ event: label }, seconds);
    },
    webhookRedelivery(outcome: "requested" | "refused" | "given_up") {
      webhookRedeliveries.inc({ outcome });
    },
    githubRequest(method: string, route: string, status: number, seconds: number) {
      githubRequests.inc({ method, route, status: String(status) });
      githubSeconds.observe({ method }, seconds);
    },
    githubRateLimit(client: string, resource: string, remaining: number, limit: number) {
      if (Number.isFinite(remaining)) rateLimitRemaining.set({ client, resource }, remaining);
      if (Number.isFinite(limit)) rateLimitLimit.set({ client, resource }, limit);
    },
    githubRateLimited(kind: "primary" | "secondary") {
      githubRateLimited.inc({ kind });
    },
    githubDeferred(work: "status_comment" | "reconciliation") {
      githubDeferred.inc({ work });
    },
    frameRateLimited(tier: string) {
      framesRateLimited.inc({ tier });
    },
    frameInvalid() {
      framesInvalid.inc();
    },
    attemptFinished(attempt: FinishedAttempt) {
      const adapter = adapterLabel(attempt.agent?.adapter ?? null);
      const outcome =
        attempt.outcome === "completed"
          ? "complete"
          : attempt.failReason === BUDGET_EXCEEDED
            ? "budget_exceeded"
            : "fail";
      agentAttempts.inc({ adapter, outcome });
      const cost = attempt.stats?.cost_usd;
      if (cost !== undefined && Number.isFinite(cost) && cost > 0) agentCost.inc({ adapter }, cost);
      const tokens = attempt.stats?.tokens;
      if (tokens !== undefined && Number.isFinite(tokens) && tokens > 0) {
        agentTokens.inc({ adapter }, tokens);
      }
    },
    violationDisconnect() {
      violationCloses.inc();
    },
    error(source: string) {
      errors.inc({ source });
    },
    alertNotified(rule: string, severity: string, kind: "fired" | "reminded" | "cleared") {
      alertNotifications.inc({ rule, severity, kind });
    },
    /** One transition from the event tail. */
    transition(event: TailEvent) {
      transitions.inc({ from: event.fromState ?? "none", to: event.toState });
      const usable = (v: number | null): v is number => v !== null && Number.isFinite(v) && v >= 0;
      if (usable(event.waitSeconds)) waitSeconds.observe({ lane: event.lane }, event.waitSeconds);
      if (usable(event.runSeconds)) {
        runSeconds.observe({ outcome: runOutcome(event.toState) }, event.runSeconds);
      }
      if (event.toState === "merged") {
        merges.inc();
        if (usable(event.endToEndSeconds)) endToEndSeconds.observe(event.endToEndSeconds);
      }
    },
  };
}
