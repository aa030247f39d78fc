import { describe, expect, it } from "vitest";
import { runGit } from "./run-git.ts";
import { useInstalledSimulator } from "./simulator-test-kit.ts";

const owner = "acme";
const PUBLISH = `mutation($repositoryId: ID!, $ref: String!, $base: GitObjectID!,
  $branch: CommittableBranch!, $message: CommitMessage!, $changes: FileChanges!,
  $baseRefName: String!, $headRefName: String!, $title: String!, $body: String!) {
  createRef(input: {repositoryId: $repositoryId, name: $ref, oid: $base}) { ref { name prefix } }
  createCommitOnBranch(input: {branch: $branch, expectedHeadOid: $base, message: $message,
    fileChanges: $changes}) { commit { oid } }
  createPullRequest(input: {repositoryId: $repositoryId, baseRefName: $baseRefName,
    headRefName: $headRefName, title: $title, body: $body}) { pullRequest { number url headRefOid } }
}`;
const REPOSITORY = `query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) { id databaseId }
}`;

interface Answer {
  data?: {
    createRef: { ref: { name: string; prefix: string } } | null;
    createCommitOnBranch: { commit: { oid: string } } | null;
    createPullRequest: { pullRequest: { number: number; url: string; headRefOid: string } } | null;
  };
  errors?: { type?: string; path?: string[]; message: string }[];
}

// createRef, createCommitOnBranch and createPullRequest: one document, run field after field, each
// failing on its own as GitHub's do (errors[] and that field null; the rest still runs).
describe("GitHub simulator: GraphQL writes", () => {
  const env = useInstalledSimulator(owner);
  let repoCount = 0;

  async function newRepo() {
    const name = `g${++repoCount}`;
    const fullName = `${owner}/${name}`;
    await env.sim.createRepository({
      owner,
      name,
      installationId: env.installationId,
      files: { "a.txt": "a\n", "gone.txt": "bye\n" },
    });
    const base = (await env.sim.getBranchSha(fullName, "main"))!;
    const { repository } = await env.octokit.graphql<{
      repository: { id: string; databaseId: number };
    }>(REPOSITORY, { owner, name });
    return { name, fullName, base, repositoryId: repository.id, databaseId: repository.databaseId };
  }

  async function publish(
    repo: Awaited<ReturnType<typeof newRepo>>,
    patch: { base?: string; token?: string } = {},
  ): Promise<Answer> {
    const token = patch.token ?? env.sim.createInstallationToken(env.installationId).token;
    const response = await fetch(`${env.sim.url}/graphql`, {
      method: "POST",
      headers: { authorization: `token ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        query: PUBLISH,
        variables: {
          repositoryId: repo.repositoryId,
          ref: "refs/heads/topic",
          base: patch.base ?? repo.base,
          branch: { repositoryNameWithOwner: repo.fullName, branchName: "topic" },
          message: { headline: "Add b", body: "Because." },
          changes: {
            additions: [
              { path: "dir/b.txt", contents: Buffer.from("b\n").toString("base64") },
              { path: "a.txt", contents: Buffer.from("A\n").toString("base64") },
            ],
            deletions: [{ path: "gone.txt" }],
          },
          baseRefName: "main",
          headRefName: "topic",
          title: "Add b",
          body: "Body",
        },
      }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as Answer;
  }

  const git = async (fullName: string, ...args: string[]) =>
    (await runGit(args, { gitDir: env.sim.gitDir(fullName) })).stdout.toString("utf8").trim();

  it("creates the branch, a signed commit of the changes on it and the pull request, in order", async () => {
    const repo = await newRepo();
    expect(repo.databaseId).toBeGreaterThan(0);
    const answer = await publish(repo);
    expect(answer.errors).toBeUndefined();
    const oid = answer.data!.createCommitOnBranch!.commit.oid;
    expect(answer.data!.createRef!.ref).toEqual({ name: "topic", prefix: "refs/heads/" });
    expect(await env.sim.getBranchSha(repo.fullName, "topic")).toBe(oid);
    expect(await git(repo.fullName, "rev-parse", `${oid}^@`)).toBe(repo.base);
    expect(await git(repo.fullName, "log", "-1", "--format=%B", oid)).toBe("Add b\n\nBecause.");
    expect(await git(repo.fullName, "ls-tree", "-r", "--format=%(objectmode) %(path)", oid)).toBe(
      "100644 a.txt\n100644 dir/b.txt",
    );
    expect(await git(repo.fullName, "show", `${oid}:a.txt`)).toBe("A");

    const pull = answer.data!.createPullRequest!.pullRequest;
    expect(pull.headRefOid).toBe(oid);
    const { data: rest } = await env.octokit.request(
      "GET /repos/{owner}/{repo}/pulls/{pull_number}",
      {
        owner,
        repo: repo.name,
        pull_number: pull.number,
      },
    );
    expect(rest.html_url).toBe(pull.url);
    expect(rest.head.ref).toBe("topic");
    expect(rest.maintainer_can_modify).toBe(true);
    const { data: commit } = await env.octokit.request("GET /repos/{owner}/{repo}/commits/{ref}", {
      owner,
      repo: repo.name,
      ref: oid,
    });
    expect(commit.commit.verification?.verified).toBe(true);

    await env.sim.idle();
    const opened = env.receiver.received
      .filter((w) => w.headers["x-github-event"] === "pull_request")
      .map((w) => JSON.parse(w.body) as { action: string; number: number });
    expect(opened).toContainEqual(
      expect.objectContaining({ action: "opened", number: pull.number }),
    );
  });

  it("answers an existing branch and pull request with errors, and still runs the other fields", async () => {
    const repo = await newRepo();
    const first = await publish(repo);
    const head = first.data!.createCommitOnBranch!.commit.oid;
    const again = await publish(repo);
    expect(again.data).toEqual({
      createRef: null,
      createCommitOnBranch: null,
      createPullRequest: null,
    });
    expect(again.errors!.map((e) => [e.path?.[0], e.type, e.message])).toEqual([
      [
        "createRef",
        "UNPROCESSABLE",
        'A ref named "refs/heads/topic" already exists in the repository.',
      ],
      [
        "createCommitOnBranch",
        "STALE_DATA",
        `Expected branch to point to "${repo.base}" but it did not. Pull and try again.`,
      ],
      ["createPullRequest", "UNPROCESSABLE", `A pull request already exists for ${owner}:topic.`],
    ]);
    expect(await env.sim.getBranchSha(repo.fullName, "topic")).toBe(head);

    // On the head it expects, the commit is refused for its deletion of a path already gone.
    const onHead = await publish(repo, { base: head });
    expect(onHead.errors?.map((e) => [e.path?.[0], e.message])).toContainEqual([
      "createCommitOnBranch",
      `A path was requested for deletion which does not exist as of commit oid \`${head}\``,
    ]);
    expect(await env.sim.getBranchSha(repo.fullName, "topic")).toBe(head);
  });

  it("needs contents and pull_requests write", async () => {
    const repo = await newRepo();
    const { token } = env.sim.createInstallationToken(env.installationId, {
      permissions: { contents: "read", pull_requests: "write", metadata: "read" },
    });
    const answer = await publish(repo, { token });
    expect(answer.errors!.map((e) => [e.path?.[0], e.type])).toEqual([
      ["createRef", "FORBIDDEN"],
      ["createCommitOnBranch", "FORBIDDEN"],
      ["createPullRequest", "UNPROCESSABLE"],
    ]);
    expect(await env.sim.getBranchSha(repo.fullName, "topic")).toBeUndefined();
  });
});
