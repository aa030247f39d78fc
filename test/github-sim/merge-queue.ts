import { type Json, nodeId } from "./github-objects.ts";
import { emitIssueEvent } from "./issue-actions.ts";
import { mergeQueueFor, requiredChecksFor } from "./protection.ts";
import { recordMerged, writeMergeCommit } from "./pull-actions.ts";
import type { PendingDelivery, SimContext } from "./sim-context.ts";
import { ensureUser, type SimIssue, type SimRepo, type SimUser } from "./sim-state.ts";

/** Conclusions GitHub accepts for a required check (as for a direct merge). */
const PASSING = new Set(["success", "neutral", "skipped"]);

/** One pull request in a repository's merge queue. */
export interface SimQueueEntry {
  id: number;
  repo: SimRepo;
  issue: SimIssue;
  baseRef: string;
  /** The pull request's head when it was enqueued. */
  headSha: string;
  enqueuedBy: SimUser;
  enqueuedAt: string;
  /** Set while its merge group exists: `gh-readonly-queue/<base>/pr-<n>-<base sha>`. */
  group?: { branch: string; headSha: string; baseSha: string };
}

/** Why an enqueue was refused: GraphQL answers it as an error with this `type`. */
export class QueueRefusal extends Error {
  constructor(
    readonly type: "UNPROCESSABLE" | "FORBIDDEN" | "NOT_FOUND",
    message: string,
  ) {
    super(message);
  }
}

export interface SimMergeQueue {
  /**
   * `enqueuePullRequest`: adds the pull request to its base branch's queue (the same entry when
   * it is already there). Refused when the base requires no merge queue, the pull request is not
   * open, is a draft, conflicts, or its head is not `expectedHeadOid`.
   */
  enqueue(
    repo: SimRepo,
    issue: SimIssue,
    by: SimUser,
    options?: { expectedHeadOid?: string | undefined; jump?: boolean | undefined },
  ): Promise<SimQueueEntry>;
  /** The queue entry of a pull request, if it is queued. */
  entryOf(repo: SimRepo, issueNumber: number): SimQueueEntry | undefined;
  /** The position (1-based) of an entry in its base branch's queue. */
  positionOf(entry: SimQueueEntry): number;
  /** A check or status concluded on `sha`: a merge group with that head may now merge or fail. */
  checksChanged(repo: SimRepo, sha: string): void;
  /** A person removes a pull request from the queue (`pull_request.dequeued` reason MANUAL). */
  dequeue(repo: SimRepo, issueNumber: number, by: SimUser): Promise<void>;
  idle(): Promise<void>;
  busy(): boolean;
}

/**
 * GitHub's merge queue, one pull request per merge group and one group built at a time per base
 * branch (what `max_entries_to_build: 1` does): the first entry's group is the base tip plus the
 * pull request, written as the rule's `merge_method` says, on `gh-readonly-queue/<base>/pr-<n>-<base
 * sha>` (which starts CI there, `merge_group.checks_requested`). When every required check of the
 * base passed on the group's head, the base is fast-forwarded to it, the pull request is merged
 * (merged by whoever enqueued it) and `merge_group.destroyed` (reason `merged`) and
 * `pull_request.closed` are sent; a required check that failed removes the entry
 * (`merge_group.destroyed` reason `dequeued`, `pull_request.dequeued` reason `CI_FAILURE`). A base
 * that moved under a group invalidates it (`destroyed` reason `invalidated`) and the group is built
 * again on the new tip. Work triggered by checks runs in the background; `idle()` waits for it.
 */
