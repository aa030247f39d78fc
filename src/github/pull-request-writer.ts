import type { ProbotOctokit } from "probot";
import { checkChangePaths, PullRequestRefused } from "../core/change-set-rules.ts";
import type {
  BranchWriteInput,
  BranchWritten,
  PullRequestWriteInput,
  PullRequestWritten,
} from "../core/ports.ts";
import { untrustedInline } from "../core/pull-request-body.ts";
import type { ChangeSet } from "../protocol/messages.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** Text files up to this size go inline in the tree request; larger ones become blobs first. */
const INLINE_TEXT_BYTES = 64 * 1024;
const WORKFLOWS_DIR = ".github/workflows";

type TreeEntry = {
  path: string;
  mode: "100644" | "100755" | "120000";
  type: "blob";
  sha?: string | null;
  content?: string;
};

/**
 * Why a change set may not be written at all, checked before any request to GitHub. Workflow paths
 * are refused here because GitHub refuses them anyway: an App needs the `workflows` permission to
 * create or update a ref whose change touches `.github/workflows/`, and Conveyor never requests it
 * (https://docs.github.com/rest/git/refs#update-a-reference). A path naming `.github` or
 * `.github/workflows` itself is refused too: deleting or replacing it would remove the workflows.
 */
export function refusalFor(input: {
  baseSha: string;
  changeSet: ChangeSet;
}): PullRequestRefused | undefined {
  const { changeSet } = input;
  if (changeSet.base_sha !== input.baseSha) {
    return new PullRequestRefused(
      `the change set was made on ${changeSet.base_sha.slice(0, 12)}, but the task was assigned on ${input.baseSha.slice(0, 12) || "no commit"}`,
    );
  }
  const paths = changeSet.files.map((file) => file.path);
  const problems = checkChangePaths(changeSet.files);
  if (problems.length > 0) {
    const listed = problems
      .slice(0, 10)
      .map((p) => `${untrustedInline(p.path, 200)} ${p.problem}`)
      .join("; ");
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : "";
    return new PullRequestRefused(
      `the change set has paths Conveyor does not write: ${listed}${more}`,
      [...new Set(problems.map((p) => p.path))],
    );
  }
  // Case-insensitive, failing closed: `.GitHub/Workflows/x.yml` is refused as well.
  const workflows = paths.filter((path) => {
    const lower = path.toLowerCase();
    return lower === ".github" || lower === WORKFLOWS_DIR || lower.startsWith(`${WORKFLOWS_DIR}/`);
  });
  if (workflows.length > 0) {
    const listed = workflows
      .slice(0, 5)
      .map((p) => `\`${p}\``)
      .join(", ");
    const more = workflows.length > 5 ? ", …" : "";
    return new PullRequestRefused(
      `the change touches GitHub Actions workflows (${listed}${more}); GitHub lets an App change \`.github/workflows/\` only with the \`workflows\` permission, which Conveyor never requests, so a person has to make this change`,
      workflows,
    );
  }
  return undefined;
}

/**
 * Publishes a change set as one commit on `input.branch` and one open pull request for it.
 *
 * Every step looks before it writes, so a retry after any failure converges on the same result:
 * the tree is content-addressed; if the branch already holds a commit with this tree, this message
 * and `baseSha` as its only parent, it is reused; otherwise a new commit is made and the branch is
 * created or force-updated (a rerun replaces the branch); an open pull request for the branch is
 * updated in place (its number stays) or one is opened. Labels are added, never created apart.
 *
 * With `firstWrite` (no pull request was ever recorded for the issue) the branch and the pull
 * request are created without looking first. When the change set also fits one GraphQL request
 * ({@link canPublishInOneRequest}) and `repositoryId` is given, branch, commit and pull request are
 * written by one mutation ({@link PUBLISH}) instead of four REST writes; if its answer has any error,
 * the REST path runs with its look-ups, which converge on whatever the mutation did write. On the
 * REST path GitHub's "Reference already exists" and "A pull request already exists" answers send a
 * first write back to the look-ups, so a publish that crashed before it was recorded still
 * converges (on an equal commit, the branch moved to it).
 *
 * Throws {@link PullRequestRefused} without sending anything when {@link refusalFor} objects. GitHub's
 * errors propagate (callers decide about retries), except a missing branch and the "A pull request
 * already exists" race on create, which falls back to the pull request that won.
 */
