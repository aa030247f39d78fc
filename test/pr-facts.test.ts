import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { evaluateMergePolicy } from "../src/core/merge-policy.ts";
import type { CollectedFacts, FactsRequest } from "../src/core/ports.ts";
import { DEFAULT_REPO_CONFIG } from "../src/core/repo-config.ts";
import { createBaseRulesCache } from "../src/github/base-rules-cache.ts";
import { collectPrFacts, type FactsAnswer, graphFactsOf } from "../src/github/pr-facts.ts";
import type { GitHubSimulator } from "./github-sim/create-github-simulator.ts";
import {
  createTestProbot,
  startTestSimulator,
  type TestSimulator,
  UnthrottledOctokit,
} from "./github-sim/simulator-test-kit.ts";

// The fact collector against the simulator (every page, expected checks, what a 403 means) and
// against a hostile GitHub-shaped stub (lists cut short, links elsewhere, pages that fail).

const owner = "acme";
let kit: TestSimulator;
let sim: GitHubSimulator;
let octokit: ProbotOctokit;
let installationId: number;
let repoCount = 0;

beforeAll(async () => {
  kit = await startTestSimulator({ appId: 77 });
  sim = kit.sim;
  installationId = (await sim.createInstallation({ account: owner })).id;
  octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
});
afterEach(async () => {
  await sim.idle();
  expect(sim.violations).toEqual([]);
});
afterAll(async () => {
  await kit?.close();
});

function request(over: Partial<FactsRequest> & Pick<FactsRequest, "repo" | "prNumber">) {
  return {
    owner,
    conveyorHeadSha: "",
    expectedBaseRef: "main",
    waitingSince: new Date().toISOString(),
    appId: sim.appId,
    held: false,
    frozen: null,
    verification: null,
    approvals: [],
    permission: async () => "write" as const,
    ...over,
  } satisfies FactsRequest;
}

/** The repository's `build` check on the pull request's head, completed with `conclusion`. */
function buildCheck(pr: { fullName: string; headSha: string }, conclusion: "success" | "failure") {
  return sim.createCheckRun(pr.fullName, {
    name: "build",
    headSha: pr.headSha,
    status: "completed",
    conclusion,
  });
}

async function repoWithPull() {
  const name = `facts${++repoCount}`;
  const fullName = `${owner}/${name}`;
  await sim.createRepository({ owner, name, installationId, files: { "a.txt": "1\n" } });
  const baseSha = (await sim.getBranchSha(fullName, "main"))!;
  const { sha: headSha } = await sim.push(fullName, {
    branch: "feature",
    files: { "a.txt": "2\n" },
    user: "bob",
  });
  const { pull } = await sim.openPullRequest(fullName, {
    title: "F",
    head: "feature",
    user: "bob",
  });
  return { name, fullName, number: pull.number, headSha, baseSha };
}

