import type { ProbotOctokit } from "probot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusMarker } from "../src/core/status-comment.ts";
import { createGitHubGateway } from "../src/github/github-gateway.ts";
import { createLogger } from "../src/logger.ts";
import type { GitHubSimulator } from "./github-sim/create-github-simulator.ts";
import {
  createTestProbot,
  startTestSimulator,
  type TestSimulator,
} from "./github-sim/simulator-test-kit.ts";

// The status comment Conveyor edits is found by its hidden marker; only a comment Conveyor's own
// App wrote counts, never another bot's (or person's) comment carrying the same marker.

let kit: TestSimulator;
let sim: GitHubSimulator;
let octokit: ProbotOctokit;
let installationId: number;

beforeAll(async () => {
  kit = await startTestSimulator({ appId: 91 });
  sim = kit.sim;
  installationId = (await sim.createInstallation({ account: "acme" })).id;
  octokit = await createTestProbot(sim, kit.privateKey).auth(installationId);
  await sim.createRepository({ owner: "acme", name: "widgets", installationId });
});
afterAll(async () => {
  expect(sim.violations).toEqual([]);
  await kit.close();
});

describe("findComment", () => {
  it("finds only the App's own comment with the marker, not another bot's", async () => {
    const gateway = createGitHubGateway({
      appId: sim.appId,
      appOctokit: async () => octokit,
      installationOctokit: async () => octokit,
      logger: createLogger({ level: "silent" }),
    });
    const ref = { installationId, owner: "acme", repo: "widgets" };
    const { issue } = await sim.openIssue("acme/widgets", { title: "x", user: "octocat" });
    const marker = statusMarker("3f1c0c4e-6a5e-4a43-9d8a-1f0f2b7d9a10");
    // Another App's bot (here the CI app) and a person post the marker first.
    await sim
      .setStatus("acme/widgets", "0".repeat(40), { state: "success", context: "ci" })
      .catch(() => undefined);
    await sim.comment("acme/widgets", issue.number, `hijack ${marker}`, { user: "ci[bot]" });
    await sim.comment("acme/widgets", issue.number, `me too ${marker}`, { user: "octocat" });
    expect(await gateway.findComment(ref, issue.number, marker)).toBeUndefined();
    const own = await gateway.createComment(ref, issue.number, `status ${marker}`);
    expect(await gateway.findComment(ref, issue.number, marker)).toBe(own);
  });
});
