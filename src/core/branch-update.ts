/** The parts of a commit (`GET /repos/{o}/{r}/git/commits/{sha}`) that say who made it and how. */
export interface CommitFacts {
  sha: string;
  parents: string[];
  committerEmail: string | undefined;
  /** `verification.verified`: GitHub checked the signature. */
  verified: boolean;
}

/** GitHub's committer address on the commits it makes itself (web merges, "Update branch"). */
export const GITHUB_COMMITTER_EMAIL = "noreply@github.com";

/**
 * Whether `commit` is the merge commit GitHub made for Conveyor's own update request
 * (`PUT …/pulls/{n}/update-branch` on `from`): exactly two parents, `from` first and a base tip
 * Conveyor knows (`bases`: the tip when it asked, the tip now) second, committed and signed by
 * GitHub. Anything else on the branch is someone else's push and is never adopted.
 */
export function isRequestedUpdate(
  commit: CommitFacts,
  request: { from: string; bases: readonly string[] },
): boolean {
  const [first, second] = commit.parents.map((p) => p.toLowerCase());
  const bases = request.bases.filter(Boolean).map((b) => b.toLowerCase());
  return (
    commit.parents.length === 2 &&
    first === request.from.toLowerCase() &&
    second !== undefined &&
    bases.includes(second) &&
    commit.verified &&
    commit.committerEmail?.toLowerCase() === GITHUB_COMMITTER_EMAIL
  );
}
