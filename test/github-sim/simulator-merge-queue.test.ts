import { describe, expect, it } from "vitest";
import { useInstalledSimulator } from "./simulator-test-kit.ts";

const owner = "acme";
const ENQUEUE = `mutation($id: ID!, $head: GitObjectID) {
  enqueuePullRequest(input: {pullRequestId: $id, expectedHeadOid: $head}) {
    mergeQueueEntry { id position state headCommit { oid } }
  }
}`;

// GitHub's merge queue: the `merge_queue` rule, the 405 on a direct merge, `enqueuePullRequest`,
// merge groups on `gh-readonly-queue/…`, and the `merge_group` / `pull_request` events they cause.
describe("GitHub simulator: merge queue", () => {
  const env = useInstalledSimulator(owner);
  let repoCount = 0;

  async function queuedRepoWithPull(file: string) {
    const name = `q${++repoCount}`;
    const fullName = `${owner}/${name}`;
    await env.sim.createRepository({
      owner,
      name,
      installationId: env.installationId,
      files: { "base.txt": "1\n" },
    });
    env.sim.addRuleset(fullName, {
      branches: ["~DEFAULT_BRANCH"],
      requiredChecks: ["ci"],
      mergeQueue: { merge_method: "SQUASH" },
    });
    const { sha: headSha } = await env.sim.push(fullName, {
      branch: "feature",
      files: { [file]: "x\n" },
      user: "bob",
    });
    const { pull } = await env.sim.openPullRequest(fullName, {
      title: "Feature",
      head: "feature",
      user: "bob",
    });
    await env.sim.createCheckRun(fullName, { name: "ci", headSha, conclusion: "success" });
    return { name, fullName, number: pull.number, headSha, nodeId: pull.node_id };
  }

  const events = (name: string) =>
    env.receiver.received
      .filter((w) => w.headers["x-github-event"] === name)
      .map((w) => JSON.parse(w.body) as Record<string, unknown> & { action: string });

  it("lists the merge_queue rule, refuses a direct merge and merges through the queue", async () => {
    const { name, fullName, number, headSha, nodeId } = await queuedRepoWithPull("a.txt");
    const repo = { owner, repo: name };
    const { data: rules } = await env.octokit.request(
      "GET /repos/{owner}/{repo}/rules/branches/{branch}",
      { ...repo, branch: "main" },
    );
    expect(rules.find((r) => r.type === "merge_queue")).toMatchObject({
      type: "merge_queue",
      parameters: { merge_method: "SQUASH", grouping_strategy: "ALLGREEN" },
    });
    const refused = await env.octokit
      .request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", {
        ...repo,
        pull_number: number,
      })
      .catch((error: { status: number; message: string }) => error);
    expect(refused).toMatchObject({
      status: 405,
      message: expect.stringMatching(/merge queue/),
    });

    const answer = await env.octokit.graphql<{
      enqueuePullRequest: { mergeQueueEntry: { position: number; headCommit: { oid: string } } };
    }>(ENQUEUE, { id: nodeId, head: headSha });
    expect(answer.enqueuePullRequest.mergeQueueEntry).toMatchObject({
      position: 1,
      headCommit: { oid: headSha },
    });
    await env.sim.idle();
    const [entry] = env.sim.mergeQueueOf(fullName, "main");
    expect(entry?.group?.branch).toMatch(
      new RegExp(`^gh-readonly-queue/main/pr-${number}-[0-9a-f]{40}$`),
    );
    const requested = events("merge_group").find((e) => e.action === "checks_requested");
    expect(requested?.merge_group).toMatchObject({
      head_sha: entry?.group?.headSha,
      head_ref: `refs/heads/${entry?.group?.branch}`,
      base_ref: "refs/heads/main",
    });
    expect(events("pull_request").some((e) => e.action === "enqueued")).toBe(true);

    await env.sim.createCheckRun(fullName, {
      name: "ci",
      headSha: entry!.group!.headSha,
      conclusion: "success",
    });
    await env.sim.idle();
    await expect(env.sim.getBranchSha(fullName, "main")).resolves.toBe(entry!.group!.headSha);
    const pull = await env.sim.getPull(fullName, number);
    expect(pull).toMatchObject({
      merged: true,
      state: "closed",
      merge_commit_sha: entry!.group!.headSha,
    });
    expect(pull.merged_by?.login).toBe(env.sim.botLogin);
    expect(events("merge_group").find((e) => e.action === "destroyed")).toMatchObject({
      reason: "merged",
    });
    expect(env.sim.mergeQueueOf(fullName, "main")).toEqual([]);
  });

  it("dequeues a pull request whose merge group fails a required check", async () => {
    const { fullName, number, nodeId } = await queuedRepoWithPull("b.txt");
    const before = env.receiver.received.length;
    await env.octokit.graphql(ENQUEUE, { id: nodeId });
    await env.sim.idle();
    const [entry] = env.sim.mergeQueueOf(fullName, "main");
    await env.sim.createCheckRun(fullName, {
      name: "ci",
      headSha: entry!.group!.headSha,
      conclusion: "failure",
    });
    await env.sim.idle();
    const after = env.receiver.received
      .slice(before)
      .map((w) => JSON.parse(w.body) as { action: string; reason?: string });
    expect(after).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: "destroyed", reason: "dequeued" }),
        expect.objectContaining({ action: "dequeued", reason: "CI_FAILURE" }),
      ]),
    );
    expect(await env.sim.getPull(fullName, number)).toMatchObject({ state: "open", merged: false });
    expect(env.sim.mergeQueueOf(fullName, "main")).toEqual([]);
  });

  it("answers GraphQL errors like GitHub and records documents outside its schema", async () => {
    const name = `q${++repoCount}`;
    await env.sim.createRepository({
      owner,
      name,
      installationId: env.installationId,
      files: { "base.txt": "1\n" },
    });
    await env.sim.push(`${owner}/${name}`, { branch: "f", files: { "c.txt": "c\n" }, user: "bob" });
    const { pull } = await env.sim.openPullRequest(`${owner}/${name}`, {
      title: "No queue here",
      head: "f",
      user: "bob",
    });
    const refused = await env.octokit
      .graphql(ENQUEUE, { id: pull.node_id })
      .catch((error: { errors?: { type?: string }[] }) => error);
    expect(refused).toMatchObject({ errors: [{ type: "UNPROCESSABLE" }] });
    expect(env.sim.violations).toEqual([]);
    await env.octokit.graphql("query { viewer { login } }").catch(() => undefined);
    expect(env.sim.violations).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/Cannot query field "viewer"/) }),
    ]);
    env.sim.violations.length = 0;
  });
});