export function createMergeQueue(ctx: SimContext): SimMergeQueue {
  const entries: SimQueueEntry[] = [];
  const running = new Set<Promise<void>>();
  /** Deliveries are chained so each repository's queue advances one step at a time. */
  let chain: Promise<void> = Promise.resolve();
  const queueBot = () => ensureUser(ctx.state, "github-merge-queue[bot]", "Bot");

  const queueOf = (repo: SimRepo, baseRef: string) =>
    entries.filter((e) => e.repo === repo && e.baseRef === baseRef);

  const track = (work: () => Promise<void>) => {
    const job = chain.then(work).catch((error: unknown) => {
      ctx.logger.warn({ err: error }, "merge queue step failed");
    });
    chain = job;
    running.add(job);
    void job.finally(() => running.delete(job));
  };

  async function groupPayload(entry: SimQueueEntry): Promise<Json> {
    const group = entry.group!;
    const commit = (await ctx.git.readCommit(entry.repo.fullName, group.headSha))!;
    return {
      head_sha: group.headSha,
      head_ref: `refs/heads/${group.branch}`,
      base_sha: group.baseSha,
      base_ref: `refs/heads/${entry.baseRef}`,
      head_commit: {
        id: group.headSha,
        tree_id: commit.tree,
        message: commit.message.trim(),
        timestamp: commit.committer.date,
        author: { name: commit.author.name, email: commit.author.email },
        committer: { name: commit.committer.name, email: commit.committer.email },
      },
    };
  }

  /** Builds the merge group of the first entry of a queue that has none. */
  async function buildNext(repo: SimRepo, baseRef: string): Promise<PendingDelivery[]> {
    const rule = mergeQueueFor(repo, baseRef);
    const [first] = queueOf(repo, baseRef);
    if (!first || first.group || !rule) return [];
    const baseTip = await ctx.git.readRef(repo.fullName, `refs/heads/${baseRef}`);
    if (!baseTip) return [];
    const method = rule.merge_method.toLowerCase() as "merge" | "squash" | "rebase";
    const sha = await writeMergeCommit(
      ctx,
      repo,
      first.issue,
      { merge_method: method },
      { baseTip, merger: first.enqueuedBy },
    );
    if (!sha) return remove(first, "dequeued", "MERGE_CONFLICT");
    const branch = `gh-readonly-queue/${baseRef}/pr-${first.issue.number}-${baseTip}`;
    await ctx.git.updateRef(repo.fullName, `refs/heads/${branch}`, sha);
    first.group = { branch, headSha: sha, baseSha: baseTip };
    ctx.onBranchHead?.(repo, branch, sha);
    const deliveries = [
      ctx.emit(
        repo,
        "merge_group",
        { action: "checks_requested", merge_group: await groupPayload(first) },
        queueBot(),
      ),
    ];
    // Checks already reported on the group's head (a commit seen before) count at once.
    deliveries.push(...(await settle(first)));
    return deliveries;
  }

  /** Destroys an entry's group (if any) and takes the entry out of the queue. */
  async function remove(
    entry: SimQueueEntry,
    reason: "merged" | "dequeued",
    dequeueReason?: string,
  ): Promise<PendingDelivery[]> {
    const deliveries: PendingDelivery[] = [];
    entries.splice(entries.indexOf(entry), 1);
    if (entry.group) {
      const payload = await groupPayload(entry);
      await ctx.git.deleteRef(entry.repo.fullName, `refs/heads/${entry.group.branch}`);
      deliveries.push(
        ctx.emit(
          entry.repo,
          "merge_group",
          { action: "destroyed", reason, merge_group: payload },
          queueBot(),
        ),
      );
    }
    if (dequeueReason) {
      await emitIssueEvent(ctx, deliveries, entry.repo, entry.issue, "dequeued", queueBot(), {
        reason: dequeueReason,
      });
    }
    return deliveries;
  }

  /** Merges or fails the entry's group once its required checks have all concluded. */
  async function settle(entry: SimQueueEntry): Promise<PendingDelivery[]> {
    const group = entry.group;
    if (!group || !entries.includes(entry)) return [];
    const repo = entry.repo;
    let failed = false;
    let pending = false;
    for (const context of requiredChecksFor(repo, entry.baseRef).contexts) {
      const run = repo.checkRuns.filter((r) => r.headSha === group.headSha && r.name === context);
      const latest = run.at(-1);
      const status = repo.statuses
        .filter((s) => s.sha === group.headSha && s.context === context)
        .at(-1);
      if (latest?.status === "completed") {
        if (!PASSING.has(latest.conclusion ?? "")) failed = true;
      } else if (status) {
        if (status.state === "failure" || status.state === "error") failed = true;
        else if (status.state !== "success") pending = true;
      } else pending = true;
    }
    if (failed) {
      const deliveries = await remove(entry, "dequeued", "CI_FAILURE");
      deliveries.push(...(await buildNext(repo, entry.baseRef)));
      return deliveries;
    }
    if (pending) return [];
    const moved = await ctx.git.updateRef(
      repo.fullName,
      `refs/heads/${entry.baseRef}`,
      group.headSha,
      group.baseSha,
    );
    if (!moved) {
      // The base moved under the group: build it again on the new tip.
      const payload = await groupPayload(entry);
      await ctx.git.deleteRef(repo.fullName, `refs/heads/${group.branch}`);
      entry.group = undefined;
      const deliveries = [
        ctx.emit(
          repo,
          "merge_group",
          { action: "destroyed", reason: "invalidated", merge_group: payload },
          queueBot(),
        ),
      ];
      deliveries.push(...(await buildNext(repo, entry.baseRef)));
      return deliveries;
    }
    ctx.onBranchHead?.(repo, entry.baseRef, group.headSha);
    // Merged before it leaves the queue: no reader sees it out of the queue and still open.
    const closed = recordMerged(ctx, repo, entry.issue, group.headSha, entry.enqueuedBy);
    const deliveries = await remove(entry, "merged");
    deliveries.push(...(await closed));
    deliveries.push(...(await buildNext(repo, entry.baseRef)));
    return deliveries;
  }

  return {
    async enqueue(repo, issue, by, options = {}) {
      const pull = issue.pull!;
      const existing = entries.find((e) => e.repo === repo && e.issue === issue);
      if (existing) return existing;
      if (!mergeQueueFor(repo, pull.baseRef)) {
        throw new QueueRefusal(
          "UNPROCESSABLE",
          `Merge queue is not enabled for the ${pull.baseRef} branch`,
        );
      }
      if (issue.state !== "open" || pull.merged) {
        throw new QueueRefusal("UNPROCESSABLE", "Pull request is not open");
      }
      if (pull.draft) throw new QueueRefusal("UNPROCESSABLE", "Pull request is in draft state");
      if (options.expectedHeadOid !== undefined && options.expectedHeadOid !== pull.headSha) {
        throw new QueueRefusal(
          "UNPROCESSABLE",
          "Head sha didn't match expected head oid. Please refresh and try again.",
        );
      }
      const entry: SimQueueEntry = {
        id: ctx.state.nextId(),
        repo,
        issue,
        baseRef: pull.baseRef,
        headSha: pull.headSha,
        enqueuedBy: by,
        enqueuedAt: ctx.state.now(),
      };
      if (options.jump) {
        const first = entries.findIndex((e) => e.repo === repo && e.baseRef === pull.baseRef);
        entries.splice(first === -1 ? entries.length : first, 0, entry);
      } else entries.push(entry);
      const deliveries: PendingDelivery[] = [];
      await emitIssueEvent(ctx, deliveries, repo, issue, "enqueued", by);
      track(async () => {
        await Promise.all(deliveries);
        await Promise.all(await buildNext(repo, pull.baseRef));
      });
      return entry;
    },

    entryOf: (repo, issueNumber) =>
      entries.find((e) => e.repo === repo && e.issue.number === issueNumber),

    positionOf: (entry) => queueOf(entry.repo, entry.baseRef).indexOf(entry) + 1,

    checksChanged(repo, sha) {
      const entry = entries.find((e) => e.repo === repo && e.group?.headSha === sha);
      if (!entry) return;
      track(async () => {
        await Promise.all(await settle(entry));
      });
    },

    async dequeue(repo, issueNumber, by) {
      const entry = entries.find((e) => e.repo === repo && e.issue.number === issueNumber);
      if (!entry) return;
      const deliveries = await remove(entry, "dequeued");
      await emitIssueEvent(ctx, deliveries, repo, entry.issue, "dequeued", by, {
        reason: "MANUAL",
      });
      deliveries.push(...(await buildNext(repo, entry.baseRef)));
      await Promise.all(deliveries);
    },

    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    busy: () => running.size > 0,
  };
}

/** The GraphQL id of a merge queue entry. */
export function queueEntryId(entry: SimQueueEntry): string {
  return nodeId("MergeQueueEntry", entry.id);
}
