import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { LANES, RUNNER_CLASSES, TASK_STATES } from "../src/core/task-states.ts";

export const taskState = pgEnum("task_state", TASK_STATES);
export const lane = pgEnum("lane", LANES);
// A runner's class; "tier" is its old name, kept here so the schema needs no migration.
export const runnerTier = pgEnum("runner_tier", RUNNER_CLASSES);

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();

/** Repositories Conveyor is installed on, kept in sync from installation webhooks. */
export const repositories = pgTable(
  "repositories",
  {
    // GitHub's repository id: stable across renames and transfers.
    repositoryId: bigint("repository_id", { mode: "number" }).primaryKey(),
    installationId: bigint("installation_id", { mode: "number" }).notNull(),
    fullName: text("full_name").notNull(),
    defaultBranch: text("default_branch").notNull().default("main"),
    private: boolean("private").notNull().default(true),
    frozen: boolean("frozen").notNull().default(false),
    frozenReason: text("frozen_reason"),
    // `tasks.daily_budget_usd` as the repository's config said when it was last read (intake,
    // reconciliation); null for no budget.
    dailyBudgetUsd: doublePrecision("daily_budget_usd"),
    // `/budget <usd>`: the daily budget for the UTC day `budget_set_on`, in place of the config's.
    budgetSetUsd: doublePrecision("budget_set_usd"),
    budgetSetOn: date("budget_set_on", { mode: "string" }),
    // Set when the App is uninstalled from the repository; the row stays for history.
    removedAt: timestamp("removed_at", { withTimezone: true }),
    // The default branch's head as last seen (a `push` to it, a dispatch, reconciliation): with
    // `config_sha`, the key of every instance's cached `.github/conveyor.yml`, so a push seen by
    // one instance is seen by all.
    headSha: text("head_sha"),
    // "The config at `head_sha` is the config at `config_sha`": an older commit whose
    // `.github/conveyor.yml` the moves since did not touch (a clean `push`, a merge Conveyor made of
    // a pull request that leaves it alone). Config is cached and read at `config_sha ?? head_sha`,
    // so one read serves every head until the file changes; null after any other move.
    configSha: text("config_sha"),
    // The last `member` or `organization` webhook that may have changed someone's permission
    // here: cached permissions read before it are read again, on every instance.
    permissionsChangedAt: timestamp("permissions_changed_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("repositories_installation_idx").on(t.installationId),
    index("repositories_full_name_idx").on(t.fullName),
  ],
);

/** One row per attempt series of one issue: the durable queue. */
export const tasks = pgTable(
  "tasks",
  {
    taskId: uuid("task_id").primaryKey().defaultRandom(),
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    installationId: bigint("installation_id", { mode: "number" }).notNull(),
    issueNumber: integer("issue_number").notNull(),
    state: taskState("state").notNull().default("queued"),
    lane: lane("lane").notNull().default("normal"),
    capabilities: text("capabilities").array().notNull().default(sql`'{}'::text[]`),
    // Fencing token: incremented on every assignment; messages about an older generation are stale.
    generation: integer("generation").notNull().default(0),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(3),
    // Snapshot of the issue taken when a trusted person queued it; runners only ever see this.
    title: text("title").notNull(),
    body: text("body").notNull().default(""),
    snapshotHash: text("snapshot_hash").notNull(),
    queuedBy: text("queued_by").notNull(),
    runnerId: uuid("runner_id"),
    // When the task (re)entered its lane: FIFO order and aging are measured from here.
    enqueuedAt: timestamp("enqueued_at", { withTimezone: true }).notNull().defaultNow(),
    // A task in retry_wait becomes claimable again at this time.
    availableAt: timestamp("available_at", { withTimezone: true }).notNull().defaultNow(),
    leaseExpiresAt: timestamp("lease_expires_at", { withTimezone: true }),
    deadlineAt: timestamp("deadline_at", { withTimezone: true }),
    limits: jsonb("limits").notNull().default({}),
    lastError: text("last_error"),
    statusCommentId: bigint("status_comment_id", { mode: "number" }),
    // When the notifier first asked GitHub to create the status comment. Set while the id is not
    // known, a comment may exist (a crash between its creation and recording its id), so it is
    // looked for before another is created; never set, nothing is looked for.
    statusCommentAttemptedAt: timestamp("status_comment_attempted_at", { withTimezone: true }),
    // The status comment is rewritten when status_version passes status_synced_version; a burst of
    // changes bumps the version many times and costs one edit.
    statusVersion: integer("status_version").notNull().default(1),
    statusSyncedVersion: integer("status_synced_version").notNull().default(0),
    // Lets one notifier (of several instances) own the comment while it edits it.
    statusLeaseUntil: timestamp("status_lease_until", { withTimezone: true }),
    // What the comment shows as last written: when, a digest of its text (an edit that would
    // change nothing is skipped) and the queue position in it (refreshed when it moved).
    statusSyncedAt: timestamp("status_synced_at", { withTimezone: true }),
    statusDigest: text("status_digest"),
    statusPosition: integer("status_position"),
    reactedAt: timestamp("reacted_at", { withTimezone: true }),
    prNumber: integer("pr_number"),
    // What the runner said when it finished (summary, stats), shown on the PR later.
    result: jsonb("result"),
    // The commit the current attempt starts from: the default branch's head, or the PR's head for
    // a follow-up fix. The change set must name the same commit.
    baseSha: text("base_sha"),
    // Feedback for the next attempt (failing checks, review comments, /fix text); consumed by it.
    feedback: text("feedback"),
    // Follow-up attempts spent, each against its own cap.
    ciFixes: integer("ci_fixes").notNull().default(0),
    reviewFixes: integer("review_fixes").notNull().default(0),
    // Follow-up attempts started because the pull request conflicted with its moved base
    // (`tasks.max_conflict_retries`).
    conflictRetries: integer("conflict_retries").notNull().default(0),
    // The generation whose change set is on the pull request; below `generation` means unpublished.
    publishedGeneration: integer("published_generation").notNull().default(0),
    // `/update`: the next attempt starts from the default branch's head instead of the PR's head
    // (cleared when that attempt's change is published).
    freshBase: boolean("fresh_base").notNull().default(false),
    // Best of N (docs/merge-policy.md#best-of-n): how many candidates the issue runs at once (1:
    // one runner, as usual) and the adapters they are asked for, index k-1 for candidate k (a
    // capability each candidate's runner must offer); empty: any runner.
    bestOf: integer("best_of").notNull().default(1),
    bestOfAdapters: text("best_of_adapters").array().notNull().default(sql`'{}'::text[]`),
    // A candidate of a best-of-N task: its parent (the issue's task) and its number k (1..n). A
    // candidate is dispatched like any task but never gets a status comment or a pull request of
    // its own; its change goes to the branch `conveyor/issue-<N>-<k>`.
    parentTaskId: uuid("parent_task_id"),
    candidate: integer("candidate"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    // One active task per (repository, issue); finished series do not block a new one.
    uniqueIndex("tasks_one_active_per_issue")
      .on(t.repositoryId, t.issueNumber)
      .where(sql`${t.state} not in ('merged', 'cancelled') and ${t.parentTaskId} is null`),
    index("tasks_parent_idx").on(t.parentTaskId).where(sql`${t.parentTaskId} is not null`),
    // The best-of loop's "anything to do?" on every publisher pass: open best-of tasks only.
    index("tasks_best_of_open_idx")
      .on(t.state)
      .where(
        sql`${t.bestOf} > 1 and ${t.parentTaskId} is null and ${t.state} in ('queued', 'running')`,
      ),
    // The claim query scans queued tasks by lane and age.
    index("tasks_claimable_idx")
      .on(t.lane, t.enqueuedAt)
      .where(sql`${t.state} in ('queued', 'retry_wait')`),
    index("tasks_state_idx").on(t.state),
    index("tasks_status_dirty_idx")
      .on(t.taskId)
      .where(sql`${t.statusVersion} > ${t.statusSyncedVersion}`),
  ],
);

/**
 * The candidates of one round of a best-of-N task (docs/merge-policy.md#best-of-n): one row per
 * candidate k, written when the round starts and filled in as the candidate finishes and when the
 * round is decided. The figures are what the ranking compared; they stay after the branches are
 * deleted (the pull request body's table and the analytics read them). `round` is the parent's
 * generation when the round started.
 */
export const candidates = pgTable(
  "candidates",
  {
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    round: integer("round").notNull(),
    k: integer("k").notNull(),
    candidateTaskId: uuid("candidate_task_id")
      .notNull()
      .references(() => tasks.taskId),
    // The capability asked for (an adapter name from `tasks.best_of.adapters`), or null.
    adapter: text("adapter"),
    branch: text("branch").notNull(),
    // The commit written on `branch` from the candidate's change set, and when.
    headSha: text("head_sha"),
    headWrittenAt: timestamp("head_written_at", { withTimezone: true }),
    // The ranking's figures: null until the round is decided.
    verificationPassed: boolean("verification_passed"),
    tier: integer("tier"),
    // `green`, `red`, `pending` or `none` (no check reported on the head).
    checks: text("checks"),
    changedLines: integer("changed_lines"),
    costUsd: doublePrecision("cost_usd"),
    // Why the candidate has no change (its fail reason, a refused change), or null.
    failure: text("failure"),
    // Its place in the ranking (1 = best); null for a candidate without a change.
    rank: integer("rank"),
    // The candidate whose change is on the pull request now (the winner, or `/pick`).
    picked: boolean("picked").notNull().default(false),
    decidedAt: timestamp("decided_at", { withTimezone: true }),
    branchDeletedAt: timestamp("branch_deleted_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.taskId, t.round, t.k] }),
    uniqueIndex("candidates_candidate_task_idx").on(t.candidateTaskId),
    // What the best-of loop still has to do: undecided rounds, branches left to delete.
    index("candidates_open_idx")
      .on(t.taskId)
      .where(
        sql`${t.decidedAt} is null or (${t.headSha} is not null and ${t.branchDeletedAt} is null)`,
      ),
  ],
);

/** Append-only history: every transition of every task, with who did it and why. */
export const taskEvents = pgTable(
  "task_events",
  {
    eventId: bigserial("event_id", { mode: "number" }).primaryKey(),
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    actor: text("actor").notNull(),
    fromState: taskState("from_state"),
    toState: taskState("to_state").notNull(),
    generation: integer("generation").notNull(),
    reason: text("reason").notNull(),
    data: jsonb("data").notNull().default({}),
  },
  (t) => [index("task_events_task_idx").on(t.taskId, t.eventId)],
);

/**
 * One attempt (one generation) of a task as its runner reported it: which agent ran, what it is
 * doing, and what it used. Written from heartbeats' `progress` while it runs (figures are totals so
 * far, so each heartbeat overwrites them) and from the `complete` or `fail` stats at its end. The
 * usage columns are the per-attempt record budgets and analytics read: null means "not reported".
 */
export const attempts = pgTable(
  "attempts",
  {
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    generation: integer("generation").notNull(),
    runnerId: uuid("runner_id"),
    // The runner's adapter (`claude`, `codex`, `gemini`, `aider`, `opencode`, `command`) and model.
    adapter: text("adapter"),
    model: text("model"),
    // The heartbeat's stage and the agent's current tool call (untrusted text, shown escaped).
    stage: text("stage"),
    tool: text("tool"),
    turns: integer("turns"),
    // Input counts cached and uncached input; cache reads and writes are part of it.
    tokens: bigint("tokens", { mode: "number" }),
    inputTokens: bigint("input_tokens", { mode: "number" }),
    outputTokens: bigint("output_tokens", { mode: "number" }),
    cacheReadTokens: bigint("cache_read_tokens", { mode: "number" }),
    cacheWriteTokens: bigint("cache_write_tokens", { mode: "number" }),
    costUsd: doublePrecision("cost_usd"),
    // `completed` or `failed` once the runner said so; null while it runs (or if it vanished).
    outcome: text("outcome"),
    // The fail's reason (`budget exceeded`, `agent_failed`, …); null unless the outcome is `failed`.
    failReason: text("fail_reason"),
    // The runner's wall time for the attempt, from its final `stats`.
    durationMs: bigint("duration_ms", { mode: "number" }),
    // When progress last made the status comment owe an edit (the 30 s throttle).
    progressShownAt: timestamp("progress_shown_at", { withTimezone: true }),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: updatedAt(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    primaryKey({ columns: [t.taskId, t.generation] }),
    index("attempts_finished_idx").on(t.finishedAt),
  ],
);

/**
 * The agent's output per attempt, line by line, redacted before it is written and capped per
 * attempt (the oldest lines go first): the task page's live log.
 */
export const attemptLogs = pgTable(
  "attempt_logs",
  {
    lineId: bigserial("line_id", { mode: "number" }).primaryKey(),
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    generation: integer("generation").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    line: text("line").notNull(),
  },
  (t) => [index("attempt_logs_attempt_idx").on(t.taskId, t.generation, t.lineId)],
);

/**
 * A runner's result for one generation of a task, uploaded over HTTP before `complete` names its
 * digest. Kept until the pull request is written from it.
 */
export const changeSets = pgTable(
  "change_sets",
  {
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    generation: integer("generation").notNull(),
    runnerId: uuid("runner_id").notNull(),
    digest: text("digest").notNull(),
    baseSha: text("base_sha").notNull(),
    message: text("message").notNull(),
    files: jsonb("files").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.generation] })],
);

/** The one pull request of each task (a task series has at most one open PR). */
export const pullRequests = pgTable(
  "pull_requests",
  {
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    prNumber: integer("pr_number").notNull(),
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    branch: text("branch").notNull(),
    // The commit Conveyor wrote: only this head may ever be merged by Conveyor.
    headSha: text("head_sha").notNull(),
    url: text("url").notNull(),
    state: text("state").notNull().default("open"),
    // When `head_sha` was written: checks time out relative to it.
    headWrittenAt: timestamp("head_written_at", { withTimezone: true }).notNull().defaultNow(),
    // The `Conveyor / safety` check run on `safety_check_sha` (one per head, updated in place) and
    // a digest of what it last said, so an unchanged verdict is not written again.
    safetyCheckId: bigint("safety_check_id", { mode: "number" }),
    safetyCheckSha: text("safety_check_sha"),
    verdictDigest: text("verdict_digest"),
    // "Base branch was modified" answers in a row; after 3 the merge waits for the next change.
    mergeConflicts: integer("merge_conflicts").notNull().default(0),
    // The branch the pull request was opened against (the task was made for it): Conveyor merges
    // into no other. Null only for rows older than this column, which the migration backfilled.
    baseRef: text("base_ref"),
    // `merge.update_branch`: Conveyor asked GitHub to merge the base into `head_sha` (then the base
    // tip was `update_base_sha`). The merge commit GitHub makes on top is adopted as the new head.
    updateRequestedFrom: text("update_requested_from"),
    updateBaseSha: text("update_base_sha"),
    updateRequestedAt: timestamp("update_requested_at", { withTimezone: true }),
    // `merge.mode: approve | report`: when a verdict first said "would merge" (every rule but the
    // mode passed), and whether a person then merged it by hand: the evidence for turning on auto.
    wouldMergeAt: timestamp("would_merge_at", { withTimezone: true }),
    mergedByHand: boolean("merged_by_hand").notNull().default(false),
    // GitHub's merge queue (the base branch's rules require it): the head Conveyor enqueued, when,
    // and the post-merge watch planned from the verdict that enqueued it (started once the queue
    // merges). Null when the pull request is not in the queue.
    queuedHeadSha: text("queued_head_sha"),
    queuedAt: timestamp("queued_at", { withTimezone: true }),
    queuePlan: jsonb("queue_plan"),
    // The head the queue removed (its merge group failed, or a person dequeued it) and why:
    // Conveyor never enqueues that head again; a new head or a person has to move it on.
    dequeuedHeadSha: text("dequeued_head_sha"),
    dequeueReason: text("dequeue_reason"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.repositoryId, t.prNumber] }),
    index("pull_requests_task_idx").on(t.taskId),
    index("pull_requests_head_idx").on(t.repositoryId, t.headSha),
  ],
);

