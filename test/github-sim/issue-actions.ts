import {
  type Json,
  renderComment,
  renderIssue,
  renderLabel,
  renderPull,
} from "./github-objects.ts";
import { HttpError, notFound, validationFailed } from "./http-error.ts";
import { pullFacts } from "./pull-facts.ts";
import type { PendingDelivery, SimContext } from "./sim-context.ts";
import {
  ensureUser,
  type ReactionContent,
  type SimApp,
  type SimComment,
  type SimIssue,
  type SimIssueEvent,
  type SimLabel,
  type SimReaction,
  type SimRepo,
  type SimUser,
} from "./sim-state.ts";

/** An action's result plus the webhooks it sent (each resolves once the app answered). */
export type Acted<T> = T & { deliveries: PendingDelivery[] };

/** Payload of an `issues` event, or of a `pull_request` event when the issue is a pull request. */
export async function issueEventPayload(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  action: string,
  extra: Json = {},
): Promise<{ event: string; payload: Json }> {
  if (issue.pull) {
    const facts = await pullFacts(ctx, repo, issue);
    return {
      event: "pull_request",
      payload: {
        action,
        number: issue.number,
        ...extra,
        pull_request: renderPull(ctx.base, repo, issue, facts),
      },
    };
  }
  return {
    event: "issues",
    payload: { action, ...extra, issue: renderIssue(ctx.base, repo, issue) },
  };
}

/**
 * Renders and queues an issue (or pull request) event, adding it to `into`. The delivery is not
 * awaited: a route handler must answer the app before the app can answer the webhook.
 */
export async function emitIssueEvent(
  ctx: SimContext,
  into: PendingDelivery[],
  repo: SimRepo,
  issue: SimIssue,
  action: string,
  sender: SimUser,
  extra: Json = {},
): Promise<void> {
  const { event, payload } = await issueEventPayload(ctx, repo, issue, action, extra);
  if (TIMELINE_ACTIONS.has(action)) {
    const label = extra.label as { name: string; color: string } | undefined;
    issue.timeline.push({
      id: ctx.state.nextId(),
      event: action as SimIssueEvent["event"],
      actor: sender,
      label: label ? { name: label.name, color: label.color } : undefined,
      createdAt: ctx.state.now(),
    });
  }
  into.push(ctx.emit(repo, event, payload, sender));
}

/** Actions GitHub also records as issue events (`GET …/issues/{n}/events`). */
const TIMELINE_ACTIONS = new Set(["labeled", "unlabeled", "closed", "reopened"]);

/** GitHub creates unknown labels on the fly (grey) when they are added to an issue. */
export function ensureLabel(ctx: SimContext, repo: SimRepo, name: string): SimLabel {
  const key = name.toLowerCase();
  let label = repo.labels.get(key);
  if (!label) {
    label = { id: ctx.state.nextId(), name, color: "ededed", description: null, isDefault: false };
    repo.labels.set(key, label);
  }
  return label;
}

