import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import type { WaitingWork } from "../core/runner-demand.ts";
import { isRunnerJob } from "./task-kinds.ts";

/**
 * Tasks waiting for a runner now (queued and due: not in backoff), grouped by the capabilities
 * they need and their repository. With `waitedSeconds`, only those queued at least that long.
 */
export async function waitingWork(
  db: Db,
  options: { waitedSeconds?: number } = {},
): Promise<WaitingWork[]> {
  const waited = Math.max(0, options.waitedSeconds ?? 0);
  const rows = resultRows<{ capabilities: string[]; repo: string; count: number }>(
    await db.execute(sql`
      select t.capabilities, r.full_name as repo, count(*)::int as count
      from tasks t join repositories r on r.repository_id = t.repository_id
      where t.state = 'queued' and t.available_at <= now()
        and t.enqueued_at <= now() - ${`${waited} seconds`}::interval
        -- A best-of-N task waiting for its round is never given to a runner; its candidates are.
        and ${isRunnerJob("t")}
      group by t.capabilities, r.full_name`),
  );
  return rows.map((row) => ({
    capabilities: [...row.capabilities].sort(),
    repo: row.repo,
    count: Number(row.count),
  }));
}
