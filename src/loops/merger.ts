import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Db } from "../../db/client.ts";
import { isRequestedUpdate } from "../core/branch-update.ts";
import { mergeCarriesConfig } from "../core/config-carry.ts";
import { decideConflictFollowUp } from "../core/follow-up.ts";
import { repoRef } from "../core/github-objects.ts";
import {
  type ApprovalFact,
  evaluateMergePolicy,
  judgeChecks,
  renderSafetyCheck,
  riskLabel,
  SAFETY_CHECK_NAME,
  type Verdict,
} from "../core/merge-policy.ts";
import type { MergeQueueFact } from "../core/merge-queue.ts";
import type { CollectedFacts, GitHubGateway, PullRequestFactsReader } from "../core/ports.ts";
import type { RepoConfig } from "../core/repo-config.ts";
import type { TaskState } from "../core/task-states.ts";
import { standingApprovals } from "../store/commands.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import {
  clearEnqueued,
  findAbandonedQueueEntries,
  finishQueuedMerge,
  GENERIC_DEQUEUE_REASON,
  recordDequeued,
  recordEnqueued,
} from "../store/merge-queue.ts";
import { earlierOverlappingPullRequest, startWatch } from "../store/merge-watches.ts";
import { addNotice } from "../store/notices.ts";
import {
  adoptUpdatedHead,
  type MergeCandidate as Candidate,
  changeSetModes,
  findMergeCandidates,
  recordMergeConflicts,
  recordSafetyCheck,
  recordUpdateRequested,
  recordWouldMerge,
  setPullRequestState,
} from "../store/pull-requests.ts";
import { recordMergedHead } from "../store/repository-marks.ts";
import { getTask, noteTaskEvent, transitionTask } from "../store/tasks.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** Put on a PR when a merge call failed in a way that leaves its outcome unknown. */
export const PAUSED_LABEL = "conveyor:paused";

export interface MergerDeps {
  db: Db;
  logger: Logger;
  gateway: GitHubGateway;
  prFacts: PullRequestFactsReader;
  installationOctokit: (installationId: number) => Promise<Octokit>;
  appId: number;
  instanceId: string;
  onChange: () => void;
  /** A task went back to the queue (a retry on the new base): runners may have work. */
  onRequeue?: () => void;
  /** A post-merge watch started. */
  onWatch?: () => void;
  recordError?: (source: string, error: unknown) => void;
}

/** What the post-merge watch of a merge needs from the review that decided it. */
interface WatchPlan {
  checks: string[];
  tier: number;
  revertMode: RepoConfig["merge"]["revert"];
  watchMs: number;
  prTitle: string;
  baseRef: string;
}

/**
 * The checks the merge was decided on: the expected ones (branch protection, rulesets, the base
 * commit's, `merge.required_checks`); when none were expected, the ones that passed on the head
 * (at least one must have, or the policy would not merge). Conveyor's own are never watched.
 */
function watchOf(config: RepoConfig, verdict: Verdict, facts: CollectedFacts): WatchPlan {
  const judged = judgeChecks(facts, config);
  let checks = judged.expected.map((e) => e.name);
  if (checks.length === 0) {
    const failed = new Set(judged.failing.map((f) => f.name));
    checks = [
      ...new Set([
        ...facts.checks.filter((c) => !c.ours && c.status === "completed").map((c) => c.name),
        ...facts.statuses.filter((s) => s.state === "success").map((s) => s.context),
      ]),
    ].filter((name) => !failed.has(name));
  }
  return {
    checks,
    tier: verdict.tier,
    revertMode: config.merge.revert,
    watchMs: config.merge.checks_timeout_minutes * 60_000,
    prTitle: facts.title ?? "",
    baseRef: facts.baseRef ?? facts.expectedBaseRef ?? "",
  };
}

/** The labels of every Conveyor pull request, added by the merger with its first verdict. */
export const pullRequestLabels = (c: Pick<Candidate, "lane">) => ["conveyor", `priority:${c.lane}`];

/** Whether the pull request (as just read) has the label: adding it again would change nothing. */
const hasLabel = (labels: readonly string[], label: string) =>
  labels.some((l) => l.toLowerCase() === label.toLowerCase());

