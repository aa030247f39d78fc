import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/**
 * What Postgres knows of a repository that decides whether the GitHub edge's in-process caches
 * still hold: the default branch and its head as last seen, and when permissions last changed.
 * Kept here rather than in one instance's memory because a webhook reaches one instance only.
 */
export interface RepositoryMarks {
  repositoryId: number;
  defaultBranch: string;
  headSha: string | null;
  permissionsChangedAt: Date | null;
}

/** The marks of an installed repository by its full name, or undefined when it is not known. */
export async function readRepositoryMarks(
  db: Db,
  installationId: number,
  fullName: string,
): Promise<RepositoryMarks | undefined> {
  const [row] = resultRows<{
    repository_id: number;
    default_branch: string;
    head_sha: string | null;
    permissions_changed_at: string | null;
  }>(
    await db.execute(sql`
      select repository_id, default_branch, head_sha, permissions_changed_at::text
      from repositories
      where full_name = ${fullName} and installation_id = ${installationId} and removed_at is null
      limit 1`),
  );
  if (!row) return undefined;
  return {
    repositoryId: Number(row.repository_id),
    defaultBranch: row.default_branch,
    headSha: row.head_sha,
    permissionsChangedAt: row.permissions_changed_at ? new Date(row.permissions_changed_at) : null,
  };
}

/**
 * Records the head of a repository's default branch. Only for the branch stored as the default
 * (a push to another branch changes nothing cached); a renamed default branch is stored too.
 */
export async function recordDefaultHead(
  db: Db,
  head: { installationId: number; fullName: string; defaultBranch: string; headSha: string },
): Promise<void> {
  await db.execute(sql`
    update repositories set head_sha = ${head.headSha}, default_branch = ${head.defaultBranch}
    where full_name = ${head.fullName} and installation_id = ${head.installationId}
      and head_sha is distinct from ${head.headSha}`);
}

/**
 * A merge Conveyor made moved `branch` to `headSha`: recorded at once when that is the default
 * branch, so the next assignment (which keeps a head only while this mark names it) starts from
 * the merge rather than from the head before it while the `push` webhook is on its way.
 */
export async function recordMergedHead(
  db: Db,
  merge: { repositoryId: number; branch: string; headSha: string },
): Promise<void> {
  await db.execute(sql`
    update repositories set head_sha = ${merge.headSha}
    where repository_id = ${merge.repositoryId} and default_branch = ${merge.branch}
      and head_sha is distinct from ${merge.headSha}`);
}

/**
 * Marks permissions as changed: on one repository (`member`), or on every repository of an
 * installation (`organization`: an organization member added or removed changes base permissions
 * everywhere).
 */
export async function markPermissionsChanged(
  db: Db,
  scope: { repositoryId: number } | { installationId: number },
): Promise<void> {
  if ("repositoryId" in scope) {
    await db.execute(sql`
      update repositories set permissions_changed_at = clock_timestamp()
      where repository_id = ${scope.repositoryId}`);
  } else {
    await db.execute(sql`
      update repositories set permissions_changed_at = clock_timestamp()
      where installation_id = ${scope.installationId}`);
  }
}
