import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import {
  createTestProbot,
  startTestSimulator,
  startWebhookReceiver,
  type TestSimulator,
  WEBHOOK_SECRET,
  type WebhookReceiver,
} from "./simulator-test-kit.ts";

const owner = "acme";
const repo = "widgets";
const fullName = `${owner}/${repo}`;

describe("GitHub simulator: what the app does through the REST API", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let receiver: WebhookReceiver;
  let octokit: ProbotOctokit;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    kit = await startTestSimulator({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
    sim = kit.sim;
    const installationId = (await sim.createInstallation({ account: owner })).id;
    await sim.createRepository({ owner, name: repo, installationId });
    octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
  });
  afterEach(async () => {
    await sim.idle();
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await receiver.close();
  });

  /** Webhooks the app's own calls caused, as `event.action by sender`. */
  function sentSince(index: number): string[] {
    return sim.deliveries
      .slice(index)
      .map((d) => `${d.event}.${d.action} by ${(d.payload.sender as { login: string }).login}`);
  }

  it("edits issues, labels, comments and reactions, and GitHub tells the app about its own changes", async () => {
    const { issue } = await sim.openIssue(fullName, { title: "Idea", user: "bob" });
    const mark = sim.deliveries.length;
    const number = issue.number;
    await octokit.rest.issues.addLabels({
      owner,
      repo,
      issue_number: number,
      labels: ["conveyor:queued"],
    });
    const { data: comment } = await octokit.rest.issues.createComment({
      owner,
      repo,
      issue_number: number,
      body: "Status: queued",
    });
    await octokit.rest.issues.updateComment({
      owner,
      repo,
      comment_id: comment.id,
      body: "Status: running",
    });
    await octokit.rest.reactions.createForIssueComment({
      owner,
      repo,
      comment_id: comment.id,
      content: "rocket",
    });
    const again = await octokit.rest.reactions.createForIssue({
      owner,
      repo,
      issue_number: number,
      content: "eyes",
    });
    expect(again.status).toBe(201);
    const same = await octokit.rest.reactions.createForIssue({
      owner,
      repo,
      issue_number: number,
      content: "eyes",
    });
    expect(same.status).toBe(200);
    await octokit.rest.issues.removeLabel({
      owner,
      repo,
      issue_number: number,
      name: "conveyor:queued",
    });
    const missingLabel = await octokit.rest.issues
      .removeLabel({ owner, repo, issue_number: number, name: "nope" })
      .catch((error: { status: number }) => error);
    expect(missingLabel).toMatchObject({ status: 404 });
    await octokit.rest.issues.update({
      owner,
      repo,
      issue_number: number,
      state: "closed",
      state_reason: "not_planned",
    });
    await sim.idle();

    expect(sim.getIssue(fullName, number)).toMatchObject({
      state: "closed",
      state_reason: "not_planned",
      labels: [],
    });
    expect(sim.listComments(fullName, number).map((c) => c.body)).toEqual(["Status: running"]);
    const { data: reactions } = await octokit.rest.reactions.listForIssueComment({
      owner,
      repo,
      comment_id: comment.id,
    });
    expect(reactions.map((r) => r.content)).toEqual(["rocket"]);
    expect(sentSince(mark)).toEqual([
      "issues.labeled by conveyor[bot]",
      "issue_comment.created by conveyor[bot]",
      "issue_comment.edited by conveyor[bot]",
      "issues.unlabeled by conveyor[bot]",
      "issues.closed by conveyor[bot]",
    ]);
  });

  it("creates and completes check runs and statuses on a pull request head", async () => {
    await sim.push(fullName, {
      branch: "conveyor/issue-7",
      files: { "x.txt": "x\n" },
      user: "bob",
    });
    const { data: pull } = await octokit.rest.pulls.create({
      owner,
      repo,
      title: "Change x",
      head: `${owner}:conveyor/issue-7`,
      base: "main",
    });
    const duplicate = await octokit.rest.pulls
      .create({ owner, repo, title: "Again", head: "conveyor/issue-7", base: "main" })
      .catch((error: { status: number }) => error);
    expect(duplicate).toMatchObject({ status: 422 });
    const { data: found } = await octokit.rest.pulls.list({
      owner,
      repo,
      head: `${owner}:conveyor/issue-7`,
    });
    expect(found.map((p) => p.number)).toEqual([pull.number]);

    const mark = sim.deliveries.length;
    const { data: run } = await octokit.rest.checks.create({
      owner,
      repo,
      name: "Conveyor / safety",
      head_sha: pull.head.sha,
      status: "in_progress",
    });
    await octokit.rest.checks.update({
      owner,
      repo,
      check_run_id: run.id,
      conclusion: "success",
      output: { title: "Tier 1", summary: "| rule | result |" },
    });
    await octokit.rest.repos.createCommitStatus({
      owner,
      repo,
      sha: pull.head.sha,
      state: "pending",
      context: "ci",
    });
    await octokit.rest.repos.createCommitStatus({
      owner,
      repo,
      sha: pull.head.sha,
      state: "success",
      context: "ci",
    });
    await sim.idle();

    const { data: runs } = await octokit.rest.checks.listForRef({
      owner,
      repo,
      ref: pull.head.sha,
    });
    expect(runs.check_runs.map((r) => [r.name, r.status, r.conclusion, r.output.title])).toEqual([
      ["Conveyor / safety", "completed", "success", "Tier 1"],
    ]);
    const { data: suites } = await octokit.rest.checks.listSuitesForRef({
      owner,
      repo,
      ref: pull.head.sha,
    });
    expect(suites.check_suites.map((s) => [s.app?.slug, s.conclusion])).toEqual([
      ["conveyor", "success"],
    ]);
    const { data: combined } = await octokit.rest.repos.getCombinedStatusForRef({
      owner,
      repo,
      ref: pull.head.sha,
    });
    expect([combined.state, combined.total_count]).toEqual(["success", 1]);
    expect(sentSince(mark)).toEqual([
      "check_run.created by conveyor[bot]",
      "check_run.completed by conveyor[bot]",
      "check_suite.completed by conveyor[bot]",
      "status.undefined by conveyor[bot]",
      "status.undefined by conveyor[bot]",
    ]);
    const { data: latest } = await octokit.rest.pulls.get({
      owner,
      repo,
      pull_number: pull.number,
    });
    expect(latest).toMatchObject({
      mergeable: true,
      mergeable_state: "clean",
      changed_files: 1,
      additions: 1,
    });
  });

  it("updates a pull request branch through refs and sends synchronize, then closes it on branch deletion", async () => {
    await sim.push(fullName, { branch: "topic", files: { "t.txt": "1\n" }, user: "bob" });
    const { pull } = await sim.openPullRequest(fullName, {
      title: "Topic",
      head: "topic",
      user: "bob",
    });
    const next = await sim.push(fullName, {
      branch: "scratch",
      from: "topic",
      files: { "t.txt": "2\n" },
      user: "bob",
    });
    const mark = sim.deliveries.length;
    await octokit.rest.git.updateRef({ owner, repo, ref: "heads/topic", sha: next.sha });
    await octokit.rest.git.deleteRef({ owner, repo, ref: "heads/topic" });
    await sim.idle();
    expect(sentSince(mark)).toEqual([
      "pull_request.synchronize by conveyor[bot]",
      "pull_request.closed by conveyor[bot]",
    ]);
    expect((await sim.getPull(fullName, pull.number)).state).toBe("closed");
  });

  it("refuses ref updates that touch workflows without the workflows permission", async () => {
    const { sha } = await sim.push(fullName, {
      branch: "ci-change",
      files: { ".github/workflows/ci.yml": "on: push\n" },
      user: "bob",
    });
    const refused = await octokit.rest.git
      .createRef({ owner, repo, ref: "refs/heads/conveyor/issue-9", sha })
      .catch((error: { status: number }) => error);
    expect(refused).toMatchObject({ status: 403 });
  });
});