/** GitHub's GraphQL mutation that adds a pull request to its base branch's merge queue. */
const ENQUEUE_PULL_REQUEST = `mutation($pullRequestId: ID!, $expectedHeadOid: GitObjectID) {
  enqueuePullRequest(input: {pullRequestId: $pullRequestId, expectedHeadOid: $expectedHeadOid}) {
    mergeQueueEntry { id position state }
  }
}`;
/** Auto-merge: on a branch with a merge queue, GitHub queues the pull request when it may. */
const ENABLE_AUTO_MERGE = `mutation($pullRequestId: ID!, $expectedHeadOid: GitObjectID, $mergeMethod: PullRequestMergeMethod) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, expectedHeadOid: $expectedHeadOid, mergeMethod: $mergeMethod}) {
    pullRequest { id }
  }
}`;
/** Takes a pull request out of the merge queue (the repository was frozen while it waited). */
const DEQUEUE_PULL_REQUEST = `mutation($id: ID!) {
  dequeuePullRequest(input: {id: $id}) { mergeQueueEntry { id } }
}`;
/** Whether a pull request is in the merge queue now (the merger's read after a missed webhook). */
const PULL_REQUEST_QUEUE_STATE = `query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) { id state merged mergeCommit { oid } isInMergeQueue }
  }
}`;

/**
 * The `type` of the first error of a GraphQL answer GitHub gave (`UNPROCESSABLE`, `FORBIDDEN`,
 * `NOT_FOUND`, …; "" when it has none), or undefined when there was no GraphQL answer at all.
 */
function graphqlErrorType(error: unknown): string | undefined {
  const errors = (error as { errors?: { type?: string }[] } | undefined)?.errors;
  if (!Array.isArray(errors)) return undefined;
  return errors[0]?.type ?? "";
}

const LEASE = "merger";
const LEASE_MS = 2 * 60_000;
/** How long an update request may take before Conveyor asks GitHub again. */
const UPDATE_RETRY_MS = 5 * 60_000;

/**
 * Reviews every open Conveyor pull request against the merge policy, shows the verdict as the
 * `Conveyor / safety` check on the head Conveyor wrote, and merges with `sha=<that head>` when the
 * policy says so. One instance at a time, one PR after another: so at most one merge per base
 * branch is ever in flight.
 */
