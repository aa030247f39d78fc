import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliOutput } from "../src/cli/cli-support.ts";
import { CSV_HEADER, runReportCommand } from "../src/cli/report-command.ts";
import { type ApiEnv, createApiAuth } from "../src/http/admin-auth.ts";
import { createOpsApi } from "../src/http/create-ops-api.ts";
import { createLogger } from "../src/logger.ts";
import { createApiToken } from "../src/store/api-tokens.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";

/**
 * `conveyor report` and `GET /api/analytics` over a seeded database whose expected numbers were
 * worked out by hand (below, next to the rows they come from).
 */

let database: TestDatabase;
let server: Server;
let url: string;
let readToken: string;

const R1 = "00000000-0000-4000-8000-0000000000a1"; // gpu-1
const R2 = "00000000-0000-4000-8000-0000000000a2"; // laptop
const task = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;

/**
 * T1 merged 1 h after queueing, tier 1, one CI fix: claude fails (g1, $0.10, 1,000 tokens) then
 *    succeeds (g2, $0.30, 3,000), both on gpu-1.
 * T2 merged 2 h after queueing, tier 2 approved, two review fixes: codex on laptop (g1, $0.05,
 *    500), then claude on gpu-1 (g2, $0.20, 2,000), which is credited with the merge.
 * T3 waiting for a person, tier 3, two CI fixes: codex on laptop ($0.15, 1,500).
 * T4 dead on its budget: claude on laptop ($0.60, 6,000).
 * T5 merged by a person 4 h after queueing, tier 2: codex on laptop ($0.10, 1,000).
 * T6 merged, but its only attempt ended 9 days ago: outside a 7-day window.
 * T7 in review without a verdict: the `command` adapter on gpu-1, no usage reported.
 */
