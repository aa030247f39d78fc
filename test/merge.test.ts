import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { readRepositoryMarks } from "../src/store/repository-marks.ts";
import { findActiveTask, getTask } from "../src/store/tasks.ts";
import { createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import {
  queueScriptedIssue,
  type RunnerProcess,
  startScriptedRunner,
} from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

let h: Harness;
let runner: RunnerProcess;
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
const MERGE_TEMPLATE = "/repos/{owner}/{repo}/pulls/{pull_number}/merge";
const MERGE_ROUTE = `PUT ${MERGE_TEMPLATE}`;

beforeAll(async () => {
  h = await createHarness({
    files: {
      "src/app.txt": "line 1\nline 2\nline 3\n",
      "package.json": '{ "name": "widgets" }\n',
      ".github/conveyor.yml": "version: 1\n",
    },
  });
  scripted = await startScriptedRunner(h, "merge-runner");
  runner = scripted.runner;
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

async function openPr(title: string, script: string) {
  const { issueNumber, taskId } = await queueScriptedIssue(h, title, script);
  const pr = await waitFor(
    async () => {
      const [p] = resultRows<{ pr_number: number; head_sha: string; branch: string }>(
        await h.database.db.execute(
          sql`select pr_number, head_sha, branch from pull_requests where task_id = ${taskId}`,
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
  (await h.sim.listCheckRuns(h.repo, sha)).find((c) => c.name === "Conveyor / safety");
const merges = (prNumber: number) =>
  h.sim.requests.filter(
    (r) =>
      r.method === "PUT" &&
      r.route === MERGE_TEMPLATE &&
      r.path.endsWith(`/pulls/${prNumber}/merge`),
  );

async function greenCi(sha: string) {
  await h.sim.createCheckRun(h.repo, {
    name: "ci",
    headSha: sha,
    status: "completed",
    conclusion: "success",
  });
}

describe("review and auto-merge", () => {
  it("merges a tier-1 PR with green checks by itself, at Conveyor's SHA, and deletes the branch", async () => {
    const pr = await openPr("Tiny fix", "write src/app.txt\n<<<\nline 1\nline two\nline 3\n>>>");
    const base = await h.sim.getBranchSha(h.repo, "main");
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", {
      timeoutMs: 20_000,
      message: "merged",
    });
    // The merge left .github/conveyor.yml alone: the config read at the base serves the merge too,
    // so the next task's config load asks GitHub for nothing.
    const marks = await readRepositoryMarks(h.database.db, h.installationId, h.repo);
    expect(marks).toMatchObject({
      headSha: await h.sim.getBranchSha(h.repo, "main"),
      configSha: base,
    });
    const configReads = () =>
      h.sim.requests.filter(
        (r) =>
          r.route === "/repos/{owner}/{repo}/contents/{path}" && r.path.includes("conveyor.yml"),
      ).length;
    const reads = configReads();
    const { issue: probe } = await h.sim.openIssue(h.repo, { title: "Probe", user: "octocat" });
    await h.sim.addLabel(h.repo, probe.number, "conveyor", { sender: "octocat" });
    await waitFor(() => findActiveTask(h.database.db, h.repositoryId, probe.number), {
      message: "the probe queued",
    });
    expect(configReads()).toBe(reads);
    await h.sim.removeLabel(h.repo, probe.number, "conveyor", { sender: "octocat" });
    await waitFor(
      async () => (await findActiveTask(h.database.db, h.repositoryId, probe.number)) === undefined,
      { timeoutMs: 20_000, message: "the probe cancelled" },
    );
    const pull = await h.sim.getPull(h.repo, pr.pr_number);
    expect(pull.merged).toBe(true);
    const [mergeCall] = merges(pr.pr_number);
    expect(mergeCall?.body).toMatchObject({ sha: pr.head_sha, merge_method: "squash" });
    expect(merges(pr.pr_number)).toHaveLength(1);
    // The branch goes just after the task is recorded merged.
    await waitFor(async () => (await h.sim.getBranchSha(h.repo, pr.branch)) === undefined, {
      message: "the merged branch deleted",
    });
    expect(await h.sim.readFile(h.repo, "src/app.txt")).toContain("line two");
    const check = await safetyCheck(pr.head_sha);
    expect(check).toMatchObject({
      status: "completed",
      conclusion: "success",
      external_id: pr.taskId,
    });
    expect((await h.sim.getIssue(h.repo, pr.issueNumber)).state).toBe("closed");
    // One label write for the pull request: its own labels with the risk label of the verdict.
    const labelWrites = h.sim.requests.filter(
      (r) =>
        r.method === "POST" &&
        r.route === "/repos/{owner}/{repo}/issues/{issue_number}/labels" &&
        r.path.endsWith(`/issues/${pr.pr_number}/labels`),
    );
    expect(labelWrites.map((r) => r.body)).toEqual([
      { labels: ["conveyor", "priority:normal", "risk:tier-1"] },
    ]);
    expect(pull.labels.map((l) => l.name).sort()).toEqual([
      "conveyor",
      "priority:normal",
      "risk:tier-1",
    ]);
  });

  it("makes a tier-2 PR wait for an approval, then merges it", async () => {
    const pr = await openPr("New helper", "write src/helper.txt\n<<<\nhelp\n>>>");
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human", { timeoutMs: 20_000 });
    const check = await waitFor(() => safetyCheck(pr.head_sha));
    expect(check.output.summary).toContain("tier 2");
    expect(merges(pr.pr_number)).toHaveLength(0);
    const labels = (await h.sim.getPull(h.repo, pr.pr_number)).labels.map((l) => l.name);
    expect(labels).toContain("risk:tier-2");
    await h.sim.submitReview(h.repo, pr.pr_number, { user: "maint", state: "APPROVED" });
    await waitFor(async () => (await state(pr.taskId)) === "merged", { timeoutMs: 20_000 });
    expect(merges(pr.pr_number)).toHaveLength(1);
    // Two verdicts (waiting for an approval, then merge), one label write: the second would
    // change nothing, the pull request already had the label.
    const riskLabelWrites = h.sim.requests.filter(
      (r) =>
        r.method === "POST" &&
        r.route === "/repos/{owner}/{repo}/issues/{issue_number}/labels" &&
        r.path.endsWith(`/issues/${pr.pr_number}/labels`) &&
        JSON.stringify(r.body).includes("risk:tier-2"),
    );
    expect(riskLabelWrites).toHaveLength(1);
  });

  it("never merges a tier-3 PR, even approved with green checks", async () => {
    const pr = await openPr(
      "Bump deps",
      'write package.json\n<<<\n{ "name": "widgets", "version": "2" }\n>>>',
    );
    await greenCi(pr.head_sha);
    await h.sim.submitReview(h.repo, pr.pr_number, { user: "maint", state: "APPROVED" });
    const check = await waitFor(async () => {
      const c = await safetyCheck(pr.head_sha);
      return c?.status === "completed" ? c : undefined;
    });
    // Neutral, not failure: Conveyor hands it over, and a person may still merge it by hand.
    expect(check.conclusion).toBe("neutral");
    expect(check.output.summary).toContain("tier 3");
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human");
    // Give the merger a few more passes; nothing changes.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(merges(pr.pr_number)).toHaveLength(0);
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(false);
  });

  it("never merges a small change that makes a file executable: Conveyor knows the mode it wrote", async () => {
    const pr = await openPr(
      "Make it runnable",
      "write src/app.txt\n<<<\nline 1\nline 2\nline 3 (runnable)\n>>>\nchmod +x src/app.txt",
    );
    await greenCi(pr.head_sha);
    const check = await waitFor(async () => {
      const c = await safetyCheck(pr.head_sha);
      return c?.status === "completed" ? c : undefined;
    });
    expect(check.conclusion).toBe("neutral");
    expect(check.output.summary).toContain(
      "| Content visible and inspectable | ❌ fail | `src/app.txt` is written executable (mode 100755) |",
    );
    await waitFor(async () => (await state(pr.taskId)) === "waiting_human");
    expect(merges(pr.pr_number)).toHaveLength(0);
  });

  it("stops the merge when a check turns red after the approval", async () => {
    const pr = await openPr("Approved then red", "write src/late.txt\n<<<\nlate\n>>>");
    const { checkRun } = await h.sim.createCheckRun(h.repo, {
      name: "ci",
      headSha: pr.head_sha,
      status: "in_progress",
    });
    await h.sim.submitReview(h.repo, pr.pr_number, { user: "maint", state: "APPROVED" });
    await h.sim.completeCheckRun(h.repo, checkRun.id, "failure");
    await waitFor(async () =>
      ["queued", "assigned", "running", "pushed", "review", "waiting_human"].includes(
        (await state(pr.taskId)) ?? "",
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(merges(pr.pr_number)).toHaveLength(0);
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(false);
  });

  it("re-evaluates after a 409 and merges once", async () => {
    h.sim.injectFault(MERGE_ROUTE, 409, {
      message: "Head branch was modified. Review and try the merge again.",
    });
    const pr = await openPr(
      "Conflict once",
      "write src/app.txt\n<<<\nline 1\nline 2\nline three\n>>>",
    );
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", { timeoutMs: 20_000 });
    expect(merges(pr.pr_number).map((r) => r.status)).toEqual([409, 200]);
  });

  it("after a 5xx whose merge happened, re-reads the PR instead of merging again", async () => {
    const pr = await openPr("Lost answer", "write src/app.txt\n<<<\nline one\nline 2\nline 3\n>>>");
    h.sim.injectFault(MERGE_ROUTE, 502, { when: "after", message: "Server Error" });
    await greenCi(pr.head_sha);
    await waitFor(async () => (await state(pr.taskId)) === "merged", { timeoutMs: 20_000 });
    expect(merges(pr.pr_number).map((r) => r.status)).toEqual([502]);
    expect((await h.sim.getPull(h.repo, pr.pr_number)).merged).toBe(true);
  });
});
