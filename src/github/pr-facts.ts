import type { ProbotOctokit } from "probot";
import type { CheckFact, PrFacts, PrFile, ReviewFact, StatusFact } from "../core/merge-policy.ts";
import type { FactsRequest } from "../core/ports.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** GitHub lists at most 3000 files for a pull request; beyond that the picture is incomplete. */
const MAX_FILES = 3000;

/**
 * Everything the merge policy looks at, read from GitHub for the PR's current head. Any API error
 * is recorded in `errors` instead of thrown, so the policy fails closed with the reason shown.
 */
export async function collectPrFacts(octokit: Octokit, r: FactsRequest): Promise<PrFacts> {
  const errors: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      errors.push(`${what}: ${(error as Error).message}`);
      return fallback;
    }
  };
  const base = { owner: r.owner, repo: r.repo };
  const pull = await attempt(
    "reading the pull request",
    async () =>
      (
        await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
          ...base,
          pull_number: r.prNumber,
        })
      ).data,
    undefined,
  );
  const headSha = pull?.head.sha ?? "";
  const files = await attempt(
    "listing the files",
    () =>
      octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {
        ...base,
        pull_number: r.prNumber,
        per_page: 100,
      }),
    [],
  );
  const checkRuns = headSha
    ? await attempt(
        "listing check runs",
        async () =>
          (
            await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", {
              ...base,
              ref: headSha,
              per_page: 100,
            })
          ).data.check_runs,
        [],
      )
    : [];
  const combined = headSha
    ? await attempt(
        "reading commit statuses",
        async () =>
          (
            await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}/status", {
              ...base,
              ref: headSha,
              per_page: 100,
            })
          ).data,
        undefined,
      )
    : undefined;
  const reviews = await attempt(
    "listing reviews",
    () =>
      octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {
        ...base,
        pull_number: r.prNumber,
        per_page: 100,
      }),
    [],
  );
  const reviewFacts: ReviewFact[] = [];
  for (const review of reviews) {
    const login = review.user?.login ?? "ghost";
    const isBot = review.user?.type === "Bot" || login.endsWith("[bot]");
    reviewFacts.push({
      login,
      isBot,
      state: review.state as ReviewFact["state"],
      commitSha: review.commit_id ?? "",
      submittedAt: review.submitted_at ?? "",
      permission: isBot
        ? undefined
        : await attempt(`permission of ${login}`, () => r.permission(login), undefined),
    });
  }
  return {
    prNumber: r.prNumber,
    headSha,
    conveyorHeadSha: r.conveyorHeadSha,
    authorLogin: pull?.user?.login ?? "",
    draft: pull?.draft ?? false,
    open: pull ? pull.state === "open" && !pull.merged : false,
    mergeable: pull?.mergeable ?? null,
    mergeableState: pull?.mergeable_state ?? "unknown",
    labels: (pull?.labels ?? []).map((l) => l.name ?? "").filter(Boolean),
    files: files.map(
      (f): PrFile => ({
        path: f.filename,
        ...(f.previous_filename ? { previousPath: f.previous_filename } : {}),
        status: f.status,
        additions: f.additions,
        deletions: f.deletions,
        ...(f.patch !== undefined ? { patch: f.patch } : {}),
      }),
    ),
    filesComplete: files.length < MAX_FILES && (pull ? files.length === pull.changed_files : false),
    checks: checkRuns.map(
      (c): CheckFact => ({
        name: c.name,
        status: c.status as CheckFact["status"],
        conclusion: c.conclusion ?? null,
        ours: c.app?.id === r.appId,
      }),
    ),
    statuses: (combined?.statuses ?? []).map(
      (s): StatusFact => ({ context: s.context, state: s.state as StatusFact["state"] }),
    ),
    reviews: reviewFacts,
    approvals: r.approvals,
    held: r.held,
    frozen: r.frozen,
    verification: r.verification,
    waitingSince: r.waitingSince,
    now: (r.now?.() ?? new Date()).toISOString(),
    errors,
  };
}
