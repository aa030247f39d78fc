import { execFileSync } from "node:child_process";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { getTask } from "../src/store/tasks.ts";
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

beforeAll(async () => {
  h = await createHarness({ files: { "src/app.txt": "v1\n" } });
  scripted = await startScriptedRunner(h, "pr-runner");
  runner = scripted.runner;
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const queue = (title: string, script: string) => queueScriptedIssue(h, title, script);

async function pullRow(taskId: string) {
  const [row] = resultRows<{ pr_number: number; head_sha: string; url: string }>(
    await h.database.db.execute(
      sql`select pr_number, head_sha, url from pull_requests where task_id = ${taskId}`,
    ),
  );
  return row;
}

const git = (...args: string[]) =>
  execFileSync("git", ["--git-dir", h.sim.gitDir(h.repo), ...args], { encoding: "utf8" }).trim();

async function settledIn(
  taskId: string,
  state: string,
  extra?: (t: NonNullable<Awaited<ReturnType<typeof getTask>>>) => boolean,
) {
  return waitFor(
    async () => {
      const task = await getTask(h.database.db, taskId);
      return task && task.state === state && (!extra || extra(task)) ? task : undefined;
    },
    { timeoutMs: 30_000, message: `task ${state}\n${runner.output().slice(-1500)}` },
  );
}

describe("pull requests", () => {
  it("turns the change into exactly one PR whose commit sits on base_sha, linked both ways", async () => {
    const base = await h.sim.getBranchSha(h.repo, "main");
    const mark = h.sim.requests.length;
    const queued = await queue("Update the app", "write src/app.txt\n<<<\nv2\n>>>");
    await settledIn(queued.taskId, "review");
    const pr = await pullRow(queued.taskId);
    expect(pr).toBeDefined();
    // A first publish of a regular file: branch, commit and pull request in one GraphQL mutation,
    // none of the REST writes.
    const sent = h.sim.requests.slice(mark);
    expect(
      sent.filter(
        (r) => r.route === "/graphql" && /createCommitOnBranch/.test(JSON.stringify(r.body)),
      ),
    ).toHaveLength(1);
    expect(
      sent.filter(
        (r) => r.method === "POST" && /\/git\/(trees|commits|refs)$|\/pulls$/.test(r.path),
      ),
    ).toEqual([]);
    const pulls = (await h.sim.listPulls(h.repo)).filter(
      (p) => p.head.ref === `conveyor/issue-${queued.issueNumber}`,
    );
    expect(pulls).toHaveLength(1);
    expect(pulls[0]).toMatchObject({ number: pr!.pr_number, state: "open" });
    expect(pulls[0]!.body).toContain(`Closes #${queued.issueNumber}`);
    expect(pulls[0]!.body).toContain(`<!-- conveyor:pr task=${queued.taskId} generation=1 -->`);
    // The merger's first verdict adds the pull request's labels with its risk label, in one write.
    const labels = await waitFor(async () => {
      const names = (await h.sim.getPull(h.repo, pr!.pr_number)).labels.map((l) => l.name);
      if (!names.includes("conveyor")) throw new Error(`labels: ${names.join(", ")}`);
      return names;
    });
    expect(labels).toEqual(expect.arrayContaining(["conveyor", "priority:normal"]));
    // A real commit whose only parent is the base, with the agent's change.
    expect(pulls[0]!.head.sha).toBe(pr!.head_sha);
    expect(git("rev-list", "--parents", "-n", "1", pr!.head_sha).split(" ")).toEqual([
      pr!.head_sha,
      base,
    ]);
    expect(git("show", `${pr!.head_sha}:src/app.txt`)).toBe("v2");
    // The issue's status comment links the pull request.
    await waitFor(() =>
      h.sim
        .listComments(h.repo, queued.issueNumber)
        .some((c) => c.body?.includes(`| Pull request | ${pr!.url} |`)),
    );
  });

  it("answers red checks with follow-ups on the same PR, with the failure in the prompt, then stops", async () => {
    const queued = await queue(
      "Flaky fix",
      "copy-prompt PROMPT.md\nwrite src/app.txt\n<<<\nv3\n>>>",
    );
    await settledIn(queued.taskId, "review");
    const first = (await pullRow(queued.taskId))!;
    const heads = [first.head_sha];
    for (const round of [1, 2]) {
      await h.sim.setStatus(h.repo, heads.at(-1)!, {
        state: "failure",
        context: "ci/test",
        description: `round ${round}: expected 2, got 3`,
      });
      await settledIn(
        queued.taskId,
        "review",
        (t) => t.ciFixes === round && t.publishedGeneration === t.generation,
      );
      const pr = (await pullRow(queued.taskId))!;
      expect(pr.pr_number).toBe(first.pr_number);
      expect(pr.head_sha).not.toBe(heads.at(-1));
      // The follow-up continued on the branch: its parent is the previous head.
      expect(git("rev-parse", `${pr.head_sha}^`)).toBe(heads.at(-1));
      expect(git("show", `${pr.head_sha}:PROMPT.md`)).toContain(
        `round ${round}: expected 2, got 3`,
      );
      heads.push(pr.head_sha);
    }
    await h.sim.setStatus(h.repo, heads.at(-1)!, {
      state: "failure",
      context: "ci/test",
      description: "round 3",
    });
    const waiting = await settledIn(queued.taskId, "waiting_human");
    expect(waiting.ciFixes).toBe(2);
    await waitFor(() =>
      h.sim
        .listComments(h.repo, first.pr_number)
        .some((c) => c.body?.includes("after 2 automatic follow-up attempts")),
    );
    expect(
      (await h.sim.listPulls(h.repo)).filter(
        (p) => p.head.ref === `conveyor/issue-${queued.issueNumber}`,
      ),
    ).toHaveLength(1);
    expect((await getTask(h.database.db, queued.taskId))?.generation).toBe(waiting.generation);
  });

  it("runs a follow-up for /fix from a maintainer, and tells anyone else who may", async () => {
    const queued = await queue(
      "Needs polish",
      "copy-prompt PROMPT.md\nwrite polish.txt\n<<<\np\n>>>",
    );
    await settledIn(queued.taskId, "review");
    const pr = (await pullRow(queued.taskId))!;
    await h.sim.comment(h.repo, pr.pr_number, "/fix please also mention the flag", {
      user: "reader",
    });
    await waitFor(() =>
      h.sim
        .listComments(h.repo, pr.pr_number)
        .some((c) => c.body?.includes("`/fix` needs write access")),
    );
    expect((await getTask(h.database.db, queued.taskId))?.reviewFixes).toBe(0);
    await h.sim.comment(
      h.repo,
      pr.pr_number,
      "> /fix quoted, not a command\n\n/fix please also mention the flag",
      {
        user: "octocat",
      },
    );
    await settledIn(
      queued.taskId,
      "review",
      (t) => t.reviewFixes === 1 && t.publishedGeneration === t.generation,
    );
    const after = (await pullRow(queued.taskId))!;
    expect(after.pr_number).toBe(pr.pr_number);
    expect(git("show", `${after.head_sha}:PROMPT.md`)).toContain("please also mention the flag");
  });

  it("marks the task merged when its PR is merged, and cancelled when a person closes it", async () => {
    const merged = await queue("Merge me", "write merged.txt\n<<<\nm\n>>>");
    await settledIn(merged.taskId, "review");
    await h.sim.mergePullRequest(h.repo, (await pullRow(merged.taskId))!.pr_number, {
      user: "maint",
      method: "squash",
    });
    await settledIn(merged.taskId, "merged");

    const closed = await queue("Close me", "write closed.txt\n<<<\nc\n>>>");
    await settledIn(closed.taskId, "review");
    await h.sim.closeIssue(h.repo, (await pullRow(closed.taskId))!.pr_number, { sender: "maint" });
    await settledIn(closed.taskId, "cancelled");
  });

  it("refuses a change to .github/workflows/ before writing anything, and says why on the issue", async () => {
    const before = h.sim.requests.length;
    const queued = await queue("Touch CI", "write .github/workflows/evil.yml\n<<<\non: push\n>>>");
    const task = await settledIn(queued.taskId, "dead");
    expect(task.lastError).toContain(".github/workflows/");
    const comment = await waitFor(() =>
      h.sim
        .listComments(h.repo, queued.issueNumber)
        .find((c) => c.body?.includes("did not open a pull request")),
    );
    expect(comment.body).toContain("workflows");
    expect(await pullRow(queued.taskId)).toBeUndefined();
    const writes = h.sim.requests
      .slice(before)
      .filter((r) => r.method !== "GET" && /\/git\/|\/pulls/.test(r.path));
    expect(writes).toEqual([]);
  });
});
