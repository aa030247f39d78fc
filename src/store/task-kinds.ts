import { sql } from "drizzle-orm";

/*
 * The two ways of counting tasks (docs/merge-policy.md#best-of-n). A best-of-N task runs as n
 * candidate tasks (rows with `parent_task_id`), which share its issue:
 * - a top-level task is what people see as a task (one per issue run): the API's and the CLI's
 *   lists, the dashboard's lists and counts, `conveyor_tasks`. Candidates show under their task.
 * - a runner job is a row a runner may take: every task except a best-of-N task waiting for or
 *   running its round without a pull request (its candidates are the jobs). Queue positions, wait
 *   estimates, queue depth and age, and runner demand count these.
 * Both take the alias the tasks table has in the statement.
 */
export function isTopLevelTask(alias = "tasks") {
  return sql`${sql.raw(alias)}.parent_task_id is null`;
}

export function isRunnerJob(alias = "tasks") {
  const t = sql.raw(alias);
  return sql`not (${t}.best_of > 1 and ${t}.pr_number is null and ${t}.parent_task_id is null)`;
}
