import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { createGitHubBudget } from "../src/core/github-budget.ts";
import { repoRef } from "../src/core/github-objects.ts";
import { createSignals } from "../src/core/signals.ts";
import { createGitHub, type GitHubApp } from "../src/github/create-github.ts";
import { createGitHubGateway } from "../src/github/github-gateway.ts";
import {
  readRepositoryMarks,
  recordDefaultHead,
  recordMergedHead,
  recordPushedHead,
} from "../src/store/repository-marks.ts";
import { findActiveTask, upsertRepository } from "../src/store/tasks.ts";
import { runGit } from "./github-sim/run-git.ts";
import {
  createHarness,
  createWorld,
  type Harness,
  WEBHOOK_SECRET,
  type World,
} from "./helpers/conveyor-harness.ts";
import { waitFor } from "./helpers/wait-for.ts";

const ACCESS_TOKENS = "/app/installations/{installation_id}/access_tokens";

describe("the GitHub edge's caches, on the simulator", () => {
  let world: World;
  let app: GitHubApp;
  let scratch: string;

  beforeAll(async () => {
    world = await createWorld();
    scratch = await mkdtemp(path.join(tmpdir(), "conveyor-caches-"));
    const github = await createGitHub({
      config: loadConfig(world.env),
      database: world.database,
      logger: pino({ level: "silent" }),
      metrics: { githubRequest() {}, githubRateLimit() {}, githubRateLimited() {}, webhook() {} },
      githubBudget: createGitHubBudget(),
      recordError() {},
      signals: createSignals(),
      options: { octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } } },
    });
    app = github.app!;
  });
  afterAll(async () => {
    await world?.close();
    await rm(scratch, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(world.sim.violations).toEqual([]);
  });

  const ref = () => repoRef(world.installationId, world.repo);
  const requestsTo = (route: string) => world.sim.requests.filter((r) => r.route === route);

  it("repeats a read conditionally: an unchanged answer is a 304, a changed one a 200", async () => {
    const { issue } = await world.sim.openIssue(world.repo, { title: "Blue", user: "octocat" });
    const route = "/repos/{owner}/{repo}/issues/{issue_number}";
    const before = requestsTo(route).length;
    const first = await app.gateway.getIssue(ref(), issue.number);
    const second = await app.gateway.getIssue(ref(), issue.number);
    expect(second).toEqual(first);
    expect(
      requestsTo(route)
        .slice(before)
        .map((r) => r.status),
    ).toEqual([200, 304]);

    await world.sim.editIssue(world.repo, issue.number, { title: "Green" }, { sender: "octocat" });
    const third = await app.gateway.getIssue(ref(), issue.number);
    expect(third?.title).toBe("Green");
    expect(
      requestsTo(route)
        .slice(before)
        .map((r) => r.status),
    ).toEqual([200, 304, 200]);
  });

  it("hands out a kept answer that its caller may change: a wrapped list read three times", async () => {
    await world.sim.createRepository({
      owner: "acme",
      name: "gadgets",
      installationId: world.installationId,
    });
    const route = "/installation/repositories";
    const before = requestsTo(route).length;
    const first = await app.gateway.listInstallationRepositories(world.installationId);
    const second = await app.gateway.listInstallationRepositories(world.installationId);
    const third = await app.gateway.listInstallationRepositories(world.installationId);
    expect(first.map((r) => r.fullName).sort()).toEqual(["acme/gadgets", world.repo]);
    expect([second, third]).toEqual([first, first]);
    expect(
      requestsTo(route)
        .slice(before)
        .map((r) => r.status),
    ).toEqual([200, 304, 304]);
  });

  it("asks GitHub for one installation token however many calls use it", async () => {
    const installationTokens = () =>
      requestsTo(ACCESS_TOKENS).filter(
        (r) => !(r.body as { repositories?: unknown } | undefined)?.repositories,
      ).length;
    await app.gateway.listOpenIssuesWithLabel(ref(), "conveyor");
    const after = installationTokens();
    expect(after).toBe(1);
    for (let i = 0; i < 5; i++) await app.gateway.listOpenIssuesWithLabel(ref(), "conveyor");
    await app.gateway.permission(ref(), "octocat");
    expect(installationTokens()).toBe(1);
  });

  it("keeps a missing config too: the owner's .github fallback is read once, not on every call", async () => {
    await upsertRepository(world.database.db, {
      repositoryId: world.repositoryId,
      installationId: world.installationId,
      fullName: world.repo,
    });
    const contents = () => requestsTo("/repos/{owner}/{repo}/contents/{path}").length;
    const before = contents();
    const first = await app.gateway.loadConfig(ref());
    const reads = contents() - before;
    // This repository has no .github/conveyor.yml, so the owner's .github repository is tried too.
    expect(reads).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 3; i++) expect(await app.gateway.loadConfig(ref())).toEqual(first);
    expect(contents() - before).toBe(reads);
  });

  it("shares one read-only token among a repository's tasks, and it still cannot push", async () => {
    const readTokens = () =>
      requestsTo(ACCESS_TOKENS).filter(
        (r) => (r.body as { repositories?: unknown } | undefined)?.repositories,
      ).length;
    const before = readTokens();
    const first = await app.gateway.readOnlyToken(ref());
    const second = await app.gateway.readOnlyToken(ref());
    expect(second).toEqual(first);
    expect(readTokens() - before).toBe(1);

    const url = new URL(world.sim.cloneUrl(world.repo));
    url.username = "x-access-token";
    url.password = second.value;
    const clone = path.join(scratch, "reused-token");
    await runGit(["clone", "--quiet", url.toString(), clone]);
    const push = await runGit(["push", "origin", "HEAD:refs/heads/sneaky"], {
      cwd: clone,
      okCodes: [128],
    });
    expect(push.code).toBe(128);
    expect(push.stderr).toContain("403");
    expect(await world.sim.getBranchSha(world.repo, "sneaky")).toBeUndefined();
  });
  it("shares one config read among callers asking at once for the same head", async () => {
    const contents = () => requestsTo("/repos/{owner}/{repo}/contents/{path}").length;
    const pushed = async (text: string) => {
      const { sha } = await world.sim.push(world.repo, {
        branch: "main",
        files: { "NOTES.md": text },
        user: "maint",
      });
      // What the push webhook records.
      await recordDefaultHead(world.database.db, {
        installationId: world.installationId,
        fullName: world.repo,
        defaultBranch: "main",
        headSha: sha,
      });
    };
    await pushed("one\n");
    const before = contents();
    const alone = await app.gateway.loadConfig(ref());
    const single = contents() - before;
    expect(single).toBeGreaterThan(0);
    await pushed("two\n");
    const after = contents();
    const together = await Promise.all([1, 2, 3].map(() => app.gateway.loadConfig(ref())));
    expect(together).toEqual([alone, alone, alone]);
    expect(contents() - after).toBe(single);
  });

  it("shares one permission read among callers asking at once for the same person", async () => {
    const reads = () =>
      requestsTo("/repos/{owner}/{repo}/collaborators/{username}/permission").length;
    const before = reads();
    // A login not asked for yet in this file: nothing cached.
    const together = await Promise.all([1, 2, 3].map(() => app.gateway.permission(ref(), "maint")));
    expect(together).toEqual(["maintain", "maintain", "maintain"]);
    expect(reads() - before).toBe(1);
  });

  it("keeps a repository's head for new assignments until a push moves it or a minute passed", async () => {
    let clock = Date.parse("2026-12-07T12:00:00Z");
    const marks = {
      read: (r: ReturnType<typeof ref>) =>
        readRepositoryMarks(world.database.db, r.installationId, `${r.owner}/${r.repo}`),
      recordHead: (r: ReturnType<typeof ref>, defaultBranch: string, headSha: string) =>
        recordDefaultHead(world.database.db, {
          installationId: r.installationId,
          fullName: `${r.owner}/${r.repo}`,
          defaultBranch,
          headSha,
        }),
    };
    const gateway = createGitHubGateway({
      appId: 4242,
      appOctokit: () => Promise.reject(new Error("not used")),
      installationOctokit: app.installationOctokit,
      logger: pino({ level: "silent" }),
      marks,
      now: () => clock,
    });
    const headReads = () =>
      world.sim.requests.filter(
        (r) =>
          r.route === "/repos/{owner}/{repo}" || r.route === "/repos/{owner}/{repo}/git/ref/{ref}",
      ).length;
    const before = headReads();
    const first = await gateway.repositoryHead(ref());
    expect(first.headSha).toBe(await world.sim.getBranchSha(world.repo, "main"));
    expect(headReads() - before).toBe(2);
    clock += 59_000;
    expect(await gateway.repositoryHead(ref())).toEqual(first);
    expect(headReads() - before).toBe(2);
    // A minute after the read (a lost push webhook): read again.
    clock += 1_000;
    expect(await gateway.repositoryHead(ref())).toEqual(first);
    expect(headReads() - before).toBe(4);

    // A push: its webhook moves the mark (as the push handler does), the next assignment reads.
    const { sha } = await world.sim.push(world.repo, {
      branch: "main",
      files: { "README.md": "pushed\n" },
      user: "maint",
    });
    expect(await gateway.repositoryHead(ref())).toEqual(first);
    await marks.recordHead(ref(), "main", sha);
    expect((await gateway.repositoryHead(ref())).headSha).toBe(sha);
    expect(headReads() - before).toBe(6);
  });
});

