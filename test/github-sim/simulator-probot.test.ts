import { createServer, type Server } from "node:http";
import { createNodeMiddleware, type Probot, type ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import {
  createTestProbot,
  startTestSimulator,
  type TestSimulator,
  WEBHOOK_SECRET,
} from "./simulator-test-kit.ts";

const owner = "acme";
const repo = "widgets";
const fullName = `${owner}/${repo}`;
const CONFIG = "version: 1\nintake_label: queue-me\n";

/** A tiny Probot app in Conveyor's style: 👀 on a trusted label, a comment, config from the repo. */
function exampleApp(app: Probot) {
  app.on("issues.labeled", async (context) => {
    if (context.payload.sender.type === "Bot") return;
    const config = await context.config<{ intake_label?: string }>("conveyor.yml");
    if (context.payload.label?.name !== config?.intake_label) return;
    const { data } = await context.octokit.rest.repos.getCollaboratorPermissionLevel(
      context.repo({ username: context.payload.sender.login }),
    );
    await context.octokit.rest.reactions.createForIssue(context.issue({ content: "eyes" }));
    await context.octokit.rest.issues.createComment(
      context.issue({ body: `Queued by ${context.payload.sender.login} (${data.role_name}).` }),
    );
  });
}

describe("GitHub simulator: a Probot app end to end", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let server: Server;
  let octokit: ProbotOctokit;

  beforeAll(async () => {
    kit = await startTestSimulator();
    sim = kit.sim;
    const probot = createTestProbot(sim, kit.privateKey);
    const middleware = await createNodeMiddleware(exampleApp, { probot });
    server = createServer((request, response) => {
      void middleware(request, response, () => response.writeHead(404).end());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    sim.setWebhook({
      url: `http://127.0.0.1:${address.port}/api/github/webhooks`,
      secret: WEBHOOK_SECRET,
    });
    const installationId = (await sim.createInstallation({ account: owner })).id;
    await sim.createRepository({
      owner,
      name: repo,
      installationId,
      files: { "README.md": "# widgets\n", ".github/conveyor.yml": CONFIG },
    });
    sim.setPermission(fullName, "maria", "maintain");
    octokit = await probot.auth(installationId);
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("delivers a label event to Probot, which answers through the API with an installation token", async () => {
    const { issue } = await sim.openIssue(fullName, { title: "Make it blue", user: "bob" });
    const { status } = await sim.addLabel(fullName, issue.number, "queue-me", { sender: "maria" });
    expect(status).toBe(200);
    await sim.idle();
    expect(
      sim.listReactions(fullName, { issue: issue.number }).map((r) => [r.content, r.user?.login]),
    ).toEqual([["eyes", "conveyor[bot]"]]);
    const comments = sim.listComments(fullName, issue.number);
    expect(comments.map((c) => [c.user?.login, c.body])).toEqual([
      ["conveyor[bot]", "Queued by maria (maintain)."],
    ]);
    // GitHub tells the app about its own comment too; the sender is the app's bot.
    expect(sim.deliveries.at(-1)).toMatchObject({
      event: "issue_comment",
      action: "created",
      status: 200,
      payload: { sender: { login: "conveyor[bot]", type: "Bot" } },
    });
    expect(sim.requests.map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual(
      expect.arrayContaining([
        "GET /repos/{owner}/{repo}/contents/{path} 200",
        "GET /repos/{owner}/{repo}/collaborators/{username}/permission 200",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/reactions 201",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments 201",
      ]),
    );
  });

  it("serves repository files through the contents API, raw and base64, and 404s missing ones", async () => {
    const { config } = await octokit.config.get({ owner, repo, path: ".github/conveyor.yml" });
    expect(config).toEqual({ version: 1, intake_label: "queue-me" });
    const missing = await octokit.config.get({ owner, repo, path: ".github/absent.yml" });
    // Looked up in the repository, then in the owner's `.github` repository (which does not exist).
    expect(missing.files.map((file) => `${file.repo}: ${file.config}`)).toEqual([
      "widgets: null",
      ".github: null",
    ]);

    const { data } = await octokit.rest.repos.getContent({
      owner,
      repo,
      path: ".github/conveyor.yml",
    });
    if (Array.isArray(data) || data.type !== "file") throw new Error("expected a file");
    expect(Buffer.from(data.content, "base64").toString("utf8")).toBe(CONFIG);
    const { data: listing } = await octokit.rest.repos.getContent({ owner, repo, path: ".github" });
    expect(Array.isArray(listing) && listing.map((entry) => entry.path)).toEqual([
      ".github/conveyor.yml",
    ]);
  });

  it("paginates issue lists with a Link header and filters by state and labels", async () => {
    for (let n = 0; n < 5; n += 1) {
      await sim.openIssue(fullName, {
        title: `Idea ${n}`,
        labels: n % 2 ? ["odd"] : [],
        user: "bob",
      });
    }
    const first = await octokit.rest.issues.listForRepo({ owner, repo, per_page: 2 });
    expect(first.data).toHaveLength(2);
    expect(first.headers.link).toContain('rel="next"');
    expect(first.headers.link).toMatch(/page=3>; rel="last"/);
    const all = await octokit.paginate(octokit.rest.issues.listForRepo, {
      owner,
      repo,
      per_page: 2,
    });
    expect(all.map((issue) => issue.title)).toEqual([
      "Idea 4",
      "Idea 3",
      "Idea 2",
      "Idea 1",
      "Idea 0",
      "Make it blue",
    ]);
    const odd = await octokit.rest.issues.listForRepo({ owner, repo, labels: "odd", state: "all" });
    expect(odd.data.map((issue) => issue.title)).toEqual(["Idea 3", "Idea 1"]);
    expect(odd.headers.link).toBeUndefined();
  });
});
