import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../../db/client.ts";
import { type FiledIssue, type PlayOutcome, type Stage, startStage } from "../../demo/stage.ts";
import {
  BEST_OF_REPO,
  CI,
  type IssueView,
  MAINTAINER,
  MERGE_QUEUE_REPO,
  REPO,
  readQueueTrip,
  repoOf,
  SAFETY_CHECK,
  type StoryKey,
  scriptedPaths,
} from "../../demo/story.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * `npm run demo`'s story through real processes: the server (`conveyor start`'s composition root
 * as a child process) on the test PostgreSQL, two runner processes with the scripted agent, and
 * the GitHub simulator with its CI. Only the database is read directly, for what GitHub cannot
 * show (the order in which tasks were assigned).
 */

let database: TestDatabase;
let stage: Stage;
let issues: FiledIssue[];
let outcome: PlayOutcome;
let views: Map<StoryKey, IssueView & { filed: FiledIssue }>;

beforeAll(async () => {
  database = await createTestDatabase();
  stage = await startStage({ databaseUrl: database.url });
  issues = await stage.fileIssues();
  await stage.startRunners();
  outcome = await stage.play(issues, { deadline: Date.now() + 80_000 });
  views = new Map(
    issues.map((filed, i) => [filed.story.key, { ...outcome.views[i]!, filed }] as const),
  );
}, 120_000);

afterAll(async () => {
  await stage?.close();
  await database?.drop();
});

const view = (key: StoryKey) => views.get(key)!;