describe("collectPrFacts against the simulator", () => {
  it("expects the base branch's required checks and the checks of the base commit", async () => {
    const pr = await repoWithPull();
    sim.setBranchProtection(pr.fullName, "main", { contexts: ["build"] });
    sim.addRuleset(pr.fullName, { branches: ["~DEFAULT_BRANCH"], requiredChecks: ["lint"] });
    await sim.createCheckRun(pr.fullName, {
      name: "test",
      headSha: pr.baseSha,
      status: "completed",
      conclusion: "success",
    });
    await sim.setStatus(pr.fullName, pr.baseSha, { state: "success", context: "ci/jenkins" });
    // Conveyor's own check on the base commit is never expected.
    await octokit.request("POST /repos/{owner}/{repo}/check-runs", {
      owner,
      repo: pr.name,
      name: "Conveyor / safety",
      head_sha: pr.baseSha,
      status: "in_progress",
    });
    const facts = await collectPrFacts(
      octokit,
      request({ repo: pr.name, prNumber: pr.number, baseSha: pr.baseSha }),
    );
    // The App has no administration permission: the protection endpoint's 403 is not an error.
    expect(facts.errors).toEqual([]);
    expect(facts.expectedChecks).toEqual([
      { name: "build", source: "branch protection" },
      { name: "lint", source: "ruleset" },
      { name: "test", source: "base commit" },
      { name: "ci/jenkins", source: "base commit" },
    ]);
    expect(facts).toMatchObject({
      baseRef: "main",
      expectedBaseRef: "main",
      baseTipSha: pr.baseSha,
    });
    expect(facts.mergeableState).toBe("blocked");
  });

  it("records a read that fails as facts incomplete, and a missing protection as none", async () => {
    const pr = await repoWithPull();
    sim.injectFault("GET /repos/{owner}/{repo}/rules/branches/{branch}", 500, {
      message: "Server Error",
    });
    const facts = await collectPrFacts(octokit, request({ repo: pr.name, prNumber: pr.number }));
    expect(facts.errors).toEqual([expect.stringContaining("reading the base branch's rulesets")]);
    expect(evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).kind).toBe("blocked");
    sim.injectFault("GET /repos/{owner}/{repo}/rules/branches/{branch}", 404, {
      message: "Not Found",
    });
    const again = await collectPrFacts(octokit, request({ repo: pr.name, prNumber: pr.number }));
    expect(again.errors).toEqual([]);
  });

  it("with a cache: a protection 403 is remembered per repository, rules are kept until they expire, failures never", async () => {
    const pr = await repoWithPull();
    let clock = 1_000_000;
    const cache = createBaseRulesCache({ ttlMs: 60_000, deniedTtlMs: 120_000, now: () => clock });
    const read = async () => {
      const mark = sim.requests.length;
      const facts = await collectPrFacts(
        octokit,
        request({ repo: pr.name, prNumber: pr.number }),
        cache,
      );
      const routes = sim.requests.slice(mark).map((r) => `${r.status} ${r.route}`);
      return {
        facts,
        protection: routes.filter((r) => r.endsWith("/protection/required_status_checks")),
        rules: routes.filter((r) => r.endsWith("/rules/branches/{branch}")),
      };
    };
    sim.addRuleset(pr.fullName, { branches: ["~DEFAULT_BRANCH"], requiredChecks: ["lint"] });
    const first = await read();
    expect(first.protection).toEqual([
      "403 /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks",
    ]);
    expect(first.rules).toHaveLength(1);
    expect(first.facts.expectedChecks).toEqual([{ name: "lint", source: "ruleset" }]);

    // Within the time to live: neither is read again, and the kept rule still counts.
    sim.addRuleset(pr.fullName, { branches: ["~DEFAULT_BRANCH"], requiredChecks: ["e2e"] });
    const second = await read();
    expect([...second.protection, ...second.rules]).toEqual([]);
    expect(second.facts.expectedChecks).toEqual([{ name: "lint", source: "ruleset" }]);
    expect(second.facts.errors).toEqual([]);

    // The rules expired: read again, with the new rule; the 403 is still remembered.
    clock += 60_001;
    const third = await read();
    expect(third.protection).toEqual([]);
    expect(third.rules).toHaveLength(1);
    expect((third.facts.expectedChecks ?? []).map((e) => e.name)).toEqual(["lint", "e2e"]);

    // A failed read is an error and is not kept: the next pass reads again.
    clock += 120_001;
    sim.injectFault("GET /repos/{owner}/{repo}/rules/branches/{branch}", 500, {
      message: "Server Error",
    });
    const failed = await read();
    expect(failed.protection).toHaveLength(1);
    expect(failed.facts.errors).toEqual([expect.stringContaining("rulesets")]);
    expect(evaluateMergePolicy(failed.facts, DEFAULT_REPO_CONFIG).kind).toBe("blocked");
    const recovered = await read();
    expect(recovered.rules).toHaveLength(1);
    expect(recovered.facts.errors).toEqual([]);
    expect((recovered.facts.expectedChecks ?? []).map((e) => e.name)).toEqual(["lint", "e2e"]);
  });

  it("sees a retargeted pull request", async () => {
    const pr = await repoWithPull();
    await sim.push(pr.fullName, { branch: "release", files: { "r.txt": "r\n" }, user: "carol" });
    await sim.editPullRequest(pr.fullName, pr.number, { base: "release" }, { sender: "carol" });
    const facts = await collectPrFacts(octokit, request({ repo: pr.name, prNumber: pr.number }));
    expect(facts).toMatchObject({ baseRef: "release", expectedBaseRef: "main" });
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.rules.find((r) => r.id === "base")).toMatchObject({ result: "fail" });
  });
});

