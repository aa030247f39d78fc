import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
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
import { LANES, RUNNER_TIERS, TASK_STATES } from "../src/core/task-states.ts";

export const taskState = pgEnum("task_state", TASK_STATES);
export const lane = pgEnum("lane", LANES);
export const runnerTier = pgEnum("runner_tier", RUNNER_TIERS);

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
    // Set when the App is uninstalled from the repository; the row stays for history.
    removedAt: timestamp("removed_at", { withTimezone: true }),
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
    // The status comment is rewritten when status_version passes status_synced_version; a burst of
    // changes bumps the version many times and costs one edit.
    statusVersion: integer("status_version").notNull().default(1),
    statusSyncedVersion: integer("status_synced_version").notNull().default(0),
    // Lets one notifier (of several instances) own the comment while it edits it.
    statusLeaseUntil: timestamp("status_lease_until", { withTimezone: true }),
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
    // The generation whose change set is on the pull request; below `generation` means unpublished.
    publishedGeneration: integer("published_generation").notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    // One active task per (repository, issue); finished series do not block a new one.
    uniqueIndex("tasks_one_active_per_issue")
      .on(t.repositoryId, t.issueNumber)
      .where(sql`${t.state} not in ('merged', 'cancelled')`),
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
  },
  // A revoked runner's name can be registered again (to replace a leaked token).
  (t) => [uniqueIndex("runners_active_name").on(t.name).where(sql`${t.revokedAt} is null`)],
);

/**
 * Every webhook delivery handled, keyed by GitHub's `X-GitHub-Delivery`. Written in the same
 * transaction as its effects, so a redelivery is recognised and changes nothing.
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
  },
  (t) => [index("webhook_deliveries_received_idx").on(t.receivedAt)],
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
