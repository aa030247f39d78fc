import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import {
  type AttemptFact,
  OUTCOME_TIERS,
  type OutcomeReport,
  type OutcomeTier,
  summarizeOutcomes,
  type TaskOutcomeFact,
} from "../core/outcome-analytics.ts";

/**
 * The facts behind the outcome analytics for the attempts that ended in the last `windowMs`
 * (database clock): every such attempt, and every task whose last attempt is one of them, with
 * how it ended. `src/core/outcome-analytics.ts` adds them up.
 */
export async function readOutcomeReport(db: Db, windowMs: number): Promise<OutcomeReport> {
  const since = sql`now() - ${`${Math.floor(windowMs)} milliseconds`}::interval`;
  const attempts = resultRows<{
    task_id: string;
    adapter: string | null;
    model: string | null;
    runner: string;
    cost_usd: number | null;
    tokens: string | number | null;
    picked: boolean | null;
  }>(
    await db.execute(sql`
      select a.task_id, a.adapter, a.model, coalesce(r.name, 'unknown') as runner, a.cost_usd,
             a.tokens,
             -- A best-of-N candidate of a decided round: kept for the pull request or not.
             case when c.decided_at is not null then c.picked end as picked
      from attempts a left join runners r on r.runner_id = a.runner_id
      left join candidates c on c.candidate_task_id = a.task_id
      where a.finished_at >= ${since}`),
  );
  const outcomes = resultRows<{
    task_id: string;
    adapter: string | null;
    model: string | null;
    runner: string;
    merged: boolean;
    queue_to_merge_seconds: number | null;
    ci_fixes: number;
    review_fixes: number;
    tier: string | null;
    left_for_human: boolean;
  }>(
    await db.execute(sql`
      select t.task_id, a.adapter, a.model, coalesce(r.name, 'unknown') as runner,
             t.state = 'merged' as merged,
             -- Queued (the task's creation) to merged (its first move to 'merged').
             extract(epoch from (m.at - t.created_at))::float8 as queue_to_merge_seconds,
             t.ci_fixes, t.review_fixes,
             -- The merger keeps the latest verdict's tier in front of its digest.
             case when p.verdict_digest ~ '^[a-z_]+:[0-9]:' then split_part(p.verdict_digest, ':', 2)
             end as tier,
             (t.state = 'waiting_human' or coalesce(p.merged_by_hand, false)) as left_for_human
      from attempts a
      -- A best-of-N candidate kept for the pull request is credited with its task's outcome.
      left join candidates c
        on c.candidate_task_id = a.task_id and c.picked and c.decided_at is not null
      join tasks t on t.task_id = coalesce(c.task_id, a.task_id)
      left join runners r on r.runner_id = a.runner_id
      left join lateral (
        select min(e.at) as at from task_events e
        where e.task_id = t.task_id and e.to_state = 'merged' and t.state = 'merged'
      ) m on true
      left join lateral (
        select verdict_digest, merged_by_hand from pull_requests pr
        where pr.task_id = t.task_id order by pr.created_at desc limit 1
      ) p on true
      where a.finished_at >= ${since}
        -- Only the task's last attempt: the one its outcome belongs to.
        and a.generation = (select max(b.generation) from attempts b where b.task_id = a.task_id)
        -- ... unless the task made attempts of its own since (follow-ups): the last one counts.
        and (c.task_id is null
             or not exists (select 1 from attempts b where b.task_id = c.task_id))`),
  );
  const attemptFacts: AttemptFact[] = attempts.map((a) => ({
    taskId: a.task_id,
    adapter: a.adapter,
    model: a.model,
    runner: a.runner,
    costUsd: a.cost_usd === null ? null : Number(a.cost_usd),
    tokens: a.tokens === null ? null : Number(a.tokens),
    picked: a.picked === null ? undefined : Boolean(a.picked),
  }));
  const outcomeFacts: TaskOutcomeFact[] = outcomes.map((o) => ({
    taskId: o.task_id,
    adapter: o.adapter,
    model: o.model,
    runner: o.runner,
    merged: Boolean(o.merged),
    queueToMergeSeconds:
      o.queue_to_merge_seconds === null ? null : Math.round(Number(o.queue_to_merge_seconds)),
    ciFixes: Number(o.ci_fixes),
    reviewFixes: Number(o.review_fixes),
    tier: (OUTCOME_TIERS as readonly string[]).includes(o.tier ?? "")
      ? (o.tier as OutcomeTier)
      : null,
    leftForHuman: Boolean(o.left_for_human),
  }));
  return summarizeOutcomes(attemptFacts, outcomeFacts);
}