describe("collectPrFacts: one GraphQL query for the head Conveyor wrote", () => {
  /** Reads facts and the routes GitHub received for them. */
  const readWith = async (r: FactsRequest, cache?: ReturnType<typeof createBaseRulesCache>) => {
    const mark = sim.requests.length;
    const facts = await collectPrFacts(octokit, r, cache);
    return { facts, routes: sim.requests.slice(mark).map((q) => `${q.method} ${q.route}`) };
  };
  const REST_ONLY = [
    "GET /repos/{owner}/{repo}/pulls/{pull_number}",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
    "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
    "GET /repos/{owner}/{repo}/commits/{ref}/status",
  ];

  it("gives the facts the REST reads give, in one request instead of seven, and the branch once per cache life", async () => {
    const pr = await repoWithPull();
    sim.setBranchProtection(pr.fullName, "main", { contexts: ["build"] });
    sim.createUser("helper[bot]", { type: "Bot" });
    sim.createUser("maint");
    await sim.addLabel(pr.fullName, pr.number, "bug", { sender: "bob" });
    await sim.submitReview(pr.fullName, pr.number, { user: "maint", state: "APPROVED" });
    await sim.submitReview(pr.fullName, pr.number, {
      user: "helper[bot]",
      state: "CHANGES_REQUESTED",
    });
    const run = { headSha: pr.headSha, status: "completed" as const };
    await sim.createCheckRun(pr.fullName, { ...run, name: "build", conclusion: "success" });
    await sim.createCheckRun(pr.fullName, { ...run, name: "lint", conclusion: "failure" });
    await sim.createCheckRun(pr.fullName, { name: "e2e", headSha: pr.headSha, status: "queued" });
    await sim.setStatus(pr.fullName, pr.headSha, { state: "pending", context: "ci/jenkins" });
    await sim.createCheckRun(pr.fullName, {
      ...run,
      headSha: pr.baseSha,
      name: "test",
      conclusion: "success",
    });
    await sim.setStatus(pr.fullName, pr.baseSha, { state: "success", context: "ci/base" });
    const asked = request({
      repo: pr.name,
      prNumber: pr.number,
      baseSha: pr.baseSha,
      conveyorHeadSha: pr.headSha,
    });
    const cache = createBaseRulesCache();
    const viaRest = await collectPrFacts(octokit, { ...asked, conveyorHeadSha: "" });
    const first = await readWith(asked, cache);
    const normalise = (f: CollectedFacts) => ({
      ...f,
      conveyorHeadSha: "",
      now: "",
      checks: [...f.checks].sort((a, b) => a.name.localeCompare(b.name)),
      statuses: [...f.statuses].sort((a, b) => a.context.localeCompare(b.context)),
      expectedChecks: [...(f.expectedChecks ?? [])].sort((a, b) => a.name.localeCompare(b.name)),
    });
    expect(normalise(first.facts)).toEqual(normalise(viaRest));
    expect(first.facts.reviews.map((r) => [r.login, r.isBot, r.state])).toEqual([
      ["maint", false, "APPROVED"],
      ["helper[bot]", true, "CHANGES_REQUESTED"],
    ]);
    expect(first.facts.errors).toEqual([]);
    expect(first.routes.filter((r) => REST_ONLY.includes(r))).toEqual([]);
    expect(first.routes.filter((r) => r === "POST /graphql")).toHaveLength(1);
    expect(first.routes).toContain("GET /repos/{owner}/{repo}/branches/{branch}");
    // The next pass: the query and the files, nothing else (the branch's protection is kept).
    const second = await readWith(asked, cache);
    expect(second.routes).toEqual([
      "POST /graphql",
      "GET /repos/{owner}/{repo}/pulls/{pull_number}/files",
    ]);
    expect(normalise(second.facts)).toEqual(normalise(first.facts));
  });

  it("never keeps a green answer: a check that turns red after a green read blocks the next one", async () => {
    const pr = await repoWithPull();
    await buildCheck(pr, "success");
    const asked = request({ repo: pr.name, prNumber: pr.number, conveyorHeadSha: pr.headSha });
    const cache = createBaseRulesCache();
    const green = await readWith(asked, cache);
    expect(evaluateMergePolicy(green.facts, DEFAULT_REPO_CONFIG).kind).toBe("merge");
    await buildCheck(pr, "failure");
    const red = await readWith(asked, cache);
    expect(red.routes).toContain("POST /graphql");
    expect(red.facts.checks).toEqual([
      { name: "build", status: "completed", conclusion: "failure", ours: false },
    ]);
    expect(evaluateMergePolicy(red.facts, DEFAULT_REPO_CONFIG).kind).not.toBe("merge");
  });

  it("sees a push to the branch: the head moved, so the REST reads decide on the new head", async () => {
    const pr = await repoWithPull();
    await buildCheck(pr, "success");
    const { sha: pushed } = await sim.push(pr.fullName, {
      branch: "feature",
      files: { "b.txt": "evil\n" },
      user: "mallory",
    });
    const read = await readWith(
      request({ repo: pr.name, prNumber: pr.number, conveyorHeadSha: pr.headSha }),
    );
    expect(read.facts.headSha).toBe(pushed);
    expect(read.facts.checks).toEqual([]);
    expect(read.routes).toEqual(expect.arrayContaining(REST_ONLY));
    expect(evaluateMergePolicy(read.facts, DEFAULT_REPO_CONFIG).kind).not.toBe("merge");
  });

  it("reads every page over REST when the checks do not fit the query's one page", async () => {
    const pr = await repoWithPull();
    for (let i = 0; i < 100; i++) {
      await sim.createCheckRun(pr.fullName, {
        name: `ok-${i}`,
        headSha: pr.headSha,
        status: "completed",
        conclusion: "success",
      });
    }
    await sim.createCheckRun(pr.fullName, {
      name: "zz-red",
      headSha: pr.headSha,
      status: "completed",
      conclusion: "failure",
    });
    const read = await readWith(
      request({ repo: pr.name, prNumber: pr.number, conveyorHeadSha: pr.headSha }),
    );
    expect(read.routes).toContain("GET /repos/{owner}/{repo}/commits/{ref}/check-runs");
    expect(read.facts.checks).toHaveLength(101);
    expect(read.facts.errors).toEqual([]);
    expect(evaluateMergePolicy(read.facts, DEFAULT_REPO_CONFIG).kind).not.toBe("merge");
  });
});