export function createLabel(
  ctx: SimContext,
  repo: SimRepo,
  input: { name: string; color?: string; description?: string | null },
): SimLabel {
  if (repo.labels.has(input.name.toLowerCase())) {
    throw validationFailed([{ resource: "Label", code: "already_exists", field: "name" }]);
  }
  const label: SimLabel = {
    id: ctx.state.nextId(),
    name: input.name,
    color: (input.color ?? "ededed").replace(/^#/, ""),
    description: input.description ?? null,
    isDefault: false,
  };
  repo.labels.set(label.name.toLowerCase(), label);
  return label;
}

export async function addLabels(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  names: string[],
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const deliveries: PendingDelivery[] = [];
  // As GitHub does: every label of the request is on the issue before the first `labeled`
  // webhook goes (one per label), so nobody sees half of one request's labels.
  const added = [];
  for (const name of names) {
    const label = ensureLabel(ctx, repo, name);
    if (issue.labels.some((existing) => existing.toLowerCase() === label.name.toLowerCase())) {
      continue;
    }
    issue.labels.push(label.name);
    added.push(label);
  }
  if (added.length) issue.updatedAt = ctx.state.now();
  for (const label of added) {
    await emitIssueEvent(ctx, deliveries, repo, issue, "labeled", sender, {
      label: renderLabel(ctx.base, repo, label),
    });
  }
  return deliveries;
}

export async function removeLabel(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  name: string,
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const index = issue.labels.findIndex((existing) => existing.toLowerCase() === name.toLowerCase());
  const label = repo.labels.get(name.toLowerCase());
  if (index === -1 || !label) throw new HttpError(404, "Label does not exist");
  issue.labels.splice(index, 1);
  issue.updatedAt = ctx.state.now();
  const deliveries: PendingDelivery[] = [];
  await emitIssueEvent(ctx, deliveries, repo, issue, "unlabeled", sender, {
    label: renderLabel(ctx.base, repo, label),
  });
  return deliveries;
}

/** A new open issue (or pull request, with `pull`) numbered in the repository's sequence. */
export function newSimIssue(
  ctx: SimContext,
  repo: SimRepo,
  fields: Pick<SimIssue, "title" | "body" | "user" | "assignees" | "viaApp" | "pull">,
): SimIssue {
  const now = ctx.state.now();
  return {
    id: ctx.state.nextId(),
    number: repo.nextNumber++,
    labels: [],
    state: "open",
    stateReason: null,
    locked: false,
    closedAt: null,
    closedBy: null,
    createdAt: now,
    updatedAt: now,
    reactions: [],
    timeline: [],
    ...fields,
  };
}

export interface CreateIssueInput {
  title: string;
  body?: string | null;
  labels?: string[];
  assignees?: string[];
  user: SimUser;
  viaApp?: SimApp;
}

export async function createIssue(
  ctx: SimContext,
  repo: SimRepo,
  input: CreateIssueInput,
): Promise<Acted<{ issue: SimIssue }>> {
  if (!input.title) {
    throw validationFailed([{ resource: "Issue", code: "missing_field", field: "title" }]);
  }
  const issue = newSimIssue(ctx, repo, {
    title: input.title,
    body: input.body ?? null,
    user: input.user,
    assignees: (input.assignees ?? []).map((login) => ensureUser(ctx.state, login)),
    viaApp: input.viaApp,
    pull: undefined,
  });
  repo.issues.set(issue.number, issue);
  const deliveries: PendingDelivery[] = [];
  await emitIssueEvent(ctx, deliveries, repo, issue, "opened", input.user);
  deliveries.push(...(await addLabels(ctx, repo, issue, input.labels ?? [], input.user)));
  return { issue, deliveries };
}

export interface IssuePatch {
  title?: string;
  body?: string | null;
  state?: "open" | "closed";
  state_reason?: "completed" | "not_planned" | "reopened" | null;
  labels?: string[];
  assignees?: string[];
}

/** Applies an issue (or PR-as-issue) update and sends edited/closed/reopened/labeled events. */
export async function updateIssue(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  patch: IssuePatch,
  sender: SimUser,
): Promise<PendingDelivery[]> {
  const deliveries: PendingDelivery[] = [];
  const now = ctx.state.now();
  const changes: Json = {};
  if (patch.title !== undefined && patch.title !== issue.title) {
    changes.title = { from: issue.title };
    issue.title = patch.title;
  }
  if (patch.body !== undefined && patch.body !== issue.body) {
    changes.body = { from: issue.body ?? "" };
    issue.body = patch.body;
  }
  if (patch.assignees !== undefined) {
    issue.assignees = patch.assignees.map((login) => ensureUser(ctx.state, login));
  }
  if (Object.keys(changes).length > 0) {
    issue.updatedAt = now;
    await emitIssueEvent(ctx, deliveries, repo, issue, "edited", sender, { changes });
  }
  if (patch.labels !== undefined) {
    const wanted = new Set(patch.labels.map((name) => name.toLowerCase()));
    for (const name of [...issue.labels]) {
      if (!wanted.has(name.toLowerCase())) {
        deliveries.push(...(await removeLabel(ctx, repo, issue, name, sender)));
      }
    }
    deliveries.push(...(await addLabels(ctx, repo, issue, patch.labels, sender)));
  }
  if (patch.state === "closed" && issue.state === "open") {
    if (issue.pull?.merged) throw new HttpError(422, "Merged pull requests cannot be closed");
    issue.state = "closed";
    issue.stateReason = issue.pull ? null : (patch.state_reason ?? "completed");
    issue.closedAt = now;
    issue.closedBy = sender;
    issue.updatedAt = now;
    await emitIssueEvent(ctx, deliveries, repo, issue, "closed", sender);
  } else if (patch.state === "open" && issue.state === "closed") {
    if (issue.pull?.merged) {
      throw validationFailed(
        [{ resource: "PullRequest", code: "custom", field: "state" }],
        "state cannot be changed. The pull request has been merged.",
      );
    }
    issue.state = "open";
    issue.stateReason = issue.pull ? null : "reopened";
    issue.closedAt = null;
    issue.closedBy = null;
    issue.updatedAt = now;
    await emitIssueEvent(ctx, deliveries, repo, issue, "reopened", sender);
  }
  return deliveries;
}

function commentEventPayload(
  ctx: SimContext,
  repo: SimRepo,
  comment: SimComment,
  action: string,
  extra: Json = {},
): Json {
  const issue = repo.issues.get(comment.issueNumber)!;
  return {
    action,
    ...extra,
    issue: renderIssue(ctx.base, repo, issue),
    comment: renderComment(ctx.base, repo, comment),
  };
}

export function createComment(
  ctx: SimContext,
  repo: SimRepo,
  issue: SimIssue,
  input: { body: string; user: SimUser; viaApp?: SimApp },
): Acted<{ comment: SimComment }> {
  const now = ctx.state.now();
  const comment: SimComment = {
    id: ctx.state.nextId(),
    issueNumber: issue.number,
    body: input.body,
    user: input.user,
    viaApp: input.viaApp,
    createdAt: now,
    updatedAt: now,
    reactions: [],
  };
  repo.comments.set(comment.id, comment);
  issue.updatedAt = now;
  const payload = commentEventPayload(ctx, repo, comment, "created");
  return { comment, deliveries: [ctx.emit(repo, "issue_comment", payload, input.user)] };
}

export function requireComment(repo: SimRepo, commentId: number | string): SimComment {
  const comment = repo.comments.get(Number(commentId));
  if (!comment) throw notFound();
  return comment;
}

export function updateComment(
  ctx: SimContext,
  repo: SimRepo,
  comment: SimComment,
  body: string,
  sender: SimUser,
): PendingDelivery[] {
  if (body === comment.body) return [];
  const from = comment.body;
  comment.body = body;
  comment.updatedAt = ctx.state.now();
  const payload = commentEventPayload(ctx, repo, comment, "edited", {
    changes: { body: { from } },
  });
  return [ctx.emit(repo, "issue_comment", payload, sender)];
}

export function deleteComment(
  ctx: SimContext,
  repo: SimRepo,
  comment: SimComment,
  sender: SimUser,
): PendingDelivery[] {
  const payload = commentEventPayload(ctx, repo, comment, "deleted");
  repo.comments.delete(comment.id);
  return [ctx.emit(repo, "issue_comment", payload, sender)];
}

/** Adds a reaction unless the user already reacted with it; `created` tells which (201 vs 200). */
export function addReaction(
  ctx: SimContext,
  reactions: SimReaction[],
  content: ReactionContent,
  user: SimUser,
): { reaction: SimReaction; created: boolean } {
  const existing = reactions.find((r) => r.content === content && r.user.id === user.id);
  if (existing) return { reaction: existing, created: false };
  const reaction: SimReaction = {
    id: ctx.state.nextId(),
    user,
    content,
    createdAt: ctx.state.now(),
  };
  reactions.push(reaction);
  return { reaction, created: true };
}