async function seed() {
  const db = database.db;
  await db.execute(sql`
    insert into repositories (repository_id, installation_id, full_name)
    values (1, 1, 'acme/widgets')`);
  await db.execute(sql`
    insert into runners (runner_id, name, token_hash)
    values (${R1}, 'gpu-1', 'h1'), (${R2}, 'laptop', 'h2')`);
  const tasks: [number, string, string, number, number][] = [
    // n, state, queued (ago), ci fixes, review fixes
    [1, "merged", "3 days", 1, 0],
    [2, "merged", "2 days", 0, 2],
    [3, "waiting_human", "1 day", 2, 0],
    [4, "dead", "1 day", 0, 0],
    [5, "merged", "5 days", 0, 0],
    [6, "merged", "10 days", 0, 0],
    [7, "review", "1 hour", 0, 0],
  ];
  for (const [n, state, ago, ci, review] of tasks) {
    await db.execute(sql`
      insert into tasks (task_id, repository_id, installation_id, issue_number, state, title,
                         snapshot_hash, queued_by, created_at, ci_fixes, review_fixes)
      values (${task(n)}, 1, 1, ${n}, ${state}::task_state, ${`Task ${n}`}, 'h', 'octocat',
              now() - ${ago}::interval, ${ci}, ${review})`);
  }
  // Merges, seconds after queueing: 3,600, 7,200, 14,400 (and T6's, outside the window).
  for (const [n, after] of [
    [1, 3600],
    [2, 7200],
    [5, 14400],
    [6, 600],
  ] as const) {
    await db.execute(sql`
      insert into task_events (task_id, at, actor, from_state, to_state, generation, reason)
      select task_id, created_at + ${`${after} seconds`}::interval, 'merger', 'merging', 'merged',
             1, 'merged'
      from tasks where task_id = ${task(n)}`);
  }
  const pulls: [number, string | null, boolean][] = [
    [1, "merge:1:aaa", false],
    [2, "merge:2:bbb", false],
    [3, "blocked:3:ccc", false],
    [5, "approve:2:ddd", true],
    [7, null, false],
  ];
  for (const [n, digest, byHand] of pulls) {
    await db.execute(sql`
      insert into pull_requests (repository_id, pr_number, task_id, branch, head_sha, url,
                                 verdict_digest, merged_by_hand)
      values (1, ${100 + n}, ${task(n)}, ${`conveyor/issue-${n}`}, ${"a".repeat(40)},
              ${`https://github.com/acme/widgets/pull/${100 + n}`}, ${digest}, ${byHand})`);
  }
  const claude = ["claude", "claude-sonnet-4-5"] as const;
  const codex = ["codex", "gpt-5"] as const;
  const attempts: [
    number,
    number,
    string,
    readonly [string, string | null],
    string,
    number | null,
    number | null,
    string,
  ][] = [
    [1, 1, R1, claude, "failed", 0.1, 1000, "3 days"],
    [1, 2, R1, claude, "completed", 0.3, 3000, "3 days"],
    [2, 1, R2, codex, "failed", 0.05, 500, "2 days"],
    [2, 2, R1, claude, "completed", 0.2, 2000, "2 days"],
    [3, 1, R2, codex, "completed", 0.15, 1500, "1 day"],
    [4, 1, R2, claude, "failed", 0.6, 6000, "1 day"],
    [5, 1, R2, codex, "completed", 0.1, 1000, "5 days"],
    [6, 1, R1, claude, "completed", 5, 50000, "9 days"],
    [7, 1, R1, ["command", null], "completed", null, null, "1 hour"],
  ];
  for (const [n, generation, runner, [adapter, model], outcome, cost, tokens, ago] of attempts) {
    await db.execute(sql`
      insert into attempts (task_id, generation, runner_id, outcome, adapter, model, cost_usd,
                            tokens, finished_at)
      values (${task(n)}, ${generation}, ${runner}, ${outcome}, ${adapter}, ${model}, ${cost},
              ${tokens}, now() - ${ago}::interval)`);
  }
}

const EXPECTED = {
  by_agent: [
    {
      adapter: "claude",
      model: "claude-sonnet-4-5",
      tasks: 3, // T1, T2, T4
      attempts: 4,
      merged: 2, // T1, T2 (T2's last attempt was claude's)
      merged_rate: 0.6667,
      median_queue_to_merge_seconds: 5400, // (3,600 + 7,200) / 2
      ci_fix_rounds: 1,
      review_fix_rounds: 2,
      cost_usd: 1.2,
      tokens: 12000,
      cost_per_merged_pr_usd: 0.6,
      tokens_per_merged_pr: 6000,
      left_for_human: { tier1: 0, tier2: 0, tier3: null },
      best_of: { candidates: 0, picked: 0 },
    },
    {
      adapter: "codex",
      model: "gpt-5",
      tasks: 3, // T2, T3, T5
      attempts: 3,
      merged: 1, // T5
      merged_rate: 0.3333,
      median_queue_to_merge_seconds: 14400,
      ci_fix_rounds: 2,
      review_fix_rounds: 0,
      cost_usd: 0.3,
      tokens: 3000,
      cost_per_merged_pr_usd: 0.3,
      tokens_per_merged_pr: 3000,
      // T5 was merged by a person, T3 waits for one.
      left_for_human: { tier1: null, tier2: 1, tier3: 1 },
      best_of: { candidates: 0, picked: 0 },
    },
    {
      adapter: "command",
      model: null,
      tasks: 1,
      attempts: 1,
      merged: 0,
      merged_rate: 0,
      median_queue_to_merge_seconds: null,
      ci_fix_rounds: 0,
      review_fix_rounds: 0,
      cost_usd: 0,
      tokens: 0,
      cost_per_merged_pr_usd: null,
      tokens_per_merged_pr: null,
      left_for_human: { tier1: null, tier2: null, tier3: null },
      best_of: { candidates: 0, picked: 0 },
    },
  ],
  by_runner: [
    {
      runner: "gpu-1",
      tasks: 3, // T1, T2, T7
      attempts: 4,
      merged: 2,
      merged_rate: 0.6667,
      median_queue_to_merge_seconds: 5400,
      ci_fix_rounds: 1,
      review_fix_rounds: 2,
      cost_usd: 0.6,
      tokens: 6000,
      cost_per_merged_pr_usd: 0.3,
      tokens_per_merged_pr: 3000,
      left_for_human: { tier1: 0, tier2: 0, tier3: null },
      best_of: { candidates: 0, picked: 0 },
    },
    {
      runner: "laptop",
      tasks: 4, // T2, T3, T4, T5
      attempts: 4,
      merged: 1,
      merged_rate: 0.25,
      median_queue_to_merge_seconds: 14400,
      ci_fix_rounds: 2,
      review_fix_rounds: 0,
      cost_usd: 0.9,
      tokens: 9000,
      cost_per_merged_pr_usd: 0.9,
      tokens_per_merged_pr: 9000,
      left_for_human: { tier1: null, tier2: 1, tier3: 1 },
      best_of: { candidates: 0, picked: 0 },
    },
  ],
};

async function report(argv: string[], env: Record<string, string>) {
  let stdout = "";
  let stderr = "";
  const out: CliOutput = {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  };
  const code = await runReportCommand(argv, env, out);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  database = await createTestDatabase();
  await seed();
  const logger = createLogger({ level: "silent" });
  const auth = createApiAuth({ db: database.db, adminToken: undefined, logger });
  const app = new Hono<ApiEnv>();
  app.route("/api", createOpsApi({ database, auth, logger, onTasksChanged: () => {} }));
  server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  readToken = (await createApiToken(database.db, { name: "reader", role: "read" })).secret;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await database?.drop();
});