export async function writePullRequest(
  octokit: Octokit,
  input: PullRequestWriteInput,
  trees?: CommitTrees,
  nodeIds?: RepositoryNodeIds,
): Promise<PullRequestWritten> {
  let write = input;
  if (input.firstWrite && input.repositoryId !== undefined && canPublishInOneRequest(input)) {
    const refused = refusalFor(input);
    if (refused) throw refused;
    const published = await publishInOneRequest(octokit, input, input.repositoryId, nodeIds);
    if (published) {
      await addMissingLabels(octokit, input, published.prNumber, []);
      return published;
    }
    // Something may have been written (the branch, the commit, the pull request): look first.
    write = { ...input, firstWrite: false };
  }
  const { commitSha, commitReused } = await writeBranch(octokit, write, trees);
  const { pull, created } = await ensurePullRequest(octokit, write);
  await addMissingLabels(
    octokit,
    write,
    pull.number,
    pull.labels.map((label) => label.name),
  );
  return {
    headSha: commitSha,
    prNumber: pull.number,
    prUrl: pull.html_url,
    created,
    commitSha,
    commitReused,
  };
}

async function addMissingLabels(
  octokit: Octokit,
  input: PullRequestWriteInput,
  prNumber: number,
  labels: string[],
) {
  const have = new Set(labels.map((label) => label.toLowerCase()));
  const missing = input.labels.filter((label) => !have.has(label.toLowerCase()));
  if (missing.length === 0) return;
  await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
    owner: input.owner,
    repo: input.repo,
    issue_number: prNumber,
    labels: missing,
  });
}

/**
 * The most file content (decoded bytes) a first publish sends in its one GraphQL request. GitHub
 * documents no size limit for a GraphQL request, but ends any request that takes more than 10
 * seconds (https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#timeouts),
 * and the mutation carries every file whole, base64-encoded (a third larger), in one JSON document.
 * 1 MiB keeps that document small next to both; a larger change set goes the REST way, its large
 * files one blob request each.
 */
export const ONE_REQUEST_MAX_BYTES = 1024 * 1024;

/**
 * Branch, commit and pull request in one document: GitHub runs a mutation's top-level fields one
 * after another, in order (https://docs.github.com/en/graphql/reference/mutations#createref,
 * #createcommitonbranch, #createpullrequest). The commit is made on the new branch's head, which
 * must still be the base (`expectedHeadOid`); GitHub makes and signs it as the App, as the REST
 * path without an author does.
 */
export const PUBLISH = `mutation($repositoryId: ID!, $ref: String!, $base: GitObjectID!,
  $branch: CommittableBranch!, $message: CommitMessage!, $changes: FileChanges!,
  $baseRefName: String!, $headRefName: String!, $title: String!, $body: String!) {
  createRef(input: {repositoryId: $repositoryId, name: $ref, oid: $base}) { ref { name } }
  createCommitOnBranch(input: {branch: $branch, expectedHeadOid: $base, message: $message,
    fileChanges: $changes}) { commit { oid } }
  createPullRequest(input: {repositoryId: $repositoryId, baseRefName: $baseRefName,
    headRefName: $headRefName, title: $title, body: $body, maintainerCanModify: false}) {
    pullRequest { number url }
  }
}`;

const REPOSITORY_ID = `query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) { id databaseId }
}`;

interface PublishAnswer {
  createCommitOnBranch: { commit: { oid: string } | null } | null;
  createPullRequest: { pullRequest: { number: number; url: string } | null } | null;
}

/**
 * A commit message as `CommitMessage` takes it (`headline`, `body`), when GitHub's
 * `headline + "\n\n" + body` gives it back unchanged: one line, or one line, a blank line and the
 * rest. Any other message (a second line right after the first) goes the REST way, where it is
 * written verbatim, so that a retry recognises its own commit by the message.
 */
