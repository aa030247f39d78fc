import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { verify } from "@octokit/webhooks-methods";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "./create-github-simulator.ts";
import { toJsonSchema } from "./openapi-validator.ts";
import {
  createTestProbot,
  startTestSimulator,
  startWebhookReceiver,
  type TestSimulator,
  WEBHOOK_SECRET,
  type WebhookReceiver,
} from "./simulator-test-kit.ts";

const require = createRequire(import.meta.url);
const fullName = "acme/widgets";
type AppOctokit = Awaited<ReturnType<ReturnType<typeof createTestProbot>["auth"]>>;

/** Checks an answer against the response schema GitHub publishes for the operation. */
function responseChecker() {
  const document = JSON.parse(
    readFileSync(require.resolve("@octokit/openapi/generated/api.github.com.deref.json"), "utf8"),
  ) as {
    paths: Record<
      string,
      Record<
        string,
        { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }
      >
    >;
  };
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  return (method: string, route: string, status: number, body: unknown) => {
    const schema =
      document.paths[route]?.[method]?.responses[String(status)]?.content?.["application/json"]
        ?.schema;
    if (!schema) throw new Error(`GitHub documents no ${status} answer for ${method} ${route}`);
    const validate = ajv.compile(toJsonSchema(schema) as object);
    return validate(body)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}

describe("GitHub simulator: the App's webhook configuration and delivery log", () => {
  let kit: TestSimulator;
  let sim: GitHubSimulator;
  let receiver: WebhookReceiver;
  let app: AppOctokit;
  let check: ReturnType<typeof responseChecker>;
  let installationId: number;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    kit = await startTestSimulator({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
    sim = kit.sim;
    installationId = (await sim.createInstallation({ account: "acme" })).id;
    await sim.createRepository({ owner: "acme", name: "widgets", installationId });
    app = await createTestProbot(sim, kit.privateKey).auth();
    check = responseChecker();
  });
  afterEach(() => {
    expect(sim.violations).toEqual([]);
  });
  afterAll(async () => {
    await kit.close();
    await receiver.close();
  });

  it("shows and changes the webhook configuration, which deliveries then follow", async () => {
    const config = await app.request("GET /app/hook/config");
    expect(config.data).toEqual({
      url: receiver.url,
      content_type: "json",
      insecure_ssl: "0",
      secret: "********",
    });
    expect(check("get", "/app/hook/config", 200, config.data)).toEqual([]);

    const changed = await app.request("PATCH /app/hook/config", { content_type: "form" });
    expect(changed.data).toMatchObject({ url: receiver.url, content_type: "form" });
    receiver.received.length = 0;
    await sim.openIssue(fullName, { title: "Sent as a form", user: "bob" });
    const [form] = receiver.received;
    expect(form!.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(form!.body).toMatch(/^payload=%7B/);
    expect(
      await verify(WEBHOOK_SECRET, form!.body, String(form!.headers["x-hub-signature-256"])),
    ).toBe(true);
    await app.request("PATCH /app/hook/config", { content_type: "json" });

    // A content type GitHub does not know is refused like GitHub refuses it.
    await expect(
      app.request("PATCH /app/hook/config", { content_type: "xml" }),
    ).rejects.toMatchObject({ status: 422 });
    // Only the App itself (a JWT) may read it.
    const installation = sim.createInstallationToken(installationId);
    const asInstallation = await fetch(`${sim.url}/app/hook/config`, {
      headers: { authorization: `token ${installation.token}` },
    });
    expect(asInstallation.status).toBe(401);
  });

  it("logs every attempt; a redelivery keeps the GUID and gets a new id", async () => {
    receiver.status = 500;
    const { issue, delivery } = await sim.openIssue(fullName, { title: "Lost", user: "bob" });
    receiver.status = 200;
    const list = await app.request("GET /app/hook/deliveries", { per_page: 100 });
    expect(check("get", "/app/hook/deliveries", 200, list.data)).toEqual([]);
    const failed = list.data.find((d) => d.guid === delivery!.id)!;
    expect(failed).toMatchObject({
      id: delivery!.hookDeliveryId,
      redelivery: false,
      status: "Invalid HTTP Response: 500",
      status_code: 500,
      event: "issues",
      action: "opened",
      installation_id: installationId,
    });
    // Newest first.
    expect(list.data[0]!.guid).toBe(delivery!.id);

    const one = await app.request("GET /app/hook/deliveries/{delivery_id}", {
      delivery_id: Number(failed.id),
    });
    expect(check("get", "/app/hook/deliveries/{delivery_id}", 200, one.data)).toEqual([]);
    expect(one.data).toMatchObject({
      url: receiver.url,
      request: { payload: { action: "opened", issue: { number: issue.number } } },
      response: { payload: "" },
    });
    expect(one.data.request.headers).toMatchObject({ "x-github-delivery": delivery!.id });

    receiver.received.length = 0;
    const asked = await app.request("POST /app/hook/deliveries/{delivery_id}/attempts", {
      delivery_id: Number(failed.id),
    });
    expect(asked.status).toBe(202);
    expect(check("post", "/app/hook/deliveries/{delivery_id}/attempts", 202, asked.data)).toEqual(
      [],
    );
    await sim.idle();
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]!.headers["x-github-delivery"]).toBe(delivery!.id);
    const after = await app.request("GET /app/hook/deliveries", { per_page: 100 });
    const attempts = after.data.filter((d) => d.guid === delivery!.id);
    expect(attempts.map((d) => [d.redelivery, d.status_code])).toEqual([
      [true, 200],
      [false, 500],
    ]);
    expect(attempts[0]!.id).toBeGreaterThan(attempts[1]!.id);
    expect(attempts[0]!.status).toBe("OK");

    const failures = await app.request("GET /app/hook/deliveries", { status: "failure" });
    expect(failures.data.every((d) => d.status_code >= 400)).toBe(true);
    expect(failures.data.map((d) => d.id)).toContain(failed.id);

    await expect(
      app.request("POST /app/hook/deliveries/{delivery_id}/attempts", { delivery_id: 42 }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("records an unreachable app as status 0 and leaves out what GitHub never sent", async () => {
    sim.setWebhook({ url: "http://127.0.0.1:1/nowhere", secret: WEBHOOK_SECRET });
    const { delivery: unreachable } = await sim.openIssue(fullName, { title: "Down", user: "bob" });
    sim.setWebhook(undefined);
    const { delivery: unsent } = await sim.openIssue(fullName, { title: "No URL", user: "bob" });
    sim.setWebhook({ url: receiver.url, secret: WEBHOOK_SECRET });
    // A forged delivery (another secret) is an attacker's request, not one GitHub made.
    const forged = await sim.sendWebhook("ping", { zen: "forged" }, { signatureSecret: "evil" });
    const list = await app.request("GET /app/hook/deliveries", { per_page: 100 });
    expect(list.data.find((d) => d.guid === unreachable!.id)).toMatchObject({
      status_code: 0,
      status: "failed to connect to host",
    });
    expect(list.data.some((d) => d.guid === unsent!.id)).toBe(false);
    expect(list.data.some((d) => d.guid === forged.id)).toBe(false);
  });

  it("pages with a cursor in the Link header, as GitHub does", async () => {
    for (let i = 0; i < 5; i++) await sim.openIssue(fullName, { title: `Page ${i}`, user: "bob" });
    const all = (await app.request("GET /app/hook/deliveries", { per_page: 100 })).data;
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await app.request("GET /app/hook/deliveries", {
        per_page: 3,
        ...(cursor ? { cursor } : {}),
      });
      pages++;
      seen.push(...page.data.map((d) => Number(d.id)));
      const next = /<([^>]+)>;\s*rel="next"/.exec(page.headers.link ?? "")?.[1];
      cursor = next ? (new URL(next).searchParams.get("cursor") ?? undefined) : undefined;
      if (next) expect(new URL(next).searchParams.get("per_page")).toBe("3");
    } while (cursor);
    expect(seen).toEqual(all.map((d) => Number(d.id)));
    expect(pages).toBe(Math.ceil(all.length / 3));
    await expect(
      app.request("GET /app/hook/deliveries", { cursor: "garbage" }),
    ).rejects.toMatchObject({ status: 400 });
  });
});