describe("graphFactsOf", () => {
  const HEAD = "a".repeat(40);
  const BASE = "b".repeat(40);
  const page = <T>(nodes: T[], hasNextPage = false) => ({ nodes, pageInfo: { hasNextPage } });
  const answer = (over: Record<string, unknown> = {}, head: Record<string, unknown> = {}) =>
    ({
      repository: {
        pullRequest: {
          id: "PR_1",
          title: "T",
          isDraft: false,
          state: "OPEN",
          merged: false,
          headRefOid: HEAD,
          baseRefName: "main",
          changedFiles: 1,
          mergeable: "UNKNOWN",
          mergeStateStatus: "UNKNOWN",
          author: { __typename: "Bot", login: "conveyor" },
          baseRef: { target: { oid: BASE } },
          labels: page([{ name: "x" }]),
          reviews: page([]),
          ...over,
        },
        head: {
          oid: HEAD,
          statusCheckRollup: {
            contexts: page([
              { __typename: "StatusContext", context: "req", state: "EXPECTED" },
              {
                __typename: "CheckRun",
                name: "c",
                status: "IN_PROGRESS",
                conclusion: null,
                checkSuite: { app: null },
              },
            ]),
          },
          ...head,
        },
      },
    }) as FactsAnswer;
  const r = { conveyorHeadSha: HEAD };

  it("puts the answer in REST's shapes, a bot's login with `[bot]` and EXPECTED as pending", () => {
    const facts = graphFactsOf(answer(), r);
    expect(facts?.pull).toMatchObject({
      user: { login: "conveyor[bot]" },
      mergeable: null,
      mergeable_state: "unknown",
      state: "open",
    });
    expect(facts?.head).toEqual({
      checks: [{ name: "c", status: "in_progress", conclusion: null, app: null }],
      statuses: [{ context: "req", state: "pending" }],
    });
    expect(graphFactsOf(answer({ mergeable: "CONFLICTING" }), r)?.pull.mergeable).toBe(false);
  });

  it.each([
    ["the head moved", answer({ headRefOid: "c".repeat(40) })],
    ["the commit is unknown", answer({}, { oid: "c".repeat(40) })],
    ["labels have a second page", answer({ labels: page([], true) })],
    ["reviews have a second page", answer({ reviews: page([], true) })],
    ["the base branch is gone", answer({ baseRef: null })],
    ["checks have a second page", answer({}, { statusCheckRollup: { contexts: page([], true) } })],
    ["no pull request", { repository: { pullRequest: null, head: null } } as FactsAnswer],
  ])("leaves it to the REST reads when %s", (_why, given) => {
    expect(graphFactsOf(given, r)).toBeUndefined();
  });

  it("leaves it to the REST reads when the base commit is asked for and not there", () => {
    expect(graphFactsOf(answer(), { ...r, baseSha: BASE })).toBeUndefined();
  });
});

