import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { expect, type TestContext } from "vitest";
import { type Db, resultRows } from "../../db/client.ts";
import type { GitHubSimulator } from "../github-sim/create-github-simulator.ts";
import { runGit } from "../github-sim/run-git.ts";
import type { FaultCounts } from "./test-meta.ts";

/** Opens an issue whose body is a script for the scripted agent, and labels it (as `octocat`). */
export async function openScriptedIssue(
  sim: GitHubSimulator,
  repo: string,
  title: string,
  script: string,
): Promise<number> {
  const body = `\`\`\`conveyor-script\n${script}\n\`\`\`\n`;
  const { issue } = await sim.openIssue(repo, { title, body, user: "octocat" });
  await sim.addLabel(repo, issue.number, "conveyor", { sender: "octocat" });
  return issue.number;
}

/**
 * Opens and labels scripted issues all at once, like a busy team (GitHub delivers their webhooks
 * one after another anyway), in the order given.
 */
export async function openScriptedIssues(
  sim: GitHubSimulator,
  repo: string,
  specs: { title: string; script: string; file: string }[],
): Promise<TrackedIssue[]> {
  return Promise.all(
    specs.map(async (spec) => ({
      issueNumber: await openScriptedIssue(sim, repo, spec.title, spec.script),
      file: spec.file,
    })),
  );
}

/** Issue specs for tasks `from`..`to` that each change one line of their own seeded file. */
export function seededTasks(
  from: number,
  to: number,
  before = "",
): { title: string; script: string; file: string }[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i).map((k) => ({
    title: `Fault task ${k}`,
    script: taskScript(k, before),
    file: `work/${k}.txt`,
  }));
}

/** One queued issue and the file its change modifies. */
export interface TrackedIssue {
  issueNumber: number;
  file: string;
}

export interface Ledger {
  tasks: number;
  /** Problems (`#N: …`) of issues whose work vanished: no task, unfinished, no PR or no merge. */
  lost: string[];
  /** Problems of work done twice: tasks, PRs, merges, completed generations, applied changes. */
  duplicated: string[];
  /** The task events of every issue with a problem, for the failure message. */
  history: string;
}

/**
 * Audits what happened to every issue, from the database and from GitHub (the simulator and its
 * git repository), expecting each to end merged exactly once (or, with `until: "pull request"`,
 * with exactly one open pull request carrying its change):
 *
 * - lost: no task; a task not `merged` (not in `review`); no pull request; its pull request not
 *   merged (not open); its change not on the default branch (not on the issue's branch);
 * - duplicated: more than one task; more than one pull request for the issue's branch; more than
 *   one successful merge call; more than one generation that completed (`pushed`); the issue's
 *   file changed by more than one commit on the default branch, or on the issue's branch (a change
 *   set applied twice).
 */