describe("invalidation by webhooks, through a running server", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await createHarness({ files: { ".github/conveyor.yml": "version: 1\n" } });
  });
  afterAll(async () => {
    await h?.close();
  });
  afterEach(() => {
    expect(h.sim.violations).toEqual([]);
  });

  const contentsReads = () =>
    h.sim.requests.filter((r) => r.route === "/repos/{owner}/{repo}/contents/{path}").length;
  const taskOf = (n: number) => findActiveTask(h.database.db, h.repositoryId, n);

  async function labelled(title: string, label: string) {
    const { issue } = await h.sim.openIssue(h.repo, { title, user: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, label, { sender: "octocat" });
    await h.sim.idle();
    return issue.number;
  }

  it("reads the config once per default-branch head, and a pushed change is seen by the next task", async () => {
    const first = await labelled("One", "conveyor");
    expect(await taskOf(first)).toBeDefined();
    const reads = contentsReads();
    const second = await labelled("Two", "conveyor");
    expect(await taskOf(second)).toBeDefined();
    expect(contentsReads()).toBe(reads);

    await h.sim.push(h.repo, {
      branch: "main",
      files: { ".github/conveyor.yml": "version: 1\nintake:\n  label: robot\n" },
      user: "maint",
    });
    await h.sim.idle();
    const third = await labelled("Three", "robot");
    expect(await taskOf(third)).toBeDefined();
    const fourth = await labelled("Four", "conveyor");
    expect(await taskOf(fourth)).toBeUndefined();
    expect(contentsReads()).toBe(reads + 1);
  });

  it("sees a config change whose push webhook was lost once reconciliation ran", async () => {
    h.sim.setWebhook(undefined);
    await h.sim.push(h.repo, {
      branch: "main",
      files: { ".github/conveyor.yml": "version: 1\nintake:\n  label: droid\n" },
      user: "maint",
    });
    h.sim.setWebhook({ url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    const missed = await labelled("Six", "droid");
    expect(await taskOf(missed)).toBeUndefined();
    // Reconciliation reads the head again, then the config at it: the labelled issue is queued.
    expect(await h.conveyor.reconcile()).toMatchObject({ created: 1 });
    expect(await taskOf(missed)).toMatchObject({ state: "queued" });
  });

  it("sees a permission change at once when the member webhook says so", async () => {
    const { issue } = await h.sim.openIssue(h.repo, { title: "Five", user: "octocat" });
    const say = async (user: string) => {
      const { comment } = await h.sim.comment(h.repo, issue.number, "/queue", { user });
      return waitFor(() =>
        h.sim
          .listReactions(h.repo, { comment: comment.id })
          .map((r) => r.content)
          .find((c) => c === "+1" || c === "-1"),
      );
    };
    expect(await say("reader")).toBe("-1");
    await h.sim.changeCollaborator(h.repo, "reader", "write", { sender: "maint" });
    await h.sim.idle();
    expect(await say("reader")).toBe("+1");
    expect(await taskOf(issue.number)).toMatchObject({ state: "queued" });
  });

  const CONFIG = ".github/conveyor.yml";
  const marks = () => readRepositoryMarks(h.database.db, h.installationId, h.repo);
  const main = () => h.sim.getBranchSha(h.repo, "main");
  /** A push to main whose webhook is held back: its payload, as the simulator made it, to send. */
  async function heldPush(files: Record<string, string>) {
    h.sim.setWebhook(undefined);
    try {
      await h.sim.push(h.repo, { branch: "main", files, user: "maint" });
    } finally {
      h.sim.setWebhook({ url: `${h.conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
    }
    const held = h.sim.deliveries.filter((d) => d.event === "push").at(-1);
    if (!held) throw new Error("no push delivery recorded");
    return held.payload as { before: string; after: string; commits: Record<string, unknown>[] };
  }
  /** Sends a `push` payload, checked against GitHub's webhook schema, and waits for Conveyor. */
  async function deliverPush(payload: Record<string, unknown>) {
    const delivery = await h.sim.sendWebhook("push", payload, { validate: true });
    expect(delivery.status).toBe(200);
    await h.sim.idle();
  }

  it("carries the config over a push that leaves it alone: the next task reads nothing", async () => {
    await h.sim.push(h.repo, {
      branch: "main",
      files: { [CONFIG]: "version: 1\nintake:\n  label: carried\n" },
      user: "maint",
    });
    await h.sim.idle();
    expect(await taskOf(await labelled("Seven", "carried"))).toBeDefined();
    const reads = contentsReads();
    const changed = await main();

    await h.sim.push(h.repo, { branch: "main", files: { "NOTES.md": "notes\n" }, user: "maint" });
    await h.sim.idle();
    expect(await marks()).toMatchObject({ headSha: await main(), configSha: changed });
    expect(await taskOf(await labelled("Eight", "carried"))).toBeDefined();
    // A second clean push keeps the older commit: still one read for both.
    const held = await heldPush({ "NOTES.md": "more notes\n" });
    await deliverPush(held);
    expect(await marks()).toMatchObject({ headSha: held.after, configSha: changed });
    expect(await taskOf(await labelled("Nine", "carried"))).toBeDefined();
    expect(contentsReads()).toBe(reads);
  });

  it("reads the config again after a forced push, or one whose commit list may be cut short", async () => {
    const forced = await heldPush({ "NOTES.md": "forced\n" });
    await deliverPush({ ...forced, forced: true });
    expect(await marks()).toMatchObject({ headSha: forced.after, configSha: null });
    const reads = contentsReads();
    expect(await taskOf(await labelled("Ten", "carried"))).toBeDefined();
    expect(contentsReads()).toBe(reads + 1);

    // GitHub lists at most 2,048 commits: a list that long may hide one that changed the config.
    const long = await heldPush({ "NOTES.md": "long\n" });
    const commit = long.commits[0]!;
    await deliverPush({ ...long, commits: Array.from({ length: 2048 }, () => commit) });
    expect(await marks()).toMatchObject({ headSha: long.after, configSha: null });
    expect(await taskOf(await labelled("Eleven", "carried"))).toBeDefined();
    expect(contentsReads()).toBe(reads + 2);
  });

  it("sees a pull request that changes the config once it is merged", async () => {
    await h.sim.push(h.repo, {
      branch: "config-change",
      files: { [CONFIG]: "version: 1\nintake:\n  label: merged-in\n" },
      user: "maint",
    });
    const { pull } = await h.sim.openPullRequest(h.repo, {
      title: "Another intake label",
      head: "config-change",
      user: "maint",
    });
    const before = await main();
    const template = await heldPush({ "NOTES.md": "template\n" });
    const { sha } = await h.sim.mergePullRequest(h.repo, pull.number, {
      user: "maint",
      method: "squash",
    });
    // What GitHub sends for the merge (the simulator sends no push for merges): first the held
    // push, then the squash commit that changes the config.
    await deliverPush(template);
    const base = template.after;
    expect(await marks()).toMatchObject({ headSha: base, configSha: before });
    const squash = { ...template.commits[0], id: sha, added: [], removed: [], modified: [CONFIG] };
    await deliverPush({
      ...template,
      before: base,
      after: sha,
      commits: [squash],
      head_commit: squash,
    });
    expect(await marks()).toMatchObject({ headSha: sha, configSha: null });
    expect(await taskOf(await labelled("Twelve", "merged-in"))).toBeDefined();
    expect(await taskOf(await labelled("Thirteen", "carried"))).toBeUndefined();
  });
});

describe("the config mark over head moves in either order (repositories.config_sha)", () => {
  let world: World;
  const installationId = 9_100;
  const [B, M, X, Y] = ["b", "m", "c", "d"].map((c) => c.repeat(40)) as [
    string,
    string,
    string,
    string,
  ];
  let next = 0;

  beforeAll(async () => {
    world = await createWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  /** A fresh repository whose head is `head` and whose config is read there. */
  async function repository(head: string) {
    next += 1;
    const repo = { repositoryId: 880_000 + next, fullName: `acme/marks-${next}` };
    await upsertRepository(world.database.db, { ...repo, installationId });
    await recordDefaultHead(world.database.db, {
      installationId,
      fullName: repo.fullName,
      defaultBranch: "main",
      headSha: head,
    });
    const db = world.database.db;
    return {
      marks: async () => {
        const m = await readRepositoryMarks(db, installationId, repo.fullName);
        return { head: m?.headSha, config: m?.configSha };
      },
      push: (before: string, after: string, carries = true) =>
        recordPushedHead(db, {
          installationId,
          fullName: repo.fullName,
          defaultBranch: "main",
          before,
          after,
          carries,
        }),
      merge: (headSha: string, carryFrom?: string) =>
        recordMergedHead(db, {
          repositoryId: repo.repositoryId,
          branch: "main",
          headSha,
          carryFrom,
        }),
      read: (headSha: string) =>
        recordDefaultHead(db, {
          installationId,
          fullName: repo.fullName,
          defaultBranch: "main",
          headSha,
        }),
    };
  }

  it("a merge recorded before its push webhook: the push keeps the carry, a redelivery too", async () => {
    const r = await repository(B);
    await r.merge(M, B);
    expect(await r.marks()).toEqual({ head: M, config: B });
    await r.push(B, M);
    await r.push(B, M);
    expect(await r.marks()).toEqual({ head: M, config: B });
    // The push says otherwise (the file list was wrong, or the base was not what was merged
    // onto): read again.
    await r.push(B, M, false);
    expect(await r.marks()).toEqual({ head: M, config: null });
  });

  it("a push webhook before the merge is recorded: the merge changes nothing", async () => {
    const r = await repository(B);
    await r.push(B, M);
    await r.merge(M, B);
    expect(await r.marks()).toEqual({ head: M, config: B });
  });

  it("a merge onto a base that moved since the merger read it is not carried", async () => {
    const r = await repository(B);
    await r.push(B, X, false);
    await r.merge(M, B);
    expect(await r.marks()).toEqual({ head: M, config: null });
    // Its own webhook leaves that as it is; the next clean push carries from the merge.
    await r.push(X, M);
    expect(await r.marks()).toEqual({ head: M, config: null });
    await r.push(M, Y);
    expect(await r.marks()).toEqual({ head: Y, config: M });
  });

  it("carries the oldest commit over clean pushes; a merge through the queue, a late webhook and a head read drop it", async () => {
    const r = await repository(B);
    await r.push(B, X);
    await r.merge(M, X);
    expect(await r.marks()).toEqual({ head: M, config: B });
    await r.merge(Y);
    expect(await r.marks()).toEqual({ head: Y, config: null });

    const late = await repository(B);
    await late.push(B, X);
    await late.push(M, Y);
    expect(await late.marks()).toEqual({ head: Y, config: null });

    const read = await repository(B);
    await read.push(B, X);
    await read.read(X);
    expect(await read.marks()).toEqual({ head: X, config: B });
    await read.read(Y);
    expect(await read.marks()).toEqual({ head: Y, config: null });
  });
});