export function commitMessageParts(
  message: string,
): { headline: string; body?: string } | undefined {
  const text = message.trimEnd();
  const newline = text.indexOf("\n");
  if (newline === -1) return text.trim() === "" ? undefined : { headline: text };
  const headline = text.slice(0, newline);
  const body = text.slice(newline + 2);
  if (headline.trim() === "" || text.slice(newline, newline + 2) !== "\n\n") return undefined;
  if (body.startsWith("\n") || headline.includes("\r")) return undefined;
  return { headline, body };
}

/**
 * Whether a change set can be published by {@link PUBLISH}: every file a regular file (mode 100644;
 * `createCommitOnBranch` writes nothing else: no executable bit, symlink or submodule), at most
 * {@link ONE_REQUEST_MAX_BYTES} of content, and a message `CommitMessage` can carry unchanged.
 */
export function canPublishInOneRequest(input: { changeSet: ChangeSet }): boolean {
  const { changeSet } = input;
  if (!commitMessageParts(changeSet.message)) return false;
  let bytes = 0;
  for (const file of changeSet.files) {
    if (file.mode !== "100644") return false;
    if (file.action === "delete") continue;
    bytes +=
      file.encoding === "base64"
        ? Math.floor((file.content.length * 3) / 4)
        : Buffer.byteLength(file.content, "utf8");
    if (bytes > ONE_REQUEST_MAX_BYTES) return false;
  }
  return true;
}

/**
 * {@link PUBLISH}, answered in full; undefined when the answer (or the read of the repository's
 * node id) has any error: the caller then takes the REST path, whose look-ups see what was written.
 */
async function publishInOneRequest(
  octokit: Octokit,
  input: PullRequestWriteInput,
  repositoryId: number,
  nodeIds: RepositoryNodeIds | undefined,
): Promise<PullRequestWritten | undefined> {
  const message = commitMessageParts(input.changeSet.message);
  if (!message) return undefined;
  let answer: PublishAnswer;
  try {
    const nodeId = await repositoryNodeId(octokit, input, repositoryId, nodeIds);
    if (!nodeId) return undefined;
    const additions = [];
    const deletions = [];
    for (const file of input.changeSet.files) {
      if (file.action === "delete") {
        deletions.push({ path: file.path });
        continue;
      }
      const bytes = Buffer.from(file.content, file.encoding === "base64" ? "base64" : "utf8");
      additions.push({ path: file.path, contents: bytes.toString("base64") });
    }
    answer = await octokit.graphql<PublishAnswer>(PUBLISH, {
      repositoryId: nodeId,
      ref: `refs/heads/${input.branch}`,
      base: input.baseSha,
      branch: { repositoryNameWithOwner: `${input.owner}/${input.repo}`, branchName: input.branch },
      message,
      changes: { additions, deletions },
      baseRefName: input.defaultBranch,
      headRefName: input.branch,
      title: input.title,
      body: input.body,
    });
  } catch {
    // GitHub's errors (the branch or pull request exists, a stale head, a refused path) and
    // transport failures alike: what was written, if anything, the REST path finds.
    return undefined;
  }
  const commitSha = answer.createCommitOnBranch?.commit?.oid;
  const pull = answer.createPullRequest?.pullRequest;
  if (!commitSha || !pull) return undefined;
  return {
    headSha: commitSha,
    prNumber: pull.number,
    prUrl: pull.url,
    created: true,
    commitSha,
    commitReused: false,
  };
}

/**
 * The repository's GraphQL node id, read once per repository and kept by GitHub's numeric id
 * (the two never change); undefined when the name now names another repository (a rename).
 */
async function repositoryNodeId(
  octokit: Octokit,
  input: PullRequestWriteInput,
  repositoryId: number,
  nodeIds: RepositoryNodeIds | undefined,
): Promise<string | undefined> {
  const key = String(repositoryId);
  const kept = nodeIds?.get(key);
  if (kept) return kept;
  const { repository } = await octokit.graphql<{
    repository: { id: string; databaseId: number | null } | null;
  }>(REPOSITORY_ID, { owner: input.owner, name: input.repo });
  if (!repository || repository.databaseId !== repositoryId) return undefined;
  nodeIds?.set(key, repository.id);
  return repository.id;
}

/**
 * The commit half of {@link writePullRequest}: the change set as one commit on `input.branch`
 * (parent `baseSha`), reused when the branch already holds it, the branch created or force-moved.
 * A best-of-N candidate's branch is written with this alone (it has no pull request).
 */