export async function auditIssues(
  env: { db: Db; sim: GitHubSimulator; repo: string; repositoryId: number },
  issues: TrackedIssue[],
  options: { until?: "merged" | "pull request" } = {},
): Promise<Ledger> {
  const merging = options.until !== "pull request";
  const lost: string[] = [];
  const duplicated: string[] = [];
  const pulls = await env.sim.listPulls(env.repo);
  const mergeCalls = env.sim.requests.filter(
    (r) =>
      r.method === "PUT" &&
      r.route === "/repos/{owner}/{repo}/pulls/{pull_number}/merge" &&
      r.status === 200,
  );
  const gitDir = env.sim.gitDir(env.repo);
  const git = async (...args: string[]) =>
    (await runGit(args, { gitDir })).stdout.toString("utf8").trim().split("\n").filter(Boolean);
  const [seed] = await git("rev-list", "--max-parents=0", "main");
  for (const { issueNumber, file } of issues) {
    const who = `#${issueNumber}`;
    const tasks = resultRows<{ task_id: string; state: string; generation: number }>(
      await env.db.execute(sql`
        select task_id, state, generation from tasks
        where repository_id = ${env.repositoryId} and issue_number = ${issueNumber}`),
    );
    if (tasks.length === 0) lost.push(`${who}: no task`);
    if (tasks.length > 1) {
      duplicated.push(`${who}: ${tasks.length} tasks (${tasks.map((t) => t.state).join(", ")})`);
    }
    for (const task of tasks) {
      if (task.state !== (merging ? "merged" : "review")) {
        lost.push(`${who}: task ${task.task_id} ended ${task.state}`);
      }
      const [completed] = resultRows<{ n: number }>(
        await env.db.execute(sql`
          select count(*)::int as n from task_events
          where task_id = ${task.task_id} and to_state = 'pushed'`),
      );
      if ((completed?.n ?? 0) > 1) duplicated.push(`${who}: ${completed?.n} completed generations`);
    }
    const prs = pulls.filter((p) => p.head.ref === `conveyor/issue-${issueNumber}`);
    if (prs.length === 0) lost.push(`${who}: no pull request`);
    if (prs.length > 1) {
      duplicated.push(`${who}: ${prs.length} pull requests (${prs.map((p) => p.number)})`);
    }
    for (const pr of prs) {
      if (merging && !pr.merged_at) lost.push(`${who}: PR #${pr.number} not merged (${pr.state})`);
      if (!merging && pr.state !== "open") lost.push(`${who}: PR #${pr.number} is ${pr.state}`);
      const merges = mergeCalls.filter((r) => r.path.endsWith(`/pulls/${pr.number}/merge`));
      if (merges.length > 1) duplicated.push(`${who}: PR #${pr.number} merged ${merges.length}×`);
    }
    // Commits on the default branch (or the issue's branch) that changed the issue's file, after
    // the seed commit.
    const ref = merging ? "main" : `conveyor/issue-${issueNumber}`;
    const commits = (await git("log", "--format=%H", ref, "--", file).catch(() => [])).filter(
      (sha) => sha !== seed,
    ).length;
    if (commits === 0) lost.push(`${who}: ${file} never changed on ${ref}`);
    if (commits > 1) duplicated.push(`${who}: ${file} changed by ${commits} commits on ${ref}`);
  }
  if (process.env.DEBUG_TIMELINE) {
    const rows = resultRows<{ t: number; issue: number; to: string; gen: number; actor: string }>(
      await env.db.execute(sql`
        select round(extract(epoch from (e.at - (select min(at) from task_events)))::numeric, 1)::float as t,
               t.issue_number as issue, e.to_state as to, e.generation as gen, e.actor
        from task_events e join tasks t using (task_id) order by e.event_id`),
    );
    for (const r of rows)
      process.stdout.write(`TL ${r.t} #${r.issue} ${r.to} g${r.gen} ${r.actor}\n`);
  }
  const troubled = new Set([...lost, ...duplicated].map((p) => Number(p.slice(1, p.indexOf(":")))));
  const history = troubled.size
    ? resultRows<Record<string, unknown>>(
        await env.db.execute(sql`
          select t.issue_number as issue, e.task_id, e.generation as gen, e.actor,
                 e.from_state as from, e.to_state as to, e.reason
          from task_events e join tasks t using (task_id)
          where t.repository_id = ${env.repositoryId} and t.issue_number in ${[...troubled]}
          order by t.issue_number, e.event_id`),
      )
        .map((r) => JSON.stringify(r))
        .join("\n")
    : "";
  return { tasks: issues.length, lost, duplicated, history };
}

/**
 * Records a fault test's counts on the test (the count reporter prints them) and asserts that
 * nothing was lost or duplicated, naming every problem if something was.
 */
export function recordFaultCounts(
  context: Pick<TestContext, "task">,
  ledger: Ledger,
  faults: number,
): FaultCounts {
  // Counted per issue: one lost issue usually shows several symptoms.
  const issuesIn = (problems: string[]) => new Set(problems.map((p) => p.split(":")[0])).size;
  const counts: FaultCounts = {
    tasks: ledger.tasks,
    faults,
    lost: issuesIn(ledger.lost),
    duplicated: issuesIn(ledger.duplicated),
  };
  context.task.meta.faultCounts = counts;
  return counts;
}

