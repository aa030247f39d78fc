import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_APP_PERMISSIONS, type GitHubSimulator } from "./create-github-simulator.ts";
import {
  createTestProbot,
  startTestSimulator,
  startWebhookReceiver,
  type TestSimulator,
  UnthrottledOctokit,
  WEBHOOK_SECRET,
  type WebhookReceiver,
} from "./simulator-test-kit.ts";

const owner = "acme";

// Branch protection's required checks, rulesets, the mergeable_state they cause, and
// "Update branch" (`PUT …/pulls/{n}/update-branch`).
describe("GitHub simulator: required checks, rulesets and update-branch", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let receiver: WebhookReceiver;
  let octokit: ProbotOctokit;
  let admin: ProbotOctokit;
  let installationId: number;
  let repoCount = 0;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    kit = await startTestSimulator({
      webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
      permissions: { ...DEFAULT_APP_PERMISSIONS, administration: "read" },
    });
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: owner })).id;
    const probot = createTestProbot(sim, kit.privateKey);
    admin = await probot.auth(installationId);
    // The same installation, as an App without the administration permission.
    const { token } = sim.createInstallationToken(installationId, {
      permissions: { ...DEFAULT_APP_PERMISSIONS },
    });
    octokit = new UnthrottledOctokit({ auth: { token }, baseUrl: sim.url });
  });
  afterEach(async () => {
    await sim.idle();
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await receiver.close();
  });

  /** A fresh repository with one open pull request `feature` → `main`. */
  async function repoWithPull(files: Record<string, string> = { "a.txt": "a\n" }) {
    const name = `r${++repoCount}`;
    const fullName = `${owner}/${name}`;
    await sim.createRepository({ owner, name, installationId, files: { "base.txt": "1\n" } });
    const { sha: headSha } = await sim.push(fullName, { branch: "feature", files, user: "bob" });
    const { pull } = await sim.openPullRequest(fullName, {
      title: "Feature",
      head: "feature",
      user: "bob",
    });
    return { name, fullName, number: pull.number, headSha };
  }

  it("shows required checks on the branch, to the administration permission, and as rules", async () => {
    const { name, fullName } = await repoWithPull();
    sim.setBranchProtection(fullName, "main", { strict: true, contexts: ["build"] });
    sim.addRuleset(fullName, { branches: ["~DEFAULT_BRANCH"], requiredChecks: ["lint"] });
    sim.addRuleset(fullName, { branches: ["release"], requiredChecks: ["never-here"] });
    const repo = { owner, repo: name };

    const { data: branch } = await octokit.request("GET /repos/{owner}/{repo}/branches/{branch}", {
      ...repo,
      branch: "main",
    });
    expect(branch.protected).toBe(true);
    expect(branch.protection?.required_status_checks?.contexts).toEqual(["build"]);

    const refused = await octokit
      .request("GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks", {
        ...repo,
        branch: "main",
      })
      .catch((error: { status: number }) => error);
    expect(refused).toMatchObject({ status: 403 });
    const { data: required } = await admin.request(
      "GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks",
      { ...repo, branch: "main" },
    );
    expect(required).toMatchObject({ strict: true, contexts: ["build"] });
    const unprotected = await admin
      .request("GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks", {
        ...repo,
        branch: "feature",
      })
      .catch((error: { status: number }) => error);
    expect(unprotected).toMatchObject({ status: 404 });

    const { data: rules } = await octokit.request(
      "GET /repos/{owner}/{repo}/rules/branches/{branch}",
      { ...repo, branch: "main" },
    );
    expect(rules).toEqual([
      expect.objectContaining({
        type: "required_status_checks",
        parameters: expect.objectContaining({ required_status_checks: [{ context: "lint" }] }),
      }),
    ]);
  });

  it("reports blocked until every required check passes, then behind when the base moved", async () => {
    const { name, fullName, number, headSha } = await repoWithPull();
    sim.setBranchProtection(fullName, "main", { strict: true, contexts: ["build"] });
    sim.addRuleset(fullName, { branches: ["main"], requiredChecks: ["lint"] });
    const state = async () => (await sim.getPull(fullName, number)).mergeable_state;
    expect(await state()).toBe("blocked");
    const merge = () =>
      octokit
        .request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", {
          owner,
          repo: name,
          pull_number: number,
          sha: headSha,
        })
        .catch((error: { status: number; message: string }) => error);
    expect(await merge()).toMatchObject({ status: 405, message: expect.stringContaining("build") });
    await sim.createCheckRun(fullName, {
      name: "build",
      headSha,
      status: "completed",
      conclusion: "success",
    });
    expect(await state()).toBe("blocked");
    // A skipped required check passes, as GitHub counts it.
    await sim.createCheckRun(fullName, {
      name: "lint",
      headSha,
      status: "completed",
      conclusion: "skipped",
    });
    expect(await state()).toBe("clean");
    await sim.push(fullName, { branch: "main", files: { "base.txt": "2\n" }, user: "carol" });
    expect(await state()).toBe("behind");
    expect(await merge()).toMatchObject({ status: 405 });
  });

  it("updates a branch with a real merge commit by GitHub, once, and refuses a stale head", async () => {
    const { name, fullName, number, headSha } = await repoWithPull();
    const { sha: baseTip } = await sim.push(fullName, {
      branch: "main",
      files: { "base.txt": "2\n" },
      user: "carol",
    });
    const params = { owner, repo: name, pull_number: number };
    const stale = await octokit
      .request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch", {
        ...params,
        expected_head_sha: "0".repeat(40),
      })
      .catch((error: { status: number }) => error);
    expect(stale).toMatchObject({ status: 422 });
    const mark = sim.deliveries.length;
    const answer = await octokit.request(
      "PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch",
      { ...params, expected_head_sha: headSha },
    );
    expect(answer.status).toBe(202);
    expect(answer.data.message).toBe("Updating pull request branch.");
    const pull = await sim.getPull(fullName, number);
    expect(pull.head.sha).not.toBe(headSha);
    const { data: commit } = await octokit.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner, repo: name, commit_sha: pull.head.sha },
    );
    expect(commit.parents.map((p) => p.sha)).toEqual([headSha, baseTip]);
    expect(commit.committer.email).toBe("noreply@github.com");
    expect(commit.verification?.verified).toBe(true);
    expect(commit.message).toBe("Merge branch 'main' into feature");
    expect(await sim.readFile(fullName, "base.txt", "feature")).toBe("2\n");
    expect(await sim.readFile(fullName, "a.txt", "feature")).toBe("a\n");
    await sim.idle();
    expect(sim.deliveries.slice(mark).map((d) => `${d.event}.${d.action}`)).toContain(
      "pull_request.synchronize",
    );
    const again = await octokit
      .request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch", params)
      .catch((error: { status: number; message: string }) => error);
    expect(again).toMatchObject({
      status: 422,
      message: expect.stringContaining("no new commits"),
    });
  });

  it("refuses to update a branch that conflicts with its base", async () => {
    const { name, fullName, number } = await repoWithPull({ "base.txt": "mine\n" });
    await sim.push(fullName, { branch: "main", files: { "base.txt": "theirs\n" }, user: "carol" });
    const conflict = await octokit
      .request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/update-branch", {
        owner,
        repo: name,
        pull_number: number,
      })
      .catch((error: { status: number }) => error);
    expect(conflict).toMatchObject({ status: 422 });
  });

  it("moves a pull request to another base as a person (pull_request.edited)", async () => {
    const { fullName, number } = await repoWithPull();
    await sim.push(fullName, { branch: "release", files: { "r.txt": "r\n" }, user: "carol" });
    const { delivery } = await sim.editPullRequest(
      fullName,
      number,
      { base: "release" },
      {
        sender: "carol",
      },
    );
    expect(delivery?.action).toBe("edited");
    expect((await sim.getPull(fullName, number)).base.ref).toBe("release");
  });

  it("paginates check runs and combined statuses with Link headers", async () => {
    const { name, fullName, headSha } = await repoWithPull();
    for (let i = 0; i < 3; i++) {
      await sim.createCheckRun(fullName, {
        name: `c${i}`,
        headSha,
        status: "completed",
        conclusion: "success",
      });
      await sim.setStatus(fullName, headSha, { state: "success", context: `s${i}` });
    }
    const ref = { owner, repo: name, ref: headSha, per_page: 2 };
    const runs = await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", ref);
    expect(runs.data.total_count).toBe(3);
    expect(runs.data.check_runs).toHaveLength(2);
    expect(runs.headers.link).toContain('rel="next"');
    const all = await octokit.paginate("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", ref);
    expect(new Set(all.map((r) => r.name))).toEqual(new Set(["c0", "c1", "c2"]));
    const combined = await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}/status", ref);
    expect(combined.data.total_count).toBe(3);
    expect(combined.data.statuses).toHaveLength(2);
    const next = /<([^>]+)>; rel="next"/.exec(combined.headers.link ?? "")?.[1];
    expect(next).toContain("page=2");
    const second = await octokit.request({ method: "GET", url: next! });
    expect((second.data as { statuses: unknown[] }).statuses).toHaveLength(1);
  });
});
