import { verify } from "@octokit/webhooks-methods";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import {
  startTestSimulator,
  startWebhookReceiver,
  type TestSimulator,
  WEBHOOK_SECRET,
  type WebhookReceiver,
} from "./simulator-test-kit.ts";

const fullName = "acme/widgets";

describe("GitHub simulator: webhooks", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let receiver: WebhookReceiver;
  let installationId: number;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    kit = await startTestSimulator({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: "acme" })).id;
    await sim.createRepository({ owner: "acme", name: "widgets", installationId });
    sim.setPermission(fullName, "alice", "write");
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await receiver.close();
  });

  it("signs deliveries like GitHub, with payloads that match GitHub's webhook schemas", async () => {
    const { issue } = await sim.openIssue(fullName, {
      title: "Add a widget",
      body: "Please",
      user: "bob",
    });
    receiver.received.length = 0;
    const { delivery, status } = await sim.addLabel(fullName, issue.number, "conveyor", {
      sender: "alice",
    });
    expect(status).toBe(200);
    expect(receiver.received).toHaveLength(1);
    const [received] = receiver.received;
    expect(received!.headers).toMatchObject({
      "x-github-event": "issues",
      "x-github-delivery": delivery!.id,
      "user-agent": "GitHub-Hookshot/sim",
      "content-type": "application/json",
    });
    expect(delivery!.id).toMatch(/^[0-9a-f-]{36}$/);
    const signature = String(received!.headers["x-hub-signature-256"]);
    expect(await verify(WEBHOOK_SECRET, received!.body, signature)).toBe(true);
    expect(await verify("another-secret", received!.body, signature)).toBe(false);
    const payload = JSON.parse(received!.body);
    expect(payload).toMatchObject({
      action: "labeled",
      label: { name: "conveyor" },
      issue: { number: issue.number, title: "Add a widget", labels: [{ name: "conveyor" }] },
      repository: { full_name: fullName },
      sender: { login: "alice", type: "User" },
      installation: { id: installationId, node_id: expect.any(String) },
    });
    expect(sim.deliveries.at(-1)).toMatchObject({
      event: "issues",
      action: "labeled",
      status: 200,
    });
  });

  it("records a schema violation when a payload it sends does not match GitHub's", async () => {
    await sim.sendWebhook("issues", { action: "labeled", issue: {} }, { validate: true });
    expect(sim.violations.splice(0).map((v) => `${v.path}: ${v.message}`)).toContain(
      "issues.labeled: payload must have required property 'repository'",
    );
  });

  it("redelivers with the same X-GitHub-Delivery and sends forged signatures on request", async () => {
    const { delivery } = await sim.comment(fullName, 1, "Any news?", { user: "bob" });
    receiver.received.length = 0;
    const again = await sim.redeliver(delivery!.id);
    expect(again).toMatchObject({ id: delivery!.id, redelivery: true, status: 200 });
    expect(receiver.received[0]!.headers["x-github-delivery"]).toBe(delivery!.id);
    expect(receiver.received[0]!.body).toBe(delivery!.body);

    receiver.received.length = 0;
    await sim.sendWebhook("issue_comment", delivery!.payload, { signatureSecret: "wrong" });
    const forged = receiver.received[0]!;
    expect(
      await verify(WEBHOOK_SECRET, forged.body, String(forged.headers["x-hub-signature-256"])),
    ).toBe(false);
  });

  it("reports the app's HTTP status and network failures per delivery", async () => {
    receiver.status = 500;
    const failed = await sim.closeIssue(fullName, 1, { sender: "alice" });
    expect(failed.status).toBe(500);
    receiver.status = 200;

    sim.setWebhook({ url: "http://127.0.0.1:1/nowhere", secret: WEBHOOK_SECRET });
    const unreachable = await sim.reopenIssue(fullName, 1, { sender: "alice" });
    expect(unreachable.status).toBeUndefined();
    expect(unreachable.delivery!.error).toBeDefined();
    sim.setWebhook({ url: receiver.url, secret: WEBHOOK_SECRET });
  });

  it("sends pull_request, check_run, check_suite and status events from simulated CI", async () => {
    await sim.push(fullName, { branch: "feature", files: { "a.txt": "a\n" }, user: "bob" });
    const opened = await sim.openPullRequest(fullName, {
      title: "Feature",
      head: "feature",
      user: "bob",
    });
    expect(opened.delivery).toMatchObject({ event: "pull_request", action: "opened" });
    const headSha = opened.pull.head.sha;

    const pushed = await sim.push(fullName, {
      branch: "feature",
      files: { "b.txt": "b\n" },
      user: "bob",
    });
    // GitHub sends `push` for the branch, then `pull_request.synchronize` for its open PR.
    expect(pushed.deliveries.map((d) => `${d.event}.${d.action ?? ""}`)).toEqual([
      "push.",
      "pull_request.synchronize",
    ]);
    expect(pushed.delivery!.payload).toMatchObject({
      ref: "refs/heads/feature",
      before: headSha,
      after: pushed.sha,
      head_commit: { id: pushed.sha, modified: ["b.txt"] },
    });
    expect(pushed.deliveries[1]!.payload).toMatchObject({ before: headSha, after: pushed.sha });

    const created = await sim.createCheckRun(fullName, {
      name: "test",
      headSha: pushed.sha,
      status: "in_progress",
    });
    expect(created.delivery).toMatchObject({ event: "check_run", action: "created" });
    const completed = await sim.completeCheckRun(fullName, created.checkRun.id, "success");
    expect(completed.deliveries.map((d) => `${d.event}.${d.action}`)).toEqual([
      "check_run.completed",
      "check_suite.completed",
    ]);
    expect(completed.delivery!.payload).toMatchObject({
      check_run: { conclusion: "success", pull_requests: [{ number: opened.pull.number }] },
    });

    const status = await sim.setStatus(fullName, pushed.sha, {
      state: "success",
      context: "ci/lint",
    });
    expect(status.delivery).toMatchObject({
      event: "status",
      payload: { state: "success", sha: pushed.sha },
    });
    expect(await sim.getCombinedStatus(fullName, "feature")).toMatchObject({ state: "success" });

    const review = await sim.submitReview(fullName, opened.pull.number, {
      user: "alice",
      state: "APPROVED",
    });
    expect(review.delivery).toMatchObject({ event: "pull_request_review", action: "submitted" });
  });
});