/** Registered runner identities; the token itself is never stored, only its SHA-256. */
export const runners = pgTable(
  "runners",
  {
    runnerId: uuid("runner_id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    capabilities: text("capabilities").array().notNull().default(sql`'{}'::text[]`),
    tier: runnerTier("tier").notNull().default("normal"),
    createdAt: createdAt(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
    lastAssignedAt: timestamp("last_assigned_at", { withTimezone: true }),
    // Repositories the runner may take tasks from (`owner/name` or `owner/*`); empty: every one.
    repos: text("repos").array().notNull().default(sql`'{}'::text[]`),
    // A one-time credential: one connection, at most one task, then it is spent.
    oneTime: boolean("one_time").notNull().default(false),
    // A one-time credential not used by then is refused.
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    // When a one-time credential opened its one connection (a second one is refused).
    usedAt: timestamp("used_at", { withTimezone: true }),
  },
  // A revoked runner's name can be registered again (to replace a leaked token).
  (t) => [uniqueIndex("runners_active_name").on(t.name).where(sql`${t.revokedAt} is null`)],
);

/**
 * Runners Conveyor asked GitHub Actions for (`runners.actions`): one row per workflow dispatch,
 * for the waiting task it was made for, with the one-time runner it carries. `state`:
 * `dispatched` (waiting for the runner to connect), `connected`, `failed` (GitHub refused the
 * dispatch), `expired` (the runner never connected before its credential expired).
 */
export const runnerDispatches = pgTable(
  "runner_dispatches",
  {
    dispatchId: uuid("dispatch_id").primaryKey().defaultRandom(),
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    runnerId: uuid("runner_id")
      .notNull()
      .references(() => runners.runnerId),
    workflow: text("workflow").notNull(),
    state: text("state", { enum: ["dispatched", "connected", "failed", "expired"] })
      .notNull()
      .default("dispatched"),
    error: text("error"),
    createdAt: createdAt(),
    settledAt: timestamp("settled_at", { withTimezone: true }),
  },
  (t) => [
    index("runner_dispatches_open_idx").on(t.repositoryId).where(sql`${t.state} = 'dispatched'`),
    index("runner_dispatches_task_idx").on(t.taskId),
  ],
);

/**
 * Every webhook delivery received, keyed by GitHub's `X-GitHub-Delivery`, so a redelivery is
 * recognised and changes nothing. A delivery with an effect is stored with its `intent` (the
 * handler's facts from the payload) before it is answered; the intake loop acts on it (reading
 * GitHub), writes the effect and clears `intent` in one transaction. `intent` not null means the
 * effect is still owed. `lease_holder` (an instance id) and `lease_until` say who is acting on it:
 * `attempts` counts the claims and fences a holder whose lease was taken over.
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    deliveryId: text("delivery_id").primaryKey(),
    event: text("event").notNull(),
    action: text("action"),
    installationId: bigint("installation_id", { mode: "number" }),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    outcome: text("outcome").notNull(),
    intent: jsonb("intent"),
    attempts: integer("attempts").notNull().default(0),
    leaseHolder: text("lease_holder"),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    /**
     * What the delivery is about (`issue:<repository id>:<number>`, …), for deliveries with an
     * effect: an `issues` event acted on from its payload checks that no other event about the
     * issue arrived around it (GitHub does not deliver in order).
     */
    subject: text("subject"),
  },
  (t) => [
    index("webhook_deliveries_received_idx").on(t.receivedAt),
    index("webhook_deliveries_subject_idx")
      .on(t.subject, t.receivedAt)
      .where(sql`${t.subject} is not null`),
    // The intake loop's claim reads only what is owed, oldest first.
    index("webhook_deliveries_owed_idx").on(t.receivedAt).where(sql`${t.intent} is not null`),
  ],
);

