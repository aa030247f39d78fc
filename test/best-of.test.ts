import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { createRunner } from "../src/store/runners.ts";
import { getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { type RunnerProcess, SCRIPTED_AGENT, spawnRunnerProcess } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/**
 * Best of N (docs/merge-policy.md#best-of-n), end to end: an issue labelled
 * `conveyor:best-of-2` runs on two real runners at once (the repository's `tasks.best_of` names
 * the adapters `[beta, alpha]`, matched by runner capabilities). Candidate 1 (runner `beta`) runs
 * an agent that never writes the file the verification looks for; candidate 2 (runner `alpha`)
 * runs the scripted agent. One pull request comes from candidate 2; candidate 1 is recorded with
 * its figures; both candidate branches are deleted; `/pick 1` swaps the same pull request.
 */
let h: Harness;
const processes: RunnerProcess[] = [];
const dirs: string[] = [];
const CI = "ci / test";

beforeAll(async () => {
  h = await createHarness({
    files: {
      ".github/conveyor.yml": [
        "version: 1",
        "verify:",
        "  commands:",
        "    - [test, -f, hello.txt]",
        "tasks:",
        "  best_of: [beta, alpha]",
        "",
      ].join("\n"),
    },
    simulator: { ciProvider: { name: CI, conclude: async () => "success" as const } },
  });
  // Runner `beta` runs an agent that writes another file: verification fails there.
  const writeOther = [
    process.execPath,
    "-e",
    "require('fs').writeFileSync('other.txt', 'not what was asked\\n')",
  ];
  await startRunner("beta", writeOther);
  await startRunner("alpha", SCRIPTED_AGENT);
});
afterAll(async () => {
  for (const p of processes) p.child.kill("SIGKILL");
  await Promise.all(processes.map((p) => p.exited));
  await h?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

async function startRunner(capability: string, agent: string[]) {
  const { token } = await createRunner(h.database.db, {
    name: `runner-${capability}`,
    capabilities: [capability],
    tier: "normal",
  });
  const workDir = mkdtempSync(join(tmpdir(), `conveyor-best-of-${capability}-`));
  dirs.push(workDir);
  processes.push(
    spawnRunnerProcess(
      [
        "start",
        ...["--server", h.conveyor.url, "--name", `runner-${capability}`],
        ...["--capability", capability, "--slots", "2"],
        ...["--work-dir", join(workDir, "work"), "--journal", join(workDir, "journal.json")],
        ...["--agent", "--", ...agent],
      ],
      { CONVEYOR_RUNNER_TOKEN: token },
    ),
  );
}

const db = () => h.database.db;
const output = () => processes.map((p) => p.output()).join("\n");

interface CandidateRow {
  k: number;
  candidate_task_id: string;
  adapter: string | null;
  head_sha: string | null;
  verification_passed: boolean | null;
  tier: number | null;
  checks: string | null;
  changed_lines: number | null;
  rank: number | null;
  picked: boolean;
  branch_deleted_at: string | null;
}
const candidatesOf = async (taskId: string) =>
  resultRows<CandidateRow>(
    await db().execute(sql`select * from candidates where task_id = ${taskId} order by k`),
  );

// Two runners, CI on each candidate and a /pick: well under a minute, more on a loaded machine.
describe("best of N", { timeout: 180_000 }, () => {
  it("runs two candidates, opens one pull request from the verified one, and /pick swaps it", async () => {
    const body = "Add hello.txt.\n\n```conveyor-script\nwrite hello.txt\n<<<\nhello\n>>>\n```\n";
    const { issue } = await h.sim.openIssue(h.repo, { title: "Say hello", body, user: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, "conveyor:best-of-2", { sender: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    const { task_id: taskId } = await waitFor(
      async () =>
        resultRows<{ task_id: string }>(
          await db().execute(
            sql`select task_id from tasks where issue_number = ${issue.number} and parent_task_id is null`,
          ),
        )[0],
      { timeoutMs: 15_000, message: "the issue's task" },
    );

    // The one pull request, from candidate 2 (candidate 1 failed its verification).
    const task = await waitFor(
      async () => {
        const t = await getTask(db(), taskId);
        return t?.state === "review" && t.prNumber ? t : undefined;
      },
      { timeoutMs: 90_000, message: "the task in review with a PR" },
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${output()}`);
    });
    expect(task.bestOf).toBe(2);
    const prs = (await h.sim.listPulls(h.repo)).filter((p) => p.state === "open");
    expect(prs.map((p) => p.head.ref)).toEqual([`conveyor/issue-${issue.number}`]);
    const pr = prs[0]!;
    expect(await h.sim.readFile(h.repo, "hello.txt", pr.head.sha)).toBe("hello\n");
    expect(await h.sim.readFile(h.repo, "other.txt", pr.head.sha)).toBeUndefined();

    const rows = await candidatesOf(taskId);
    expect(rows.map((r) => [r.k, r.adapter, r.verification_passed, r.rank, r.picked])).toEqual([
      [1, "beta", false, 2, false],
      [2, "alpha", true, 1, true],
    ]);
    for (const r of rows) {
      expect(r.checks).toBe("green");
      expect(r.changed_lines).toBe(1);
    }
    // Tier 3 for the failed verification, so the ranking's first criterion already decided.
    expect(rows[0]!.tier).toBe(3);

    // Each candidate ran on the runner whose capability matched its adapter, as its own attempt.
    const attempts = resultRows<{ candidate: number; runner: string; outcome: string }>(
      await db().execute(sql`
        select t.candidate, r.name as runner, a.outcome
        from attempts a join tasks t on t.task_id = a.task_id
        join runners r on r.runner_id = a.runner_id
        where t.parent_task_id = ${taskId} order by t.candidate`),
    );
    expect(attempts).toEqual([
      { candidate: 1, runner: "runner-beta", outcome: "completed" },
      { candidate: 2, runner: "runner-alpha", outcome: "completed" },
    ]);

    // The losing candidate is in the pull request body's collapsed table; branches are gone.
    const full = await h.sim.getPull(h.repo, pr.number);
    expect(full.body).toContain("<details><summary>Best of 2: candidate 2 is on this pull request");
    expect(full.body).toMatch(/\| 1 \| .* \| ❌ \| 3 \| green \| 1 \| .* \| #2, branch deleted \|/);
    expect(full.body).toMatch(/\| 2 \| .* \| ✅ \| \d \| green \| 1 \| .* \| \*\*picked\*\* \|/);
    await waitFor(
      async () => (await candidatesOf(taskId)).every((r) => r.branch_deleted_at !== null),
      { timeoutMs: 15_000, message: "the candidate branches deleted" },
    );
    for (const k of [1, 2]) {
      expect(await h.sim.getBranchSha(h.repo, `conveyor/issue-${issue.number}-${k}`)).toBe(
        undefined,
      );
    }
    // The candidates never had a status comment of their own: the task's one comment tells.
    const status = await waitFor(
      () => {
        const comments = h.sim
          .listComments(h.repo, issue.number)
          .filter((c) => c.body?.includes("conveyor:status"));
        return comments.length === 1 && comments[0]!.body?.includes("candidate 2 is on the")
          ? comments
          : undefined;
      },
      { timeoutMs: 15_000, message: "one status comment naming the kept candidate" },
    );
    expect(status[0]!.body).toContain(`task=${taskId}`);

    // A bad k gets a clear refusal; someone with write (not maintain) is refused too.
    await h.sim.comment(h.repo, pr.number, "/pick 3", { user: "maint" });
    await h.sim.comment(h.repo, pr.number, "/pick 1", { user: "octocat" });
    await waitFor(
      () => {
        const bodies = h.sim.listComments(h.repo, pr.number).map((c) => c.body ?? "");
        return (
          bodies.some((b) => b.includes("there is no candidate 3")) &&
          bodies.some((b) => b.includes("`/pick` needs maintain access"))
        );
      },
      { timeoutMs: 15_000, message: "the refusals of /pick 3 and of a writer's /pick" },
    );

    // `/pick 1` from a maintainer swaps the same pull request to candidate 1.
    await h.sim.comment(h.repo, pr.number, "/pick 1", { user: "maint" });
    const swapped = await waitFor(
      async () => {
        const p = await h.sim.getPull(h.repo, pr.number);
        return p.head.sha !== pr.head.sha && p.body?.includes("candidate 1 is on this")
          ? p
          : undefined;
      },
      { timeoutMs: 30_000, message: "the pull request swapped to candidate 1" },
    );
    expect(swapped.state).toBe("open");
    expect(await h.sim.readFile(h.repo, "other.txt", swapped.head.sha)).toBe(
      "not what was asked\n",
    );
    expect(await h.sim.readFile(h.repo, "hello.txt", swapped.head.sha)).toBeUndefined();
    expect((await candidatesOf(taskId)).map((r) => [r.k, r.picked])).toEqual([
      [1, true],
      [2, false],
    ]);
    const open = (await h.sim.listPulls(h.repo)).filter((p) => p.state === "open");
    expect(open.map((p) => p.number)).toEqual([pr.number]);
  });
});
