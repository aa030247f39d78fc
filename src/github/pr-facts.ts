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
interface ReviewJson {
  user: { login: string; type?: string } | null;
  state: string;
  commit_id?: string | null;
  submitted_at?: string;
}
/** The fields of REST's pull request the policy reads (the GraphQL answer is put in this shape). */
interface PullJson {
  head: { sha: string };
  base: { ref: string };
  user: { login: string } | null;
  draft?: boolean;
  state: string;
  merged: boolean;
  mergeable: boolean | null;
  mergeable_state: string;
  labels: { name?: string }[];
  title: string;
  changed_files: number;
  node_id: string;
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
 * Requests, in order (docs/merge-policy.md lists them too): one GraphQL query ({@link factsQuery})
 * for the pull request, its reviews and labels, the base branch's tip and the checks and statuses
 * on the head Conveyor wrote and on the base commit; then `…/pulls/{n}/files` (every page),
 * `…/branches/{base}` (for the required checks it shows),
 * `…/branches/{base}/protection/required_status_checks` and `…/rules/branches/{base}` (its
 * `required_status_checks` rules and whether a `merge_queue` rule applies). When the query does
 * not give the whole picture of Conveyor's head (it failed, the head moved, a list has a second
 * page), the REST reads take its place: `GET /repos/{o}/{r}/pulls/{n}`,
 * `…/commits/{head}/check-runs`, `…/commits/{head}/status`, `…/pulls/{n}/reviews`,
 * `…/branches/{base}`, and with a `baseSha` `…/commits/{baseSha}/check-runs` and
 * `…/commits/{baseSha}/status`; every list with `per_page=100`, following `Link` headers. With a
 * `cache`, the branch, protection and rules reads are skipped while a kept answer is fresh (see
 * {@link BaseRulesCache}); checks, statuses, reviews and the head are read on every pass.
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
  // One GraphQL query for the pull request, its reviews, the base tip and the checks, when it
  // gives the whole picture of the head Conveyor wrote; otherwise the REST reads below.
  const graph = await readFactsGraph(octokit, r);
  const pull: PullJson | undefined =
    graph?.pull ??
    (await attempt(
      "reading the pull request",
      async () =>
        (
          await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
            ...base,
            pull_number: r.prNumber,
          })
        ).data as PullJson,
      undefined,
    ));
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
  const checkRuns = graph?.head.checks ?? (headSha ? await checksOn(headSha, "the head") : []);
  const statuses = graph?.head.statuses ?? (headSha ? await statusesOn(headSha, "the head") : []);
  const reviews =
    graph?.reviews ??
    (await attemptList<ReviewJson>(
      "listing reviews",
      "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
      { ...base, pull_number: r.prNumber },
      arrayPage,
    ));
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
    const fromProtection = (required: RequiredChecksJson | undefined) => {
      for (const name of required?.contexts ?? []) {
        addExpected(name, "branch protection");
      }
      for (const c of required?.checks ?? []) {
        addExpected(c.context, "branch protection");
      }
    };
    // The base tip came with the query; what the branch shows of its protection is kept like the
    // protection and rules reads (the branch is read again when no kept answer is fresh).
    const shownKey = `${r.owner}/${r.repo} ${baseRef}`;
    const shown = graph
      ? cache?.get<RequiredChecksJson | null>("branchProtection", shownKey)
      : undefined;
    if (graph && shown) {
      baseTipSha = graph.baseTipSha;
      fromProtection(shown.value ?? undefined);
    } else {
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
      baseTipSha = graph?.baseTipSha ?? branch?.commit.sha ?? "";
      const required = branch?.protection?.required_status_checks;
      if (branch) cache?.set("branchProtection", shownKey, required ?? null);
      fromProtection(required);
    }
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
    const onBase = graph?.base;
    for (const c of onBase?.checks ?? (await checksOn(r.baseSha, "the base commit"))) {
      if (c.app?.id === r.appId || c.name === SAFETY_CHECK_NAME) continue;
      addExpected(c.name, "base commit");
    }
    for (const s of onBase?.statuses ?? (await statusesOn(r.baseSha, "the base commit"))) {
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

/** The checks and statuses of a commit, as GitHub's `statusCheckRollup` lists them. */
const ROLLUP = `statusCheckRollup {
  contexts(first: 100) {
    nodes {
      __typename
      ... on CheckRun { name status conclusion checkSuite { app { databaseId } } }
      ... on StatusContext { context state }
    }
    pageInfo { hasNextPage }
  }
}`;

/**
 * The merger's one read of a pull request: what `GET …/pulls/{n}`, `…/pulls/{n}/reviews`,
 * `…/branches/{base}` (its tip) and, on the head Conveyor wrote and on the base commit,
 * `…/commits/{sha}/check-runs` and `…/commits/{sha}/status` answer, in one GraphQL document
 * (https://docs.github.com/en/graphql/reference/objects#pullrequest,
 * https://docs.github.com/en/graphql/reference/objects#statuscheckrollup).
 */
export function factsQuery(withBase: boolean): string {
  return `query($owner: String!, $name: String!, $number: Int!, $head: GitObjectID!${
    withBase ? ", $base: GitObjectID!" : ""
  }) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      id title isDraft state merged headRefOid baseRefName changedFiles mergeable mergeStateStatus
      author { __typename login }
      baseRef { target { oid } }
      labels(first: 100) { nodes { name } pageInfo { hasNextPage } }
      reviews(first: 100) {
        nodes { author { __typename login } state commit { oid } submittedAt }
        pageInfo { hasNextPage }
      }
    }
    head: object(oid: $head) { ... on Commit { oid ${ROLLUP} } }${
      withBase ? `\n    base: object(oid: $base) { ... on Commit { oid ${ROLLUP} } }` : ""
    }
  }
}`;
}

interface Page<T> {
  nodes: (T | null)[] | null;
  pageInfo: { hasNextPage: boolean };
}
type RollupNode =
  | {
      __typename: "CheckRun";
      name: string;
      status: string;
      conclusion: string | null;
      checkSuite: { app: { databaseId: number | null } | null } | null;
    }
  | { __typename: "StatusContext"; context: string; state: string };
interface CommitNode {
  oid: string;
  statusCheckRollup: { contexts: Page<RollupNode> } | null;
}
interface ActorNode {
  __typename: string;
  login: string;
}
export interface FactsAnswer {
  repository: {
    pullRequest: {
      id: string;
      title: string;
      isDraft: boolean;
      state: "OPEN" | "CLOSED" | "MERGED";
      merged: boolean;
      headRefOid: string;
      baseRefName: string;
      changedFiles: number;
      mergeable: "MERGEABLE" | "CONFLICTING" | "UNKNOWN";
      mergeStateStatus: string;
      author: ActorNode | null;
      baseRef: { target: { oid: string } | null } | null;
      labels: Page<{ name: string }> | null;
      reviews: Page<{
        author: ActorNode | null;
        state: string;
        commit: { oid: string } | null;
        submittedAt: string | null;
      }> | null;
    } | null;
    head: CommitNode | null;
    base?: CommitNode | null;
  } | null;
}

interface GraphFacts {
  pull: PullJson;
  reviews: ReviewJson[];
  baseTipSha: string;
  head: { checks: CheckRunJson[]; statuses: StatusJson[] };
  base?: { checks: CheckRunJson[]; statuses: StatusJson[] };
}

/** GraphQL names a bot `name`, REST `name[bot]`: the policy compares REST's logins. */
const restLogin = (actor: ActorNode | null) =>
  actor ? (actor.__typename === "Bot" ? `${actor.login}[bot]` : actor.login) : undefined;

/**
 * The answer put in the REST shapes the policy reads, or undefined when it is not the whole
 * picture of the head Conveyor wrote: the head moved (someone pushed, or GitHub updated the
 * branch), a commit is not there, or a list has more than one page. Then the REST reads decide.
 */
export function graphFactsOf(
  answer: FactsAnswer,
  r: Pick<FactsRequest, "conveyorHeadSha" | "baseSha">,
): GraphFacts | undefined {
  const pr = answer.repository?.pullRequest;
  const head = answer.repository?.head;
  if (!pr || !head || pr.headRefOid !== r.conveyorHeadSha || head.oid !== r.conveyorHeadSha) {
    return undefined;
  }
  if (!pr.baseRef?.target) return undefined;
  if (!pr.labels || pr.labels.pageInfo.hasNextPage) return undefined;
  if (!pr.reviews || pr.reviews.pageInfo.hasNextPage) return undefined;
  const rollup = (commit: CommitNode) => {
    const contexts = commit.statusCheckRollup?.contexts;
    if (contexts?.pageInfo.hasNextPage) return undefined;
    const checks: CheckRunJson[] = [];
    const statuses: StatusJson[] = [];
    for (const node of contexts?.nodes ?? []) {
      if (node?.__typename === "CheckRun") {
        const appId = node.checkSuite?.app?.databaseId;
        checks.push({
          name: node.name,
          status: node.status.toLowerCase(),
          conclusion: node.conclusion?.toLowerCase() ?? null,
          app: appId == null ? null : { id: appId },
        });
      } else if (node?.__typename === "StatusContext") {
        // EXPECTED (a required context nothing reported yet) is not a success: pending.
        const state = node.state === "EXPECTED" ? "pending" : node.state.toLowerCase();
        statuses.push({ context: node.context, state });
      }
    }
    return { checks, statuses };
  };
  const onHead = rollup(head);
  if (!onHead) return undefined;
  let onBase: GraphFacts["base"];
  if (r.baseSha) {
    const base = answer.repository?.base;
    if (!base || base.oid !== r.baseSha) return undefined;
    onBase = rollup(base);
    if (!onBase) return undefined;
  }
  const author = restLogin(pr.author);
  return {
    pull: {
      head: { sha: pr.headRefOid },
      base: { ref: pr.baseRefName },
      user: author ? { login: author } : null,
      draft: pr.isDraft,
      state: pr.state === "OPEN" ? "open" : "closed",
      merged: pr.merged,
      mergeable: pr.mergeable === "UNKNOWN" ? null : pr.mergeable === "MERGEABLE",
      mergeable_state: pr.mergeStateStatus.toLowerCase(),
      labels: (pr.labels.nodes ?? []).flatMap((l) => (l ? [{ name: l.name }] : [])),
      title: pr.title,
      changed_files: pr.changedFiles,
      node_id: pr.id,
    },
    reviews: (pr.reviews.nodes ?? []).flatMap((review) => {
      if (!review) return [];
      const login = restLogin(review.author);
      return [
        {
          user: login
            ? { login, ...(review.author ? { type: review.author.__typename } : {}) }
            : null,
          state: review.state,
          commit_id: review.commit?.oid ?? null,
          ...(review.submittedAt ? { submitted_at: review.submittedAt } : {}),
        },
      ];
    }),
    baseTipSha: pr.baseRef.target.oid,
    head: onHead,
    ...(onBase ? { base: onBase } : {}),
  };
}

/** The query's facts, or undefined (a failed query, or not the whole picture: see {@link graphFactsOf}). */
async function readFactsGraph(octokit: Octokit, r: FactsRequest): Promise<GraphFacts | undefined> {
  if (!r.conveyorHeadSha) return undefined;
  try {
    const answer = await octokit.graphql<FactsAnswer>(factsQuery(Boolean(r.baseSha)), {
      owner: r.owner,
      name: r.repo,
      number: r.prNumber,
      head: r.conveyorHeadSha,
      ...(r.baseSha ? { base: r.baseSha } : {}),
    });
    return graphFactsOf(answer, r);
  } catch {
    // Any error (a field the App may not read, a commit GitHub does not know, no answer): the
    // REST reads record what fails, so the policy still fails closed with the reason.
    return undefined;
  }
}
