import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/**
 * What Postgres knows of a repository that decides whether the GitHub edge's in-process caches
 * still hold: the default branch and its head as last seen (with the older commit whose config it
 * still has), and when permissions last changed.
 * Kept here rather than in one instance's memory because a webhook reaches one instance only.
 */
export interface RepositoryMarks {
  repositoryId: number;
  defaultBranch: string;
  headSha: string | null;
  /** An older commit whose config is the config at `headSha` (see `recordPushedHead`); or null. */
  configSha: string | null;
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
    config_sha: string | null;
    permissions_changed_at: string | null;
  }>(
    await db.execute(sql`
      select repository_id, default_branch, head_sha, config_sha, permissions_changed_at::text
      from repositories
      where full_name = ${fullName} and installation_id = ${installationId} and removed_at is null
      limit 1`),
  );
  if (!row) return undefined;
  return {
    repositoryId: Number(row.repository_id),
    defaultBranch: row.default_branch,
    headSha: row.head_sha,
    configSha: row.config_sha,
    permissionsChangedAt: row.permissions_changed_at ? new Date(row.permissions_changed_at) : null,
  };
}

/**
 * Records the head of a repository's default branch as read from GitHub (a dispatch, a config
 * load, reconciliation). Only for the branch stored as the default (a push to another branch
 * changes nothing cached); a renamed default branch is stored too. A head read says nothing about
 * what changed since the last one, so a moved head drops `config_sha`: the next load reads there.
 */
export async function recordDefaultHead(
  db: Db,
  head: { installationId: number; fullName: string; defaultBranch: string; headSha: string },
): Promise<void> {
  await db.execute(sql`
    update repositories
    set head_sha = ${head.headSha}, config_sha = null, default_branch = ${head.defaultBranch}
    where full_name = ${head.fullName} and installation_id = ${head.installationId}
      and head_sha is distinct from ${head.headSha}`);
}

/**
 * A `push` webhook moved the default branch from `before` to `after`. `carries` is the push's own
 * account that the config did not change (`pushCarriesConfig`). One statement, so concurrent
 * webhooks and merges see either the old row or the new one:
 * - the row's head is `before`: move to `after`, carrying `config_sha` (or `before` itself) when
 *   the push carries, null otherwise;
 * - the row's head is already `after` (Conveyor recorded its own merge first, or a redelivery):
 *   keep what that move decided when the push carries too, null when the push says otherwise;
 * - any other head (a webhook lost or late): move to `after` and read there (null).
 */
export async function recordPushedHead(
  db: Db,
  push: {
    installationId: number;
    fullName: string;
    defaultBranch: string;
    before: string;
    after: string;
    carries: boolean;
  },
): Promise<void> {
  await db.execute(sql`
    update repositories
    set config_sha = case
          when not ${push.carries}::boolean then null
          when head_sha = ${push.before} then coalesce(config_sha, ${push.before})
          when head_sha = ${push.after} then config_sha
          else null
        end,
        head_sha = ${push.after}, default_branch = ${push.defaultBranch}
    where full_name = ${push.fullName} and installation_id = ${push.installationId}
      and (head_sha is distinct from ${push.after} or (not ${push.carries}::boolean and config_sha is not null))`);
}

/**
 * A merge Conveyor made moved `branch` to `headSha`: recorded at once when that is the default
 * branch, so the next assignment (which keeps a head only while this mark names it) starts from
 * the merge rather than from the head before it while the `push` webhook is on its way.
 * `carryFrom` is the base tip the merger read when the merged change leaves the config alone
 * (`mergeCarriesConfig`): the config is carried only while the row's head is still that commit.
 * Without it (a merge-queue group may hold other pull requests) the next load reads at the merge.
 */
export async function recordMergedHead(
  db: Db,
  merge: { repositoryId: number; branch: string; headSha: string; carryFrom?: string | undefined },
): Promise<void> {
  const from = merge.carryFrom ?? null;
  await db.execute(sql`
    update repositories
    set config_sha = case
          when ${from}::text is not null and head_sha = ${from}::text
            then coalesce(config_sha, ${from}::text)
          else null
        end,
        head_sha = ${merge.headSha}
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