export async function writeBranch(
  octokit: Octokit,
  input: BranchWriteInput,
  trees?: CommitTrees,
): Promise<BranchWritten> {
  const refused = refusalFor(input);
  if (refused) throw refused;
  const { owner, repo } = input;

  const baseTree = await treeOfCommit(octokit, input, trees);
  const entries = await treeEntries(octokit, input);
  const { data: tree } = await octokit.request("POST /repos/{owner}/{repo}/git/trees", {
    owner,
    repo,
    base_tree: baseTree,
    tree: entries,
  });

  // A first write has nothing to look for: it writes and looks only when GitHub says the branch
  // (or the pull request) exists after all (a publish that crashed before it was recorded).
  const current = input.firstWrite ? undefined : await branchHead(octokit, input);
  let commitSha: string | undefined;
  if (current) {
    const { data: head } = await octokit.request(
      "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
      { owner, repo, commit_sha: current },
    );
    const sameChange =
      head.tree.sha === tree.sha &&
      head.parents.length === 1 &&
      head.parents[0]?.sha === input.baseSha &&
      head.message.trimEnd() === input.changeSet.message.trimEnd();
    if (sameChange) commitSha = head.sha;
  }
  const commitReused = commitSha !== undefined;
  if (!commitSha) {
    // No author or committer: GitHub then attributes the commit to the App and signs it.
    const { data: commit } = await octokit.request("POST /repos/{owner}/{repo}/git/commits", {
      owner,
      repo,
      message: input.changeSet.message,
      tree: tree.sha,
      parents: [input.baseSha],
    });
    commitSha = commit.sha;
    await moveBranch(octokit, input, commitSha, current !== undefined);
  }
  return { headSha: commitSha, commitSha, commitReused };
}

/** Deletes a branch; one that is already gone is fine. */
export async function deleteBranch(
  octokit: Octokit,
  input: { owner: string; repo: string; branch: string },
): Promise<void> {
  try {
    await octokit.request("DELETE /repos/{owner}/{repo}/git/refs/{ref}", {
      owner: input.owner,
      repo: input.repo,
      ref: `heads/${input.branch}`,
    });
  } catch (error) {
    // 422 "Reference does not exist" (GitHub's answer for a ref already deleted), or 404.
    if (status(error) !== 422 && status(error) !== 404) throw error;
  }
}

/**
 * The tree of each commit a pull request was written on, per repository. A commit's tree never
 * changes (the SHA names the content), so this needs no invalidation: tasks assigned on the same
 * base share one read of it.
 */
export interface CommitTrees {
  get(key: string): string | undefined;
  set(key: string, treeSha: string): void;
}

/** GitHub's repository ids (as strings) to their GraphQL node ids; neither ever changes. */
export type RepositoryNodeIds = CommitTrees;

export function createRepositoryNodeIds(maxEntries = 500): RepositoryNodeIds {
  return createCommitTrees(maxEntries);
}

export function createCommitTrees(maxEntries = 500): CommitTrees {
  const trees = new Map<string, string>();
  return {
    get: (key) => trees.get(key),
    set(key, treeSha) {
      trees.delete(key);
      trees.set(key, treeSha);
      while (trees.size > maxEntries) {
        const oldest = trees.keys().next().value;
        if (oldest === undefined) break;
        trees.delete(oldest);
      }
    },
  };
}

async function treeOfCommit(
  octokit: Octokit,
  input: BranchWriteInput,
  trees: CommitTrees | undefined,
): Promise<string> {
  const key = `${input.owner}/${input.repo}@${input.baseSha}`.toLowerCase();
  const kept = trees?.get(key);
  if (kept) return kept;
  const { data: base } = await octokit.request(
    "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
    { owner: input.owner, repo: input.repo, commit_sha: input.baseSha },
  );
  // Only a commit GitHub answered for by that SHA is kept.
  if (base.sha === input.baseSha) trees?.set(key, base.tree.sha);
  return base.tree.sha;
}

/**
 * Tree entries for the change set. UTF-8 text goes inline unless large; base64 content always
 * goes through a blob, since tree `content` is taken as UTF-8 text. Identical contents share a blob.
 */
