import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Db } from "../../db/client.ts";
import { type CandidateFacts, candidateChecks, rankCandidates } from "../core/best-of.ts";
import { PullRequestRefused } from "../core/change-set-rules.ts";
import { repoRef } from "../core/github-objects.ts";
import {
  type CheckFact,
  checkRunOutcome,
  classifyTier,
  type PrFile,
  type PrFileStatus,
  type StatusFact,
  statusOutcome,
} from "../core/merge-policy.ts";
import { type GitHubGateway, isWritesClosed, type PullRequestWriter } from "../core/ports.ts";
import type { ChangeSet } from "../protocol/messages.ts";
import {
  type CandidateFigures,
  cancelStrayCandidates,
  decideRound,
  expireUnclaimedCandidates,
  findBranchesToDelete,
  findOpenRounds,
  findRoundsToStart,
  findUnwrittenCandidates,
  hasBestOfWork,
  markBranchDeleted,
  type OpenRound,
  type RoundCandidate,
  recordCandidateHead,
  refuseCandidate,
  startRound,
} from "../store/best-of.ts";
import { releaseLease, tryAcquireLease } from "../store/leases.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

export interface BestOfDeps {
  db: Db;
  logger: Logger;
  gateway: Pick<GitHubGateway, "loadConfig">;
  pullRequests: Pick<PullRequestWriter, "writeBranch" | "deleteBranch">;
  installationOctokit: (installationId: number) => Promise<Octokit>;
  instanceId: string;
  /** Something moved: candidates queued (dispatch), a task pushed (publisher), a comment owed. */
  onChange: () => void;
  recordError?: (source: string, error: unknown) => void;
  now?: () => Date;
  /** How soon a round whose candidates' checks are still running reads them again (default 15 s). */
  checksRecheckMs?: number | undefined;
}

const LEASE = "best-of";
const LEASE_MS = 2 * 60_000;
const BATCH = 10;
/** How often a round waiting for its candidates' checks reads them again, by default. */
const CHECKS_RECHECK_MS = 15_000;
/**
 * How long a freshly written candidate commit with no check at all still counts as pending: CI
 * (GitHub Actions, an external service) takes a few seconds to register its first check run or
 * status on a pushed commit, and deciding before that would rank "none" where "green" was coming.
 */
const NO_CHECKS_GRACE_MS = 60_000;
/** GitHub's compare lists at most 300 files: the figures of a larger candidate cover those. */
const MAX_COMPARE_FILES = 300;

/**
 * Best of N (docs/merge-policy.md#best-of-n), one step after another, each idempotent so a crash
 * between two loses nothing: stray candidates of a finished round are cancelled; due rounds start
 * (the task's candidates are queued); each candidate's change set is written to its branch
 * `conveyor/issue-<N>-<k>` (CI runs there); a round whose candidates have all finished, failed or
 * timed out (their single attempt's lease and deadline) and whose checks have concluded, or waited
 * `merge.checks_timeout_minutes`, is decided by the documented order and its winner handed to the
 * publisher; then the candidates' branches are deleted. One instance at a time (a lease).
 */
