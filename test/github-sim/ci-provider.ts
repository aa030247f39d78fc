import { createCheckRun, updateCheckRun } from "./check-actions.ts";
import type { SimContext } from "./sim-context.ts";
import type { SimApp, SimCheckSuite, SimRepo } from "./sim-state.ts";

/** The conclusions a check run can have (GitHub's list). */
export type CiConclusion =
  | "action_required"
  | "cancelled"
  | "failure"
  | "neutral"
  | "success"
  | "skipped"
  | "stale"
  | "timed_out";

/** A new head commit on a branch, as a CI system sees it. */
export interface CiPush {
  /** `owner/name`. */
  repo: string;
  branch: string;
  sha: string;
  /**
   * The paths the commit changes: against the merge base with the default branch (what a pull
   * request from the branch would show), or against the first parent on the default branch itself.
   */
  files: string[];
  /** 1 for the run a push starts, 2 and up for each re-request of its check suite. */
  attempt: number;
}

/**
 * A CI system installed on every repository (like GitHub Actions with `on: push`): each new head
 * commit of any branch gets one check run from the CI's own app, `in_progress` at once and
 * concluded `durationMs` later with what `conclude` says.
 */
export interface CiProvider {
  /** The check run's name, as a workflow job shows it (e.g. `ci / test`). */
  name: string;
  /** The CI app's slug (default `ci`): its check runs belong to that app, not the app under test. */
  appSlug?: string;
  /** How long a run stays `in_progress` before it concludes (default 0: at once). */
  durationMs?: number;
  /** The run's conclusion; a throw concludes it `failure` with the error as the summary. */
  conclude(push: CiPush): CiConclusion | Promise<CiConclusion>;
}

export interface CiRunner {
  /** Called whenever a branch points at a new commit (created, moved, merged into). */
  headMoved(repo: SimRepo, branch: string, sha: string): void;
  /** Called when a check suite is re-requested: runs its commit again if it is this CI's. */
  rerequested(repo: SimRepo, suite: SimCheckSuite): void;
  /** Resolves when every run started so far has concluded (and its webhooks were sent). */
  idle(): Promise<void>;
  /** True while a run has not concluded. */
  busy(): boolean;
}

/**
 * Runs `provider` for each new head commit, once per commit and repository (a commit that two
 * branches share, or a ref set to the commit it already had, is not run twice). Runs happen in the
 * background, as on GitHub: the request that moved the branch does not wait for them.
 */
export function createCiRunner(ctx: SimContext, provider: CiProvider, app: SimApp): CiRunner {
  const seen = new Set<string>();
  const attempts = new Map<string, number>();
  const branches = new Map<string, string>();
  const running = new Set<Promise<void>>();

  async function changedFiles(repo: SimRepo, branch: string, sha: string): Promise<string[]> {
    let from: string | undefined;
    if (branch === repo.defaultBranch) {
      from = (await ctx.git.readCommit(repo.fullName, sha))?.parents[0];
    } else {
      const base = await ctx.git.readRef(repo.fullName, `refs/heads/${repo.defaultBranch}`);
      from = base ? await ctx.git.mergeBase(repo.fullName, base, sha) : undefined;
    }
    if (!from) {
      const tree = await ctx.git.readTree(repo.fullName, sha, true);
      return (tree?.entries ?? []).filter((e) => e.type === "blob").map((e) => e.path);
    }
    return (await ctx.git.diff(repo.fullName, from, sha)).flatMap((change) =>
      change.previousFilename ? [change.previousFilename, change.filename] : [change.filename],
    );
  }

  async function run(repo: SimRepo, branch: string, sha: string, attempt: number): Promise<void> {
    const { run: checkRun, deliveries } = await createCheckRun(
      ctx,
      repo,
      { name: provider.name, head_sha: sha, status: "in_progress" },
      app,
    );
    await Promise.all(deliveries);
    const files = await changedFiles(repo, branch, sha);
    let conclusion: CiConclusion;
    let summary: string;
    try {
      conclusion = await provider.conclude({ repo: repo.fullName, branch, sha, files, attempt });
      summary = `${files.length} changed file(s) on ${branch}: ${conclusion}`;
    } catch (error) {
      conclusion = "failure";
      summary = (error as Error).message;
    }
    if (provider.durationMs) await new Promise((r) => setTimeout(r, provider.durationMs));
    await Promise.all(
      await updateCheckRun(ctx, repo, checkRun, {
        conclusion,
        output: { title: `${provider.name}: ${conclusion}`, summary },
      }),
    );
  }

  function start(repo: SimRepo, branch: string, sha: string, attempt: number) {
    const job = run(repo, branch, sha, attempt).catch((error: unknown) => {
      ctx.logger.warn({ err: error, repo: repo.fullName, sha }, "ci provider run failed");
    });
    running.add(job);
    void job.finally(() => running.delete(job));
  }

  return {
    headMoved(repo, branch, sha) {
      const key = `${repo.id}:${sha}`;
      if (seen.has(key)) return;
      seen.add(key);
      attempts.set(key, 1);
      branches.set(key, branch);
      start(repo, branch, sha, 1);
    },
    rerequested(repo, suite) {
      if (suite.app.id !== app.id) return;
      const key = `${repo.id}:${suite.headSha}`;
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      const branch = branches.get(key) ?? suite.headBranch ?? repo.defaultBranch;
      start(repo, branch, suite.headSha, attempt);
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    busy: () => running.size > 0,
  };
}
