import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";

/** What a runner reported when an attempt ended: its `complete` or `fail` frame. */
export interface AttemptRecord {
  taskId: string;
  generation: number;
  runnerId: string;
  outcome: "complete" | "fail";
  failReason?: string | undefined;
  agent?: { adapter: string; model?: string | undefined } | undefined;
  stats?:
    | {
        cost_usd?: number | undefined;
        tokens?: number | undefined;
        input_tokens?: number | undefined;
        output_tokens?: number | undefined;
        cache_read_tokens?: number | undefined;
        cache_write_tokens?: number | undefined;
        turns?: number | undefined;
        duration_ms?: number | undefined;
      }
    | undefined;
}

/**
 * Records one finished attempt with the usage the runner reported at its end. Keyed by task and
 * generation: a frame the runner sends again (after a reconnect) overwrites the same row.
 */
export async function recordAttempt(db: Db, a: AttemptRecord): Promise<void> {
  const s = a.stats ?? {};
  await db.execute(sql`
    insert into attempts (task_id, generation, runner_id, outcome, fail_reason, adapter, model,
                          cost_usd, input_tokens, output_tokens, cache_read_tokens,
                          cache_creation_tokens, tokens, turns, duration_ms)
    values (${a.taskId}, ${a.generation}, ${a.runnerId}, ${a.outcome}, ${a.failReason ?? null},
            ${a.agent?.adapter ?? null}, ${a.agent?.model ?? null}, ${s.cost_usd ?? null},
            ${s.input_tokens ?? null}, ${s.output_tokens ?? null}, ${s.cache_read_tokens ?? null},
            ${s.cache_write_tokens ?? null}, ${s.tokens ?? null}, ${s.turns ?? null},
            ${s.duration_ms ?? null})
    on conflict (task_id, generation) do update set
      outcome = excluded.outcome, fail_reason = excluded.fail_reason, adapter = excluded.adapter,
      model = excluded.model, cost_usd = excluded.cost_usd, input_tokens = excluded.input_tokens,
      output_tokens = excluded.output_tokens, cache_read_tokens = excluded.cache_read_tokens,
      cache_creation_tokens = excluded.cache_creation_tokens, tokens = excluded.tokens,
      turns = excluded.turns, duration_ms = excluded.duration_ms, finished_at = now()`);
}