export function createBestOf(deps: BestOfDeps): { runOnce(): Promise<number> } {
  const now = deps.now ?? (() => new Date());
  const checksRecheckMs = deps.checksRecheckMs ?? CHECKS_RECHECK_MS;
  /** Rounds waiting for checks on their candidates: when to read the checks again. */
  const recheckAt = new Map<string, number>();

  async function writeCandidates(): Promise<number> {
    let done = 0;
    for (const c of await findUnwrittenCandidates(deps.db, BATCH)) {
      const ref = repoRef(c.installation_id, c.full_name);
      try {
        const written = await deps.pullRequests.writeBranch(c.installation_id, {
          owner: ref.owner,
          repo: ref.repo,
          branch: c.branch,
          baseSha: c.change_set.base_sha,
          changeSet: c.change_set as ChangeSet,
        });
        await recordCandidateHead(deps.db, {
          candidateTaskId: c.candidate_task_id,
          generation: c.generation,
          headSha: written.headSha,
        });
      } catch (error) {
        if (!(error instanceof PullRequestRefused)) throw error;
        await refuseCandidate(deps.db, {
          candidateTaskId: c.candidate_task_id,
          generation: c.generation,
          reason: error.message,
        });
      }
      done++;
    }
    return done;
  }

  /** Green, red, still running, or none at all: check runs and commit statuses on `sha`. */
  async function checksOn(
    octokit: Octokit,
    ref: { owner: string; repo: string },
    sha: string,
    strict: boolean,
  ) {
    const base = { owner: ref.owner, repo: ref.repo, ref: sha, per_page: 100 };
    const { data: runs } = await octokit.request(
      "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
      { ...base, filter: "latest" },
    );
    const { data: combined } = await octokit.request(
      "GET /repos/{owner}/{repo}/commits/{ref}/status",
      base,
    );
    const outcomes = [
      ...runs.check_runs.map((r) =>
        checkRunOutcome(
          {
            name: r.name,
            status: r.status as CheckFact["status"],
            conclusion: r.conclusion,
            ours: false,
          },
          strict,
        ),
      ),
      ...combined.statuses.map((s) =>
        statusOutcome({ context: s.context, state: s.state as StatusFact["state"] }),
      ),
    ];
    // More than a page of either: what was not read is not known to be green.
    const cut =
      runs.total_count > runs.check_runs.length || combined.total_count > combined.statuses.length;
    return candidateChecks(outcomes, cut);
  }

  /** The candidate's files against its base, as the merge policy reads a pull request's. */
  async function filesOf(
    octokit: Octokit,
    ref: { owner: string; repo: string },
    baseSha: string,
    headSha: string,
  ): Promise<PrFile[]> {
    const { data } = await octokit.request("GET /repos/{owner}/{repo}/compare/{basehead}", {
      owner: ref.owner,
      repo: ref.repo,
      basehead: `${baseSha}...${headSha}`,
      per_page: 100,
    });
    return (data.files ?? []).slice(0, MAX_COMPARE_FILES).map((f) => ({
      path: f.filename,
      previousPath: f.previous_filename,
      status: f.status as PrFileStatus,
      additions: f.additions,
      deletions: f.deletions,
      patch: f.patch,
    }));
  }

  /**
   * The round's figures once every candidate is settled, or undefined while one still works or
   * its checks still run (within `merge.checks_timeout_minutes` of its commit).
   */
  async function settle(round: OpenRound) {
    const working = round.candidates.some(
      (c) => !["pushed", "dead", "cancelled", "failed", "merged"].includes(c.state),
    );
    if (working) return undefined;
    // A pushed candidate whose branch is not written yet is written by the step before.
    if (round.candidates.some((c) => c.state === "pushed" && !c.head_sha)) return undefined;
    const ref = repoRef(round.installation_id, round.full_name);
    const { config } = await deps.gateway.loadConfig(ref);
    const octokit = await deps.installationOctokit(round.installation_id);
    const waitMs = config.merge.checks_timeout_minutes * 60_000;
    const facts: (CandidateFacts & { row: RoundCandidate; failure: string | null })[] = [];
    for (const c of round.candidates) {
      const verification = c.result?.verification;
      // No report passes only where there is nothing to verify (as the tier rule reads it).
      const verificationPassed = verification
        ? verification.passed === true
        : config.verify.commands.length === 0;
      const costUsd = c.cost_usd === null ? null : Number(c.cost_usd);
      if (c.state !== "pushed" || !c.head_sha || !c.base_sha) {
        facts.push({
          k: c.k,
          row: c,
          hasChange: false,
          verificationPassed: false,
          tier: 3,
          checks: "none",
          changedLines: 0,
          costUsd,
          failure: c.last_error ?? c.state,
        });
        continue;
      }
      const checks = await checksOn(octokit, ref, c.head_sha, config.merge.strict_conclusions);
      const since = c.head_written_at ? Date.parse(c.head_written_at) : 0;
      const age = now().getTime() - since;
      const waiting =
        (checks === "pending" && age < waitMs) ||
        (checks === "none" && age < Math.min(waitMs, NO_CHECKS_GRACE_MS));
      if (waiting) {
        // Looked at again in a while, not on every pass: each look costs GitHub requests.
        recheckAt.set(round.task_id, now().getTime() + checksRecheckMs);
        return undefined;
      }
      const files = await filesOf(octokit, ref, c.base_sha, c.head_sha);
      const verificationFact = verification
        ? {
            passed: verificationPassed,
          }
        : null;
      const tier = classifyTier(files, verificationFact, config).tier;
      facts.push({
        k: c.k,
        row: c,
        hasChange: true,
        verificationPassed,
        tier,
        checks,
        changedLines: files.reduce((sum, f) => sum + f.additions + f.deletions, 0),
        costUsd,
        failure: null,
      });
    }
    return facts;
  }

  async function decide(round: OpenRound): Promise<boolean> {
    if ((recheckAt.get(round.task_id) ?? 0) > now().getTime()) return false;
    recheckAt.delete(round.task_id);
    const facts = await settle(round);
    if (!facts) return false;
    const ranking = rankCandidates(facts);
    const figures: CandidateFigures[] = facts.map((f) => ({
      k: f.k,
      verificationPassed: f.hasChange ? f.verificationPassed : null,
      tier: f.hasChange ? f.tier : null,
      checks: f.hasChange ? f.checks : null,
      changedLines: f.hasChange ? f.changedLines : null,
      costUsd: f.costUsd,
      failure: f.failure,
      rank: f.hasChange ? ranking.ranked.indexOf(f) + 1 : null,
    }));
    const decided = await decideRound(deps.db, {
      taskId: round.task_id,
      round: round.round,
      figures,
      winner: ranking.winner
        ? { k: ranking.winner.k, candidateTaskId: ranking.winner.row.candidate_task_id }
        : undefined,
      reason: ranking.reason,
    });
    if (decided) {
      deps.logger.info(
        {
          taskId: round.task_id,
          generation: round.round,
          issueNumber: round.issue_number,
          repo: round.full_name,
          winner: ranking.winner?.k ?? null,
          reason: ranking.reason,
        },
        "best-of round decided",
      );
    }
    return decided;
  }

  async function deleteBranches(): Promise<number> {
    let done = 0;
    for (const b of await findBranchesToDelete(deps.db, BATCH)) {
      const ref = repoRef(b.installation_id, b.full_name);
      await deps.pullRequests.deleteBranch(b.installation_id, {
        owner: ref.owner,
        repo: ref.repo,
        branch: b.branch,
      });
      await markBranchDeleted(deps.db, { taskId: b.task_id, round: b.round, k: b.k });
      done++;
    }
    return done;
  }

  /** Runs one step, logging (not throwing) what failed: the next pass tries again. */
  async function step(name: string, run: () => Promise<number>): Promise<number> {
    try {
      return await run();
    } catch (error) {
      if (isWritesClosed(error)) return 0;
      deps.logger.error({ err: error, step: name }, "best-of step failed");
      deps.recordError?.("best-of", error);
      return 0;
    }
  }

  return {
    async runOnce() {
      if (!(await hasBestOfWork(deps.db))) return 0;
      if (!(await tryAcquireLease(deps.db, LEASE, deps.instanceId, LEASE_MS))) return 0;
      let done = 0;
      try {
        done += await step("cancel", () => cancelStrayCandidates(deps.db));
        done += await step("expire", () => expireUnclaimedCandidates(deps.db));
        done += await step("start", async () => {
          let started = 0;
          for (const task of await findRoundsToStart(deps.db, BATCH)) {
            if (await startRound(deps.db, task)) started++;
          }
          return started;
        });
        done += await step("write", writeCandidates);
        done += await step("decide", async () => {
          let decided = 0;
          for (const round of await findOpenRounds(deps.db, BATCH)) {
            if (await decide(round)) decided++;
          }
          return decided;
        });
        done += await step("delete", deleteBranches);
      } finally {
        await releaseLease(deps.db, LEASE, deps.instanceId);
      }
      if (done) deps.onChange();
      return done;
    },
  };
}