describe("GET /api/analytics", () => {
  it("answers a read token with the hand-computed figures", async () => {
    const response = await fetch(`${url}/api/analytics?since=7d`, {
      headers: { authorization: `Bearer ${readToken}` },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ since: "7d", ...EXPECTED });
    expect(Date.parse(String(body.until))).toBeGreaterThan(Date.now() - 60_000);
  });

  it("narrows to the window, and refuses a bad one or no token", async () => {
    const day = await fetch(`${url}/api/analytics?since=2h`, {
      headers: { authorization: `Bearer ${readToken}` },
    });
    const body = (await day.json()) as { by_agent: { adapter: string }[] };
    expect(body.by_agent.map((a) => a.adapter)).toEqual(["command"]);
    const bad = await fetch(`${url}/api/analytics?since=7x`, {
      headers: { authorization: `Bearer ${readToken}` },
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toContain(
      "expected a window such as 30m, 24h, 7d or 2w",
    );
    expect((await fetch(`${url}/api/analytics`)).status).toBe(401);
  });
});

describe("conveyor report", () => {
  it("prints JSON through CONVEYOR_URL with a read token", async () => {
    const run = await report(["--since", "7d", "--format", "json"], {
      CONVEYOR_URL: url,
      CONVEYOR_TOKEN: readToken,
    });
    expect(run.stderr).toBe(`conveyor: going through the server at ${url}\n`);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ since: "7d", ...EXPECTED });
  });

  it("prints CSV, one row per agent and per runner", async () => {
    const run = await report(["--since", "7d", "--format", "csv"], { DATABASE_URL: database.url });
    expect(run.code).toBe(0);
    expect(run.stdout.split("\r\n")).toEqual([
      CSV_HEADER.join(","),
      "agent,claude,claude-sonnet-4-5,,3,4,2,0.6667,5400,1,2,1.2,12000,0.6,6000,0,0,",
      "agent,codex,gpt-5,,3,3,1,0.3333,14400,2,0,0.3,3000,0.3,3000,,1,1",
      "agent,command,,,1,1,0,0,,0,0,0,0,,,,,",
      "runner,,,gpu-1,3,4,2,0.6667,5400,1,2,0.6,6000,0.3,3000,0,0,",
      "runner,,,laptop,4,4,1,0.25,14400,2,0,0.9,9000,0.9,9000,,1,1",
      "",
    ]);
  });

  it("prints the per-agent and per-runner tables", async () => {
    const run = await report(["--since", "7d"], { DATABASE_URL: database.url });
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n").map((l) => l.replace(/ {2,}/g, " | "));
    expect(lines[0]).toMatch(
      /^Outcomes of the attempts that ended in the last 7d \(until \d{4}-\d\d-\d\d \d\d:\d\d UTC\)$/,
    );
    expect(lines).toContain(
      "AGENT | TASKS | ATTEMPTS | MERGED | MERGED % | QUEUE→MERGE | CI FIXES | REVIEW FIXES | COST | TOKENS | COST/MERGED | TOKENS/MERGED | HUMAN T1 | HUMAN T2 | HUMAN T3",
    );
    expect(lines).toContain(
      "claude claude-sonnet-4-5 | 3 | 4 | 2 | 66.7% | 1h 30m | 1 | 2 | $1.20 | 12,000 | $0.60 | 6,000 | 0.0% | 0.0% | -",
    );
    expect(lines).toContain(
      "codex gpt-5 | 3 | 3 | 1 | 33.3% | 4h 00m | 2 | 0 | $0.30 | 3,000 | $0.30 | 3,000 | - | 100.0% | 100.0%",
    );
    expect(lines).toContain(
      "command | 1 | 1 | 0 | 0.0% | - | 0 | 0 | $0.00 | 0 | - | - | - | - | -",
    );
    expect(lines).toContain(
      "laptop | 4 | 4 | 1 | 25.0% | 4h 00m | 2 | 0 | $0.90 | 9,000 | $0.90 | 9,000 | - | 100.0% | 100.0%",
    );
  });

  it("says what is wrong with a bad window or format", async () => {
    const window = await report(["--since", "400d"], { DATABASE_URL: database.url });
    expect(window.code).toBe(2);
    expect(window.stderr).toContain("--since 400d: the window can be at most a year (366d)");
    const format = await report(["--format", "xml"], { DATABASE_URL: database.url });
    expect(format.code).toBe(2);
    expect(format.stderr).toContain("--format xml: expected table, csv, json");
  });
});
