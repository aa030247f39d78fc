import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { createFakeAgents } from "./helpers/replay-adapter.ts";
import { type RunnerProcess, spawnRunnerProcess } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/**
 * The runner with `--agent claude` and `--agent codex`, where `claude` and `codex` on PATH are
 * fakes that replay recorded output of the real tools (runners/adapters/fixtures/), in the sandbox
 * the runner puts every agent in: progress reaches the server in heartbeats, usage and cost reach
 * the pull request, and an error result fails the attempt with the tool's own message.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let h: Harness;
let fakes: string;
const processes: RunnerProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  // Progress may edit the status comment every 250 ms here (30 s in production). Each test starts
  // a runner process that takes its first assignment while still loading: it gets 5 s to accept
  // (10 s in production), so a loaded machine does not turn the attempt into an accept timeout.
  h = await createHarness({ start: { dispatchTimings: { progressEditMs: 250, acceptMs: 5_000 } } });
  // Not under /tmp: the sandbox gives the agent a /tmp of its own, which would hide the fakes.
  fakes = createFakeAgents(["claude", "codex", "gemini", "aider", "opencode"], join(ROOT, ".tmp"));
  dirs.push(fakes);
});
afterAll(async () => {
  await h?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const p of processes.splice(0)) {
    p.child.kill("SIGKILL");
    await p.exited;
  }
  expect(h.sim.violations).toEqual([]);
});

async function startRunner(
  adapter: string,
  extra: string[] = [],
  replayDelayMs = 0,
  name = `${adapter}-runner`,
) {
  const { token } = await createRunner(h.database.db, {
    name,
    capabilities: [adapter],
    tier: "normal",
  });
  const workDir = mkdtempSync(join(tmpdir(), `conveyor-${adapter}-`));
  dirs.push(workDir);
  const runner = spawnRunnerProcess(
    [
      "start",
      ...["--server", h.conveyor.url, "--name", name, "--capability", adapter],
      ...["--work-dir", join(workDir, "work"), "--journal", join(workDir, "journal.json")],
      ...["--slots", "2", "--agent", adapter, ...extra],
    ],
    {
      CONVEYOR_RUNNER_TOKEN: token,
      PATH: [fakes, process.env.BWRAP_PATH && dirname(process.env.BWRAP_PATH), process.env.PATH]
        .filter(Boolean)
        .join(delimiter),
      // Slower than the test heartbeat where heartbeats must carry each event.
      REPLAY_DELAY_MS: String(replayDelayMs),
    },
  );
  processes.push(runner);
  return runner;
}

/** An issue for the runner with `capability`, telling the fake agent what to replay. */
async function queue(title: string, capability: string, replay: string, exit = 0) {
  const { issue } = await h.sim.openIssue(h.repo, {
    title,
    body: `Please fix the sizes.\n\nreplay: ${replay}\nreplay-exit: ${exit}\n`,
    user: "octocat",
    labels: [`needs:${capability}`],
  });
  await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
  // The webhook is answered once stored; the intake loop queues the task just after.
  await h.sim.idle();
  const [row] = resultRows<{ task_id: string }>(
    await h.database.db.execute(
      sql`select task_id from tasks where issue_number = ${issue.number} and state not in ('merged', 'cancelled')`,
    ),
  );
  return { issueNumber: issue.number, taskId: row!.task_id };
}

/**
 * Follows the dashboard's live stream (a viewer makes the server publish what heartbeats carry)
 * and keeps everything it says, for `has` to search.
 */
function followDashboard() {
  const controller = new AbortController();
  let text = "";
  void (async () => {
    const response = await fetch(`${h.conveyor.url}/dashboard/events`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: controller.signal,
    });
    const decoder = new TextDecoder();
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
    }
  })().catch(() => {});
  return {
    has: (needle: string) => text.includes(needle),
    close: () => controller.abort(),
  };
}

/** The error of the task's first failed attempt, once there is one. */
function failedAttempt(taskId: string, runner: RunnerProcess): Promise<string> {
  return waitFor(async () => (await getTask(h.database.db, taskId))?.lastError ?? undefined, {
    timeoutMs: 30_000,
    message: `the failed attempt\n${runner.output()}`,
  });
}

/** The attempts of a task as the server recorded them. */
async function attemptsOf(taskId: string) {
  return resultRows<Record<string, unknown>>(
    await h.database.db.execute(
      sql`select generation, adapter, model, turns, tokens::float8 as tokens, cost_usd, outcome
          from attempts where task_id = ${taskId} order by generation`,
    ),
  );
}

async function logOf(taskId: string): Promise<string[]> {
  const rows = resultRows<{ line: string }>(
    await h.database.db.execute(
      sql`select line from attempt_logs where task_id = ${taskId} order by line_id`,
    ),
  );
  return rows.map((r) => r.line);
}

/** Every body Conveyor wrote into the issue's status comment, in order. */
function statusBodies(): string[] {
  return h.sim.requests
    .filter((r) => r.route?.endsWith("/issues/comments/{comment_id}") && r.method === "PATCH")
    .map((r) => String((r.body as { body?: string }).body ?? ""));
}