async function treeEntries(octokit: Octokit, input: BranchWriteInput): Promise<TreeEntry[]> {
  const blobs = new Map<string, string>();
  const entries: TreeEntry[] = [];
  for (const file of input.changeSet.files) {
    const { path, mode } = file;
    if (file.action === "delete") {
      entries.push({ path, mode, type: "blob", sha: null });
      continue;
    }
    if (file.encoding === "utf8" && Buffer.byteLength(file.content, "utf8") <= INLINE_TEXT_BYTES) {
      entries.push({ path, mode, type: "blob", content: file.content });
      continue;
    }
    const encoding = file.encoding === "base64" ? "base64" : "utf-8";
    const key = `${encoding}:${file.content}`;
    let sha = blobs.get(key);
    if (!sha) {
      const { data } = await octokit.request("POST /repos/{owner}/{repo}/git/blobs", {
        owner: input.owner,
        repo: input.repo,
        content: file.content,
        encoding,
      });
      sha = data.sha;
      blobs.set(key, sha);
    }
    entries.push({ path, mode, type: "blob", sha });
  }
  return entries;
}

const status = (error: unknown) => (error as { status?: number }).status;

async function branchHead(octokit: Octokit, input: BranchWriteInput) {
  try {
    const { data } = await octokit.request("GET /repos/{owner}/{repo}/git/ref/{ref}", {
      owner: input.owner,
      repo: input.repo,
      ref: `heads/${input.branch}`,
    });
    return data.object.sha;
  } catch (error) {
    if (status(error) === 404) return undefined;
    throw error;
  }
}

/** Creates the branch, or force-moves it: a rerun replaces what an earlier attempt pushed. */
async function moveBranch(octokit: Octokit, input: BranchWriteInput, sha: string, exists: boolean) {
  const { owner, repo } = input;
  if (!exists) {
    try {
      await octokit.request("POST /repos/{owner}/{repo}/git/refs", {
        owner,
        repo,
        ref: `refs/heads/${input.branch}`,
        sha,
      });
      return;
    } catch (error) {
      // Someone created the branch since we looked (422 "Reference already exists"): move it.
      if (status(error) !== 422 || (await branchHead(octokit, input)) === undefined) throw error;
    }
  }
  await octokit.request("PATCH /repos/{owner}/{repo}/git/refs/{ref}", {
    owner,
    repo,
    ref: `heads/${input.branch}`,
    sha,
    force: true,
  });
}

async function findOpenPullRequest(octokit: Octokit, input: PullRequestWriteInput) {
  const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls", {
    owner: input.owner,
    repo: input.repo,
    head: `${input.owner}:${input.branch}`,
    state: "open",
    per_page: 100,
  });
  // GitHub allows one open pull request per head and base; the oldest one is Conveyor's.
  return data.sort((a, b) => a.number - b.number)[0];
}

const isAlreadyExists = (error: unknown) =>
  status(error) === 422 &&
  JSON.stringify((error as { response?: { data?: unknown } }).response?.data ?? "").includes(
    "A pull request already exists",
  );

/** Updates the branch's open pull request in place, or opens one. */
async function ensurePullRequest(octokit: Octokit, input: PullRequestWriteInput) {
  const { owner, repo, title, body } = input;
  let existing = input.firstWrite ? undefined : await findOpenPullRequest(octokit, input);
  if (!existing) {
    try {
      const { data } = await octokit.request("POST /repos/{owner}/{repo}/pulls", {
        owner,
        repo,
        title,
        body,
        head: input.branch,
        base: input.defaultBranch,
        maintainer_can_modify: false,
      });
      return { pull: data, created: true };
    } catch (error) {
      // Another publish of the same task opened it between our look-up and our create.
      if (!isAlreadyExists(error)) throw error;
      existing = await findOpenPullRequest(octokit, input);
      if (!existing) throw error;
    }
  }
  if (existing.title === title && (existing.body ?? "") === body) {
    return { pull: existing, created: false };
  }
  const { data } = await octokit.request("PATCH /repos/{owner}/{repo}/pulls/{pull_number}", {
    owner,
    repo,
    pull_number: existing.number,
    title,
    body,
  });
  return { pull: data, created: false };
}