/** A GitHub-shaped stub: each `GET path` answers what `pages` says; anything else is a 404. */
function stubGitHub(
  routes: Record<string, (url: URL) => { status?: number; body: unknown; link?: string }>,
): ProbotOctokit {
  const origin = "https://api.github.test";
  const fetch = async (input: string | URL | Request) => {
    const url = new URL(
      typeof input === "string" ? input : input instanceof URL ? input : input.url,
    );
    const route = routes[url.pathname];
    const answer = route
      ? route(url)
      : { status: 404, body: { message: "Not Found", documentation_url: "x" } };
    return new Response(JSON.stringify(answer.body), {
      status: answer.status ?? 200,
      headers: {
        "content-type": "application/json",
        ...(answer.link ? { link: answer.link.replaceAll("ORIGIN", origin) } : {}),
      },
    });
  };
  return new UnthrottledOctokit({
    auth: { token: "ghs_stub" },
    baseUrl: origin,
    request: { fetch },
  }) as unknown as ProbotOctokit;
}

const SHA = "a".repeat(40);
const pullJson = {
  number: 1,
  state: "open",
  merged: false,
  draft: false,
  mergeable: true,
  mergeable_state: "clean",
  changed_files: 1,
  user: { login: "conveyor[bot]", type: "Bot" },
  labels: [],
  head: { sha: SHA, ref: "conveyor/issue-1" },
  base: { sha: "b".repeat(40), ref: "main" },
};
const fileJson = {
  filename: "a.txt",
  status: "modified",
  additions: 1,
  deletions: 1,
  patch: "@@ -1 +1 @@\n-1\n+2",
};
const run = (name: string, conclusion = "success") => ({
  name,
  status: "completed",
  conclusion,
  app: { id: 1 },
});