async function pullBodyFor(issueNumber: number): Promise<string | undefined> {
  const pulls = await h.sim.listPulls(h.repo);
  return pulls.find((p) => p.body?.includes(`#${issueNumber}`))?.body ?? undefined;
}

describe("runner adapters with replayed agents", () => {
  it("claude: progress in heartbeats, usage and cost in the PR, an error result fails the attempt", async () => {
    const runner = await startRunner("claude", ["--model", "claude-sonnet-4-5"], 600);
    const good = await queue("Fix the sizes", "claude", "claude-success.jsonl");
    const bad = await queue("Fix it again", "claude", "claude-api-error.jsonl", 1);
    const dashboard = followDashboard();
    try {
      // A heartbeat carried a tool use the adapter read from the stream-json (each lasts about
      // a second of replay: a slow server may answer one heartbeat past it, not past both).
      const tools = ["Read", "Edit"].map((tool) => `"message":"${tool} /work/task/src/sizes.ts"`);
      await waitFor(() => tools.some((tool) => dashboard.has(tool)), {
        timeoutMs: 15_000,
        message: "the progress in a heartbeat",
      });
    } finally {
      dashboard.close();
    }
    const body = await waitFor(() => pullBodyFor(good.issueNumber), {
      timeoutMs: 30_000,
      message: `the pull request\n${runner.output()}`,
    });
    expect(body).toContain("| Tokens | 26,252 (25,612 in, of which 20,480 cached; 640 out) |");
    expect(body).toContain("| Turns | 3 |");
    expect(body).toContain("| Cost | $0.04 |");
    expect(body).toContain("Added size 4 to src/sizes.ts.");
    expect((await getTask(h.database.db, good.taskId))?.result).toMatchObject({
      stats: { tokens: 26252, cost_usd: 0.0421, turns: 3, cache_write_tokens: 5120 },
    });
    // The adapter's argv reached the fake, model included.
    const [change] = resultRows<{ files: { path: string; content: string }[] }>(
      await h.database.db.execute(
        sql`select files from change_sets where task_id = ${good.taskId}`,
      ),
    );
    expect(change?.files.find((f) => f.path === "REPLAYED.md")?.content).toContain(
      'argv: ["-p","--output-format","stream-json","--verbose","--permission-mode","acceptEdits","--model","claude-sonnet-4-5"]',
    );

    // The attempt holds the adapter, the model and the final usage; its log the progress lines.
    expect(await attemptsOf(good.taskId)).toEqual([
      {
        generation: 1,
        adapter: "claude",
        model: "claude-sonnet-4-5",
        turns: 3,
        tokens: 26252,
        cost_usd: 0.0421,
        outcome: "completed",
      },
    ]);
    expect(await logOf(good.taskId)).toContain("[progress] Edit /work/task/src/sizes.ts");
    // The status comment showed the live line while it ran, and the cost once done.
    await waitFor(
      () => statusBodies().some((b) => /\| Agent \| running · \d+ turns? · [^|]*`Edit /.test(b)),
      {
        timeoutMs: 10_000,
        message: `a running line in the status comment\n${statusBodies().join("\n---\n")}`,
      },
    );
    await waitFor(
      () => statusBodies().some((b) => b.includes("| Agent | 3 turns · 26,252 tokens · $0.04 |")),
      { timeoutMs: 10_000, message: "the final usage in the status comment" },
    );

    expect(await failedAttempt(bad.taskId, runner)).toBe(
      "agent_failed: claude: success: Invalid API key · Please run /login",
    );
    // The failed attempt's usage is kept too.
    await waitFor(
      async () => (await attemptsOf(bad.taskId))[0]?.outcome === "failed" || undefined,
      { timeoutMs: 10_000, message: "the failed attempt's row" },
    );
    expect((await attemptsOf(bad.taskId))[0]).toMatchObject({
      adapter: "claude",
      outcome: "failed",
    });
    await h.sim.closeIssue(h.repo, bad.issueNumber, { sender: "octocat" });
  });

  it("a budget overrun stops the agent at the event that passed it, with no retry", async () => {
    // A label's budget: 6,000 tokens, which claude-success.jsonl passes at its second message.
    await h.sim.push(h.repo, {
      branch: "main",
      files: {
        ".github/conveyor.yml":
          "version: 1\ntasks:\n  label_limits:\n    budget:small:\n      max_tokens: 6000\n",
      },
      user: "maint",
    });
    const runner = await startRunner(
      "claude",
      ["--model", "claude-sonnet-4-5"],
      400,
      "budget-runner",
    );
    const { issue } = await h.sim.openIssue(h.repo, {
      title: "Spend too much",
      body: "Please fix the sizes.\n\nreplay: claude-success.jsonl\n",
      user: "octocat",
      labels: ["needs:claude", "budget:small"],
    });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    // The webhook is answered once stored; the intake loop queues the task just after.
    await h.sim.idle();
    const [row] = resultRows<{ task_id: string; limits: Record<string, unknown> }>(
      await h.database.db.execute(
        sql`select task_id, limits from tasks where issue_number = ${issue.number}`,
      ),
    );
    expect(row!.limits).toMatchObject({ max_tokens: 6000 });
    const error = await failedAttempt(row!.task_id, runner);
    expect(error).toMatch(
      /^budget exceeded: tokens 10388 > max_tokens 6000 \(used so far: 10388 tokens, 2 turns\); the agent was stopped\n/,
    );
    const task = await getTask(h.database.db, row!.task_id);
    expect(task?.state).toBe("dead");
    const [attempt] = resultRows<Record<string, unknown>>(
      await h.database.db.execute(
        sql`select outcome, fail_reason, adapter, model, tokens::int, turns, cost_usd,
                   input_tokens::int, output_tokens::int, cache_read_tokens::int,
                   cache_write_tokens::int
            from attempts where task_id = ${row!.task_id}`,
      ),
    );
    expect(attempt).toEqual({
      outcome: "failed",
      fail_reason: "budget exceeded",
      adapter: "claude",
      model: "claude-sonnet-4-5",
      tokens: 10388,
      turns: 2,
      cost_usd: null,
      input_tokens: 10248,
      output_tokens: 140,
      cache_read_tokens: 5120,
      cache_write_tokens: 5120,
    });
    // The attempt is counted for Prometheus by adapter, never by model or runner name.
    const metrics = await (await fetch(`${h.conveyor.url}/metrics`)).text();
    expect(metrics).toContain(
      'conveyor_agent_attempts_total{adapter="claude",outcome="budget_exceeded"} 1',
    );
    expect(metrics).toMatch(/^conveyor_agent_tokens_total\{adapter="claude"\} \d+$/m);
    expect(metrics).not.toContain("claude-sonnet-4-5");
    await h.sim.closeIssue(h.repo, issue.number, { sender: "octocat" });
  });

  it("codex: usage in the PR, turn.failed fails the attempt with its message", async () => {
    const runner = await startRunner("codex");
    const good = await queue("Codex sizes", "codex", "codex-success.jsonl");
    const bad = await queue("Codex fails", "codex", "codex-turn-failed.jsonl", 1);
    const body = await waitFor(() => pullBodyFor(good.issueNumber), {
      timeoutMs: 30_000,
      message: `the pull request\n${runner.output()}`,
    });
    expect(body).toContain("| Tokens | 24,885 (24,763 in, of which 24,448 cached; 122 out) |");
    expect(body).toContain("| Turns | 1 |");
    expect((await attemptsOf(good.taskId))[0]).toMatchObject({
      adapter: "codex",
      turns: 1,
      tokens: 24885,
      outcome: "completed",
    });

    expect(await failedAttempt(bad.taskId, runner)).toBe(
      "agent_failed: codex: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header",
    );
    await h.sim.closeIssue(h.repo, bad.issueNumber, { sender: "octocat" });
  });

  // The attempt's adapter is only ever written from a heartbeat's `progress`: seeing it proves the
  // progress frames arrived.
  it.each([
    [
      "gemini",
      "gemini-stream-success.jsonl",
      "| Tokens | 10,992 (10,758 in, of which 6,849 cached; 92 out) |",
      { tokens: 10992 },
      "gemini-stream-error.jsonl",
    ],
    [
      "aider",
      "aider-output.txt",
      "| Cost | $0.05 |",
      { tokens: 15990, cost_usd: 0.05, turns: 2 },
      undefined,
    ],
    [
      "opencode",
      "opencode-success.jsonl",
      "| Turns | 2 |",
      { tokens: 19740, turns: 2 },
      "opencode-error.jsonl",
    ],
  ] as const)(
    "%s: progress reaches the attempt, usage the PR, an error result fails it",
    async (adapter, fixture, row, usage, errorFixture) => {
      const runner = await startRunner(adapter, [], 100);
      const good = await queue(`${adapter} sizes`, adapter, fixture);
      const bad = errorFixture
        ? await queue(`${adapter} fails`, adapter, errorFixture, 1)
        : undefined;
      const body = await waitFor(() => pullBodyFor(good.issueNumber), {
        timeoutMs: 30_000,
        message: `the pull request\n${runner.output()}`,
      });
      expect(body).toContain(row);
      expect((await attemptsOf(good.taskId))[0]).toMatchObject({
        adapter,
        outcome: "completed",
        ...usage,
      });
      expect((await logOf(good.taskId)).some((l) => l.startsWith("[progress] "))).toBe(true);
      if (!bad) return;
      expect(await failedAttempt(bad.taskId, runner)).toMatch(
        new RegExp(`^agent_failed: ${adapter}: `),
      );
      await waitFor(
        async () => (await attemptsOf(bad.taskId))[0]?.outcome === "failed" || undefined,
        {
          timeoutMs: 10_000,
          message: "the failed attempt's row",
        },
      );
      await h.sim.closeIssue(h.repo, bad.issueNumber, { sender: "octocat" });
    },
  );
});
