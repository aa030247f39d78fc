import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { hashApiToken } from "../../src/store/api-tokens.ts";
import { hashRunnerToken } from "../../src/store/runners.ts";

/**
 * Puts rows in every table of `db/schema.ts`, with the values that break careless round trips:
 * microsecond timestamps, nulls, quotes, newlines and emoji, arrays, nested JSON, ids past 2^32.
 * Returns the ids tests refer to.
 */
export async function seedEveryTable(database: Database) {
  const db = database.db;
  const repositoryId = 9_007_199_254; // past 2^32, as GitHub ids are
  const taskId = randomUUID();
  const deadTaskId = randomUUID();
  const runnerId = randomUUID();
  const tokenId = randomUUID();
  const awkward = `Line "one"\nline 'two'\ttab \\ backslash — ünïcödé 🚀 {"not": "json"}`;
  await db.execute(sql`
    insert into repositories (repository_id, installation_id, full_name, default_branch, private,
                              frozen, frozen_reason, daily_budget_usd, budget_set_usd,
                              budget_set_on, created_at, updated_at)
    values (${repositoryId}, 77, 'acme/widgets', 'main', true, true, ${awkward}, 12.5, 0.1,
            '2026-01-02', '2026-01-02T03:04:05.123456Z', '2026-01-02T03:04:05.654321Z'),
           (12, 77, 'acme/gadgets', 'trunk', false, false, null, null, null, null, now(), now())`);
  await db.execute(sql`
    insert into runners (runner_id, name, token_hash, capabilities, tier, created_at, last_seen_at)
    values (${runnerId}, 'gpu-1', ${hashRunnerToken("cvr_seed")}, '{gpu,docker}', 'heavy',
            '2026-01-01T00:00:00.000001Z', null)`);
  await db.execute(sql`
    insert into tasks (task_id, repository_id, installation_id, issue_number, state, lane,
                       capabilities, generation, attempts, title, body, snapshot_hash, queued_by,
                       runner_id, limits, last_error, result, feedback, status_comment_id)
    values (${taskId}, ${repositoryId}, 77, 1, 'running', 'high', '{gpu}', 3, 1, ${awkward},
            ${`${awkward}\n\n- [ ] list`}, 'hash-1', 'octocat', ${runnerId},
            '{"wall_clock_minutes": 30, "verify": [["npm", "test"]]}', null,
            ${JSON.stringify({ summary: awkward, stats: { files: 2, cost: 0.1 + 0.2 } })}::jsonb,
            null, 4294967297),
           (${deadTaskId}, 12, 77, 2, 'dead', 'low', '{}', 1, 3, 'Gave up', '', 'hash-2',
            'maint', null, '{}', 'agent crashed', null, 'try harder', null)`);
  for (const [i, to] of ["queued", "assigned", "running"].entries()) {
    await db.execute(sql`
      insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
      values (${taskId}, 'octocat', ${i === 0 ? null : ["queued", "assigned"][i - 1]}::task_state,
              ${to}::task_state, ${i}, ${`step ${i}: ${awkward}`}, ${JSON.stringify({ i, nested: { a: [1, null, "x"] } })}::jsonb)`);
  }
  await db.execute(sql`
    insert into task_events (task_id, actor, from_state, to_state, generation, reason)
    values (${deadTaskId}, 'dispatcher', 'running', 'dead', 1, 'gave up after 3 of 3 attempts')`);
  await db.execute(sql`
    insert into change_sets (task_id, generation, runner_id, digest, base_sha, message, files, size_bytes)
    values (${taskId}, 3, ${runnerId}, 'sha256:abc', ${"a".repeat(40)}, ${awkward},
            ${JSON.stringify([{ path: "src/é.ts", action: "add", mode: "100644", encoding: "utf8", content: awkward }])}::jsonb, 120)`);
  await db.execute(sql`
    insert into attempts (task_id, generation, runner_id, adapter, model, stage, tool, turns, tokens,
                          input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)
    values (${taskId}, 3, ${runnerId}, 'claude', 'claude-sonnet-4-5', 'agent', ${awkward}, 14,
            9007199254740, 9007199254000, 740, 20480, 5120, ${0.1 + 0.2})`);
  // A finished attempt: its outcome, the fail's reason and its wall time.
  await db.execute(sql`
    insert into attempts (task_id, generation, runner_id, outcome, fail_reason, adapter, model,
                          cost_usd, input_tokens, output_tokens, cache_read_tokens,
                          cache_write_tokens, tokens, turns, duration_ms, started_at, finished_at)
    values (${deadTaskId}, 1, null, 'failed', ${awkward}, 'codex', null, 0.0421, 25612, 640, 20480,
            5120, 26252, 3, 12034, '2026-01-02T03:00:00.000001Z', '2026-01-02T03:04:05.123456Z')`);
  await db.execute(sql`
    insert into attempt_logs (task_id, generation, line)
    values (${taskId}, 3, ${awkward}), (${taskId}, 3, '[progress] Edit src/sizes.ts')`);
  await db.execute(sql`
    insert into pull_requests (repository_id, pr_number, task_id, branch, head_sha, url)
    values (${repositoryId}, 40, ${taskId}, 'conveyor/issue-1', ${"b".repeat(40)},
            'https://github.com/acme/widgets/pull/40')`);
  await db.execute(sql`
    insert into webhook_deliveries (delivery_id, event, action, installation_id, outcome)
    values ('d-1', 'issues', 'labeled', 77, 'created'), ('d-2', 'ping', null, null, 'ignored')`);
  await db.execute(sql`
    insert into settings (key, value) values ('alerts', '{"queue_growing": {"checks": 3}}'),
                                             ('log', '"debug"')`);
  await db.execute(sql`
    insert into issue_notices (dedupe_key, repository_id, installation_id, issue_number, body)
    values ('refused:1', ${repositoryId}, 77, 5, ${awkward})`);
  await db.execute(sql`
    insert into leases (name, holder, expires_at) values ('reconciler', 'host:1', now())`);
  await db.execute(sql`
    insert into api_tokens (token_id, name, role, token_hash, last_used_at)
    values (${tokenId}, 'grafana', 'read', ${hashApiToken("cva_seed")}, now()),
           (gen_random_uuid(), 'old', 'admin', ${hashApiToken("cva_old")}, null)`);
  await db.execute(sql`update api_tokens set revoked_at = now() where name = 'old'`);
  await db.execute(sql`
    insert into dashboard_sessions (session_hash, token_id, role, expires_at)
    values ('s1', ${tokenId}, 'read', now() + interval '1 hour'),
           ('s2', null, 'admin', now() + interval '2 hours')`);
  await db.execute(sql`
    insert into alerts (rule, severity, message, details)
    values ('no_runners', 'critical', 'No runner online', '{"since": "2026-01-01"}')`);
  await db.execute(sql`
    insert into alerts (rule, severity, status, message, cleared_at, acknowledged_by)
    values ('queue_growing', 'warning', 'cleared', 'Queue grew', now(), 'token:alice')`);
  await db.execute(sql`
    insert into metric_samples (metric, labels, sampled_at, value)
    values ('queue_depth', 'lane=normal', '2026-01-01T00:00:00.5Z', 3),
           ('queue_depth', '', '2026-01-01T00:00:00.5Z', 1.0e-7),
           ('utilisation', '', '2026-01-01T00:01:00Z', 0.3333333333333333)`);
  await db.execute(sql`
    insert into error_events (source, message, details) values ('notifier', ${awkward}, '{}')`);
  await db.execute(sql`
    insert into commands (source, source_id, repository_id, installation_id, number,
                          is_pull_request, actor, results, reaction, reply)
    values ('issue_comment', 123456789012, ${repositoryId}, 77, 1, false, 'maint',
            '[{"command": "/retry", "ok": true}]', '+1', null)`);
  const oneTimeId = randomUUID();
  await db.execute(sql`
    insert into runners (runner_id, name, token_hash, repos, one_time, expires_at, used_at,
                         revoked_at)
    values (${oneTimeId}, 'jit-0123456789ab', ${hashRunnerToken("cvr_seed_jit")}, '{acme/*}', true,
            '2026-01-01T01:00:00Z', '2026-01-01T00:00:01Z', '2026-01-01T00:10:00Z')`);
  await db.execute(sql`
    insert into runner_dispatches (repository_id, task_id, runner_id, workflow, state, error,
                                   settled_at)
    values (${repositoryId}, ${deadTaskId}, ${oneTimeId}, 'conveyor-runner.yml', 'expired',
            ${awkward}, now())`);
  await db.execute(sql`
    insert into approvals (repository_id, pr_number, sha, login)
    values (${repositoryId}, 40, ${"b".repeat(40)}, 'maint')`);
  await db.execute(sql`
    insert into merge_watches (task_id, repository_id, installation_id, issue_number, pr_number,
                               pr_title, base_ref, merge_sha, parent_sha, checks, tier,
                               revert_mode, state, failing, note, deadline_at)
    values (${deadTaskId}, 12, 77, 2, 41, ${awkward}, 'trunk', ${"c".repeat(40)}, null,
            '{ci / test,"lint, strict"}', 1, 'pr', 'red',
            ${JSON.stringify([{ name: "ci / test", result: "failure" }])}::jsonb, ${awkward},
            '2026-01-01T00:00:00.000001Z')`);
  await db.execute(sql`
    insert into candidates (task_id, round, k, candidate_task_id, adapter, branch, head_sha,
                            head_written_at, verification_passed, tier, checks, changed_lines,
                            cost_usd, failure, rank, picked, decided_at)
    values (${taskId}, 3, 2, ${deadTaskId}, 'codex', 'conveyor/issue-1-2', ${"d".repeat(40)},
            '2026-01-01T00:00:00.000001Z', false, 3, 'green', 12, ${0.1 + 0.2}, ${awkward}, 2,
            false, now())`);
  return { repositoryId, taskId, deadTaskId, runnerId, tokenId };
}
