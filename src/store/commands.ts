import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/** Where a command was written: an issue or PR comment, or a pull request review's body. */
export type CommandSource = "issue_comment" | "review";

export interface CommandKey {
  source: CommandSource;
  sourceId: number;
}

/** What one command line came to, stored with the comment and shown in the reply. */
export interface CommandResult {
  text: string;
  outcome: "done" | "refused";
  message: string;
  /** Text for the reply (`/help`, `/status`); `verdict` asks for the PR's merge verdict, read when posting. */
  output?: string;
  /** A label to put on the issue once the command is done (`/queue` adds the intake label). */
  addLabel?: string;
}

/**
 * Claims a comment for handling. False when it was handled before (a redelivery, or the same
 * comment arriving through another delivery): the caller must then do nothing.
 */
export async function insertCommand(
  db: Db,
  row: CommandKey & {
    repositoryId: number;
    installationId: number;
    number: number;
    isPullRequest: boolean;
    actor: string;
  },
): Promise<boolean> {
  const rows = resultRows(
    await db.execute(sql`
      insert into commands (source, source_id, repository_id, installation_id, number,
                            is_pull_request, actor)
      values (${row.source}, ${row.sourceId}, ${row.repositoryId}, ${row.installationId},
              ${row.number}, ${row.isPullRequest}, ${row.actor})
      on conflict (source, source_id) do nothing
      returning source_id`),
  );
  return rows.length > 0;
}

/** Stores the outcome and the feedback owed: the final reaction and, if any, a reply. */
export async function finishCommand(
  db: Db,
  key: CommandKey,
  done: { results: CommandResult[]; reaction: "+1" | "-1"; reply: string | null },
): Promise<void> {
  await db.execute(sql`
    update commands set results = ${JSON.stringify(done.results)}::jsonb,
                        reaction = ${done.reaction}, reply = ${done.reply}
    where source = ${key.source} and source_id = ${key.sourceId}`);
}

/** Comments with commands by one person in the last `windowMs` (the per-user rate limit). */
export async function countRecentCommands(
  db: Db,
  actor: string,
  windowMs: number,
): Promise<number> {
  const [row] = resultRows<{ n: number }>(
    await db.execute(sql`
      select count(*)::int as n from commands
      where actor = ${actor} and created_at > now() - ${`${windowMs} milliseconds`}::interval`),
  );
  return row?.n ?? 0;
}

export interface PendingFeedback {
  source: CommandSource;
  source_id: number;
  installation_id: number;
  repository_id: number;
  full_name: string;
  number: number;
  is_pull_request: boolean;
  actor: string;
  results: CommandResult[];
  reaction: "+1" | "-1" | null;
  reply: string | null;
  feedback_attempts: number;
}

/** Leases up to `limit` comments whose reactions and reply are not posted yet, for 60 s. */
export async function claimCommandFeedback(db: Db, limit: number): Promise<PendingFeedback[]> {
  return resultRows<PendingFeedback>(
    await db.execute(sql`
      with picked as (
        select source, source_id from commands
        where feedback_posted_at is null and reaction is not null
          and (feedback_lease_until is null or feedback_lease_until < now())
        order by created_at
        limit ${limit}
        for update skip locked
      )
      update commands c set feedback_lease_until = now() + interval '60 seconds'
      from picked, repositories r
      where c.source = picked.source and c.source_id = picked.source_id
        and r.repository_id = c.repository_id
      returning c.source, c.source_id, c.installation_id, c.repository_id, r.full_name, c.number,
                c.is_pull_request, c.actor, c.results, c.reaction, c.reply, c.feedback_attempts`),
  );
}

export async function markFeedbackPosted(db: Db, key: CommandKey): Promise<void> {
  await db.execute(sql`
    update commands set feedback_posted_at = now(), feedback_lease_until = null
    where source = ${key.source} and source_id = ${key.sourceId}`);
}

/** A failed post is retried after `retryInMs`; `final` gives up (the error stays on the row). */
export async function markFeedbackFailed(
  db: Db,
  key: CommandKey,
  error: string,
  retryInMs: number,
  final: boolean,
): Promise<void> {
  await db.execute(sql`
    update commands
    set feedback_attempts = feedback_attempts + 1, last_error = ${error},
        feedback_lease_until = now() + ${`${retryInMs} milliseconds`}::interval,
        feedback_posted_at = ${final ? sql`now()` : sql`null`}
    where source = ${key.source} and source_id = ${key.sourceId}`);
}

/** Hands claimed feedback back unposted and uncounted (shutdown): the next pass takes it at once. */
export async function releaseFeedback(db: Db, key: CommandKey): Promise<void> {
  await db.execute(sql`
    update commands set feedback_lease_until = null
    where source = ${key.source} and source_id = ${key.sourceId}`);
}

/** `/approve`: a standing approval of one head SHA (approving the same head twice is one). */
export async function addApproval(
  db: Db,
  a: { repositoryId: number; prNumber: number; sha: string; login: string },
): Promise<void> {
  await db.execute(sql`
    insert into approvals (repository_id, pr_number, sha, login)
    values (${a.repositoryId}, ${a.prNumber}, ${a.sha}, ${a.login})
    on conflict do nothing`);
}

/** `/unapprove`: ends every standing approval of one person on a pull request. */
export async function revokeApprovals(
  db: Db,
  pr: { repositoryId: number; prNumber: number },
  login: string,
): Promise<number> {
  const rows = resultRows(
    await db.execute(sql`
      update approvals set revoked_at = now()
      where repository_id = ${pr.repositoryId} and pr_number = ${pr.prNumber}
        and lower(login) = lower(${login}) and revoked_at is null
      returning approval_id`),
  );
  return rows.length;
}

/** Standing approvals of a pull request, on whatever SHA each was given. */
export async function standingApprovals(
  db: Db,
  pr: { repositoryId: number; prNumber: number },
): Promise<{ login: string; sha: string }[]> {
  return resultRows<{ login: string; sha: string }>(
    await db.execute(sql`
      select login, sha from approvals
      where repository_id = ${pr.repositoryId} and pr_number = ${pr.prNumber}
        and revoked_at is null
      order by approval_id`),
  );
}

/** `/freeze` and `/unfreeze`: one flag per repository, read by every merge verdict. */
export async function setFrozen(
  db: Db,
  repositoryId: number,
  frozen: { reason: string } | null,
): Promise<void> {
  await db.execute(sql`
    update repositories set frozen = ${frozen !== null}, frozen_reason = ${frozen?.reason ?? null},
                            updated_at = now()
    where repository_id = ${repositoryId}`);
}