function stubbedPull(
  over: Record<string, (url: URL) => { status?: number; body: unknown; link?: string }>,
) {
  const repo = "/repos/acme/widgets";
  return stubGitHub({
    [`${repo}/pulls/1`]: () => ({ body: pullJson }),
    [`${repo}/pulls/1/files`]: () => ({ body: [fileJson] }),
    [`${repo}/pulls/1/reviews`]: () => ({ body: [] }),
    [`${repo}/commits/${SHA}/check-runs`]: () => ({
      body: { total_count: 1, check_runs: [run("ci")] },
    }),
    [`${repo}/commits/${SHA}/status`]: () => ({
      body: { state: "success", total_count: 0, statuses: [] },
    }),
    [`${repo}/branches/main`]: () => ({ body: { name: "main", commit: { sha: "b".repeat(40) } } }),
    ...over,
  });
}

const stubRequest = {
  owner: "acme",
  repo: "widgets",
  prNumber: 1,
  conveyorHeadSha: SHA,
  expectedBaseRef: "main",
  waitingSince: new Date().toISOString(),
  appId: 99,
  held: false,
  frozen: null,
  verification: null,
  approvals: [],
  permission: async () => "write" as const,
} satisfies FactsRequest;

const CHECKS = `/repos/acme/widgets/commits/${SHA}/check-runs`;
const STATUS = `/repos/acme/widgets/commits/${SHA}/status`;

