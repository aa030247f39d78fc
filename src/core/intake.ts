import type { RepoConfig } from "./repo-config.ts";
import { LANES, type Lane, type TaskState } from "./task-states.ts";

/** GitHub's collaborator permission levels, weakest first. */
export const PERMISSIONS = ["none", "read", "triage", "write", "maintain", "admin"] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function hasPermission(actual: Permission | undefined, needed: Permission): boolean {
  if (!actual) return false;
  return PERMISSIONS.indexOf(actual) >= PERMISSIONS.indexOf(needed);
}

export interface Actor {
  login: string;
  type?: string | undefined;
}

/** Bots (Conveyor included) never queue work or steer it. */
export function isBot(actor: Actor): boolean {
  return actor.type === "Bot" || actor.login.endsWith("[bot]");
}

export interface LabelFacts {
  lane: Lane;
  capabilities: string[];
}

/** Lane from `priority:<lane>` (the most urgent wins) and capabilities from `needs:<cap>` + config. */
export function parseTaskLabels(labels: readonly string[], config: RepoConfig): LabelFacts {
  let lane: Lane | undefined;
  const capabilities = new Set(config.tasks.capabilities);
  for (const raw of labels) {
    const label = raw.trim().toLowerCase();
    const priority = /^priority:\s*(\w+)$/.exec(label)?.[1];
    if (priority && (LANES as readonly string[]).includes(priority)) {
      const candidate = priority as Lane;
      if (!lane || LANES.indexOf(candidate) < LANES.indexOf(lane)) lane = candidate;
    }
    const need = /^needs:\s*([a-z0-9][a-z0-9._-]*)$/.exec(label)?.[1];
    if (need) capabilities.add(need);
  }
  return { lane: lane ?? config.intake.default_lane, capabilities: [...capabilities].sort() };
}

export interface IssueEventFacts {
  action: string;
  /** The label added or removed, for `labeled` / `unlabeled`. */
  label?: string | undefined;
  issueLabels: readonly string[];
  issueState: "open" | "closed";
  /** Pull requests are issues too in GitHub's model; they are never intake. */
  isPullRequest: boolean;
  config: RepoConfig;
}

export type IssueEventKind =
  | { kind: "queue"; reason: string }
  | { kind: "cancel"; reason: string }
  | { kind: "ignore"; reason: string };

const sameLabel = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** What an `issues` event means for the queue, before anyone's permission is looked at. */
export function classifyIssueEvent(facts: IssueEventFacts): IssueEventKind {
  const intake = facts.config.intake.label;
  const labelled = facts.issueLabels.some((l) => sameLabel(l, intake));
  if (facts.isPullRequest) return { kind: "ignore", reason: "pull requests are not intake" };
  switch (facts.action) {
    case "opened":
    case "reopened":
      return labelled && facts.issueState === "open"
        ? { kind: "queue", reason: `issue ${facts.action} with label ${intake}` }
        : { kind: "ignore", reason: `issue ${facts.action} without label ${intake}` };
    case "labeled":
      if (!facts.label || !sameLabel(facts.label, intake)) {
        return { kind: "ignore", reason: `label ${facts.label ?? "?"} is not the intake label` };
      }
      return facts.issueState === "open"
        ? { kind: "queue", reason: `label ${intake} added` }
        : { kind: "ignore", reason: "issue is closed" };
    case "unlabeled":
      return facts.label && sameLabel(facts.label, intake)
        ? { kind: "cancel", reason: `label ${intake} removed` }
        : { kind: "ignore", reason: "another label removed" };
    case "closed":
      return { kind: "cancel", reason: "issue closed" };
    case "deleted":
      return { kind: "cancel", reason: "issue deleted" };
    case "transferred":
      return { kind: "cancel", reason: "issue transferred to another repository" };
    default:
      return { kind: "ignore", reason: `issues.${facts.action} does not affect the queue` };
  }
}

/**
 * Whether an `issues` event can change the queue under some configuration, from the payload alone
 * (no config read): when false, `classifyIssueEvent` ignores it whatever the intake label is, so
 * the webhook handler need not leave the event to the intake loop.
 */
export function mayAffectQueue(facts: Omit<IssueEventFacts, "config">): boolean {
  if (facts.isPullRequest) return false;
  switch (facts.action) {
    case "opened":
    case "reopened":
      return facts.issueState === "open" && facts.issueLabels.length > 0;
    case "labeled":
      return facts.issueState === "open" && Boolean(facts.label);
    case "unlabeled":
      return Boolean(facts.label);
    case "closed":
    case "deleted":
    case "transferred":
      return true;
    default:
      return false;
  }
}

/** The issue as GitHub has it now (read back through the API), or undefined if it is gone. */
export interface CurrentIssue {
  state: "open" | "closed";
  labels: readonly string[];
}