export function createMerger(deps: MergerDeps): {
  runOnce(): Promise<void>;
  describe(repositoryId: number, prNumber: number): Promise<string>;
} {
  const log = deps.logger.child({ component: "merger" });

  async function showVerdict(
    octokit: Octokit,
    c: Candidate,
    verdict: Verdict,
    labels: readonly string[],
    forceSuccess = false,
    factsComplete = true,
  ) {
    const ref = repoRef(c.installation_id, c.full_name);
    const check = renderSafetyCheck(verdict);
    const body = {
      name: SAFETY_CHECK_NAME,
      head_sha: c.head_sha,
      external_id: c.task_id,
      status: forceSuccess ? ("completed" as const) : check.status,
      ...(forceSuccess
        ? { conclusion: "success" as const }
        : check.conclusion
          ? { conclusion: check.conclusion }
          : {}),
      output: { title: check.title, summary: check.summary },
    };
    // The verdict and tier lead the digest: the only place they are stored, which the metrics read
    // (`conveyor_pull_requests{verdict, tier}`); the hash still decides whether to write again.
    const hash = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    const digest = `${forceSuccess ? "merge" : verdict.kind}:${verdict.tier}:${hash}`;
    if (c.safety_check_sha === c.head_sha && c.verdict_digest === digest) return;
    let checkId = c.safety_check_sha === c.head_sha ? c.safety_check_id : null;
    if (checkId) {
      const { head_sha: _sha, external_id: _id, name: _name, ...update } = body;
      await octokit.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", {
        owner: ref.owner,
        repo: ref.repo,
        check_run_id: checkId,
        ...update,
      });
    } else {
      const { data } = await octokit.request("POST /repos/{owner}/{repo}/check-runs", {
        owner: ref.owner,
        repo: ref.repo,
        ...body,
      });
      checkId = Number(data.id);
    }
    await recordSafetyCheck(deps.db, c, { checkId, sha: c.head_sha, digest });
    // The pull request's own labels and its risk label go in one write. An incomplete picture (an
    // API error, a file list still being computed) says nothing about risk: then only its own.
    const missing = [
      ...pullRequestLabels(c),
      ...(factsComplete ? [riskLabel(verdict.tier)] : []),
    ].filter((label) => !hasLabel(labels, label));
    if (missing.length === 0) return;
    await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
      owner: ref.owner,
      repo: ref.repo,
      issue_number: c.pr_number,
      labels: missing,
    });
  }

  /** Moves the task to where the verdict puts it, if it is not there already. */
  async function settle(c: Candidate, to: TaskState, reason: string) {
    if (c.state === to) return;
    const moved = await transitionTask(deps.db, {
      taskId: c.task_id,
      generation: c.generation,
      from: [c.state],
      to,
      actor: "merger",
      reason,
    });
    if (moved) deps.onChange();
  }

  /**
   * The verdict goes out as the safety check's success on exactly this head, then the task moves
   * to `merging` (false when it moved meanwhile): the step before a direct merge and an enqueue.
   */
  async function startMerging(
    octokit: Octokit,
    c: Candidate,
    verdict: Verdict,
    facts: CollectedFacts,
    reason: string,
    data?: Record<string, unknown>,
  ): Promise<boolean> {
    await showVerdict(octokit, c, verdict, facts.labels, true);
    const moved = await transitionTask(deps.db, {
      taskId: c.task_id,
      generation: c.generation,
      from: [c.state],
      to: "merging",
      actor: "merger",
      reason,
      ...(data ? { data } : {}),
    });
    return Boolean(moved);
  }

  async function merge(
    octokit: Octokit,
    c: Candidate,
    config: RepoConfig,
    verdict: Verdict,
    facts: CollectedFacts,
  ) {
    const watch = watchOf(config, verdict, facts);
    const ref = repoRef(c.installation_id, c.full_name);
    const pr = { owner: ref.owner, repo: ref.repo, pull_number: c.pr_number };
    // The check says success on exactly this SHA, then the merge names the same SHA: if anyone
    // pushed meanwhile, GitHub refuses (409) instead of merging what was not reviewed.
    const merging = await startMerging(
      octokit,
      c,
      verdict,
      facts,
      `merging ${c.head_sha.slice(0, 7)} (${config.merge.method})`,
    );
    if (!merging) return;
    const current: Candidate = { ...c, state: "merging" };
    try {
      const { data } = await octokit.request(
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge",
        {
          ...pr,
          sha: c.head_sha,
          merge_method: config.merge.method,
          // Never retried blindly: a lost answer may hide a merge that happened.
          request: { retries: 0 },
        },
      );
      if (c.base_ref) {
        // The config is carried to the merge only when the pull request's complete file list
        // leaves it alone and the base is still where this pass read it (docs/architecture.md,
        // "Caches").
        const carries =
          facts.errors.length === 0 && facts.baseTipSha !== "" && mergeCarriesConfig(facts).carry;
        await recordMergedHead(deps.db, {
          repositoryId: c.repository_id,
          branch: c.base_ref,
          headSha: data.sha,
          ...(carries ? { carryFrom: facts.baseTipSha } : {}),
        });
      }
      await merged(octokit, current, false, { ...watch, mergeSha: data.sha });
    } catch (error) {
      const status = (error as { status?: number }).status;
      const message = (error as Error).message;
      if (status === 409) {
        log.info({ prNumber: c.pr_number }, "head moved during the merge; re-evaluating");
        await settle(current, "review", "head moved while merging (409); re-evaluating");
      } else if (status === 405 && /base branch was modified/i.test(message)) {
        const conflicts = c.merge_conflicts + 1;
        await recordMergeConflicts(deps.db, c, conflicts);
        await settle(
          current,
          conflicts >= 3 ? "waiting_human" : "review",
          `base branch was modified (${conflicts} of 3)`,
        );
      } else if (status === 405 && /merge queue/i.test(message)) {
        // The rules that require the queue were not readable (403/404), but GitHub enforces them.
        log.info({ prNumber: c.pr_number }, "the base branch requires the merge queue; enqueuing");
        await enqueue(octokit, current, config, verdict, facts, { mergeMethod: "MERGE" });
      } else if (status === 405 || status === 422) {
        await settle(current, "waiting_human", `GitHub refused the merge: ${message}`);
      } else {
        // 5xx or no answer: find out what happened before doing anything else.
        await afterUnknownOutcome(octokit, current, message, watch);
      }
    }
  }

  /**
   * The base branch requires GitHub's merge queue: instead of `PUT …/merge`, the pull request is
   * enqueued (GraphQL `enqueuePullRequest` with `expectedHeadOid` = the head Conveyor wrote, so a
   * push in between makes GitHub refuse), and the queue's required checks on the merge group are
   * the last gate. Where GitHub refuses the enqueue as unprocessable, auto-merge
   * (`enablePullRequestAutoMerge`, which queues the pull request once GitHub allows it) is tried
   * once. The outcome arrives later: `merge_group`, `pull_request.closed`/`dequeued`, or the next
   * pass's read ({@link followQueue}).
   */
  async function enqueue(
    octokit: Octokit,
    c: Candidate,
    config: RepoConfig,
    verdict: Verdict,
    facts: CollectedFacts,
    queue: MergeQueueFact,
  ) {
    const plan = watchOf(config, verdict, facts);
    const reason = `enqueuing ${c.head_sha.slice(0, 7)} in the merge queue (${queue.mergeMethod.toLowerCase()}); its checks on the merge group are the last gate`;
    if (c.state !== "merging") {
      const moved = await startMerging(octokit, c, verdict, facts, reason, {
        head_sha: c.head_sha,
        merge_queue: true,
      });
      if (!moved) return;
    } else {
      await noteTaskEvent(deps.db, { taskId: c.task_id, actor: "merger", reason });
    }
    const current: Candidate = { ...c, state: "merging" };
    // Written before the call: an instance that dies in between follows the queue next pass.
    if (!(await recordEnqueued(deps.db, c, { headSha: c.head_sha, plan }))) return;
    deps.onChange();
    const input = { pullRequestId: facts.nodeId, expectedHeadOid: c.head_sha };
    try {
      let position: number | undefined;
      try {
        const answer = await octokit.graphql<{
          enqueuePullRequest: { mergeQueueEntry: { position: number } | null } | null;
        }>(ENQUEUE_PULL_REQUEST, input);
        position = answer.enqueuePullRequest?.mergeQueueEntry?.position;
      } catch (error) {
        if (graphqlErrorType(error) !== "UNPROCESSABLE") throw error;
        log.info(
          { prNumber: c.pr_number, err: error },
          "enqueue refused as unprocessable; asking for auto-merge through the queue",
        );
        await octokit.graphql(ENABLE_AUTO_MERGE, { ...input, mergeMethod: queue.mergeMethod });
      }
      await noteTaskEvent(deps.db, {
        taskId: c.task_id,
        actor: "merger",
        reason:
          position === undefined
            ? `in GitHub's merge queue (auto-merge) at ${c.head_sha.slice(0, 7)}`
            : `in GitHub's merge queue at position ${position} (${c.head_sha.slice(0, 7)})`,
        data: { head_sha: c.head_sha },
      });
      log.info({ prNumber: c.pr_number, repo: c.full_name }, "enqueued in the merge queue");
    } catch (error) {
      if (graphqlErrorType(error) === undefined) {
        // No answer (5xx, network): the next pass reads whether it is in the queue.
        log.warn({ err: error, prNumber: c.pr_number }, "enqueue outcome unknown");
        return;
      }
      await clearEnqueued(deps.db, c);
      await settle(
        current,
        "waiting_human",
        `GitHub refused to enqueue the pull request: ${(error as Error).message}`,
      );
    }
  }

  /**
   * A pull request Conveyor enqueued: what became of it, read from GitHub (so a missed webhook is
   * caught). Merged → recorded, with the post-merge watch on the commit the queue produced;
   * closed → the task is cancelled; still queued → nothing, unless the repository is frozen (then
   * Conveyor takes it out of the queue and reviews it again); open but out of the queue → recorded
   * as removed, and the task waits for a person.
   */
  async function followQueue(c: Candidate): Promise<void> {
    const ref = repoRef(c.installation_id, c.full_name);
    const octokit = await deps.installationOctokit(c.installation_id);
    // One read, so "out of the queue" and "merged" cannot come from two different moments.
    const answer = await octokit.graphql<{
      repository: {
        pullRequest: {
          id: string;
          state: "OPEN" | "CLOSED" | "MERGED";
          merged: boolean;
          mergeCommit: { oid: string } | null;
          isInMergeQueue: boolean;
        } | null;
      } | null;
    }>(PULL_REQUEST_QUEUE_STATE, { owner: ref.owner, name: ref.repo, number: c.pr_number });
    const pull = answer.repository?.pullRequest;
    if (!pull) throw new Error("pull request not found while following the merge queue");
    if (pull.merged && pull.mergeCommit) {
      const mergeSha = pull.mergeCommit.oid;
      const outcome = await deps.db.transaction((tx) =>
        finishQueuedMerge(
          tx,
          { repositoryId: c.repository_id, prNumber: c.pr_number },
          { mergeSha, actor: "merger", byQueue: true },
        ),
      );
      if (outcome === "merged") {
        log.info({ prNumber: c.pr_number, sha: mergeSha }, "merged by the merge queue");
        deps.onWatch?.();
        deps.onChange();
      }
      return;
    }
    if (pull.state !== "OPEN") {
      await clearEnqueued(deps.db, c);
      await settleClosed(octokit, c);
      return;
    }
    if (pull.isInMergeQueue && c.frozen) {
      // A freeze (a revert after a red merge, `/freeze`) stops merges, the queue's too: out of the
      // queue first in the database (so the dequeued event is not taken for a failure), then on
      // GitHub; the next pass reviews it again and enqueues it once the repository is unfrozen.
      await clearEnqueued(deps.db, c);
      await settle(
        c,
        "review",
        `taken out of the merge queue: the repository is frozen (${c.frozen_reason ?? "frozen"})`,
      );
      await octokit.graphql(DEQUEUE_PULL_REQUEST, { id: pull.id });
      log.info({ prNumber: c.pr_number }, "frozen: taken out of the merge queue");
      return;
    }
    if (pull.isInMergeQueue) return;
    const outcome = await deps.db.transaction((tx) =>
      recordDequeued(
        tx,
        { repositoryId: c.repository_id, prNumber: c.pr_number },
        {
          reason: GENERIC_DEQUEUE_REASON,
          actor: "merger",
          headSha: c.head_sha,
        },
      ),
    );
    if (outcome === "dequeued") deps.onChange();
  }

  /**
   * The task of a queued pull request ended (`/cancel`, …) while it waited: out of the queue, so
   * the queue does not merge a change nobody wants any more.
   */
  async function abandonQueued(entry: {
    repository_id: number;
    installation_id: number;
    full_name: string;
    pr_number: number;
    task_state: string;
  }): Promise<void> {
    const ref = repoRef(entry.installation_id, entry.full_name);
    const octokit = await deps.installationOctokit(entry.installation_id);
    const answer = await octokit.graphql<{
      repository: { pullRequest: { id: string; isInMergeQueue: boolean } | null } | null;
    }>(PULL_REQUEST_QUEUE_STATE, { owner: ref.owner, name: ref.repo, number: entry.pr_number });
    const pull = answer.repository?.pullRequest;
    if (pull?.isInMergeQueue) await octokit.graphql(DEQUEUE_PULL_REQUEST, { id: pull.id });
    await clearEnqueued(deps.db, entry);
    log.info(
      { prNumber: entry.pr_number, repo: entry.full_name, state: entry.task_state },
      "task ended: taken out of the merge queue",
    );
  }

  async function afterUnknownOutcome(
    octokit: Octokit,
    c: Candidate,
    message: string,
    watch: WatchPlan,
  ) {
    const ref = repoRef(c.installation_id, c.full_name);
    try {
      const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
        owner: ref.owner,
        repo: ref.repo,
        pull_number: c.pr_number,
      });
      if (data.merged) {
        await merged(
          octokit,
          c,
          false,
          data.merge_commit_sha ? { ...watch, mergeSha: data.merge_commit_sha } : undefined,
        );
        return;
      }
      if (data.state === "open") {
        await settle(c, "review", `merge answered ${message}; the PR is still open, re-evaluating`);
        return;
      }
    } catch (error) {
      log.warn(
        { err: error, prNumber: c.pr_number },
        "could not re-read the pull request after a failed merge",
      );
    }
    // Still unsure: stop, say so, and leave it to a person.
    await octokit
      .request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
        owner: ref.owner,
        repo: ref.repo,
        issue_number: c.pr_number,
        labels: [PAUSED_LABEL],
      })
      .catch(() => {});
    await settle(c, "waiting_human", `merge outcome unknown (${message}); paused`);
  }

  async function merged(
    octokit: Octokit,
    c: Candidate,
    byHand = false,
    watch?: WatchPlan & { mergeSha: string },
  ) {
    const ref = repoRef(c.installation_id, c.full_name);
    await setPullRequestState(deps.db, c.repository_id, c.pr_number, "merged", {
      mergedByHand: byHand,
    });
    if (watch) await beginWatch(c, watch);
    await transitionTask(deps.db, {
      taskId: c.task_id,
      from: ["merging", "review", "waiting_human"],
      to: "merged",
      actor: "merger",
      reason: `pull request #${c.pr_number} merged at ${c.head_sha.slice(0, 7)}`,
      set: { finished: true },
    });
    await octokit
      .request("DELETE /repos/{owner}/{repo}/git/refs/{ref}", {
        owner: ref.owner,
        repo: ref.repo,
        ref: `heads/${c.branch}`,
      })
      .catch((error) =>
        log.warn({ err: error, branch: c.branch }, "could not delete the merged branch"),
      );
    log.info({ prNumber: c.pr_number, sha: c.head_sha }, "merged");
    deps.onChange();
  }

  /**
   * Starts the post-merge watch of a merge Conveyor made (recorded before the task is marked
   * merged, so a restart between the two still watches). `merge.revert` and the watch's length are
   * the config's when the merge was made.
   */
  async function beginWatch(c: Candidate, w: WatchPlan & { mergeSha: string }) {
    const task = await getTask(deps.db, c.task_id);
    if (!task) return;
    const started = await startWatch(deps.db, {
      taskId: c.task_id,
      repositoryId: c.repository_id,
      installationId: c.installation_id,
      issueNumber: task.issueNumber,
      prNumber: c.pr_number,
      prTitle: w.prTitle,
      baseRef: w.baseRef,
      mergeSha: w.mergeSha,
      checks: w.checks,
      tier: w.tier,
      revertMode: w.revertMode,
      deadlineAt: new Date(Date.now() + w.watchMs),
    });
    if (started) {
      log.info({ prNumber: c.pr_number, sha: w.mergeSha }, "watching the merge commit");
      deps.onWatch?.();
    }
  }

  /**
   * The resync's answer to a pull request that was merged or closed without Conveyor hearing of
   * it (its webhook lost, or the instance killed between the merge call and recording it): record
   * what happened instead of judging a closed PR. False when the PR is open after all.
   */
  async function settleClosed(octokit: Octokit, c: Candidate): Promise<boolean> {
    const ref = repoRef(c.installation_id, c.full_name);
    const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
      owner: ref.owner,
      repo: ref.repo,
      pull_number: c.pr_number,
    });
    if (data.merged) {
      log.info({ prNumber: c.pr_number }, "pull request was merged meanwhile; recording it");
      const by = data.merged_by;
      await merged(octokit, c, by != null && by.type !== "Bot" && !by.login.endsWith("[bot]"));
      return true;
    }
    if (data.state !== "closed") return false;
    await setPullRequestState(deps.db, c.repository_id, c.pr_number, "closed");
    const cancelled = await transitionTask(deps.db, {
      taskId: c.task_id,
      from: [c.state],
      to: "cancelled",
      actor: "merger",
      reason: `pull request #${c.pr_number} was closed without merging`,
      set: { finished: true },
    });
    if (cancelled) deps.onChange();
    return true;
  }

  /** Whether the head GitHub shows now is the commit GitHub made for Conveyor's update request. */
  async function isUpdateFor(
    octokit: Octokit,
    c: Candidate,
    headSha: string,
    baseTipSha: string,
  ): Promise<boolean> {
    const ref = repoRef(c.installation_id, c.full_name);
    const { data } = await octokit.request("GET /repos/{owner}/{repo}/git/commits/{commit_sha}", {
      owner: ref.owner,
      repo: ref.repo,
      commit_sha: headSha,
    });
    return (
      data.sha === headSha &&
      isRequestedUpdate(
        {
          sha: data.sha,
          parents: data.parents.map((p) => p.sha),
          committerEmail: data.committer?.email,
          verified: data.verification?.verified === true,
        },
        { from: c.head_sha, bases: [c.update_base_sha ?? "", baseTipSha] },
      )
    );
  }

  /**
   * Collects the facts of a candidate fresh from GitHub and asks the policy. Its only side effect
   * is adopting the commit GitHub made for Conveyor's own update request as the head.
   */
  async function assess(c: Candidate, adopted = false): Promise<Assessed | undefined> {
    const ref = repoRef(c.installation_id, c.full_name);
    const octokit = await deps.installationOctokit(c.installation_id);
    const loaded = await deps.gateway.loadConfig(ref);
    const verification = c.result?.verification;
    const failed = verification?.commands?.find((cmd) => !cmd.passed);
    const approvals: ApprovalFact[] = [];
    for (const a of await standingApprovals(deps.db, {
      repositoryId: c.repository_id,
      prNumber: c.pr_number,
    })) {
      approvals.push({
        login: a.login,
        isBot: false,
        sha: a.sha,
        permission: await deps.gateway.permission(ref, a.login),
        via: "command",
      });
    }
    const facts = await deps.prFacts.read(c.installation_id, {
      owner: ref.owner,
      repo: ref.repo,
      prNumber: c.pr_number,
      conveyorHeadSha: c.head_sha,
      expectedBaseRef: c.base_ref ?? "",
      baseSha: c.task_base_sha ?? undefined,
      waitingSince: new Date(c.head_written_at).toISOString(),
      appId: deps.appId,
      held: c.state === "held",
      frozen: c.frozen ? { reason: c.frozen_reason ?? "frozen" } : null,
      verification: verification
        ? {
            passed: verification.passed,
            ...(failed ? { failedCommand: failed.argv.join(" ") } : {}),
          }
        : null,
      approvals,
      permission: (login) => deps.gateway.permission(ref, login),
      modes: await changeSetModes(deps.db, { taskId: c.task_id, generation: c.generation }),
    });
    // A /hold or /freeze may have landed while GitHub was being read (a pass over many PRs takes
    // a while): decide on the database as it is now, and leave a PR that moved on to the next pass.
    const [now] = await findMergeCandidates(deps.db, {
      repositoryId: c.repository_id,
      prNumber: c.pr_number,
    });
    if (!now || now.head_sha !== c.head_sha || now.generation !== c.generation) return undefined;
    // merge.update_branch: GitHub's merge commit for Conveyor's own request is adopted as the head
    // Conveyor may merge (the checks start again on it), then everything is read again.
    if (
      !adopted &&
      facts.headSha &&
      facts.headSha !== now.head_sha &&
      now.update_requested_from === now.head_sha &&
      (await isUpdateFor(octokit, now, facts.headSha, facts.baseTipSha)) &&
      (await adoptUpdatedHead(deps.db, now, { from: now.head_sha, to: facts.headSha }))
    ) {
      log.info(
        { prNumber: now.pr_number, from: now.head_sha, to: facts.headSha },
        "adopted the commit GitHub made to update the branch",
      );
      deps.onChange();
      const [updated] = await findMergeCandidates(deps.db, {
        repositoryId: now.repository_id,
        prNumber: now.pr_number,
      });
      return updated ? assess(updated, true) : undefined;
    }
    facts.held = now.state === "held";
    facts.frozen = now.frozen ? { reason: now.frozen_reason ?? "frozen" } : null;
    const verdict = evaluateMergePolicy(facts, loaded.config);
    return { c: now, ref, octokit, loaded, facts, verdict };
  }
  type Assessed = {
    c: Candidate;
    ref: ReturnType<typeof repoRef>;
    octokit: Octokit;
    loaded: Awaited<ReturnType<GitHubGateway["loadConfig"]>>;
    facts: CollectedFacts;
    verdict: Verdict;
  };

  /**
   * Asks GitHub to merge the base into the branch (once per head, again only after
   * {@link UPDATE_RETRY_MS}: GitHub does it in the background, and the head moves a moment later).
   */
  async function requestUpdate(octokit: Octokit, c: Candidate, baseTipSha: string): Promise<void> {
    const requestedAt = c.update_requested_at ? Date.parse(c.update_requested_at) : Number.NaN;
    if (c.update_requested_from === c.head_sha && Date.now() - requestedAt < UPDATE_RETRY_MS) {
      return;
    }
    const ref = repoRef(c.installation_id, c.full_name);
    try {
      await octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch", {
        owner: ref.owner,
        repo: ref.repo,
        pull_number: c.pr_number,
        expected_head_sha: c.head_sha,
      });
      await recordUpdateRequested(deps.db, c, { from: c.head_sha, baseSha: baseTipSha });
      log.info({ prNumber: c.pr_number }, "asked GitHub to update the branch");
    } catch (error) {
      // The verdict still stands (waiting); the next pass asks again.
      log.warn({ err: error, prNumber: c.pr_number }, "updating the branch failed");
    }
  }

  async function review(listed: Candidate): Promise<void> {
    if (listed.queued_head_sha && listed.queued_head_sha === listed.head_sha) {
      // In GitHub's merge queue: the queue decides now; only its outcome is read.
      await followQueue(listed);
      return;
    }
    const assessed = await assess(listed);
    if (!assessed) return;
    const { c, octokit, loaded, facts, verdict } = assessed;
    if (!facts.open && (await settleClosed(octokit, c))) return;
    if (verdict.action === "update_branch") await requestUpdate(octokit, c, facts.baseTipSha);
    if (verdict.wouldMerge && !c.would_merge_at) await recordWouldMerge(deps.db, c);
    if (verdict.kind === "merge") {
      const earlier = await earlierOverlappingPullRequest(deps.db, {
        repositoryId: c.repository_id,
        taskId: c.task_id,
        paths: facts.files.flatMap((f) => (f.previousPath ? [f.path, f.previousPath] : [f.path])),
      });
      if (!earlier && c.dequeued_head_sha === c.head_sha) {
        // The queue already refused exactly this commit: enqueueing it again would loop, and
        // merging it directly (the queue requirement lifted since) skips what the queue found.
        await settle(
          c,
          "waiting_human",
          `the merge queue removed ${c.head_sha.slice(0, 7)}: ${c.dequeue_reason ?? "no reason given"}; Conveyor does not enqueue it again`,
        );
        return;
      }
      if (!earlier && facts.mergeQueue) {
        await enqueue(octokit, c, loaded.config, verdict, facts, facts.mergeQueue);
        return;
      }
      if (!earlier) {
        await merge(octokit, c, loaded.config, verdict, facts);
        return;
      }
      // Merged in queue order: the earlier task's pull request changes the same file and merges
      // first; this one is then retried on the new base if it conflicts.
      await settle(
        c,
        "review",
        `waiting for #${earlier.pr_number} to merge first (queued earlier, also changes ${earlier.path})`,
      );
      return;
    }
    await showVerdict(
      octokit,
      c,
      verdict,
      facts.labels,
      false,
      facts.errors.length === 0 && facts.filesComplete,
    );
    if (c.state === "held") return;
    if (
      facts.open &&
      (facts.mergeable === false || facts.mergeableState.toLowerCase() === "dirty") &&
      (await retryOnNewBase(c, loaded.config, facts))
    ) {
      return;
    }
    if (verdict.kind === "wait") await settle(c, "review", verdict.summary);
    else await settle(c, "waiting_human", verdict.summary);
    if (verdict.kind === "blocked" && verdict.tier === 3 && c.state !== "waiting_human") {
      await addNotice(deps.db, {
        dedupeKey: `tier3:${c.task_id}:${c.head_sha}`,
        repositoryId: c.repository_id,
        installationId: c.installation_id,
        issueNumber: c.pr_number,
        body: `This change is tier 3 (${verdict.tierReasons.join("; ")}), so Conveyor will not merge it by itself. A maintainer can review and merge it.`,
      });
    }
  }

  /**
   * The pull request conflicts with its base (another merge landed first): a follow-up attempt
   * from the base's current tip with "rebase onto <sha>" as feedback, up to
   * `tasks.max_conflict_retries`; past that, a person. True when the task moved.
   */
  async function retryOnNewBase(
    c: Candidate,
    config: RepoConfig,
    facts: CollectedFacts,
  ): Promise<boolean> {
    if (c.state !== "review" && c.state !== "waiting_human") return false;
    const task = await getTask(deps.db, c.task_id);
    if (!task) return false;
    const decision = decideConflictFollowUp({
      prNumber: c.pr_number,
      baseRef: facts.baseRef || c.base_ref || "",
      baseSha: facts.baseTipSha,
      retriesSoFar: task.conflictRetries,
      maxRetries: config.tasks.max_conflict_retries,
    });
    if (decision.kind === "human") {
      const moved = await transitionTask(deps.db, {
        taskId: c.task_id,
        generation: c.generation,
        from: ["review"],
        to: "waiting_human",
        actor: "merger",
        reason: decision.reason,
      });
      if (moved) {
        await addNotice(deps.db, {
          dedupeKey: `conflicts:${c.task_id}:${c.head_sha}`,
          repositoryId: c.repository_id,
          installationId: c.installation_id,
          issueNumber: c.pr_number,
          body: decision.comment,
        });
        deps.onChange();
      }
      return moved !== undefined;
    }
    const moved = await transitionTask(deps.db, {
      taskId: c.task_id,
      generation: c.generation,
      from: [c.state],
      to: "queued",
      actor: "merger",
      reason: decision.reason,
      data: { base_sha: facts.baseTipSha, head_sha: c.head_sha },
      set: {
        feedback: decision.feedback,
        // The attempt starts from the base's tip, not from the conflicting head.
        freshBase: true,
        enqueuedAt: "now",
        availableAt: new Date(0),
        conflictRetries: decision.count,
      },
    });
    if (!moved) return false;
    log.info({ prNumber: c.pr_number, taskId: c.task_id }, "conflict: retrying on the new base");
    deps.onChange();
    deps.onRequeue?.();
    return true;
  }

  return {
    /** The verdict on a pull request as the safety check would show it (for `/status`). */
    async describe(repositoryId, prNumber) {
      const [c] = await findMergeCandidates(deps.db, { repositoryId, prNumber });
      const assessed = c ? await assess(c) : undefined;
      if (!assessed)
        return "Conveyor is not reviewing this pull request now (it is not open, or its task is not in review).";
      const check = renderSafetyCheck(assessed.verdict);
      return [`**${check.title}**`, "", check.summary].join("\n");
    },

    async runOnce() {
      /** Acts on each pull request in turn; one that fails is logged and counted, not the rest. */
      const eachPullRequest = async <T extends { pr_number: number; full_name: string }>(
        rows: readonly T[],
        act: (row: T) => Promise<unknown>,
        failed: string,
      ) => {
        for (const row of rows) {
          try {
            await act(row);
          } catch (error) {
            log.error({ err: error, prNumber: row.pr_number, repo: row.full_name }, failed);
            deps.recordError?.("merger", error);
          }
        }
      };
      if (!(await tryAcquireLease(deps.db, LEASE, deps.instanceId, LEASE_MS))) return;
      try {
        await eachPullRequest(
          await findAbandonedQueueEntries(deps.db),
          abandonQueued,
          "taking a pull request out of the merge queue failed",
        );
        await eachPullRequest(
          await findMergeCandidates(deps.db),
          review,
          "reviewing the pull request failed",
        );
      } finally {
        await releaseLease(deps.db, LEASE, deps.instanceId);
      }
    },
  };
}