/** Run-time settings (alert thresholds, log level, …) shared by every instance. */
export const settings = pgTable("settings", {
  key: text("key").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: updatedAt(),
});

/**
 * Comments Conveyor owes an issue that are not a task's status comment (e.g. telling an untrusted
 * labeller who may queue work). Written in the webhook's transaction, posted by the notifier; the
 * dedupe key makes each notice happen once however often the event arrives.
 */
export const issueNotices = pgTable(
  "issue_notices",
  {
    noticeId: bigserial("notice_id", { mode: "number" }).primaryKey(),
    dedupeKey: text("dedupe_key").notNull().unique(),
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    installationId: bigint("installation_id", { mode: "number" }).notNull(),
    issueNumber: integer("issue_number").notNull(),
    body: text("body").notNull(),
    createdAt: createdAt(),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    postedAt: timestamp("posted_at", { withTimezone: true }),
    commentId: bigint("comment_id", { mode: "number" }),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
  },
  (t) => [index("issue_notices_pending_idx").on(t.noticeId).where(sql`${t.postedAt} is null`)],
);

/**
 * Named leases for work that one instance at a time should do (reconciliation, sweeps). A lease
 * row rather than a session advisory lock: it needs no pinned connection, works the same on PGlite,
 * and a crashed holder's lease simply expires.
 */
