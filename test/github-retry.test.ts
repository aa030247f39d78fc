import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { createGitHubBudget } from "../src/core/github-budget.ts";
import { repoRef } from "../src/core/github-objects.ts";
import { createSignals } from "../src/core/signals.ts";
import { createGitHub, type GitHubApp } from "../src/github/create-github.ts";
import { createWorld, type World } from "./helpers/conveyor-harness.ts";

const ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}";

describe("retrying what GitHub failed, with the production client", () => {
  let world: World;
  let app: GitHubApp;

  beforeAll(async () => {
    world = await createWorld();
    const github = await createGitHub({
      config: loadConfig(world.env),
      database: world.database,
      logger: pino({ level: "silent" }),
      metrics: { githubRequest() {}, githubRateLimit() {}, githubRateLimited() {}, webhook() {} },
      githubBudget: createGitHubBudget(),
      recordError() {},
      signals: createSignals(),
      // Retries as configured in production, with waits of milliseconds instead of seconds.
      options: { octokitOptions: { retry: { retryAfterBaseValue: 5 } } },
    });
    app = github.app!;
  });
  afterAll(async () => {
    await world?.close();
  });
  afterEach(() => {
    expect(world.sim.violations).toEqual([]);
  });

  const ref = () => repoRef(world.installationId, world.repo);
  const statuses = (before: number) =>
    world.sim.requests
      .filter((r) => r.route === ISSUE)
      .slice(before)
      .map((r) => r.status);

  it("retries a 5xx answer up to three times, then hands the caller the answer", async () => {
    const { issue } = await world.sim.openIssue(world.repo, { title: "Flaky", user: "octocat" });
    const before = world.sim.requests.filter((r) => r.route === ISSUE).length;
    world.sim.injectFault(`GET ${ISSUE}`, 502, { times: 2 });
    expect((await app.gateway.getIssue(ref(), issue.number))?.title).toBe("Flaky");
    expect(statuses(before)).toEqual([502, 502, 200]);

    const again = world.sim.requests.filter((r) => r.route === ISSUE).length;
    world.sim.injectFault(`GET ${ISSUE}`, 503, { times: 4 });
    await expect(app.gateway.getIssue(ref(), issue.number)).rejects.toMatchObject({
      status: 503,
    });
    expect(statuses(again)).toEqual([503, 503, 503, 503]);
  });

  it("does not retry an answer another try would not change", async () => {
    const before = world.sim.requests.filter((r) => r.route === ISSUE).length;
    expect(await app.gateway.getIssue(ref(), 9_999)).toBeUndefined();
    expect(statuses(before)).toEqual([404]);
  });
});
