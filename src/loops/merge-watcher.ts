import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Db } from "../../db/client.ts";
import { repoRef } from "../core/github-objects.ts";
import {
  breakageComment,
  type CommitChecks,
  decideWatch,
  type FailingCheck,
  freezeReason,
  revertBody,
  revertFeedback,
  revertTitle,
  revertTree,
  type TreeEntry,
  watchedChecksPass,
  watchNeedsParent,
} from "../core/merge-watch.ts";
import type { GitHubGateway } from "../core/ports.ts";
import type { RepoConfig } from "../core/repo-config.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";
import {
  advanceWatch,
  freezeUnlessFrozen,
  type MergeWatch,
  openWatches,
  setWatchParent,
  unfreezeIf,
} from "../store/merge-watches.ts";
import { addNotice } from "../store/notices.ts";
import { createTask, findActiveTask, getTask, noteTaskEvent } from "../store/tasks.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** Put on the original issue when its merged change turned a check red on the base branch. */
export const BROKE_BASE_LABEL = "conveyor:reverted";

export interface MergeWatcherDeps {
  db: Db;
  logger: Logger;
  gateway: GitHubGateway;
  installationOctokit: (installationId: number) => Promise<Octokit>;
  instanceId: string;
  /** Tasks changed (a timeline step, a re-queued issue). */
  onChange: () => void;
  /** A task was queued: runners may have work. */
  onRequeue?: () => void;
  recordError?: (source: string, error: unknown) => void;
  now?: () => Date;
}

const LEASE = "merge-watcher";
const LEASE_MS = 2 * 60_000;
const ACTOR = "watcher";

interface CheckRunJson {
  id: number;
  name: string;
  status: string;
  conclusion: string | null;
  completed_at?: string | null;
  app: { id: number } | null;
  check_suite?: { id: number } | null;
  output?: { title?: string | null; summary?: string | null };
}

/** A commit's check runs and statuses, as the watch needs them (GitHub's `statusCheckRollup`). */
const COMMIT_ROLLUP = `query($owner: String!, $name: String!, $oid: GitObjectID!) {
  repository(owner: $owner, name: $name) {
    object(oid: $oid) {
      ... on Commit {
        oid
        statusCheckRollup {
          contexts(first: 100) {
            nodes {
              __typename
              ... on CheckRun {
                databaseId name status conclusion completedAt title summary
                checkSuite { databaseId app { databaseId } }
              }
              ... on StatusContext { context state }
            }
            pageInfo { hasNextPage }
          }
        }
      }
    }
  }
}`;

interface CommitRollupAnswer {
  repository: {
    object: {
      oid: string;
      statusCheckRollup: {
        contexts: {
          nodes:
            | (
                | {
                    __typename: "CheckRun";
                    databaseId: number | null;
                    name: string;
                    status: string;
                    conclusion: string | null;
                    completedAt: string | null;
                    title: string | null;
                    summary: string | null;
                    checkSuite: {
                      databaseId: number | null;
                      app: { databaseId: number | null } | null;
                    } | null;
                  }
                | { __typename: "StatusContext"; context: string; state: string }
                | null
              )[]
            | null;
          pageInfo: { hasNextPage: boolean };
        };
      } | null;
    } | null;
  } | null;
}

/**
 * The post-merge watch (docs/merge-policy.md, "After the merge"): for each merge Conveyor made,
 * reads the watched checks on the merge commit (and, when one failed there, on its parent), re-requests a failing one once, and
 * on a confirmed breakage opens the revert pull request (Git Data API), freezes the repository,
 * labels the issue and comments on the merged pull request; then follows the revert until it
 * merges (merging it itself under `merge.revert: auto` after a tier-1 merge) and queues the issue
 * again with the failure as feedback. Every step is a row change first, so a restart resumes.
 */
