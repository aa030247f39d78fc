import type { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PullRequestRefused } from "../src/core/change-set-rules.ts";
import type { PullRequestWriteInput } from "../src/core/ports.ts";
import {
  canPublishInOneRequest,
  createCommitTrees,
  createRepositoryNodeIds,
  writePullRequest,
} from "../src/github/pull-request-writer.ts";
import type { ChangeSet } from "../src/protocol/messages.ts";
import {
  DEFAULT_APP_PERMISSIONS,
  type GitHubSimulator,
} from "./github-sim/create-github-simulator.ts";
import { runGit } from "./github-sim/run-git.ts";
import {
  createTestProbot,
  startTestSimulator,
  type TestSimulator,
} from "./github-sim/simulator-test-kit.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

const owner = "acme";
const repo = "widgets";
const fullName = `${owner}/${repo}`;
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
/** Over the writer's inline limit, so it travels as a blob. */
const LARGE_TEXT = `${"0123456789abcdef".repeat(5000)}\n`;

describe("writePullRequest against the GitHub simulator", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let octokit: Octokit;
  let installationId: number;
  let baseSha: string;
  let issueNumber: number;
  let repositoryId: number;

  beforeAll(async () => {
    kit = await startTestSimulator();
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: owner })).id;
    ({ id: repositoryId } = await sim.createRepository({
      owner,
      name: repo,
      installationId,
      files: {
        "README.md": "# widgets\n",
        "src/app.ts": "export const answer = 41;\n",
        "docs/old.md": "old\n",
        ".github/workflows/ci.yml": "on: push\n",
      },
    }));
    octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
    baseSha = (await sim.getBranchSha(fullName, "main"))!;
    issueNumber = (await sim.openIssue(fullName, { title: "Make it blue", user: "alice" })).issue
      .number;
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit?.close();
  });

  const git = async (...args: string[]) =>
    (await runGit(args, { gitDir: sim.gitDir(fullName) })).stdout;
  const gitText = async (...args: string[]) => (await git(...args)).toString("utf8").trim();

  /** `mode type path` of every file at `ref`, and each blob's sha. */
  async function lsTree(ref: string) {
    const out = await gitText("ls-tree", "-r", ref);
    return new Map(
      out.split("\n").map((line) => {
        const [meta, path] = line.split("\t") as [string, string];
        const [mode, type, sha] = meta.split(" ") as [string, string, string];
        return [path, { mode, type, sha }];
      }),
    );
  }

  function changeSet(files: ChangeSet["files"], message = "Make it blue"): ChangeSet {
    return { base_sha: baseSha, message, files };
  }

  function input(patch: Partial<PullRequestWriteInput> = {}): PullRequestWriteInput {
    return {
      owner,
      repo,
      defaultBranch: "main",
      issueNumber,
      issueTitle: "Make it blue",
      branch: `conveyor/issue-${issueNumber}`,
      baseSha,
      changeSet: firstChange,
      body: `Closes #${issueNumber}\n\nfirst`,
      title: "Make it blue",
      labels: ["conveyor", "priority:normal"],
      ...patch,
    };
  }

  const firstChange: ChangeSet = {
    base_sha: "",
    message: "Make it blue\n\nA longer explanation.",
    files: [
      { path: "src/app.ts", action: "modify", mode: "100644", encoding: "utf8", content: "blue\n" },
      { path: "docs/new.md", action: "add", mode: "100644", encoding: "utf8", content: "new\n" },
      { path: "docs/old.md", action: "delete", mode: "100644", encoding: "utf8", content: "" },
      {
        path: "bin/tool.sh",
        action: "add",
        mode: "100755",
        encoding: "utf8",
        content: "#!/bin/sh\necho hi\n",
      },
      {
        path: "assets/logo.bin",
        action: "add",
        mode: "100644",
        encoding: "base64",
        content: BINARY.toString("base64"),
      },
      { path: "link", action: "add", mode: "120000", encoding: "utf8", content: "README.md" },
      {
        path: "data/big.txt",
        action: "add",
        mode: "100644",
        encoding: "utf8",
        content: LARGE_TEXT,
      },
    ],
  };

  const since = (mark: number) => sim.requests.slice(mark);
  const writes = (mark: number) =>
    since(mark)
      .filter((r) => r.method !== "GET" && r.path.startsWith("/repos/"))
      .map((r) => `${r.method} ${r.route} ${r.status}`);
  const openPulls = async () =>
    (await sim.listPulls(fullName)).filter(
      (p) => p.state === "open" && p.head.ref === `conveyor/issue-${issueNumber}`,
    );

  let firstCommit: string;
  let prNumber: number;

  it("writes one commit on baseSha with every kind of change, and opens one pull request", async () => {
    firstChange.base_sha = baseSha;
    const mark = sim.requests.length;
    const written = await writePullRequest(octokit, input());

    expect(written).toMatchObject({ created: true, commitReused: false });
    expect(written.headSha).toBe(written.commitSha);
    firstCommit = written.commitSha;
    prNumber = written.prNumber;
    const branch = `conveyor/issue-${issueNumber}`;
    expect(await sim.getBranchSha(fullName, branch)).toBe(firstCommit);

    // One commit, whose only parent is baseSha, with the change set's message, signed by GitHub.
    expect(await gitText("log", "--format=%H %P", `${baseSha}..${branch}`)).toBe(
      `${firstCommit} ${baseSha}`,
    );
    expect(await gitText("show", "-s", "--format=%B", firstCommit)).toBe(
      "Make it blue\n\nA longer explanation.",
    );
    const { data: apiCommit } = await octokit.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner, repo, commit_sha: firstCommit },
    );
    expect(apiCommit.verification?.verified).toBe(true);

    const tree = await lsTree(firstCommit);
    expect([...tree.keys()].sort()).toEqual([
      ".github/workflows/ci.yml",
      "README.md",
      "assets/logo.bin",
      "bin/tool.sh",
      "data/big.txt",
      "docs/new.md",
      "link",
      "src/app.ts",
    ]);
    expect(tree.get("bin/tool.sh")?.mode).toBe("100755");
    expect(tree.get("link")?.mode).toBe("120000");
    expect(tree.get("src/app.ts")?.mode).toBe("100644");
    expect(await git("cat-file", "blob", tree.get("assets/logo.bin")!.sha)).toEqual(BINARY);
    expect(await gitText("cat-file", "blob", tree.get("link")!.sha)).toBe("README.md");
    expect((await git("cat-file", "blob", `${firstCommit}:data/big.txt`)).toString()).toBe(
      LARGE_TEXT,
    );
    expect((await git("cat-file", "blob", `${firstCommit}:src/app.ts`)).toString()).toBe("blue\n");
    expect(await gitText("diff", "--name-status", baseSha, firstCommit)).toBe(
      [
        "A\tassets/logo.bin",
        "A\tbin/tool.sh",
        "A\tdata/big.txt",
        "A\tdocs/new.md",
        "D\tdocs/old.md",
        "A\tlink",
        "M\tsrc/app.ts",
      ].join("\n"),
    );

    // Blobs only where needed: the binary file and the large text file.
    expect(writes(mark)).toEqual([
      "POST /repos/{owner}/{repo}/git/blobs 201",
      "POST /repos/{owner}/{repo}/git/blobs 201",
      "POST /repos/{owner}/{repo}/git/trees 201",
      "POST /repos/{owner}/{repo}/git/commits 201",
      "POST /repos/{owner}/{repo}/git/refs 201",
      "POST /repos/{owner}/{repo}/pulls 201",
      "POST /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
    ]);
    const commitRequest = since(mark).find((r) => r.route === "/repos/{owner}/{repo}/git/commits");
    expect(commitRequest?.body).not.toHaveProperty("author");
    expect(commitRequest?.body).not.toHaveProperty("committer");

    const pull = await sim.getPull(fullName, prNumber);
    expect(pull).toMatchObject({
      number: prNumber,
      state: "open",
      title: "Make it blue",
      body: `Closes #${issueNumber}\n\nfirst`,
      maintainer_can_modify: false,
      html_url: written.prUrl,
      head: { ref: branch, sha: firstCommit },
      base: { ref: "main" },
    });
    expect(pull.labels.map((l) => l.name).sort()).toEqual(["conveyor", "priority:normal"]);
    expect(await openPulls()).toHaveLength(1);
  });

  it("the same write again changes nothing: same commit, same pull request, no writes but the tree", async () => {
    const mark = sim.requests.length;
    const written = await writePullRequest(octokit, input());
    expect(written).toMatchObject({
      prNumber,
      created: false,
      commitReused: true,
      commitSha: firstCommit,
      headSha: firstCommit,
    });
    expect(await sim.getBranchSha(fullName, `conveyor/issue-${issueNumber}`)).toBe(firstCommit);
    // Trees are content-addressed: asking for the same one again is the look-up.
    expect(writes(mark)).toEqual([
      "POST /repos/{owner}/{repo}/git/blobs 201",
      "POST /repos/{owner}/{repo}/git/blobs 201",
      "POST /repos/{owner}/{repo}/git/trees 201",
    ]);
    expect(await openPulls()).toHaveLength(1);
  });

  it("a rerun with another change force-updates the branch to a new commit on baseSha, same pull request", async () => {
    const mark = sim.requests.length;
    const rerun = changeSet(
      [
        {
          path: "src/app.ts",
          action: "modify",
          mode: "100644",
          encoding: "utf8",
          content: "navy\n",
        },
      ],
      "Make it navy blue",
    );
    const written = await writePullRequest(
      octokit,
      input({ changeSet: rerun, body: `Closes #${issueNumber}\n\nsecond`, title: "Navy" }),
    );
    expect(written).toMatchObject({ prNumber, created: false, commitReused: false });
    expect(written.commitSha).not.toBe(firstCommit);
    const branch = `conveyor/issue-${issueNumber}`;
    expect(await sim.getBranchSha(fullName, branch)).toBe(written.commitSha);
    expect(await gitText("log", "--format=%H %P", `${baseSha}..${branch}`)).toBe(
      `${written.commitSha} ${baseSha}`,
    );
    // The first attempt's files are gone: the branch was replaced, not built upon.
    expect(await gitText("diff", "--name-status", baseSha, written.commitSha)).toBe(
      "M\tsrc/app.ts",
    );
    expect(writes(mark)).toEqual([
      "POST /repos/{owner}/{repo}/git/trees 201",
      "POST /repos/{owner}/{repo}/git/commits 201",
      "PATCH /repos/{owner}/{repo}/git/refs/{ref} 200",
      "PATCH /repos/{owner}/{repo}/pulls/{pull_number} 200",
    ]);
    expect(
      since(mark).find((r) => r.method === "PATCH" && r.route?.includes("refs"))?.body,
    ).toEqual({ sha: written.commitSha, force: true });
    const pull = await sim.getPull(fullName, prNumber);
    expect(pull).toMatchObject({
      title: "Navy",
      body: `Closes #${issueNumber}\n\nsecond`,
      head: { sha: written.commitSha },
    });
    expect(await openPulls()).toHaveLength(1);
  });

  it("falls back to the existing pull request when its create loses a race (422 already exists)", async () => {
    const racy = await createTestProbot(sim, kit.privateKey).auth(installationId);
    let hidden = 0;
    // The first look-up misses the open pull request, as if another publish opened it just after.
    racy.hook.wrap("request", async (request, options) => {
      const response = await request(options);
      if (options.method === "GET" && options.url === "/repos/{owner}/{repo}/pulls" && !hidden++) {
        return { ...response, data: [] };
      }
      return response;
    });
    const mark = sim.requests.length;
    const written = await writePullRequest(
      racy,
      input({ changeSet: firstChange, body: `Closes #${issueNumber}\n\nthird` }),
    );
    expect(hidden).toBe(2);
    expect(written).toMatchObject({ prNumber, created: false });
    expect(writes(mark)).toContain("POST /repos/{owner}/{repo}/pulls 422");
    expect(writes(mark).at(-1)).toBe("PATCH /repos/{owner}/{repo}/pulls/{pull_number} 200");
    expect((await sim.getPull(fullName, prNumber)).body).toBe(`Closes #${issueNumber}\n\nthird`);
    expect(await openPulls()).toHaveLength(1);
  });

  it("a first write creates the branch and the pull request without looking them up, and converges when they exist after all", async () => {
    const other = (await sim.openIssue(fullName, { title: "Make it green", user: "alice" })).issue
      .number;
    const branch = `conveyor/issue-${other}`;
    const green = changeSet(
      [
        {
          path: "src/app.ts",
          action: "modify",
          mode: "100644",
          encoding: "utf8",
          content: "green\n",
        },
      ],
      "Make it green",
    );
    const first = input({
      issueNumber: other,
      branch,
      changeSet: green,
      body: `Closes #${other}`,
      title: "Green",
      firstWrite: true,
    });
    const trees = createCommitTrees();
    const mark = sim.requests.length;
    const written = await writePullRequest(octokit, first, trees);
    expect(written).toMatchObject({ created: true, commitReused: false });
    expect(since(mark).map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual([
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha} 200",
      "POST /repos/{owner}/{repo}/git/trees 201",
      "POST /repos/{owner}/{repo}/git/commits 201",
      "POST /repos/{owner}/{repo}/git/refs 201",
      "POST /repos/{owner}/{repo}/pulls 201",
      "POST /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
    ]);
    expect(await sim.getBranchSha(fullName, branch)).toBe(written.commitSha);

    // The same first write again, as after a crash before it was recorded: GitHub's "already
    // exists" answers send it to the look-ups, and it ends on the same pull request.
    const again = sim.requests.length;
    const rewritten = await writePullRequest(octokit, first, trees);
    expect(rewritten).toMatchObject({ prNumber: written.prNumber, created: false });
    expect(writes(again)).toEqual([
      "POST /repos/{owner}/{repo}/git/trees 201",
      "POST /repos/{owner}/{repo}/git/commits 201",
      "POST /repos/{owner}/{repo}/git/refs 422",
      "PATCH /repos/{owner}/{repo}/git/refs/{ref} 200",
      "POST /repos/{owner}/{repo}/pulls 422",
    ]);
    // The base commit's tree was kept from the first write (a commit's tree never changes).
    expect(
      since(again).filter((r) => r.route === "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ).toEqual([]);
    expect(await sim.getBranchSha(fullName, branch)).toBe(rewritten.commitSha);
    expect(await gitText("diff", "--name-status", baseSha, rewritten.commitSha)).toBe(
      "M\tsrc/app.ts",
    );
    const open = (await sim.listPulls(fullName)).filter(
      (p) => p.state === "open" && p.head.ref === branch,
    );
    expect(open.map((p) => p.number)).toEqual([written.prNumber]);
  });

  /** A first write of `files` for a new issue, with the repository's id (the one-request path). */
  async function firstWriteOf(files: ChangeSet["files"], message = "Make it teal\n\nWhy teal.") {
    const number = (await sim.openIssue(fullName, { title: "Make it teal", user: "alice" })).issue
      .number;
    return input({
      issueNumber: number,
      branch: `conveyor/issue-${number}`,
      changeSet: changeSet(files, message),
      body: `Closes #${number}`,
      title: "Teal",
      labels: [],
      firstWrite: true,
      repositoryId,
    });
  }

  const regularFiles: ChangeSet["files"] = [
    { path: "src/app.ts", action: "modify", mode: "100644", encoding: "utf8", content: "teal\n" },
    { path: "docs/teal.md", action: "add", mode: "100644", encoding: "utf8", content: "teal\n" },
    { path: "docs/old.md", action: "delete", mode: "100644", encoding: "utf8", content: "" },
    {
      path: "assets/logo.bin",
      action: "add",
      mode: "100644",
      encoding: "base64",
      content: BINARY.toString("base64"),
    },
  ];
  const graphqlWrites = (mark: number) =>
    since(mark).filter(
      (r) =>
        r.route === "/graphql" &&
        String((r.body as { query?: string }).query).startsWith("mutation"),
    );

  it("a first write of regular files publishes branch, commit and pull request in one GraphQL request", async () => {
    const first = await firstWriteOf(regularFiles);
    const trees = createCommitTrees();
    const nodeIds = createRepositoryNodeIds();
    const mark = sim.requests.length;
    const written = await writePullRequest(octokit, first, trees, nodeIds);
    expect(written).toMatchObject({ created: true, commitReused: false });
    expect(written.headSha).toBe(written.commitSha);
    // One mutation; no REST request at all (the node id read is a GraphQL query, kept after).
    expect(graphqlWrites(mark)).toHaveLength(1);
    expect(since(mark).filter((r) => r.route !== "/graphql")).toEqual([]);
    expect(writes(mark)).toEqual([]);

    // What the REST path writes for the same change set: same tree, parent and message.
    const rest = await writePullRequest(
      octokit,
      await firstWriteOf(regularFiles).then((i) => ({ ...i, repositoryId: undefined })),
      trees,
    );
    const shown = (sha: string) => gitText("show", "-s", "--format=%T %P%n%B", sha);
    expect(await shown(written.commitSha)).toBe(await shown(rest.commitSha));
    expect(await gitText("show", "-s", "--format=%P", written.commitSha)).toBe(baseSha);
    expect(await gitText("show", "-s", "--format=%B", written.commitSha)).toBe(
      "Make it teal\n\nWhy teal.",
    );
    const { data: apiCommit } = await octokit.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner, repo, commit_sha: written.commitSha },
    );
    expect(apiCommit.verification?.verified).toBe(true);
    expect(await sim.getBranchSha(fullName, first.branch)).toBe(written.commitSha);
    const pull = await sim.getPull(fullName, written.prNumber);
    expect(pull).toMatchObject({
      state: "open",
      title: "Teal",
      body: first.body,
      maintainer_can_modify: false,
      html_url: written.prUrl,
      head: { ref: first.branch, sha: written.commitSha },
      base: { ref: "main" },
    });

    // The node id is kept: the next first write sends the mutation alone.
    const next = sim.requests.length;
    await writePullRequest(octokit, await firstWriteOf(regularFiles), trees, nodeIds);
    expect(since(next).map((r) => r.route)).toEqual(["/graphql"]);
  });

  it("takes the REST path for an executable file, and keeps its mode", async () => {
    const first = await firstWriteOf([
      ...regularFiles,
      {
        path: "bin/teal.sh",
        action: "add",
        mode: "100755",
        encoding: "utf8",
        content: "#!/bin/sh\n",
      },
    ]);
    const mark = sim.requests.length;
    const written = await writePullRequest(octokit, first, createCommitTrees());
    expect(since(mark).filter((r) => r.route === "/graphql")).toEqual([]);
    expect(writes(mark)).toContain("POST /repos/{owner}/{repo}/git/commits 201");
    expect((await lsTree(written.commitSha)).get("bin/teal.sh")?.mode).toBe("100755");
  });

  it.each<[string, ChangeSet["files"], string]>([
    [
      "a symlink",
      [{ path: "l", action: "add", mode: "120000", encoding: "utf8", content: "x" }],
      "m",
    ],
    [
      "more than a mebibyte",
      [
        {
          path: "big",
          action: "add",
          mode: "100644",
          encoding: "utf8",
          content: "x".repeat(1024 * 1024 + 1),
        },
      ],
      "m",
    ],
    ["a message CommitMessage cannot carry", regularFiles, "line one\nline two"],
  ])("takes the REST path for %s", (_name, files, message) => {
    expect(canPublishInOneRequest({ changeSet: changeSet(files, message) })).toBe(false);
    expect(
      canPublishInOneRequest({
        changeSet: changeSet(
          files.map((f) => ({ ...f, mode: "100644", content: "x" })),
          "m",
        ),
      }),
    ).toBe(true);
  });

  it("a first write that meets the branch and pull request of a crashed publish converges on them", async () => {
    const first = await firstWriteOf(regularFiles);
    const nodeIds = createRepositoryNodeIds();
    const written = await writePullRequest(octokit, first, createCommitTrees(), nodeIds);

    // The same first write again, as after a crash before it was recorded: the mutation's three
    // fields fail (branch exists, head moved, pull request exists), the REST look-ups find them.
    const again = sim.requests.length;
    const rewritten = await writePullRequest(octokit, first, createCommitTrees(), nodeIds);
    expect(rewritten).toMatchObject({
      prNumber: written.prNumber,
      created: false,
      commitReused: true,
      commitSha: written.commitSha,
    });
    expect(graphqlWrites(again)).toHaveLength(1);
    // The tree (and the binary file's blob) to compare with; no commit, ref or pull request write.
    expect(writes(again)).toEqual([
      "POST /repos/{owner}/{repo}/git/blobs 201",
      "POST /repos/{owner}/{repo}/git/trees 201",
    ]);
    expect(await sim.getBranchSha(fullName, first.branch)).toBe(written.commitSha);
    const open = (await sim.listPulls(fullName)).filter(
      (p) => p.state === "open" && p.head.ref === first.branch,
    );
    expect(open.map((p) => p.number)).toEqual([written.prNumber]);

    // A crash after the branch alone: createRef fails, the commit and the pull request are made
    // on the branch (its head is still the base); the answer has an error, so the REST look-ups
    // run and find both.
    const onlyBranch = await firstWriteOf(regularFiles);
    await octokit.request("POST /repos/{owner}/{repo}/git/refs", {
      owner,
      repo,
      ref: `refs/heads/${onlyBranch.branch}`,
      sha: baseSha,
    });
    const converged = await writePullRequest(octokit, onlyBranch, createCommitTrees(), nodeIds);
    expect(converged).toMatchObject({ created: false, commitReused: true });
    expect(await gitText("show", "-s", "--format=%P", converged.commitSha)).toBe(baseSha);
    expect(await sim.getBranchSha(fullName, onlyBranch.branch)).toBe(converged.commitSha);
    expect(
      (await sim.listPulls(fullName)).filter(
        (p) => p.state === "open" && p.head.ref === onlyBranch.branch,
      ),
    ).toHaveLength(1);
  });

  it.each<[string, ChangeSet["files"][number]["path"], "add" | "delete"]>([
    ["adds a workflow", ".github/workflows/ci.yml", "add"],
    ["deletes a workflow", ".github/workflows/ci.yml", "delete"],
    ["deletes the workflows directory", ".github/workflows", "delete"],
    ["replaces .github itself", ".github", "delete"],
    ["hides behind different case", ".GitHub/Workflows/evil.yml", "add"],
  ])("refuses a change that %s before sending any request", async (_name, path, action) => {
    const mark = sim.requests.length;
    const change = changeSet([
      { path: "README.md", action: "modify", mode: "100644", encoding: "utf8", content: "x\n" },
      { path, action, mode: "100644", encoding: "utf8", content: "on: push\n" },
    ]);
    const refused = await writePullRequest(octokit, input({ changeSet: change })).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(PullRequestRefused);
    expect((refused as PullRequestRefused).paths).toEqual([path]);
    expect((refused as PullRequestRefused).message).toMatch(/`workflows` permission/);
    expect(since(mark)).toEqual([]);
  });

  // Patches are built when the test runs: baseSha is known only after beforeAll.
  it.each<[string, () => Partial<PullRequestWriteInput>, RegExp]>([
    [
      "a change set made on another commit",
      () => ({ changeSet: { ...changeSet(firstChange.files), base_sha: "f".repeat(40) } }),
      /made on ffffffffffff, but the task was assigned on [0-9a-f]{12}$/,
    ],
    ["an empty task base", () => ({ baseSha: "" }), /assigned on no commit/],
    [
      "a path that escapes the repository",
      () => ({
        changeSet: changeSet([
          { path: "../x", action: "add", mode: "100644", encoding: "utf8", content: "" },
        ]),
      }),
      /`\.\.\/x` contains \. or \.\. segments/,
    ],
    [
      "a path inside .git",
      () => ({
        changeSet: changeSet([
          { path: ".git/config", action: "add", mode: "100644", encoding: "utf8", content: "" },
        ]),
      }),
      /`\.git\/config` is inside \.git/,
    ],
  ])("refuses %s before sending any request", async (_name, patch, reason) => {
    const mark = sim.requests.length;
    const refused = await writePullRequest(octokit, input(patch())).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(PullRequestRefused);
    expect((refused as Error).message).toMatch(reason);
    expect(since(mark)).toEqual([]);
  });

  /** Commits `files` on baseSha through the Git Data API, without moving any ref. */
  async function commitOnBase(client: Octokit, owner: string, repo: string, base: string) {
    const { data: parent } = await client.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner, repo, commit_sha: base },
    );
    const { data: tree } = await client.request("POST /repos/{owner}/{repo}/git/trees", {
      owner,
      repo,
      base_tree: parent.tree.sha,
      tree: [
        { path: ".github/workflows/ci.yml", mode: "100644", type: "blob", content: "on: [push]\n" },
      ],
    });
    const { data: commit } = await client.request("POST /repos/{owner}/{repo}/git/commits", {
      owner,
      repo,
      message: "Change CI",
      tree: tree.sha,
      parents: [base],
    });
    return commit.sha;
  }

  it("the simulator, like GitHub, refuses an App's ref update touching workflows without the permission", async () => {
    const branch = `conveyor/issue-${issueNumber}`;
    const before = (await sim.getBranchSha(fullName, branch))!;
    const sha = await commitOnBase(octokit, owner, repo, baseSha);

    const update = await octokit
      .request("PATCH /repos/{owner}/{repo}/git/refs/{ref}", {
        owner,
        repo,
        ref: `heads/${branch}`,
        sha,
        force: true,
      })
      .catch((error: unknown) => error);
    expect(update).toMatchObject({
      status: 403,
      message: expect.stringMatching(/without `workflows` permission/),
    });
    const create = await octokit
      .request("POST /repos/{owner}/{repo}/git/refs", {
        owner,
        repo,
        ref: "refs/heads/conveyor/ci-change",
        sha,
      })
      .catch((error: { status: number }) => error);
    expect(create).toMatchObject({ status: 403 });
    expect(await sim.getBranchSha(fullName, branch)).toBe(before);
    expect(await sim.getBranchSha(fullName, "conveyor/ci-change")).toBeUndefined();

    // Control: the same update from an installation that holds `workflows` goes through, so the
    // refusal above is about that permission and nothing else.
    const trusted = await sim.createInstallation({
      account: "trusted",
      permissions: { ...DEFAULT_APP_PERMISSIONS, workflows: "write" },
    });
    await sim.createRepository({
      owner: "trusted",
      name: "tools",
      installationId: trusted.id,
      files: { ".github/workflows/ci.yml": "on: push\n" },
    });
    const trustedClient = await createTestProbot(sim, kit.privateKey).auth(trusted.id);
    const trustedBase = (await sim.getBranchSha("trusted/tools", "main"))!;
    const allowed = await commitOnBase(trustedClient, "trusted", "tools", trustedBase);
    await trustedClient.request("PATCH /repos/{owner}/{repo}/git/refs/{ref}", {
      owner: "trusted",
      repo: "tools",
      ref: "heads/main",
      sha: allowed,
      force: true,
    });
    expect(await sim.readFile("trusted/tools", ".github/workflows/ci.yml")).toBe("on: [push]\n");
  });
});