export const leases = pgTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
});

/**
 * Tokens for the admin HTTP API, the CLI and the dashboard. `admin` may act, `read` may only look.
 * Like runner tokens, only the SHA-256 of the token is stored.
 */
export const apiTokens = pgTable(
  "api_tokens",
  {
    tokenId: uuid("token_id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    role: text("role", { enum: ["admin", "read"] }).notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    createdAt: createdAt(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("api_tokens_active_name").on(t.name).where(sql`${t.revokedAt} is null`)],
);

/**
 * Dashboard sign-ins: the cookie carries a random session id, the row its SHA-256, the role it was
 * signed in with and the token it came from (revoking the token ends its sessions).
 */
export const dashboardSessions = pgTable(
  "dashboard_sessions",
  {
    sessionHash: text("session_hash").primaryKey(),
    // Null when signed in with CONVEYOR_ADMIN_TOKEN, which has no row.
    tokenId: uuid("token_id").references(() => apiTokens.tokenId),
    role: text("role", { enum: ["admin", "read"] }).notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [index("dashboard_sessions_expires_idx").on(t.expiresAt)],
);

/** Alerts raised by the alerter: at most one firing row per rule; cleared rows stay as history. */
export const alerts = pgTable(
  "alerts",
  {
    alertId: bigserial("alert_id", { mode: "number" }).primaryKey(),
    rule: text("rule").notNull(),
    severity: text("severity", { enum: ["warning", "critical"] }).notNull(),
    status: text("status", { enum: ["firing", "cleared"] })
      .notNull()
      .default("firing"),
    message: text("message").notNull(),
    details: jsonb("details").notNull().default({}),
    firstFiredAt: timestamp("first_fired_at", { withTimezone: true }).notNull().defaultNow(),
    lastFiredAt: timestamp("last_fired_at", { withTimezone: true }).notNull().defaultNow(),
    fireCount: integer("fire_count").notNull().default(1),
    clearedAt: timestamp("cleared_at", { withTimezone: true }),
    acknowledgedAt: timestamp("acknowledged_at", { withTimezone: true }),
    acknowledgedBy: text("acknowledged_by"),
    // The GitHub issue that mirrors this alert, when alert issues are enabled.
    githubRepositoryId: bigint("github_repository_id", { mode: "number" }),
    githubIssueNumber: integer("github_issue_number"),
  },
  (t) => [
    uniqueIndex("alerts_one_firing_per_rule").on(t.rule).where(sql`${t.status} = 'firing'`),
    index("alerts_fired_idx").on(t.lastFiredAt),
  ],
);

/**
 * Periodic samples of gauges that need history (queue depth by lane, busy slots, …), written by
 * one instance at a time, so trends and 1 h windows survive restarts and agree across instances.
 */
export const metricSamples = pgTable(
  "metric_samples",
  {
    metric: text("metric").notNull(),
    // Label set as a stable string, e.g. `lane=normal` ('' for none).
    labels: text("labels").notNull().default(""),
    sampledAt: timestamp("sampled_at", { withTimezone: true }).notNull().defaultNow(),
    value: doublePrecision("value").notNull(),
  },
  (t) => [primaryKey({ columns: [t.metric, t.labels, t.sampledAt] })],
);

/** Errors worth counting (handler failures, loop failures): the alerter's "errors per hour". */
export const errorEvents = pgTable(
  "error_events",
  {
    errorId: bigserial("error_id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    // Where it happened: `webhook`, `notifier`, `publisher`, `merger`, `dispatcher`, …
    source: text("source").notNull(),
    message: text("message").notNull(),
    details: jsonb("details").notNull().default({}),
  },
  (t) => [index("error_events_at_idx").on(t.at)],
);

/**
 * Slash commands seen, one row per comment (or review body), keyed by GitHub's id: a redelivered
 * event finds its row and does nothing twice. `results` holds each command's outcome.
 */
export const commands = pgTable(
  "commands",
  {
    // `issue_comment` or `review`: the two id spaces GitHub uses.
    source: text("source").notNull(),
    sourceId: bigint("source_id", { mode: "number" }).notNull(),
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    installationId: bigint("installation_id", { mode: "number" }).notNull(),
    // The issue or pull request number the comment is on.
    number: integer("number").notNull(),
    isPullRequest: boolean("is_pull_request").notNull(),
    actor: text("actor").notNull(),
    results: jsonb("results").notNull().default([]),
    // The final reaction owed (`+1` or `-1`) and the reply text when refused, posted by the notifier.
    reaction: text("reaction"),
    reply: text("reply"),
    createdAt: createdAt(),
    feedbackLeaseUntil: timestamp("feedback_lease_until", { withTimezone: true }),
    feedbackPostedAt: timestamp("feedback_posted_at", { withTimezone: true }),
    feedbackAttempts: integer("feedback_attempts").notNull().default(0),
    lastError: text("last_error"),
  },
  (t) => [
    primaryKey({ columns: [t.source, t.sourceId] }),
    index("commands_feedback_pending_idx")
      .on(t.createdAt)
      .where(sql`${t.feedbackPostedAt} is null`),
    index("commands_actor_idx").on(t.actor, t.createdAt),
  ],
);

/** `/approve [sha]`: bound to one head SHA; `/unapprove` (or a new head) ends it. */
export const approvals = pgTable(
  "approvals",
  {
    approvalId: bigserial("approval_id", { mode: "number" }).primaryKey(),
    repositoryId: bigint("repository_id", { mode: "number" }).notNull(),
    prNumber: integer("pr_number").notNull(),
    sha: text("sha").notNull(),
    login: text("login").notNull(),
    createdAt: createdAt(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [
    index("approvals_pr_idx").on(t.repositoryId, t.prNumber),
    uniqueIndex("approvals_one_standing")
      .on(t.repositoryId, t.prNumber, t.sha, t.login)
      .where(sql`${t.revokedAt} is null`),
  ],
);

/**
 * The post-merge watch of one merge Conveyor made (docs/merge-policy.md, "After the merge"): the
 * checks expected on the pull request are watched on the merge commit of the base branch; a check
 * that passed on the pull request and on the parent commit but fails there is re-requested once,
 * then reverted. Every step is a column here, so a restart in the middle loses nothing.
 */
export const mergeWatches = pgTable(
  "merge_watches",
  {
    watchId: bigserial("watch_id", { mode: "number" }).primaryKey(),
    taskId: uuid("task_id")
      .notNull()
      .references(() => tasks.taskId),
    repositoryId: bigint("repository_id", { mode: "number" })
      .notNull()
      .references(() => repositories.repositoryId),
    installationId: bigint("installation_id", { mode: "number" }).notNull(),
    issueNumber: integer("issue_number").notNull(),
    prNumber: integer("pr_number").notNull(),
    prTitle: text("pr_title").notNull().default(""),
    baseRef: text("base_ref").notNull(),
    // The commit the merge made on the base branch, and its first parent (the base before it).
    mergeSha: text("merge_sha").notNull(),
    parentSha: text("parent_sha"),
    // The expected checks the merge was decided on; only these are watched.
    checks: text("checks").array().notNull().default(sql`'{}'::text[]`),
    // The risk tier of the merged pull request (merge.revert auto merges the revert only after 1).
    tier: integer("tier").notNull(),
    // `merge.revert` when the merge was made: auto, pr or off.
    revertMode: text("revert_mode").notNull(),
    // watching → rerequested → (green | expired | red → reverting → reverted | revert_closed).
    state: text("state").notNull().default("watching"),
    // The failing checks re-requested once ({name, checkRunId, completedAt}), and when.
    rerequested: jsonb("rerequested").notNull().default([]),
    rerequestedAt: timestamp("rerequested_at", { withTimezone: true }),
    // The checks that failed on the merge commit after passing on the pull request and the parent.
    failing: jsonb("failing").notNull().default([]),
    revertPrNumber: integer("revert_pr_number"),
    revertBranch: text("revert_branch"),
    // The task the issue was queued again as, once the revert merged.
    requeuedTaskId: uuid("requeued_task_id"),
    // The last step, in words (the status comment shows it).
    note: text("note").notNull().default(""),
    deadlineAt: timestamp("deadline_at", { withTimezone: true }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("merge_watches_merge_idx").on(t.repositoryId, t.mergeSha),
    index("merge_watches_open_idx").on(t.watchId).where(sql`${t.finishedAt} is null`),
    index("merge_watches_task_idx").on(t.taskId),
  ],
);
