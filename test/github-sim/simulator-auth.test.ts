import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import { createTestProbot, startTestSimulator, type TestSimulator } from "./simulator-test-kit.ts";

describe("GitHub simulator: authentication and request validation", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let installationId: number;

  beforeAll(async () => {
    kit = await startTestSimulator();
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: "acme" })).id;
    await sim.createRepository({ owner: "acme", name: "widgets", installationId });
    await sim.createRepository({ owner: "other", name: "secret" });
  });
  afterAll(() => kit.close());

  const drainViolations = () => sim.violations.splice(0);

  it("accepts an app JWT, exchanges it for an installation token and authorises repo calls with it", async () => {
    const probot = createTestProbot(sim, kit.privateKey);
    const appOctokit = await probot.auth();
    const { data: app } = await appOctokit.request("GET /app");
    expect(app?.slug).toBe("conveyor");
    const { data: installation } = await appOctokit.request(
      "GET /repos/{owner}/{repo}/installation",
      {
        owner: "acme",
        repo: "widgets",
      },
    );
    expect(installation.id).toBe(installationId);

    const octokit = await probot.auth(installationId);
    const { data: repo, headers } = await octokit.request("GET /repos/{owner}/{repo}", {
      owner: "acme",
      repo: "widgets",
    });
    expect(repo.full_name).toBe("acme/widgets");
    expect(repo.clone_url).toBe(`${sim.url}/acme/widgets.git`);
    expect(Number(headers["x-ratelimit-remaining"])).toBeLessThan(5000);
    expect(sim.requests.map((r) => `${r.auth} ${r.method} ${r.route} ${r.status}`)).toEqual([
      "app GET /app 200",
      "app GET /repos/{owner}/{repo}/installation 200",
      "app POST /app/installations/{installation_id}/access_tokens 201",
      "installation GET /repos/{owner}/{repo} 200",
    ]);
    expect(drainViolations()).toEqual([]);
  });

  it("answers 401 to a wrong token, a forged JWT and no credentials", async () => {
    const wrong = await fetch(`${sim.url}/repos/acme/widgets`, {
      headers: { authorization: "token ghs_notARealToken000000000000000000000" },
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ message: "Bad credentials" });

    const forgedPayload = Buffer.from(
      JSON.stringify({ iss: sim.appId, iat: 0, exp: 9e9 }),
    ).toString("base64url");
    const forged = await fetch(`${sim.url}/app`, {
      headers: { authorization: `Bearer eyJhbGciOiJSUzI1NiJ9.${forgedPayload}.c2ln` },
    });
    expect(forged.status).toBe(401);

    const anonymous = await fetch(`${sim.url}/repos/acme/widgets`);
    expect(anonymous.status).toBe(401);
    expect(drainViolations()).toEqual([]);
  });

  it("hides repositories outside the installation and enforces token permissions", async () => {
    const { token } = sim.createInstallationToken(installationId, {
      permissions: { contents: "read" },
    });
    const headers = { authorization: `token ${token}`, "content-type": "application/json" };
    const outside = await fetch(`${sim.url}/repos/other/secret`, { headers });
    expect(outside.status).toBe(404);
    const readable = await fetch(`${sim.url}/repos/acme/widgets/contents/README.md`, { headers });
    expect(readable.status).toBe(200);
    const write = await fetch(`${sim.url}/repos/acme/widgets/git/refs`, {
      method: "POST",
      headers,
      body: JSON.stringify({ ref: "refs/heads/x", sha: "0".repeat(40) }),
    });
    expect(write.status).toBe(403);
    expect(await write.json()).toMatchObject({ message: "Resource not accessible by integration" });
    expect(drainViolations()).toEqual([]);
  });

  it("refuses a request GitHub's OpenAPI does not allow and records a violation", async () => {
    const { token } = sim.createInstallationToken(installationId);
    await sim.openIssue("acme/widgets", { title: "An idea", user: "alice" });
    const response = await fetch(`${sim.url}/repos/acme/widgets/issues/1/comments`, {
      method: "POST",
      headers: { authorization: `token ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ text: "no body field" }),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      message: expect.stringContaining("request body must have required property 'body'"),
      errors: [expect.objectContaining({ field: "body", code: "missing_field" })],
    });
    expect(drainViolations()).toEqual([
      {
        kind: "request",
        method: "POST",
        path: "/repos/acme/widgets/issues/1/comments",
        message:
          "POST /repos/{owner}/{repo}/issues/{issue_number}/comments: request body must have required property 'body'",
      },
    ]);
    expect(sim.listComments("acme/widgets", 1)).toEqual([]);
  });

  it("answers 404 to unknown routes, 422 to bad parameters and 501 to unimplemented ones, each a violation", async () => {
    const { token } = sim.createInstallationToken(installationId);
    const headers = { authorization: `token ${token}` };
    expect((await fetch(`${sim.url}/repos/acme/widgets/no-such-thing`, { headers })).status).toBe(
      404,
    );
    expect((await fetch(`${sim.url}/repos/acme/widgets/issues/abc`, { headers })).status).toBe(422);
    expect(
      (await fetch(`${sim.url}/repos/acme/widgets/issues?state=bogus`, { headers })).status,
    ).toBe(422);
    const unimplemented = await fetch(`${sim.url}/repos/acme/widgets/releases`, { headers });
    expect(unimplemented.status).toBe(501);
    expect(drainViolations().map((v) => v.message)).toEqual([
      "GET /repos/acme/widgets/no-such-thing is not an operation in GitHub's OpenAPI description",
      `GET /repos/{owner}/{repo}/issues/{issue_number}: path parameter 'issue_number' must be an integer (got "abc")`,
      `GET /repos/{owner}/{repo}/issues: query parameter 'state' must be one of open, closed, all (got "bogus")`,
      "simulator does not implement GET /repos/{owner}/{repo}/releases",
    ]);
  });
});
