import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { MetricsReport } from "../src/metrics/metrics-report.ts";
import { getTask } from "../src/store/tasks.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import {
  queueScriptedIssue,
  type RunnerProcess,
  startScriptedRunner,
} from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

// End to end on the simulator, one server for the file: what the merge policy must not let
// through (a red check on the second page, CI that has not reported yet, a retargeted base), and
// what it must do (adopt GitHub's update-branch commit, honour merge.mode approve and report).

let h: Harness;
let runner: RunnerProcess;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
const FILES = ["one", "two", "three", "four", "five", "six"];

beforeAll(async () => {
  h = await createHarness({
    files: Object.fromEntries(FILES.map((f) => [`src/${f}.txt`, "line 1\nline 2\nline 3\n"])),
  });
  scripted = await startScriptedRunner(h, "safety-runner");
  runner = scripted.runner;
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

/** `.github/conveyor.yml` on the default branch, as a maintainer pushes it. */
async function useConfig(yaml: string) {
  await h.sim.push(h.repo, {
    branch: "main",
    files: { ".github/conveyor.yml": `version: 1\n${yaml}` },
    user: "maint",
  });
}

/** A tier-1 change to `src/<file>.txt` by the scripted agent, once its pull request is written. */
async function openPr(file: string) {
  const title = `Tweak ${file}`;
  const script = `write src/${file}.txt\n<<<\nline 1\nline ${file}\nline 3\n>>>`;
  const { issueNumber, taskId } = await queueScriptedIssue(h, title, script);
  const pr = await waitFor(
    async () => {
      const [p] = resultRows<{ pr_number: number; head_sha: string }>(
        await h.database.db.execute(
          sql`select pr_number, head_sha from pull_requests where task_id = ${taskId}`,
        ),
      );
      return p;
    },
    { timeoutMs: 30_000, message: `a PR for "${title}"\n${runner.output().slice(-1000)}` },
  );
  return { issueNumber, taskId, ...pr };
}

const state = async (taskId: string) => (await getTask(h.database.db, taskId))?.state;
const safetyCheck = async (sha: string) =>
  (await h.sim.listCheckRuns(h.repo, sha)).find(
    (c) => c.name === "Conveyor / safety" && c.app?.id === h.sim.appId,
  );
const requestsTo = (route: string, prNumber: number) =>
  h.sim.requests.filter((r) => r.route === route && r.path.includes(`/pulls/${prNumber}/`));
const merges = (prNumber: number) =>
  requestsTo("/repos/{owner}/{repo}/pulls/{pull_number}/merge", prNumber).filter(
    (r) => r.method === "PUT",
  );
const ci = (sha: string, conclusion: "success" | "failure" = "success", name = "ci") =>
  h.sim.createCheckRun(h.repo, { name, headSha: sha, status: "completed", conclusion });
const wentTo = async (taskId: string, to: string) =>
  resultRows<{ n: number }>(
    await h.database.db.execute(
      sql`select count(*)::int as n from task_events where task_id = ${taskId} and to_state = ${to}`,
    ),
  )[0]!.n;

describe("merge safety end to end", () => {
  it("does not merge a PR with 101 check runs whose red one is on the second page", async () => {
    // No follow-up attempt on red CI: the task waits for a person, and the merger keeps judging.
    await useConfig("tasks:\n  max_ci_fixes: 0\n");
    const pr = await openPr("one");
    // The oldest run comes last: GitHub lists check runs newest first.
    await ci(pr.head_sha, "failure", "flaky-e2e");
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => ci(pr.head_sha, "success", `job-${i}`)),
    );
    await h.sim.idle();
    const check = await waitFor(
      async () => {
        const c = await safetyCheck(pr.head_sha);
        return c?.output.summary?.includes("101 check runs") ? c : undefined;
      },
      { timeoutMs: 30_000, message: "a verdict over all 101 check runs" },
    );
    expect(check).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(check.output.summary).toContain("`flaky-e2e` (`failure`)");
    const pages = h.sim.requests.filter(
      (r) =>
        r.route === "/repos/{owner}/{repo}/commits/{ref}/check-runs" &&
        r.path.includes(pr.head_sha) &&
        r.query.page === "2",
    );
    expect(pages.length).toBeGreaterThan(0);
    expect(await state(pr.taskId)).toBe("waiting_human");
    expect(merges(pr.pr_number)).toHaveLength(0);
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(false);
  });

  it("waits for the CI that ran on the base commit, naming it, and merges once it is green", async () => {
    await useConfig("");
    const base = (await h.sim.getBranchSha(h.repo, "main"))!;
    await ci(base);
    const pr = await openPr("two");
    // A CLA bot reports first: one green status is not "all green" while `ci` has not reported.
    await h.sim.setStatus(h.repo, pr.head_sha, { state: "success", context: "cla/signed" });
    const waiting = await waitFor(
      async () => {
        const c = await safetyCheck(pr.head_sha);
        return c?.output.summary?.includes("all 1 passed") ? c : undefined;
      },
      { timeoutMs: 20_000, message: "a verdict that saw the CLA status" },
    );
    expect(waiting.status).toBe("in_progress");
    expect(waiting.output.title).toContain("expected but not reported");
    expect(waiting.output.summary).toContain("`ci` (base commit)");
    expect(await state(pr.taskId)).toBe("review");
    expect(merges(pr.pr_number)).toHaveLength(0);
    await ci(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 20_000,
      message: "merged once ci is green",
    });
    expect(merges(pr.pr_number)).toHaveLength(1);
  });

  it("blocks a PR moved to another base, saying why", async () => {
    await useConfig("");
    const pr = await openPr("three");
    await h.sim.push(h.repo, { branch: "release", files: { "RELEASE.md": "1\n" }, user: "maint" });
    await h.sim.editPullRequest(h.repo, pr.pr_number, { base: "release" }, { sender: "maint" });
    await ci(pr.head_sha);
    const check = await waitFor(
      async () => {
        const c = await safetyCheck(pr.head_sha);
        return c?.status === "completed" ? c : undefined;
      },
      { timeoutMs: 20_000, message: "a completed verdict" },
    );
    // Neutral: Conveyor hands it over; a person may still merge it into the other branch.
    expect(check.conclusion).toBe("neutral");
    expect(check.output.summary).toContain(
      "the pull request now targets `release`, but the task was made for `main`",
    );
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human");
    expect(merges(pr.pr_number)).toHaveLength(0);
    await h.sim.closeIssue(h.repo, pr.pr_number, { sender: "maint" });
  });

  it("updates a branch that fell behind (merge.update_branch), adopts GitHub's commit and merges it", async () => {
    await useConfig("merge:\n  update_branch: true\n");
    h.sim.setBranchProtection(h.repo, "main", { strict: true, contexts: ["ci"] });
    try {
      const pr = await openPr("four");
      await h.sim.push(h.repo, { branch: "main", files: { "NEWS.md": "news\n" }, user: "maint" });
      await ci(pr.head_sha);
      const updated = await waitFor(
        async () => {
          const head = (await h.sim.getPull(h.repo, pr.pr_number)).head.sha;
          return head !== pr.head_sha ? head : undefined;
        },
        { timeoutMs: 20_000, message: "the branch updated" },
      );
      // The simulator records a request once it has answered (it moves the branch before that).
      const update = await waitFor(
        () =>
          requestsTo("/repos/{owner}/{repo}/pulls/{pull_number}/update-branch", pr.pr_number)[0],
      );
      expect(update).toMatchObject({ status: 202, body: { expected_head_sha: pr.head_sha } });
      // Conveyor adopts the merge commit as its own head: the checks start again on it.
      await waitFor(
        async () => {
          const [row] = resultRows<{ head_sha: string }>(
            await h.database.db.execute(
              sql`select head_sha from pull_requests where task_id = ${pr.taskId}`,
            ),
          );
          return row?.head_sha === updated;
        },
        { timeoutMs: 20_000, message: "the update adopted" },
      );
      await waitFor(async () => (await safetyCheck(updated))?.status === "in_progress", {
        timeoutMs: 20_000,
        message: "a verdict on the updated head",
      });
      expect(merges(pr.pr_number)).toHaveLength(0);
      await ci(updated);
      await waitFor(async () => (await state(pr.taskId)) === "merged", {
        timeoutMs: 20_000,
        message: "merged after the update",
      });
      expect(merges(pr.pr_number).map((r) => (r.body as { sha: string }).sha)).toEqual([updated]);
      expect(
        requestsTo("/repos/{owner}/{repo}/pulls/{pull_number}/update-branch", pr.pr_number),
      ).toHaveLength(1);
      expect(await wentTo(pr.taskId, "waiting_human")).toBe(0);
      expect(await h.sim.readFile(h.repo, "src/four.txt")).toContain("line four");
      expect(await h.sim.readFile(h.repo, "NEWS.md")).toBe("news\n");
    } finally {
      h.sim.setBranchProtection(h.repo, "main", null);
    }
  });

  it("merge.mode approve: a tier-1 PR waits for a maintainer's /approve, then merges", async () => {
    await useConfig("merge:\n  mode: approve\n");
    const pr = await openPr("five");
    await ci(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human", {
      timeoutMs: 20_000,
      message: "waiting for an /approve",
    });
    const check = await safetyCheck(pr.head_sha);
    expect(check?.status).toBe("in_progress");
    expect(check?.output.title).toContain("maintainer's /approve");
    expect(merges(pr.pr_number)).toHaveLength(0);
    await h.sim.comment(h.repo, pr.pr_number, "/approve", { user: "maint" });
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 20_000,
      message: "merged after /approve",
    });
    expect(merges(pr.pr_number)).toHaveLength(1);
  });

  it("merge.mode report: merges nothing, says it would, and counts the hand merge", async () => {
    await useConfig("merge:\n  mode: report\n");
    const pr = await openPr("six");
    await ci(pr.head_sha);
    const check = await waitFor(
      async () => {
        const c = await safetyCheck(pr.head_sha);
        return c?.status === "completed" ? c : undefined;
      },
      { timeoutMs: 20_000, message: "a completed verdict" },
    );
    expect(check.conclusion).toBe("neutral");
    expect(check.output.title).toContain("would merge: tier 1, all checks green");
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human");
    expect(merges(pr.pr_number)).toHaveLength(0);
    await h.sim.mergePullRequest(h.repo, pr.pr_number, { user: "maint", method: "squash" });
    await waitFor(async () => (await state(pr.taskId)) === "merged");
    // The approve-mode PR above was a "would merge" too, merged by Conveyor; this one by hand.
    const trust = await waitFor(
      async () => {
        const response = await fetch(`${h.conveyor.url}/api/metrics`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        const report = (await response.json()) as MetricsReport;
        const row = report.trust.by_repository.find((r) => r.repository === h.repo);
        return row?.merged_by_hand === 1 ? row : undefined;
      },
      { timeoutMs: 10_000, message: "the hand merge counted" },
    );
    expect(trust).toEqual({ repository: h.repo, would_merge: 2, merged_by_hand: 1 });
  });
});