/** The files fault tests seed: one per task, so every change is a one-line, tier-1 modification. */
export function seedFiles(count: number): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: count }, (_, i) => [`work/${i + 1}.txt`, `task ${i + 1}\nline 2\n`]),
  );
}

/** The scripted agent's script for task `k`: change one line of its own file. */
export function taskScript(k: number, extra = ""): string {
  return `${extra ? `${extra}\n` : ""}write work/${k}.txt\n<<<\ntask ${k}\nline two\n>>>`;
}

/**
 * Waits until every issue's task is `merged` (or in `state`), or the deadline passes; either way
 * resolves with the tasks' states, for the assertion message (the audit that follows names what is
 * missing). Tolerates a database that is briefly unreachable.
 */
export async function waitForMerged(
  env: { db: Db; repositoryId: number },
  issueNumbers: number[],
  timeoutMs: number,
  state = "merged",
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const states = () =>
    env.db.execute(sql`
      select issue_number, state, generation, attempts, last_error from tasks
      where repository_id = ${env.repositoryId} and issue_number in ${issueNumbers}
      order by issue_number`);
  for (;;) {
    try {
      const rows = resultRows<{ state: string }>(await states());
      const merged = rows.filter((r) => r.state === state).length;
      if (merged === issueNumbers.length || Date.now() > deadline) {
        return `tasks: ${JSON.stringify(rows)}`;
      }
    } catch (error) {
      // The database may be restarting; ask again.
      if (Date.now() > deadline) return `tasks unreadable: ${(error as Error).message}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * With `FAULT_LOG_DIR` set, writes every process's output there (`<test>-<name>.log`), for
 * looking into a failure after the run.
 */
export function saveOutputs(test: string, outputs: Record<string, string>): void {
  const dir = process.env.FAULT_LOG_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const [name, output] of Object.entries(outputs)) {
    writeFileSync(join(dir, `${test}-${name}.log`), output);
  }
}

/** What a fault suite audits: the database with the tasks, and the GitHub they talk to. */
export interface FaultWorld {
  database: { db: Db };
  sim: GitHubSimulator;
  repo: string;
  repositoryId: number;
}

/**
 * How every fault suite ends: waits until each issue's task is `merged` (or in `state`), lets
 * `beforeAudit` settle what is still in flight, audits the issues, records the fault counts on the
 * test, and fails naming every lost or duplicated issue with the tasks' states, each issue's
 * history and `details()` (server logs). The simulator must have seen no request GitHub would
 * refuse. Returns the ledger for the suite's own checks.
 */
export async function expectNothingLostOrDuplicated(
  world: FaultWorld,
  issues: TrackedIssue[],
  options: {
    context: Pick<TestContext, "task">;
    /** How many faults were injected (a number, or read once the work settled). */
    faults: number | (() => number);
    timeoutMs: number;
    state?: string;
    until?: "merged" | "pull request";
    beforeAudit?: () => Promise<void>;
    details?: () => string;
  },
): Promise<Ledger> {
  const db = world.database.db;
  const states = await waitForMerged(
    { db, repositoryId: world.repositoryId },
    issues.map((i) => i.issueNumber),
    options.timeoutMs,
    options.state,
  );
  await options.beforeAudit?.();
  const ledger = await auditIssues(
    { db, sim: world.sim, repo: world.repo, repositoryId: world.repositoryId },
    issues,
    options.until ? { until: options.until } : {},
  );
  const faults = typeof options.faults === "function" ? options.faults() : options.faults;
  recordFaultCounts(options.context, ledger, faults);
  const details = options.details ? `\n${options.details()}` : "";
  expect(
    { lost: ledger.lost, duplicated: ledger.duplicated },
    `${states}\n${ledger.history}${details}`,
  ).toEqual({ lost: [], duplicated: [] });
  expect(world.sim.violations).toEqual([]);
  return ledger;
}
