import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import { runGit } from "./run-git.ts";
import { createTestProbot, startTestSimulator, type TestSimulator } from "./simulator-test-kit.ts";

const owner = "acme";
const repo = "widgets";
const fullName = `${owner}/${repo}`;

describe("GitHub simulator: git data, clones and merges", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let octokit: ProbotOctokit;
  let installationId: number;
  let scratch: string;

  beforeAll(async () => {
    kit = await startTestSimulator();
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: owner })).id;
    await sim.createRepository({
      owner,
      name: repo,
      installationId,
      files: { "README.md": "# widgets\n", "src/app.ts": "export const answer = 41;\n" },
    });
    octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
    scratch = await mkdtemp(path.join(tmpdir(), "github-sim-clone-"));
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await rm(scratch, { recursive: true, force: true });
  });

  /** Writes `files` on `branch` through the Git Data API, the way Conveyor commits a change set. */
  async function commitThroughApi(
    branch: string,
    files: Record<string, string | null>,
    message: string,
  ) {
    const { data: base } = await octokit.rest.git.getRef({ owner, repo, ref: `heads/${branch}` });
    const { data: parent } = await octokit.rest.git.getCommit({
      owner,
      repo,
      commit_sha: base.object.sha,
    });
    const tree = await Promise.all(
      Object.entries(files).map(async ([file, content]) => {
        if (content === null)
          return { path: file, mode: "100644" as const, type: "blob" as const, sha: null };
        const { data: blob } = await octokit.rest.git.createBlob({
          owner,
          repo,
          content: Buffer.from(content).toString("base64"),
          encoding: "base64",
        });
        return { path: file, mode: "100644" as const, type: "blob" as const, sha: blob.sha };
      }),
    );
    const { data: newTree } = await octokit.rest.git.createTree({
      owner,
      repo,
      base_tree: parent.tree.sha,
      tree,
    });
    const { data: commit } = await octokit.rest.git.createCommit({
      owner,
      repo,
      message,
      tree: newTree.sha,
      parents: [parent.sha],
    });
    return { parent: parent.sha, commit: commit.sha, verified: commit.verification?.verified };
  }

  it("round-trips blob → tree (base_tree) → commit → ref, visible to plain git clones", async () => {
    const { parent, commit, verified } = await commitThroughApi(
      "main",
      { "src/app.ts": "export const answer = 42;\n", "docs/new.md": "hello\n" },
      "Answer correctly",
    );
    expect(verified).toBe(true);
    await octokit.rest.git.createRef({
      owner,
      repo,
      ref: "refs/heads/conveyor/issue-1",
      sha: commit,
    });
    const { data: ref } = await octokit.rest.git.getRef({
      owner,
      repo,
      ref: "heads/conveyor/issue-1",
    });
    expect(ref.object.sha).toBe(commit);
    const { data: tree } = await octokit.rest.git.getTree({
      owner,
      repo,
      tree_sha: commit,
      recursive: "1",
    });
    expect(tree.tree.map((entry) => entry.path)).toEqual([
      "README.md",
      "docs",
      "docs/new.md",
      "src",
      "src/app.ts",
    ]);
    expect((await sim.getBranchSha(fullName, "main")) === parent).toBe(true);

    // Over smart HTTP with a read-only installation token, as a runner clones.
    const { token } = sim.createInstallationToken(installationId, {
      permissions: { contents: "read" },
    });
    const httpUrl = new URL(sim.cloneUrl(fullName));
    httpUrl.username = "x-access-token";
    httpUrl.password = token;
    const httpClone = path.join(scratch, "http");
    await runGit([
      "clone",
      "--quiet",
      "--branch",
      "conveyor/issue-1",
      httpUrl.toString(),
      httpClone,
    ]);
    expect(await readFile(path.join(httpClone, "src/app.ts"), "utf8")).toBe(
      "export const answer = 42;\n",
    );
    expect((await runGit(["rev-parse", "HEAD"], { cwd: httpClone })).stdout.toString().trim()).toBe(
      commit,
    );

    // Straight from the bare repository on disk.
    const dirClone = path.join(scratch, "dir");
    await runGit([
      "clone",
      "--quiet",
      "--branch",
      "conveyor/issue-1",
      sim.gitDir(fullName),
      dirClone,
    ]);
    expect(await readFile(path.join(dirClone, "docs/new.md"), "utf8")).toBe("hello\n");
  });

  it("refuses clones without a valid token and pushes with a read-only one", async () => {
    const anonymous = await runGit(["ls-remote", sim.cloneUrl(fullName)], { okCodes: [128] });
    expect(anonymous.code).toBe(128);

    const { token } = sim.createInstallationToken(installationId, {
      permissions: { contents: "read" },
    });
    const url = new URL(sim.cloneUrl(fullName));
    url.username = "x-access-token";
    url.password = token;
    const clone = path.join(scratch, "push-attempt");
    await runGit(["clone", "--quiet", url.toString(), clone]);
    const push = await runGit(["push", "origin", "HEAD:refs/heads/sneaky"], {
      cwd: clone,
      okCodes: [128],
    });
    expect(push.code).toBe(128);
    expect(push.stderr).toContain("403");
    expect(await sim.getBranchSha(fullName, "sneaky")).toBeUndefined();
  });

  it("merges with a sha guard: 409 for a stale head, a squash commit on the base otherwise", async () => {
    const { issue } = await sim.openIssue(fullName, { title: "Fix the answer", user: "alice" });
    await octokit.rest.git.createRef({
      owner,
      repo,
      ref: "refs/heads/conveyor/issue-2",
      sha: (await sim.getBranchSha(fullName, "main"))!,
    });
    const first = await commitThroughApi("conveyor/issue-2", { "fix.txt": "one\n" }, "First try");
    await octokit.rest.git.updateRef({
      owner,
      repo,
      ref: "heads/conveyor/issue-2",
      sha: first.commit,
    });
    const { data: pull } = await octokit.rest.pulls.create({
      owner,
      repo,
      title: "Fix the answer",
      head: "conveyor/issue-2",
      base: "main",
      body: `Closes #${issue.number}`,
    });
    expect(pull.head.sha).toBe(first.commit);
    const second = await commitThroughApi("conveyor/issue-2", { "fix.txt": "two\n" }, "Second try");
    await octokit.rest.git.updateRef({
      owner,
      repo,
      ref: "heads/conveyor/issue-2",
      sha: second.commit,
    });

    const stale = await octokit.rest.pulls
      .merge({ owner, repo, pull_number: pull.number, sha: first.commit, merge_method: "squash" })
      .catch((error: { status: number }) => error);
    expect(stale).toMatchObject({ status: 409 });

    const { data: files } = await octokit.rest.pulls.listFiles({
      owner,
      repo,
      pull_number: pull.number,
    });
    expect(files.map((file) => [file.filename, file.status, file.additions])).toEqual([
      ["fix.txt", "added", 1],
    ]);

    const { data: merged } = await octokit.rest.pulls.merge({
      owner,
      repo,
      pull_number: pull.number,
      sha: second.commit,
      merge_method: "squash",
    });
    expect(merged.merged).toBe(true);
    expect(await sim.getBranchSha(fullName, "main")).toBe(merged.sha);
    expect(await sim.readFile(fullName, "fix.txt")).toBe("two\n");
    const { data: commit } = await octokit.rest.git.getCommit({
      owner,
      repo,
      commit_sha: merged.sha,
    });
    expect(commit.parents).toHaveLength(1);
    expect(commit.message).toMatch(/^Fix the answer \(#\d+\)/);
    expect((await sim.getPull(fullName, pull.number)).merged).toBe(true);
    expect(sim.getIssue(fullName, issue.number).state).toBe("closed");

    const again = await octokit.rest.pulls
      .merge({ owner, repo, pull_number: pull.number })
      .catch((error: { status: number }) => error);
    expect(again).toMatchObject({ status: 405 });
  });

  it("merges with a merge commit or by rebasing, moving the base branch each time", async () => {
    await sim.push(fullName, { branch: "left", files: { "left.txt": "l\n" }, user: "bob" });
    await sim.push(fullName, { branch: "right", files: { "right.txt": "r\n" }, user: "bob" });
    const left = await sim.openPullRequest(fullName, { title: "Left", head: "left", user: "bob" });
    const right = await sim.openPullRequest(fullName, {
      title: "Right",
      head: "right",
      user: "bob",
    });

    const { data: merged } = await octokit.rest.pulls.merge({
      owner,
      repo,
      pull_number: left.pull.number,
      merge_method: "merge",
    });
    const { data: mergeCommit } = await octokit.rest.git.getCommit({
      owner,
      repo,
      commit_sha: merged.sha,
    });
    expect(mergeCommit.parents.map((parent) => parent.sha)[1]).toBe(left.pull.head.sha);
    expect(sim.deliveries.at(-1)).toMatchObject({
      event: "pull_request",
      action: "closed",
      payload: { pull_request: { merged: true, merge_commit_sha: merged.sha } },
    });

    const { data: rebased } = await octokit.rest.pulls.merge({
      owner,
      repo,
      pull_number: right.pull.number,
      merge_method: "rebase",
    });
    const { data: tip } = await octokit.rest.git.getCommit({
      owner,
      repo,
      commit_sha: rebased.sha,
    });
    expect(tip.parents.map((parent) => parent.sha)).toEqual([merged.sha]);
    expect(await sim.getBranchSha(fullName, "main")).toBe(rebased.sha);
    expect(await sim.readFile(fullName, "left.txt")).toBe("l\n");
    expect(await sim.readFile(fullName, "right.txt")).toBe("r\n");
  });

  it("answers 405 when the pull request is not mergeable and refuses non-fast-forward ref updates", async () => {
    await sim.push(fullName, {
      branch: "conflict",
      files: { "README.md": "branch side\n" },
      user: "bob",
    });
    await sim.push(fullName, {
      branch: "main",
      files: { "README.md": "main side\n" },
      user: "bob",
    });
    const { pull } = await sim.openPullRequest(fullName, {
      title: "Conflicting",
      head: "conflict",
      user: "bob",
    });
    expect(pull.mergeable).toBe(false);
    const refused = await octokit.rest.pulls
      .merge({ owner, repo, pull_number: pull.number })
      .catch((error: { status: number }) => error);
    expect(refused).toMatchObject({ status: 405 });

    const older = (await sim.getBranchSha(fullName, "conflict"))!;
    const notFastForward = await octokit.rest.git
      .updateRef({ owner, repo, ref: "heads/main", sha: older })
      .catch((error: { status: number }) => error);
    expect(notFastForward).toMatchObject({ status: 422 });
  });
});