export function createMergeWatcher(deps: MergeWatcherDeps & { appId: number }): {
  runOnce(): Promise<void>;
} {
  const log = deps.logger.child({ component: "merge-watcher" });
  const now = deps.now ?? (() => new Date());

  async function step(w: MergeWatch) {
    const ref = repoRef(w.installation_id, w.full_name);
    const octokit = await deps.installationOctokit(w.installation_id);
    const { config } = await deps.gateway.loadConfig(ref);
    if (w.state === "reverting") return followRevert(octokit, w, config);
    return judge(octokit, w, config);
  }

  async function timeline(w: MergeWatch, reason: string, data: Record<string, unknown> = {}) {
    await noteTaskEvent(deps.db, {
      taskId: w.task_id,
      actor: ACTOR,
      reason: `after merge: ${reason}`,
      data: { merge_sha: w.merge_sha, pr_number: w.pr_number, ...data },
    });
    deps.onChange();
  }

  /**
   * The check runs and statuses on a commit in one GraphQL query (its `statusCheckRollup`: the
   * latest run per app and name, the latest status per context), instead of REST's two reads;
   * undefined when the query fails or the commit is unknown, and then the REST reads decide.
   */
  async function rollupOn(
    octokit: Octokit,
    w: MergeWatch,
    sha: string,
    errors: string[],
  ): Promise<CommitChecks | undefined> {
    const ref = repoRef(w.installation_id, w.full_name);
    let answer: CommitRollupAnswer;
    try {
      answer = await octokit.graphql<CommitRollupAnswer>(COMMIT_ROLLUP, {
        owner: ref.owner,
        name: ref.repo,
        oid: sha,
      });
    } catch (error) {
      log.debug({ err: error, repo: w.full_name }, "rollup query failed; reading over REST");
      return undefined;
    }
    const commit = answer.repository?.object;
    if (!commit || commit.oid !== sha) return undefined;
    const contexts = commit.statusCheckRollup?.contexts;
    const result: CommitChecks = { runs: [], statuses: [] };
    if (contexts?.pageInfo.hasNextPage) {
      // As with REST's one page: more than 100 is reported as unreadable (the watch waits).
      errors.push(`checks on ${sha.slice(0, 7)}: more than ${contexts.nodes?.length ?? 0}`);
    }
    for (const node of contexts?.nodes ?? []) {
      if (node?.__typename === "CheckRun") {
        // A run without its id could not be told apart from its re-run: REST decides then.
        if (node.databaseId == null) return undefined;
        result.runs.push({
          name: node.name,
          status: node.status.toLowerCase() as CommitChecks["runs"][number]["status"],
          conclusion: node.conclusion?.toLowerCase() ?? null,
          ours: node.checkSuite?.app?.databaseId === deps.appId,
          checkRunId: node.databaseId,
          checkSuiteId: node.checkSuite?.databaseId ?? null,
          completedAt: node.completedAt ?? null,
          summary: [node.title, node.summary].filter(Boolean).join("\n\n"),
        });
      } else if (node?.__typename === "StatusContext") {
        // EXPECTED (required, nothing reported yet) is not a success.
        const state = node.state === "EXPECTED" ? "pending" : node.state.toLowerCase();
        result.statuses.push({
          context: node.context,
          state: state as CommitChecks["statuses"][number]["state"],
        });
      }
    }
    return result;
  }

  async function checksOn(
    octokit: Octokit,
    w: MergeWatch,
    sha: string,
    errors: string[],
  ): Promise<CommitChecks> {
    const rolled = await rollupOn(octokit, w, sha, errors);
    if (rolled) return rolled;
    const ref = repoRef(w.installation_id, w.full_name);
    const base = { owner: ref.owner, repo: ref.repo, ref: sha, per_page: 100 };
    const result: CommitChecks = { runs: [], statuses: [] };
    try {
      // One page of 100: a commit with more check runs than that is reported as unreadable
      // (the watch then waits, and ends without reverting).
      const { data: runs } = await octokit.request(
        "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
        { ...base, filter: "latest" },
      );
      if (runs.total_count > runs.check_runs.length) {
        errors.push(`check runs on ${sha.slice(0, 7)}: more than ${runs.check_runs.length}`);
      }
      result.runs = (runs.check_runs as CheckRunJson[]).map((r) => ({
        name: r.name,
        status: r.status as CommitChecks["runs"][number]["status"],
        conclusion: r.conclusion,
        ours: r.app?.id === deps.appId,
        checkRunId: r.id,
        checkSuiteId: r.check_suite?.id ?? null,
        completedAt: r.completed_at ?? null,
        summary: [r.output?.title, r.output?.summary].filter(Boolean).join("\n\n"),
      }));
      const { data: combined } = await octokit.request(
        "GET /repos/{owner}/{repo}/commits/{ref}/status",
        base,
      );
      if (combined.total_count > combined.statuses.length) {
        errors.push(`statuses on ${sha.slice(0, 7)}: more than ${combined.statuses.length}`);
      }
      result.statuses = combined.statuses.map((s) => ({
        context: s.context,
        state: s.state as CommitChecks["statuses"][number]["state"],
      }));
    } catch (error) {
      errors.push(`reading the checks on ${sha.slice(0, 7)}: ${(error as Error).message}`);
    }
    return result;
  }

  /**
   * The checks on the merge commit's first parent (looked up once and kept on the watch); null
   * when the merge commit has no parent.
   */
  async function parentChecks(
    octokit: Octokit,
    w: MergeWatch,
    errors: string[],
  ): Promise<CommitChecks | null> {
    const ref = repoRef(w.installation_id, w.full_name);
    let parentSha = w.parent_sha;
    if (!parentSha) {
      const { data } = await octokit.request("GET /repos/{owner}/{repo}/git/commits/{commit_sha}", {
        owner: ref.owner,
        repo: ref.repo,
        commit_sha: w.merge_sha,
      });
      parentSha = data.parents[0]?.sha ?? null;
      if (parentSha) await setWatchParent(deps.db, w.watch_id, parentSha);
    }
    return parentSha ? checksOn(octokit, w, parentSha, errors) : null;
  }

  async function judge(octokit: Octokit, w: MergeWatch, config: RepoConfig) {
    const ref = repoRef(w.installation_id, w.full_name);
    const errors: string[] = [];
    const onMerge = await checksOn(octokit, w, w.merge_sha, errors);
    const needsParent = watchNeedsParent({
      checks: w.checks,
      onMerge,
      strict: config.merge.strict_conclusions,
      errors,
    });
    const onParent = needsParent ? await parentChecks(octokit, w, errors) : null;
    const decision = decideWatch({
      checks: w.checks,
      onMerge,
      onParent,
      rerequested: w.rerequested,
      strict: config.merge.strict_conclusions,
      errors,
      now: now().toISOString(),
      deadlineAt: new Date(w.deadline_at).toISOString(),
    });
    switch (decision.kind) {
      case "wait":
        return;
      case "green":
      case "expired":
        if (
          await advanceWatch(deps.db, { watchId: w.watch_id, from: w.state }, decision.kind, {
            note: decision.reason,
          })
        ) {
          await timeline(
            w,
            `${decision.kind === "green" ? "checks green" : "watch ended"}: ${decision.reason}`,
          );
        }
        return;
      case "rerequest": {
        const asked: string[] = [];
        for (const check of decision.checks) {
          if (check.checkSuiteId === null) continue;
          try {
            // The check-run route answers 403 for another App's run; the suite route re-runs it.
            await octokit.request(
              "POST /repos/{owner}/{repo}/check-suites/{check_suite_id}/rerequest",
              { owner: ref.owner, repo: ref.repo, check_suite_id: check.checkSuiteId },
            );
            asked.push(check.name);
          } catch (error) {
            log.warn(
              { err: error, repo: w.full_name, checkRunId: check.checkRunId },
              "re-requesting a check failed",
            );
          }
        }
        const rerequested = [
          ...w.rerequested,
          ...decision.checks.map(({ name, checkRunId, completedAt }) => ({
            name,
            checkRunId,
            completedAt,
          })),
        ];
        if (
          await advanceWatch(deps.db, { watchId: w.watch_id, from: w.state }, "rerequested", {
            note: decision.reason,
            rerequested,
          })
        ) {
          await timeline(
            w,
            `${decision.checks.map((c) => c.name).join(", ")} failed on the merge commit; re-requested once (${asked.length ? asked.join(", ") : "the CI refused"})`,
          );
        }
        return;
      }
      case "red":
        return broke(octokit, w, decision.failing);
    }
  }

  /** A confirmed breakage: revert (per merge.revert), freeze, label, comment, then record it. */
  async function broke(octokit: Octokit, w: MergeWatch, failing: FailingCheck[]) {
    const ref = repoRef(w.installation_id, w.full_name);
    const facts = { prNumber: w.pr_number, mergeSha: w.merge_sha, baseRef: w.base_ref, failing };
    let revert: Parameters<typeof breakageComment>[0]["revert"] = { kind: "off" };
    if (w.revert_mode !== "off") {
      const written = await writeRevert(octokit, w, failing);
      revert =
        written.kind === "pr"
          ? { kind: "pr", number: written.number, auto: w.revert_mode === "auto" && w.tier === 1 }
          : written;
    }
    const reason = freezeReason(facts);
    const froze = await freezeUnlessFrozen(deps.db, w.repository_id, reason);
    await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
      owner: ref.owner,
      repo: ref.repo,
      issue_number: w.issue_number,
      labels: [BROKE_BASE_LABEL],
    });
    await addNotice(deps.db, {
      dedupeKey: `post-merge:${w.repository_id}:${w.merge_sha}`,
      repositoryId: w.repository_id,
      installationId: w.installation_id,
      issueNumber: w.pr_number,
      body: breakageComment({ ...facts, revert, frozen: froze ? reason : null }),
    });
    const names = failing.map((c) => c.name).join(", ");
    const next =
      revert.kind === "pr"
        ? {
            to: "reverting" as const,
            note: `${names} failed on the merge commit; revert #${revert.number} opened`,
          }
        : revert.kind === "off"
          ? { to: "red" as const, note: `${names} failed on the merge commit; merge.revert is off` }
          : {
              to: "red" as const,
              note: `${names} failed on the merge commit; no revert written (${revert.paths.join(", ")} changed since)`,
            };
    const moved = await advanceWatch(deps.db, { watchId: w.watch_id, from: w.state }, next.to, {
      note: froze ? `${next.note}; repository frozen` : next.note,
      failing,
      ...(revert.kind === "pr"
        ? { revertPrNumber: revert.number, revertBranch: revertBranch(w) }
        : {}),
    });
    if (moved) {
      await timeline(w, froze ? `${next.note}; repository frozen (${reason})` : next.note, {
        failing: failing.map((c) => c.name),
        ...(revert.kind === "pr" ? { revert_pr_number: revert.number } : {}),
      });
      log.warn(
        { repo: w.full_name, prNumber: w.pr_number, sha: w.merge_sha },
        "a merge broke the base branch",
      );
    }
  }

  const revertBranch = (w: MergeWatch) => `conveyor/revert-${w.pr_number}`;

  async function treeOf(octokit: Octokit, w: MergeWatch, commitSha: string) {
    const ref = repoRef(w.installation_id, w.full_name);
    const { data: commit } = await octokit.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner: ref.owner, repo: ref.repo, commit_sha: commitSha },
    );
    const { data: tree } = await octokit.request("GET /repos/{owner}/{repo}/git/trees/{tree_sha}", {
      owner: ref.owner,
      repo: ref.repo,
      tree_sha: commit.tree.sha,
      recursive: "1",
    });
    if (tree.truncated)
      throw new Error(`the tree of ${commitSha.slice(0, 7)} is too large to list`);
    const entries = new Map<string, TreeEntry>();
    for (const e of tree.tree) {
      if (e.type === "tree" || !e.path || !e.sha || !e.mode || !e.type) continue;
      entries.set(e.path, { mode: e.mode, type: e.type, sha: e.sha });
    }
    return { treeSha: commit.tree.sha, parents: commit.parents.map((p) => p.sha), entries };
  }

  /**
   * Writes the inverse of the merge on top of the base branch's tip and opens (or finds) the
   * revert pull request. Idempotent: the branch name is fixed, and an open pull request from it is
   * reused.
   */
  async function writeRevert(
    octokit: Octokit,
    w: MergeWatch,
    failing: FailingCheck[],
  ): Promise<{ kind: "pr"; number: number } | { kind: "conflict"; paths: string[] }> {
    const ref = repoRef(w.installation_id, w.full_name);
    const repo = { owner: ref.owner, repo: ref.repo };
    const branch = revertBranch(w);
    const { data: open } = await octokit.request("GET /repos/{owner}/{repo}/pulls", {
      ...repo,
      state: "open",
      head: `${ref.owner}:${branch}`,
      base: w.base_ref,
    });
    if (open[0]) return { kind: "pr", number: open[0].number };
    const merged = await treeOf(octokit, w, w.merge_sha);
    const parentSha = merged.parents[0];
    if (!parentSha) return { kind: "conflict", paths: [] };
    const parent = await treeOf(octokit, w, parentSha);
    const { data: tipRef } = await octokit.request("GET /repos/{owner}/{repo}/git/ref/{ref}", {
      ...repo,
      ref: `heads/${w.base_ref}`,
    });
    const tip = await treeOf(octokit, w, tipRef.object.sha);
    const inverse = revertTree(parent.entries, merged.entries, tip.entries);
    if (inverse.conflicts.length > 0 || inverse.entries.length === 0) {
      return { kind: "conflict", paths: inverse.conflicts };
    }
    const { data: tree } = await octokit.request("POST /repos/{owner}/{repo}/git/trees", {
      ...repo,
      base_tree: tip.treeSha,
      tree: inverse.entries.map((e) => ({
        path: e.path,
        mode: e.mode as "100644",
        type: e.type as "blob",
        sha: e.sha,
      })),
    });
    const title = revertTitle(w.pr_title || `#${w.pr_number}`);
    const { data: commit } = await octokit.request("POST /repos/{owner}/{repo}/git/commits", {
      ...repo,
      message: `${title}\n\nThis reverts commit ${w.merge_sha}.\n`,
      tree: tree.sha,
      parents: [tipRef.object.sha],
    });
    try {
      await octokit.request("POST /repos/{owner}/{repo}/git/refs", {
        ...repo,
        ref: `refs/heads/${branch}`,
        sha: commit.sha,
      });
    } catch (error) {
      if ((error as { status?: number }).status !== 422) throw error;
      // Left by an earlier pass that stopped before opening the pull request.
      await octokit.request("PATCH /repos/{owner}/{repo}/git/refs/{ref}", {
        ...repo,
        ref: `heads/${branch}`,
        sha: commit.sha,
        force: true,
      });
    }
    const { data: pull } = await octokit.request("POST /repos/{owner}/{repo}/pulls", {
      ...repo,
      title,
      head: branch,
      base: w.base_ref,
      body: revertBody({
        prNumber: w.pr_number,
        mergeSha: w.merge_sha,
        baseRef: w.base_ref,
        failing,
      }),
    });
    log.info({ repo: w.full_name, prNumber: pull.number }, "opened a revert pull request");
    return { kind: "pr", number: pull.number };
  }

  async function followRevert(octokit: Octokit, w: MergeWatch, config: RepoConfig) {
    const ref = repoRef(w.installation_id, w.full_name);
    const repo = { owner: ref.owner, repo: ref.repo };
    if (w.revert_pr_number === null) return;
    const { data: pull } = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
      ...repo,
      pull_number: w.revert_pr_number,
    });
    if (pull.merged) return reverted(octokit, w);
    if (pull.state === "closed") {
      if (
        await advanceWatch(deps.db, { watchId: w.watch_id, from: "reverting" }, "revert_closed", {
          note: `revert #${w.revert_pr_number} was closed without merging; the repository stays frozen`,
        })
      ) {
        await timeline(w, `revert #${w.revert_pr_number} closed without merging`);
      }
      return;
    }
    // merge.revert auto: the revert merges by itself once its checks pass, and only after a
    // tier-1 merge (the revert of a tier-1 change is tier 1 by construction; of anything else not).
    if (w.revert_mode !== "auto" || w.tier !== 1) return;
    const errors: string[] = [];
    const onHead = await checksOn(octokit, w, pull.head.sha, errors);
    if (
      errors.length > 0 ||
      !watchedChecksPass(onHead, w.checks, config.merge.strict_conclusions)
    ) {
      return;
    }
    try {
      await octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", {
        ...repo,
        pull_number: w.revert_pr_number,
        sha: pull.head.sha,
        merge_method: config.merge.method,
        request: { retries: 0 },
      });
    } catch (error) {
      // The next pass reads the pull request again (merged, moved, or still refused).
      log.warn({ err: error, prNumber: w.revert_pr_number }, "merging the revert failed");
      return;
    }
    await reverted(octokit, w);
  }

  /** The revert merged: queue the issue again with the failure as feedback, lift our freeze. */
  async function reverted(octokit: Octokit, w: MergeWatch) {
    const ref = repoRef(w.installation_id, w.full_name);
    const original = await getTask(deps.db, w.task_id);
    if (!original) return;
    const feedback = revertFeedback({
      prNumber: w.pr_number,
      revertNumber: w.revert_pr_number ?? 0,
      mergeSha: w.merge_sha,
      baseRef: w.base_ref,
      failing: w.failing,
    });
    // The merge closed the issue ("Closes #N"); the new attempt belongs to an open one, reopened
    // first so that reconciliation never sees a queued task on a closed issue.
    await octokit
      .request("PATCH /repos/{owner}/{repo}/issues/{issue_number}", {
        owner: ref.owner,
        repo: ref.repo,
        issue_number: w.issue_number,
        state: "open",
      })
      .catch((error) =>
        log.warn({ err: error, issueNumber: w.issue_number }, "could not reopen the issue"),
      );
    const requeued = await deps.db
      .transaction(async (tx) => {
        const active = await findActiveTask(tx, w.repository_id, w.issue_number);
        const task =
          active ??
          (
            await createTask(
              tx,
              {
                repositoryId: original.repositoryId,
                installationId: original.installationId,
                issueNumber: original.issueNumber,
                title: original.title,
                body: original.body,
                lane: original.lane,
                capabilities: original.capabilities,
                maxAttempts: original.maxAttempts,
                limits: original.limits as Record<string, unknown>,
                queuedBy: original.queuedBy,
                feedback,
              },
              `queued again: its change #${w.pr_number} was reverted in #${w.revert_pr_number}`,
            )
          ).task;
        const moved = await advanceWatch(
          tx,
          { watchId: w.watch_id, from: "reverting" },
          "reverted",
          {
            note: `revert #${w.revert_pr_number} merged; the issue is queued again`,
            requeuedTaskId: task.taskId,
          },
        );
        if (!moved) throw new WatchMovedOn();
        return { task, created: !active };
      })
      .catch((error: unknown) => {
        if (error instanceof WatchMovedOn) return undefined;
        throw error;
      });
    if (!requeued) return;
    await unfreezeIf(
      deps.db,
      w.repository_id,
      freezeReason({
        prNumber: w.pr_number,
        mergeSha: w.merge_sha,
        baseRef: w.base_ref,
        failing: w.failing,
      }),
    );
    await timeline(
      w,
      requeued.created
        ? `revert #${w.revert_pr_number} merged; the issue is queued again with the failure as feedback`
        : `revert #${w.revert_pr_number} merged; the issue already had an active task`,
      { requeued_task_id: requeued.task.taskId },
    );
    deps.onRequeue?.();
  }

  return {
    async runOnce() {
      if (!(await tryAcquireLease(deps.db, LEASE, deps.instanceId, LEASE_MS))) return;
      try {
        for (const w of await openWatches(deps.db)) {
          try {
            await step(w);
          } catch (error) {
            log.error(
              { err: error, repo: w.full_name, prNumber: w.pr_number },
              "the post-merge watch failed",
            );
            deps.recordError?.("merge-watcher", error);
          }
        }
      } finally {
        await releaseLease(deps.db, LEASE, deps.instanceId);
      }
    },
  };
}

class WatchMovedOn extends Error {}