describe("collectPrFacts against a hostile GitHub", () => {
  const collect = (over: Parameters<typeof stubbedPull>[0]): Promise<CollectedFacts> =>
    collectPrFacts(stubbedPull(over), stubRequest);

  it("merges when everything is read (the stub itself is sound)", async () => {
    const facts = await collect({});
    expect(facts.errors).toEqual([]);
    expect(evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).kind).toBe("merge");
  });

  it("reads all 101 check runs, 100 a page, so a red one on page 2 blocks", async () => {
    const runs = [...Array.from({ length: 100 }, (_, i) => run(`job-${i}`)), run("e2e", "failure")];
    const asked: string[] = [];
    const facts = await collect({
      [CHECKS]: (url) => {
        asked.push(url.search);
        const page = Number(url.searchParams.get("page") ?? 1);
        const perPage = Number(url.searchParams.get("per_page"));
        return {
          body: { total_count: 101, check_runs: runs.slice((page - 1) * perPage, page * perPage) },
          ...(page === 1
            ? { link: `<ORIGIN${CHECKS}?per_page=${perPage}&page=2>; rel="next"` }
            : {}),
        };
      },
    });
    expect(asked).toEqual(["?filter=latest&per_page=100", "?per_page=100&page=2"]);
    expect(facts.errors).toEqual([]);
    expect(facts.checks).toHaveLength(101);
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.kind).toBe("blocked");
    expect(verdict.rules.find((r) => r.id === "checks_green")?.detail).toContain("e2e");
  });

  it("follows the Link header through every page of commit statuses", async () => {
    const facts = await collect({
      [STATUS]: (url) =>
        url.searchParams.get("page") === "2"
          ? {
              body: {
                state: "failure",
                total_count: 2,
                statuses: [{ context: "late", state: "failure" }],
              },
            }
          : {
              body: {
                state: "failure",
                total_count: 2,
                statuses: [{ context: "early", state: "success" }],
              },
              link: `<ORIGIN${STATUS}?per_page=100&page=2>; rel="next", <ORIGIN${STATUS}?per_page=100&page=2>; rel="last"`,
            },
    });
    expect(facts.errors).toEqual([]);
    expect(facts.statuses.map((s) => s.context)).toEqual(["early", "late"]);
    expect(evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG).kind).toBe("blocked");
  });

  it.each([
    [
      "a list shorter than its total_count",
      { [CHECKS]: () => ({ body: { total_count: 2, check_runs: [run("ci")] } }) },
      "GitHub listed 1 of 2",
    ],
    [
      "a next page off GitHub's origin",
      {
        [CHECKS]: () => ({
          body: { total_count: 1, check_runs: [run("ci")] },
          link: '<https://evil.example/steal?page=2>; rel="next"',
        }),
      },
      "not on GitHub's API origin",
    ],
    [
      "a list that never ends",
      {
        [CHECKS]: (url: URL) => ({
          body: { total_count: 1, check_runs: [run("ci")] },
          link: `<ORIGIN${CHECKS}?page=${Number(url.searchParams.get("page") ?? 1) + 1}>; rel="next"`,
        }),
      },
      "more than 100 pages",
    ],
    [
      "a page that fails",
      {
        [CHECKS]: (url: URL) =>
          url.searchParams.get("page") === "2"
            ? { status: 502, body: { message: "Bad Gateway" } }
            : {
                body: { total_count: 2, check_runs: [run("ci")] },
                link: `<ORIGIN${CHECKS}?page=2>; rel="next"`,
              },
      },
      "listing check runs on the head",
    ],
    [
      "a 409 on a page (octokit.paginate would end quietly)",
      {
        [CHECKS]: (url: URL) =>
          url.searchParams.get("page") === "2"
            ? { status: 409, body: { message: "Conflict" } }
            : {
                body: { total_count: 2, check_runs: [run("ci")] },
                link: `<ORIGIN${CHECKS}?page=2>; rel="next"`,
              },
      },
      "listing check runs on the head",
    ],
    [
      "a check-runs answer of the wrong shape",
      { [CHECKS]: () => ({ body: [run("ci")] }) },
      "no check_runs list",
    ],
    [
      "fewer files than the pull request says it changes",
      { "/repos/acme/widgets/pulls/1": () => ({ body: { ...pullJson, changed_files: 2 } }) },
      undefined,
    ],
    [
      "a base branch that cannot be read",
      { "/repos/acme/widgets/branches/main": () => ({ status: 500, body: { message: "boom" } }) },
      "reading the base branch",
    ],
    [
      "branch protection that answers 500 (403 and 404 are fine)",
      {
        "/repos/acme/widgets/branches/main/protection/required_status_checks": () => ({
          status: 500,
          body: { message: "boom" },
        }),
      },
      "reading the base branch's protection",
    ],
  ] as const)("fails closed on %s", async (_name, over, error) => {
    const facts = await collect(over as Parameters<typeof stubbedPull>[0]);
    const verdict = evaluateMergePolicy(facts, DEFAULT_REPO_CONFIG);
    expect(verdict.kind).toBe("blocked");
    expect(verdict.rules.find((r) => r.id === "facts")?.result).toBe("fail");
    if (error) expect(facts.errors.join("\n")).toContain(error);
  });

  it("reads every page of files, up to GitHub's 3,000, and no further", async () => {
    const FILES = "/repos/acme/widgets/pulls/1/files";
    const many = (url: URL) => {
      const page = Number(url.searchParams.get("page") ?? 1);
      return {
        body: Array.from({ length: 100 }, (_, i) => ({
          ...fileJson,
          filename: `f${page}-${i}.txt`,
        })),
        link: `<ORIGIN${FILES}?per_page=100&page=${page + 1}>; rel="next"`,
      };
    };
    const facts = await collect({
      "/repos/acme/widgets/pulls/1": () => ({ body: { ...pullJson, changed_files: 3500 } }),
      [FILES]: many,
    });
    expect(facts.files).toHaveLength(3000);
    expect(facts.filesComplete).toBe(false);
    expect(facts.errors.join("\n")).toContain("listing the files: cut short");
  });
});