/** A request to the simulator's REST API as the App's installation (checked against OpenAPI). */
async function api<T>(path: string): Promise<T> {
  const { token } = stage.sim.createInstallationToken(stage.installationId);
  const response = await fetch(`${stage.sim.url}${path}`, {
    headers: { authorization: `token ${token}`, accept: "application/vnd.github+json" },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

describe("the demo's story, end to end through real processes", () => {
  it("ends every issue as the story says", () => {
    const report = issues.map(
      (filed, i) =>
        `#${filed.number} ${filed.story.key}: ${outcome.judgements[i]!.ok ? "ok" : "NOT OK"} (${outcome.judgements[i]!.detail})`,
    );
    expect(report.join("\n"), stage.serverLog.slice(-4000)).not.toContain("NOT OK");
    expect(outcome.end).toBe("done");
    expect(stage.sim.violations).toEqual([]);
  });

  it("runs the urgent issue first although it was filed last", async () => {
    // One dispatch pass claims a batch (a task per free slot) in one statement: its events share
    // one `at`, in no particular order. The urgent task must be in the first batch, although the
    // first batch has fewer slots than the older tasks queued before it.
    const assigned = resultRows<{ repo: string; issue_number: number; at: string }>(
      await database.db.execute(sql`
        select r.full_name as repo, t.issue_number, e.at::text as at
        from task_events e join tasks t using (task_id) join repositories r using (repository_id)
        where e.to_state = 'assigned' order by e.at, e.event_id`),
    );
    expect(issues.at(-1)!.story.key).toBe("urgent");
    const firstBatch = assigned.filter((a) => a.at === assigned[0]?.at);
    expect(firstBatch.length).toBeLessThan(issues.length);
    expect(firstBatch).toContainEqual(
      expect.objectContaining({ repo: REPO, issue_number: view("urgent").number }),
    );
  });

  it("opens one pull request per issue, with exactly the agent's files and Closes #N", async () => {
    for (const repo of [REPO, BEST_OF_REPO]) {
      const pulls = await stage.sim.listPulls(repo);
      expect(pulls, repo).toHaveLength(issues.filter((f) => repoOf(f.story) === repo).length);
    }
    for (const filed of issues) {
      const v = view(filed.story.key);
      const repo = repoOf(filed.story);
      const pull = (await stage.sim.listPulls(repo)).find((p) => p.number === v.pr);
      expect(pull, `PR for #${filed.number}`).toBeDefined();
      expect(pull!.head.ref).toBe(`conveyor/issue-${filed.number}`);
      expect(pull!.title).toContain(filed.story.title);
      expect(pull!.body).toContain(`Closes #${filed.number}`);
      expect(pull!.user?.login).toBe(stage.sim.botLogin);
      const files = await api<{ filename: string }[]>(`/repos/${repo}/pulls/${v.pr}/files`);
      expect(files.map((f) => f.filename).sort()).toEqual(scriptedPaths(filed.story));
    }
  });

  it("merges tier 1 and approved tier 2 with a squash at Conveyor's commit, and closes their issues", async () => {
    for (const key of ["tier1", "urgent", "tier2"] as const) {
      const v = view(key);
      const repo = repoOf(v);
      const pull = await stage.sim.getPull(repo, v.pr!);
      expect(pull.merged, key).toBe(true);
      const merges = stage.sim.requests.filter(
        (r) => r.method === "PUT" && r.path === `/repos/${repo}/pulls/${v.pr}/merge`,
      );
      expect(
        merges.map((m) => [m.status, m.body]),
        key,
      ).toEqual([[200, expect.objectContaining({ sha: pull.head.sha, merge_method: "squash" })]]);
      expect(stage.sim.getIssue(repo, v.number).state, key).toBe("closed");
      expect(await stage.sim.getBranchSha(repo, `conveyor/issue-${v.number}`)).toBeUndefined();
    }
    expect(await stage.sim.readFile(REPO, "src/sizes.js")).toContain("extra-large");
    expect(await stage.sim.readFile(REPO, "README.md")).toContain("every size");
    expect(await stage.sim.readFile(REPO, "src/farewell.js")).toContain("Goodbye");
  });

  it("enqueues the pull request on the repository that requires the merge queue, and the queue merges it", async () => {
    const v = view("bestof");
    expect(repoOf(v)).toBe(MERGE_QUEUE_REPO);
    const pull = await stage.sim.getPull(MERGE_QUEUE_REPO, v.pr!);
    expect(pull).toMatchObject({ state: "closed", merged: true });
    const mergeSha = pull.merge_commit_sha!;
    // The queue fast-forwarded main to its merge group's commit: candidate 1's change (Claude's).
    expect(await stage.sim.getBranchSha(MERGE_QUEUE_REPO, "main")).toBe(mergeSha);
    expect(await stage.sim.readFile(MERGE_QUEUE_REPO, "src/price.js")).toContain("toFixed(2)");
    expect(stage.sim.getIssue(MERGE_QUEUE_REPO, v.number).state).toBe("closed");
    // Enqueued with the head Conveyor wrote; never merged directly.
    const enqueues = stage.sim.requests.filter(
      (r) => r.path === "/graphql" && JSON.stringify(r.body).includes("enqueuePullRequest"),
    );
    expect(enqueues.map((r) => [r.status, r.body])).toEqual([
      [
        200,
        expect.objectContaining({
          variables: expect.objectContaining({ expectedHeadOid: pull.head.sha }),
        }),
      ],
    ]);
    expect(
      stage.sim.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/merge")),
    ).not.toContainEqual(
      expect.objectContaining({ path: `/repos/${MERGE_QUEUE_REPO}/pulls/${v.pr}/merge` }),
    );
    // The CI ran on the merge group (gh-readonly-queue/main/pr-<n>-<base sha>), whose commit the
    // queue merged; GitHub's merge_group events reached Conveyor.
    const suites = await api<{
      check_suites: { head_branch: string | null; conclusion: string }[];
    }>(`/repos/${MERGE_QUEUE_REPO}/commits/${mergeSha}/check-suites`);
    expect(suites.check_suites).toContainEqual(
      expect.objectContaining({
        head_branch: expect.stringMatching(
          new RegExp(`^gh-readonly-queue/main/pr-${v.pr}-[0-9a-f]{40}$`),
        ),
        conclusion: "success",
      }),
    );
    const groups = stage.sim.deliveries
      .filter((d) => d.event === "merge_group")
      .map((d) => [d.action, d.payload.reason, d.status]);
    expect(groups).toEqual([
      ["checks_requested", undefined, 200],
      ["destroyed", "merged", 200],
    ]);
    // The task's history (the server's API): enqueued, then merged by the queue at that commit.
    const response = await fetch(`${stage.serverUrl}/api/tasks/${v.taskId}`, {
      headers: { authorization: `Bearer ${stage.adminToken}` },
    });
    const { events } = (await response.json()) as {
      events: { reason: string; from_state: string | null; to_state: string; data: unknown }[];
    };
    expect(readQueueTrip(events)).toEqual({
      head: pull.head.sha.slice(0, 7),
      method: "squash",
      position: 1,
      mergeSha,
    });
    // The move to merging was the enqueue, and the move to merged the queue's merge.
    const moves = events.filter((e) => e.from_state !== e.to_state);
    expect(moves.find((e) => e.to_state === "merging")).toMatchObject({
      reason: expect.stringMatching(/^enqueuing [0-9a-f]{7} in the merge queue \(squash\)/),
      data: { head_sha: pull.head.sha, merge_queue: true },
    });
    expect(moves.find((e) => e.to_state === "merged")).toMatchObject({
      reason: `pull request #${v.pr} merged by the merge queue at ${mergeSha.slice(0, 7)}`,
      data: { merge_sha: mergeSha, head_sha: pull.head.sha },
    });
    // Unlike after its own merges, Conveyor leaves the head branch to GitHub's "Automatically
    // delete head branches" (docs/merge-policy.md, "Merge queue").
    expect(await stage.sim.getBranchSha(MERGE_QUEUE_REPO, `conveyor/issue-${v.number}`)).toBe(
      pull.head.sha,
    );
  });

  it("never merges tier 3: the protected path and the failed verification stay open", async () => {
    for (const key of ["tier3", "verify"] as const) {
      const v = view(key);
      const pull = await stage.sim.getPull(REPO, v.pr!);
      expect([pull.state, pull.merged], key).toEqual(["open", false]);
      expect(stage.sim.getIssue(REPO, v.number).state, key).toBe("open");
      expect(
        stage.sim.requests.some((r) => r.path === `/repos/${REPO}/pulls/${v.pr}/merge`),
        key,
      ).toBe(false);
    }
    expect(await stage.sim.readFile(REPO, "package.json")).not.toContain("lint");
    expect(await stage.sim.readFile(REPO, "src/label.js")).not.toContain("toUpperCase");
  });

  it("labels every pull request with its risk tier", async () => {
    const expected: Record<StoryKey, string> = {
      tier1: "risk:tier-1",
      urgent: "risk:tier-1",
      tier2: "risk:tier-2",
      tier3: "risk:tier-3",
      verify: "risk:tier-3",
      bestof: "risk:tier-1",
    };
    for (const [key, label] of Object.entries(expected)) {
      const v = view(key as StoryKey);
      const pull = await stage.sim.getPull(repoOf(v), v.pr!);
      expect(
        pull.labels.map((l) => l.name),
        key,
      ).toEqual(expect.arrayContaining(["conveyor", label]));
    }
  });

  it("puts the CI's check and Conveyor's safety verdict on every head commit", async () => {
    const safety: Record<StoryKey, { conclusion: string; title: RegExp }> = {
      tier1: { conclusion: "success", title: /tier 1/ },
      urgent: { conclusion: "success", title: /tier 1/ },
      tier2: { conclusion: "success", title: /tier 2/ },
      tier3: { conclusion: "neutral", title: /package\.json is protected/ },
      verify: { conclusion: "neutral", title: /verification failed: node --test/ },
      bestof: { conclusion: "success", title: /tier 1/ },
    };
    for (const [key, want] of Object.entries(safety)) {
      const v = view(key as StoryKey);
      const runs = await stage.sim.listCheckRuns(repoOf(v), v.headSha!);
      const ci = runs.filter((r) => r.name === CI.name);
      expect(
        ci.map((r) => [r.status, r.conclusion, r.app?.slug]),
        key,
      ).toEqual([["completed", "success", CI.appSlug]]);
      const check = runs.filter((r) => r.name === SAFETY_CHECK);
      expect(check, key).toHaveLength(1);
      expect(check[0]).toMatchObject({
        status: "completed",
        conclusion: want.conclusion,
        app: { slug: "conveyor" },
      });
      expect(check[0]!.output.title, key).toMatch(want.title);
    }
  });

  it("keeps each issue's status comment current and says why a pull request waits", () => {
    const final: Record<StoryKey, RegExp> = {
      tier1: /### Conveyor: ✅ Merged/,
      urgent: /### Conveyor: ✅ Merged/,
      tier2: /### Conveyor: ✅ Merged/,
      tier3:
        /### Conveyor: 🙋 Waiting for a maintainer[\s\S]*\| Reason \| .*`package\.json` is protected/,
      verify:
        /### Conveyor: 🙋 Waiting for a maintainer[\s\S]*\| Reason \| .*verification failed: `node --test`/,
      bestof: /### Conveyor: ✅ Merged[\s\S]*\| Best of \| 2: candidate 1 is on the pull request/,
    };
    for (const [key, pattern] of Object.entries(final)) {
      const v = view(key as StoryKey);
      const status = v.comments.filter((body) => body.includes("<!-- conveyor:status"));
      expect(status, key).toHaveLength(1);
      expect(status[0], key).toMatch(pattern);
      expect(status[0], key).toContain(`/pull/${v.pr}`);
      expect(
        stage.sim.listReactions(repoOf(v), { issue: v.number }).map((r) => r.content),
        key,
      ).toContain("eyes");
    }
  });

  it("shows the failed verification's output in the pull request and hands tier 3 over on it", async () => {
    const verify = view("verify");
    const pull = await stage.sim.getPull(REPO, verify.pr!);
    expect(pull.body).toMatch(/node --test/);
    expect(pull.body).toMatch(/Gear \(SMALL\)|labels a widget with its size/);
    for (const key of ["tier3", "verify"] as const) {
      const comments = stage.sim.listComments(REPO, view(key).pr!).map((c) => c.body ?? "");
      expect(
        comments.some((body) => /tier 3/.test(body) && /will not merge it/.test(body)),
        key,
      ).toBe(true);
    }
  });

  it("takes the maintainer's /approve on the tier-2 pull request and answers it", () => {
    const tier2 = view("tier2");
    expect(tier2.approval).toMatchObject({ answer: "+1" });
    const approve = stage.sim
      .listComments(REPO, tier2.pr!)
      .find((c) => c.id === tier2.approval!.commentId);
    expect(approve).toMatchObject({ body: "/approve", user: { login: MAINTAINER } });
    // Nobody approved the others.
    for (const key of ["tier1", "urgent", "tier3", "verify", "bestof"] as const) {
      expect(view(key).approval, key).toBeUndefined();
    }
  });

  it("runs the best-of issue as two candidates on the runners their adapters name, and keeps the verified one", async () => {
    const v = view("bestof");
    expect(v.filed.story.labels).toContain("conveyor:best-of-2");
    // The pull request body's collapsed table: Claude's candidate picked, the scripted one ranked
    // second for its failed verification (tier 3), though it was cheaper. Checks: the round waits
    // for CI to register on a freshly written commit, so both show the simulator's green run.
    expect(v.candidates?.picked).toBe(1);
    const checks = "green";
    const [one, two] = v.candidates!.rows;
    expect(one).toEqual([
      "1",
      "`claude / claude-sonnet-4-5`",
      "✅",
      "1",
      checks,
      "2",
      expect.stringMatching(/^\$0\.0\d$/),
      "**picked**",
    ]);
    expect(two).toEqual([
      "2",
      expect.stringMatching(/^`command/),
      "❌",
      "3",
      checks,
      "2",
      "$0.01",
      "#2, branch deleted",
    ]);
    // Both candidate branches are gone; the task's history says why candidate 1 was kept.
    for (const k of [1, 2]) {
      expect(
        await stage.sim.getBranchSha(BEST_OF_REPO, `conveyor/issue-${v.number}-${k}`),
      ).toBeUndefined();
    }
    const [{ task_id: taskId }] = resultRows<{ task_id: string }>(
      await database.db.execute(sql`
        select t.task_id from tasks t join repositories r using (repository_id)
        where r.full_name = ${BEST_OF_REPO} and t.issue_number = ${v.number}
          and t.parent_task_id is null`),
    ) as [{ task_id: string }];
    const response = await fetch(`${stage.serverUrl}/api/tasks/${taskId}`, {
      headers: { authorization: `Bearer ${stage.adminToken}` },
    });
    const { events } = (await response.json()) as { events: { reason: string | null }[] };
    expect(events.map((e) => e.reason)).toContain(
      "best of 2: candidate 1 kept (verification passed (ahead of candidate 2))",
    );
    // Each candidate ran once, on the runner offering the adapter its place in tasks.best_of names.
    const attempts = resultRows<{ candidate: number; runner: string; outcome: string }>(
      await database.db.execute(sql`
        select t.candidate, r.name as runner, a.outcome
        from attempts a join tasks t on t.task_id = a.task_id
        join runners r on r.runner_id = a.runner_id
        where t.parent_task_id = ${taskId} order by t.candidate`),
    );
    expect(attempts).toEqual([
      { candidate: 1, runner: "claude-runner", outcome: "completed" },
      { candidate: 2, runner: expect.stringMatching(/^runner-\d$/), outcome: "completed" },
    ]);
  });
});
