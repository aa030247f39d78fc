import { type SQL, sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";

/*
 * Daily cost budgets, enforced by the server: a repository whose attempts cost its budget today
 * (UTC), or whose installation's attempts cost the installation's budget, gets no new assignment
 * until the next UTC day, a larger budget, or `/budget <usd>`. Attempts already running finish.
 */

/** The start of the current UTC day, as a timestamptz. */
const TODAY = sql`(date_trunc('day', now() at time zone 'UTC') at time zone 'UTC')`;

/** The repository's budget today: `/budget`'s for today, else the config's; null for none. */
const REPO_BUDGET = sql`case when r.budget_set_on = (now() at time zone 'UTC')::date
                             then r.budget_set_usd else r.daily_budget_usd end`;

/**
 * `select repository_id, scope, spent_usd, budget_usd` of every repository paused by a budget
 * (the repository's own first, then its installation's). Today's spending is added up once, from
 * the attempts that ended since 00:00 UTC (an index range on `finished_at`); with no budget set
 * anywhere (the default) nothing is added up at all.
 */
export function pausedRepositoriesSql(installationBudgetUsd: number | undefined): SQL {
  const installationBudget = installationBudgetUsd ?? null;
  const over = sql`(b.budget is not null and coalesce(rs.usd, 0) >= b.budget)`;
  return sql`
    with spent as (
      select t.repository_id, t.installation_id, sum(a.cost_usd) as usd
      from attempts a join tasks t on t.task_id = a.task_id
      where a.finished_at >= ${TODAY}
        -- Refers to no row of the scan: PostgreSQL checks it once, before reading any attempt, in
        -- whatever plan it picks (a prepared statement's generic plan too), so with no budget set
        -- anywhere the day's attempts are not read at all.
        and (${installationBudget}::float8 is not null or exists (
          select 1 from repositories x
          where x.daily_budget_usd is not null or x.budget_set_on is not null))
        and (${installationBudget}::float8 is not null or exists (
          select 1 from repositories x
          where x.repository_id = t.repository_id
            and (x.daily_budget_usd is not null or x.budget_set_on is not null)))
      group by t.repository_id, t.installation_id
    )
    select r.repository_id,
           case when ${over} then 'repository' else 'installation' end as scope,
           case when ${over} then coalesce(rs.usd, 0) else coalesce(ins.usd, 0) end as spent_usd,
           case when ${over} then b.budget else ${installationBudget}::float8 end as budget_usd
    from repositories r
    cross join lateral (select ${REPO_BUDGET} as budget) b
    left join (select repository_id, sum(usd) as usd from spent group by repository_id) rs
      on rs.repository_id = r.repository_id
    left join (select installation_id, sum(usd) as usd from spent group by installation_id) ins
      on ins.installation_id = r.installation_id
    where ${over}
       or (${installationBudget}::float8 is not null
           and coalesce(ins.usd, 0) >= ${installationBudget}::float8)`;
}

export interface BudgetPause {
  scope: "repository" | "installation";
  spentUsd: number;
  budgetUsd: number;
}

/**
 * Why a repository's queue is paused today, or undefined when it is not. Targeted at the one
 * repository (the notifier asks for every queued task it writes about): without a budget for it
 * or its installation, one primary-key look-up and nothing is added up.
 */
export async function budgetPause(
  db: Db,
  repositoryId: number,
  installationBudgetUsd: number | undefined,
): Promise<BudgetPause | undefined> {
  const [repo] = resultRows<{ installation_id: number; budget: number | null }>(
    await db.execute(sql`
      select r.installation_id, ${REPO_BUDGET} as budget
      from repositories r where r.repository_id = ${repositoryId}`),
  );
  if (!repo) return undefined;
  if (repo.budget !== null) {
    const spent = await spentToday(db, sql`t.repository_id = ${repositoryId}`);
    const budget = Number(repo.budget);
    if (spent >= budget) return { scope: "repository", spentUsd: spent, budgetUsd: budget };
  }
  if (installationBudgetUsd === undefined) return undefined;
  const spent = await spentToday(db, sql`t.installation_id = ${repo.installation_id}`);
  return spent >= installationBudgetUsd
    ? { scope: "installation", spentUsd: spent, budgetUsd: installationBudgetUsd }
    : undefined;
}

/** What the attempts of the matching tasks that ended since 00:00 UTC cost. */
async function spentToday(db: Db, where: SQL): Promise<number> {
  const [row] = resultRows<{ usd: number | null }>(
    await db.execute(sql`
      select sum(a.cost_usd) as usd from attempts a join tasks t on t.task_id = a.task_id
      where a.finished_at >= ${TODAY} and ${where}`),
  );
  return Number(row?.usd ?? 0);
}

/** Remembers the config's `tasks.daily_budget_usd` (null for none), read at intake and reconcile. */
export async function rememberDailyBudget(
  db: Db,
  repositoryId: number,
  usd: number | undefined,
): Promise<void> {
  await db.execute(sql`
    update repositories set daily_budget_usd = ${usd ?? null}
    where repository_id = ${repositoryId} and daily_budget_usd is distinct from ${usd ?? null}`);
}

/**
 * `/budget <usd>`: the repository's budget for the rest of today (UTC). Its waiting tasks' status
 * comments are rewritten, since a pause may have begun or ended.
 */
export async function setTodaysBudget(db: Db, repositoryId: number, usd: number): Promise<void> {
  await db.execute(sql`
    update repositories set budget_set_usd = ${usd},
                            budget_set_on = (now() at time zone 'UTC')::date, updated_at = now()
    where repository_id = ${repositoryId}`);
  await touchWaitingStatus(db, sql`repository_id = ${repositoryId}`);
}

/**
 * After an attempt's cost is recorded: if that paused its repository (or installation), the
 * waiting tasks' status comments are rewritten to say so.
 */
export async function notePauseAfterAttempt(
  db: Db,
  taskId: string,
  installationBudgetUsd: number | undefined,
): Promise<void> {
  const [task] = resultRows<{ repository_id: number; installation_id: number }>(
    await db.execute(
      sql`select repository_id, installation_id from tasks where task_id = ${taskId}`,
    ),
  );
  if (!task) return;
  const pause = await budgetPause(db, Number(task.repository_id), installationBudgetUsd);
  if (!pause) return;
  await touchWaitingStatus(
    db,
    pause.scope === "repository"
      ? sql`repository_id = ${task.repository_id}`
      : sql`installation_id = ${task.installation_id}`,
  );
}

/** Bumps the status version of the queued tasks matching `where`, so their comments are redone. */
async function touchWaitingStatus(db: Db, where: SQL): Promise<void> {
  await db.execute(sql`
    update tasks set status_version = status_version + 1
    where state = 'queued' and ${where}`);
}