/**
 * Whether an issue event still describes the issue. A webhook payload is the issue as it was when
 * the event happened: a delivery that arrives late or out of order, or one replayed under a new
 * `X-GitHub-Delivery` (the signature covers the body, not the delivery id), may describe a past
 * the issue has left. Queue or cancel only if the issue is still that way; otherwise the event is
 * stale and ignored (reconciliation sees the issue as it is).
 */
export function confirmIssueEvent(
  kind: IssueEventKind,
  facts: Pick<IssueEventFacts, "action" | "config">,
  current: CurrentIssue | undefined,
): IssueEventKind {
  if (kind.kind === "ignore") return kind;
  const intake = facts.config.intake.label;
  const labelled = current?.labels.some((l) => sameLabel(l, intake)) ?? false;
  const stale = (why: string): IssueEventKind => ({ kind: "ignore", reason: `stale: ${why}` });
  if (kind.kind === "queue") {
    if (!current) return stale("the issue no longer exists");
    if (current.state !== "open") return stale("the issue is closed now");
    if (!labelled) return stale(`the issue no longer has the label ${intake}`);
    return kind;
  }
  if (facts.action === "closed" && current?.state === "open") {
    return stale("the issue is open again");
  }
  if (facts.action === "unlabeled" && current?.state === "open" && labelled) {
    return stale(`the issue has the label ${intake} again`);
  }
  return kind;
}

export interface QueueRequestFacts {
  sender: Actor;
  /** Undefined when the permission could not be read: treated as no permission (fail closed). */
  permission: Permission | undefined;
  intakeLabel: string;
  /** The issue's active task, if it has one. */
  activeTask?: { state: TaskState } | undefined;
}

export type QueueDecision =
  | { kind: "create" }
  | { kind: "revive"; reason: string }
  | { kind: "refuse"; reply: string; reason: string }
  | { kind: "ignore"; reason: string };

/** Whether a request to queue an issue is honoured: trusted people only, one task per issue. */
export function decideQueueRequest(facts: QueueRequestFacts): QueueDecision {
  if (isBot(facts.sender)) return { kind: "ignore", reason: `${facts.sender.login} is a bot` };
  if (!hasPermission(facts.permission, "write")) {
    return {
      kind: "refuse",
      reason: `${facts.sender.login} has ${facts.permission ?? "unknown"} permission, write is needed`,
      reply:
        `@${facts.sender.login} thanks! Only people with write access to this repository can queue ` +
        `work for Conveyor, so this issue was not queued. A maintainer can add the ` +
        `\`${facts.intakeLabel}\` label or comment \`/queue\`.`,
    };
  }
  if (!facts.activeTask) return { kind: "create" };
  if (facts.activeTask.state === "dead") {
    return { kind: "revive", reason: "queued again after the last attempt failed" };
  }
  return { kind: "ignore", reason: `issue already has a ${facts.activeTask.state} task` };
}

/**
 * How far `updated_at` may trail the label event and still count as the label itself: GitHub sets
 * both for one labelling, and they can land on different seconds.
 */
export const LABEL_SLACK_MS = 3_000;

export interface ReconciledSnapshotFacts {
  /** `created_at` of the last `labeled` event for the intake label (ISO 8601). */
  labelledAt: string;
  /** The issue's `updated_at` now (ISO 8601). */
  updatedAt: string;
  slackMs?: number;
}

export type ReconciledSnapshotDecision =
  | { kind: "snapshot"; reason: string }
  | { kind: "confirm"; reason: string };

/**
 * Whether reconciliation may queue an issue whose label webhook was lost from its text as it is
 * now. GitHub's REST API cannot give the text as of the label event, so an issue changed since
 * then (by anyone, perhaps without write access) waits for a maintainer's `/queue`. `updated_at`
 * also moves for comments and other labels: this fails closed more often than strictly needed.
 */
export function decideReconciledSnapshot(
  facts: ReconciledSnapshotFacts,
): ReconciledSnapshotDecision {
  const labelled = Date.parse(facts.labelledAt);
  const updated = Date.parse(facts.updatedAt);
  if (Number.isNaN(labelled) || Number.isNaN(updated)) {
    return {
      kind: "confirm",
      reason: `cannot compare the label time ${JSON.stringify(facts.labelledAt)} with the issue's update time ${JSON.stringify(facts.updatedAt)}`,
    };
  }
  if (updated > labelled + (facts.slackMs ?? LABEL_SLACK_MS)) {
    return {
      kind: "confirm",
      reason: `the issue was updated at ${facts.updatedAt}, after it was labelled at ${facts.labelledAt}`,
    };
  }
  return { kind: "snapshot", reason: "the issue has not changed since it was labelled" };
}
