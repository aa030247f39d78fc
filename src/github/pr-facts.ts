import type { ProbotOctokit } from "probot";
import {
  type CheckFact,
  type ExpectedCheck,
  type PrFile,
  type ReviewFact,
  SAFETY_CHECK_NAME,
  type StatusFact,
} from "../core/merge-policy.ts";
import { mergeQueueFromRules } from "../core/merge-queue.ts";
import type { CollectedFacts, FactsRequest } from "../core/ports.ts";
import type { BaseRulesCache } from "./base-rules-cache.ts";
import { arrayPage, countedPage, readAllPages } from "./read-all-pages.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** GitHub lists at most 3,000 files for a pull request; beyond that the picture is incomplete. */
export const MAX_FILES = 3000;

interface CheckRunJson {
  name: string;
  status: string;
  conclusion: string | null;
  app: { id: number } | null;
}
interface StatusJson {
  context: string;
  state: string;
}
interface RequiredChecksJson {
  contexts?: string[];
  checks?: { context: string }[];
}
interface RuleJson {
  type: string;
  parameters?: { required_status_checks?: { context: string }[]; merge_method?: string };
}

/**
 * Everything the merge policy looks at, read from GitHub for the PR's current head: every page of
 * its files (up to GitHub's 3,000), check runs, commit statuses and reviews; the base branch's
 * required checks (branch protection and rulesets, where the App may read them) and the checks
 * that reported on the commit the runner started from. A read that fails, or a list that comes
 * back shorter than GitHub's own count, is recorded in `errors` instead of thrown, so the policy
 * fails closed with the reason shown ("facts incomplete").
 *
 * Requests, in order (docs/merge-policy.md lists them too):
 * `GET /repos/{o}/{r}/pulls/{n}`, `…/pulls/{n}/files`, `…/commits/{head}/check-runs`,
 * `…/commits/{head}/status`, `…/pulls/{n}/reviews`, `…/branches/{base}`,
 * `…/branches/{base}/protection/required_status_checks`, `…/rules/branches/{base}` (its
 * `required_status_checks` rules and whether a `merge_queue` rule applies), and with a
 * `baseSha` `…/commits/{baseSha}/check-runs` and `…/commits/{baseSha}/status`; every list with
 * `per_page=100`, following `Link` headers. With a `cache`, the protection and rules reads are
 * skipped while a kept answer is fresh (see {@link BaseRulesCache}).
 */
