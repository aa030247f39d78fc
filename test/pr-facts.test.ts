import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { evaluateMergePolicy } from "../src/core/merge-policy.ts";
import type { CollectedFacts, FactsRequest } from "../src/core/ports.ts";
import { DEFAULT_REPO_CONFIG } from "../src/core/repo-config.ts";
import { createBaseRulesCache } from "../src/github/base-rules-cache.ts";
import { collectPrFacts } from "../src/github/pr-facts.ts";
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
