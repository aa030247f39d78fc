import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { resultRows } from "../../db/client.ts";
import { issueNotices } from "../../db/schema.ts";

export interface NewNotice {
  dedupeKey: string;
  repositoryId: number;
  installationId: number;
  issueNumber: number;
  body: string;
}

/** Queues a comment once per dedupe key; returns false when it was queued before. */
export async function addNotice(db: Db, notice: NewNotice): Promise<boolean> {
  const rows = await db
    .insert(issueNotices)
    .values(notice)
    .onConflictDoNothing({ target: issueNotices.dedupeKey })
    .returning({ noticeId: issueNotices.noticeId });
  return rows.length > 0;
}

export interface PendingNotice {
  notice_id: number;
  installation_id: number;
  full_name: string;
  issue_number: number;
  body: string;
  attempts: number;
}

/** Leases up to `limit` unposted notices for 60 s, so only one notifier posts each. */
export async function claimNotices(db: Db, limit: number): Promise<PendingNotice[]> {
  return resultRows<PendingNotice>(
    await db.execute(sql`
      with picked as (
        select notice_id from issue_notices
        where posted_at is null and (lease_until is null or lease_until < now())
        order by notice_id
        limit ${limit}
        for update skip locked
      )
      update issue_notices n set lease_until = now() + interval '60 seconds'
      from picked, repositories r
      where n.notice_id = picked.notice_id and r.repository_id = n.repository_id
      returning n.notice_id, n.installation_id, r.full_name, n.issue_number, n.body, n.attempts`),
  );
}

export async function markNoticePosted(db: Db, noticeId: number, commentId: number): Promise<void> {
  await db.execute(sql`
    update issue_notices set posted_at = now(), comment_id = ${commentId}, lease_until = null
    where notice_id = ${noticeId}`);
}

/** Records a failed post; the lease doubles as the retry delay. `final` stops retrying. */
export async function markNoticeFailed(
  db: Db,
  noticeId: number,
  error: string,
  retryInMs: number,
  final: boolean,
): Promise<void> {
  await db.execute(sql`
    update issue_notices
    set attempts = attempts + 1, last_error = ${error},
        lease_until = now() + ${`${retryInMs} milliseconds`}::interval,
        posted_at = ${final ? sql`now()` : sql`null`}
    where notice_id = ${noticeId}`);
}

/** Hands a claimed notice back unposted and uncounted (shutdown): the next pass takes it at once. */
export async function releaseNotice(db: Db, noticeId: number): Promise<void> {
  await db.execute(sql`update issue_notices set lease_until = null where notice_id = ${noticeId}`);
}