export async function collectPrFacts(
  octokit: Octokit,
  r: FactsRequest,
  cache?: BaseRulesCache,
): Promise<CollectedFacts> {
  const errors: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      errors.push(`${what}: ${(error as Error).message}`);
      return fallback;
    }
  };
  /** A list read to its end; a cut-short list counts as an error and its items as read so far. */
  const attemptList = async <T>(
    what: string,
    route: string,
    params: Record<string, unknown>,
    pick: (data: unknown) => { items: T[]; total?: number | undefined },
    maxPages?: number,
  ): Promise<T[]> =>
    attempt(what, async () => {
      const read = await readAllPages(octokit, route, params, pick, maxPages);
      if (read.cutShort) errors.push(`${what}: cut short (${read.cutShort})`);
      else if (read.total !== undefined && read.items.length < read.total) {
        errors.push(`${what}: cut short (GitHub listed ${read.items.length} of ${read.total})`);
      }
      return read.items;
    }, []);
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
  const baseRef = pull?.base.ref ?? "";
  const files = await attemptList<{
    filename: string;
    previous_filename?: string;
    status: PrFile["status"];
    additions: number;
    deletions: number;
    patch?: string;
  }>(
    "listing the files",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/files",
    { ...base, pull_number: r.prNumber },
    arrayPage,
    MAX_FILES / 100,
  );
  const checksOn = (sha: string, which: string) =>
    attemptList<CheckRunJson>(
      `listing check runs on ${which}`,
      "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
      { ...base, ref: sha, filter: "latest" },
      countedPage("check_runs"),
    );
  const statusesOn = (sha: string, which: string) =>
    attemptList<StatusJson>(
      `reading commit statuses on ${which}`,
      "GET /repos/{owner}/{repo}/commits/{ref}/status",
      { ...base, ref: sha },
      countedPage("statuses"),
    );
  const checkRuns = headSha ? await checksOn(headSha, "the head") : [];
  const statuses = headSha ? await statusesOn(headSha, "the head") : [];
  const reviews = await attemptList<{
    user: { login: string; type?: string } | null;
    state: string;
    commit_id?: string | null;
    submitted_at?: string;
  }>(
    "listing reviews",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
    { ...base, pull_number: r.prNumber },
    arrayPage,
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

  // The checks that should run: the base branch's required ones and those of the base commit.
  const expectedChecks: ExpectedCheck[] = [];
  const addExpected = (name: string, source: ExpectedCheck["source"]) => {
    if (!expectedChecks.some((e) => e.name === name && e.source === source)) {
      expectedChecks.push({ name, source });
    }
  };
  let baseTipSha = "";
  let mergeQueue: CollectedFacts["mergeQueue"] = null;
  if (baseRef) {
    const branch = await attempt(
      "reading the base branch",
      async () =>
        (
          await octokit.request("GET /repos/{owner}/{repo}/branches/{branch}", {
            ...base,
            branch: baseRef,
          })
        ).data,
      undefined,
    );
    baseTipSha = branch?.commit.sha ?? "";
    const fromProtection = (required: RequiredChecksJson | undefined) => {
      for (const name of required?.contexts ?? []) {
        addExpected(name, "branch protection");
      }
      for (const c of required?.checks ?? []) {
        addExpected(c.context, "branch protection");
      }
    };
    fromProtection(branch?.protection?.required_status_checks);
    const required = await readBaseRules(octokit, r, baseRef, errors, cache);
    fromProtection(required.protection);
    // A `merge_queue` rule: merges into the base go through GitHub's merge queue.
    mergeQueue = mergeQueueFromRules(required.rules);
    for (const rule of required.rules) {
      if (rule.type !== "required_status_checks") continue;
      for (const c of rule.parameters?.required_status_checks ?? []) {
        addExpected(c.context, "ruleset");
      }
    }
  }
  if (r.baseSha) {
    for (const c of await checksOn(r.baseSha, "the base commit")) {
      if (c.app?.id === r.appId || c.name === SAFETY_CHECK_NAME) continue;
      addExpected(c.name, "base commit");
    }
    for (const s of await statusesOn(r.baseSha, "the base commit")) {
      addExpected(s.context, "base commit");
    }
  }

  return {
    prNumber: r.prNumber,
    headSha,
    conveyorHeadSha: r.conveyorHeadSha,
    authorLogin: pull?.user?.login ?? "",
    draft: pull?.draft ?? false,
    open: pull ? pull.state === "open" && !pull.merged : false,
    baseRef,
    expectedBaseRef: r.expectedBaseRef,
    expectedChecks,
    mergeable: pull?.mergeable ?? null,
    mergeableState: pull?.mergeable_state ?? "unknown",
    labels: (pull?.labels ?? []).map((l) => l.name ?? "").filter(Boolean),
    ...(pull ? { title: pull.title } : {}),
    files: files.map(
      (f): PrFile => ({
        path: f.filename,
        ...(f.previous_filename ? { previousPath: f.previous_filename } : {}),
        status: f.status,
        additions: f.additions,
        deletions: f.deletions,
        ...(f.patch !== undefined ? { patch: f.patch } : {}),
        ...(r.modes?.has(f.filename) ? { mode: r.modes.get(f.filename) } : {}),
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
    statuses: statuses.map(
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
    baseTipSha,
    nodeId: pull?.node_id ?? "",
    mergeQueue,
  };
}

/**
 * The base branch's required status checks from branch protection and its active rules. Branch
 * protection needs the `administration` permission and rulesets may be unreadable too: what the
 * App cannot see (403) or what does not exist (404) is simply not required. With a cache, a
 * protection 403 is remembered for the repository, and a branch's answers for a few minutes.
 */
async function readBaseRules(
  octokit: Octokit,
  r: Pick<FactsRequest, "owner" | "repo">,
  baseRef: string,
  errors: string[],
  cache: BaseRulesCache | undefined,
): Promise<{ protection: RequiredChecksJson | undefined; rules: RuleJson[] }> {
  const base = { owner: r.owner, repo: r.repo };
  const repoKey = `${r.owner}/${r.repo}`;
  const branchKey = `${repoKey} ${baseRef}`;
  const errorsBefore = errors.length;
  let protection = cache?.get<RequiredChecksJson | null>("protection", branchKey)?.value;
  if (protection === undefined && !cache?.get<true>("protectionDenied", repoKey)) {
    let denied = false;
    const read = await attemptOptional(
      errors,
      "reading the base branch's protection",
      () =>
        octokit.request(
          "GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks",
          { ...base, branch: baseRef },
        ),
      (status) => {
        denied = status === 403;
      },
    );
    protection = read?.data ?? null;
    if (denied) cache?.set("protectionDenied", repoKey, true);
    else if (errors.length === errorsBefore) cache?.set("protection", branchKey, protection);
  }
  let rules = cache?.get<RuleJson[]>("rules", branchKey)?.value;
  if (!rules) {
    const before = errors.length;
    const read = await attemptOptional(errors, "reading the base branch's rulesets", () =>
      readAllPages<RuleJson>(
        octokit,
        "GET /repos/{owner}/{repo}/rules/branches/{branch}",
        { ...base, branch: baseRef },
        arrayPage,
      ),
    );
    if (read?.cutShort)
      errors.push(`reading the base branch's rulesets: cut short (${read.cutShort})`);
    rules = read?.items ?? [];
    if (errors.length === before) cache?.set("rules", branchKey, rules);
  }
  return { protection: protection ?? undefined, rules };
}

/** A read whose 403 or 404 means "nothing there for this App"; any other failure is recorded. */
async function attemptOptional<T>(
  errors: string[],
  what: string,
  read: () => Promise<T>,
  onAbsent?: (status: 403 | 404) => void,
): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 403 || status === 404) {
      onAbsent?.(status);
      return undefined;
    }
    errors.push(`${what}: ${(error as Error).message}`);
    return undefined;
  }
}
