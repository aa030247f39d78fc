import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CiPush } from "./ci-provider.ts";
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

describe("GitHub simulator: a CI provider", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let receiver: WebhookReceiver;
  let octokit: ProbotOctokit;
  const pushes: CiPush[] = [];

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    kit = await startTestSimulator({
      webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
      ciProvider: {
        name: "ci / test",
        durationMs: 20,
        conclude(push) {
          pushes.push(push);
          if (push.files.includes("explode.txt")) throw new Error("the test runner crashed");
          return push.files.some((file) => file.startsWith("broken/")) ? "failure" : "success";
        },
      },
    });
    sim = kit.sim;
    const installationId = (await sim.createInstallation({ account: owner })).id;
    await sim.createRepository({
      owner,
      name: repo,
      installationId,
      files: { "README.md": "# widgets\n", "src/app.txt": "one\n" },
    });
    sim.setPermission(fullName, "alice", "write");
    octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await receiver.close();
  });

  const eventsFor = (sha: string) =>
    receiver.received
      .map((r) => ({ event: String(r.headers["x-github-event"]), payload: JSON.parse(r.body) }))
      .filter(
        (d) => d.payload.check_run?.head_sha === sha || d.payload.check_suite?.head_sha === sha,
      )
      .map((d) => `${d.event}.${d.payload.action}:${d.payload.check_run?.status ?? ""}`);

  it("runs on a pushed commit: in_progress first, then the conclusion, with the files it changed", async () => {
    const { sha } = await sim.push(fullName, {
      branch: "feature",
      files: { "src/app.txt": "two\n", "docs/new.md": "hi\n" },
      user: "alice",
    });
    await sim.idle();
    const runs = await sim.listCheckRuns(fullName, sha);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      name: "ci / test",
      status: "completed",
      conclusion: "success",
      app: { slug: "ci" },
    });
    expect(runs[0]!.output.summary).toContain("2 changed file(s) on feature");
    expect(pushes.at(-1)).toEqual({
      repo: fullName,
      branch: "feature",
      sha,
      files: ["docs/new.md", "src/app.txt"],
      attempt: 1,
    });
    expect(eventsFor(sha)).toEqual([
      "check_run.created:in_progress",
      "check_run.completed:completed",
      "check_suite.completed:",
    ]);
  });

  it("concludes what the provider says, and failure with the message when it throws", async () => {
    const red = await sim.push(fullName, {
      branch: "red",
      files: { "broken/thing.txt": "x\n" },
      user: "alice",
    });
    const crash = await sim.push(fullName, {
      branch: "crash",
      files: { "explode.txt": "x\n" },
      user: "alice",
    });
    await sim.idle();
    expect((await sim.listCheckRuns(fullName, red.sha))[0]?.conclusion).toBe("failure");
    const [crashed] = await sim.listCheckRuns(fullName, crash.sha);
    expect(crashed).toMatchObject({ conclusion: "failure" });
    expect(crashed!.output.summary).toBe("the test runner crashed");
  });

  it("runs on refs the app creates and on merges into the default branch, once per commit", async () => {
    const main = (await sim.getBranchSha(fullName, "main"))!;
    const { data: parent } = await octokit.rest.git.getCommit({ owner, repo, commit_sha: main });
    const { data: tree } = await octokit.rest.git.createTree({
      owner,
      repo,
      base_tree: parent.tree.sha,
      tree: [{ path: "src/app.txt", mode: "100644", type: "blob", content: "three\n" }],
    });
    const { data: commit } = await octokit.rest.git.createCommit({
      owner,
      repo,
      message: "Three",
      tree: tree.sha,
      parents: [main],
    });
    await octokit.rest.git.createRef({
      owner,
      repo,
      ref: "refs/heads/conveyor/issue-1",
      sha: commit.sha,
    });
    // The same commit on a second branch is not run again.
    await octokit.rest.git.createRef({ owner, repo, ref: "refs/heads/copy", sha: commit.sha });
    await sim.idle();
    expect(await sim.listCheckRuns(fullName, commit.sha)).toEqual([
      expect.objectContaining({ name: "ci / test", conclusion: "success" }),
    ]);
    expect(pushes.filter((p) => p.sha === commit.sha)).toEqual([
      {
        repo: fullName,
        branch: "conveyor/issue-1",
        sha: commit.sha,
        files: ["src/app.txt"],
        attempt: 1,
      },
    ]);

    const { pull } = await sim.openPullRequest(fullName, {
      title: "Three",
      head: "conveyor/issue-1",
      user: "alice",
    });
    const { data: merged } = await octokit.rest.pulls.merge({
      owner,
      repo,
      pull_number: pull.number,
      sha: commit.sha,
      merge_method: "squash",
    });
    await sim.idle();
    expect(pushes.at(-1)).toEqual({
      repo: fullName,
      branch: "main",
      sha: merged.sha,
      files: ["src/app.txt"],
      attempt: 1,
    });
    expect((await sim.listCheckRuns(fullName, merged.sha))[0]?.conclusion).toBe("success");
  });

  it("runs a commit again when its check suite is re-requested: a new run the latest filter lists", async () => {
    const { sha } = await sim.push(fullName, {
      branch: "flaky",
      files: { "broken/flaky.txt": "x\n" },
      user: "alice",
    });
    await sim.idle();
    const { data: first } = await octokit.rest.checks.listForRef({ owner, repo, ref: sha });
    const failed = first.check_runs[0]!;
    expect(failed.conclusion).toBe("failure");
    const answer = await octokit.request(
      "POST /repos/{owner}/{repo}/check-suites/{check_suite_id}/rerequest",
      { owner, repo, check_suite_id: failed.check_suite!.id },
    );
    expect(answer.status).toBe(201);
    await sim.idle();
    expect(pushes.filter((p) => p.sha === sha).map((p) => p.attempt)).toEqual([1, 2]);
    const { data: latest } = await octokit.rest.checks.listForRef({ owner, repo, ref: sha });
    expect(latest.check_runs).toHaveLength(1);
    expect(latest.check_runs[0]!.id).not.toBe(failed.id);
    const { data: all } = await octokit.rest.checks.listForRef({
      owner,
      repo,
      ref: sha,
      filter: "all",
    });
    expect(all.check_runs).toHaveLength(2);
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/check-suites/{check_suite_id}/rerequest", {
        owner,
        repo,
        check_suite_id: 987_654_321,
      }),
    ).rejects.toMatchObject({ status: 404 });
  });
});
