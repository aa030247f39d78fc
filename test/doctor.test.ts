import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { CliOutput } from "../src/cli/cli-support.ts";
import { readAppManifest } from "../src/cli/doctor-app-checks.ts";
import { runDoctorCommand } from "../src/cli/doctor-command.ts";
import type { AppPermissions } from "./github-sim/sim-state.ts";
import {
  ADMIN_TOKEN,
  createHarness,
  type Harness,
  WEBHOOK_SECRET,
} from "./helpers/conveyor-harness.ts";
import { testPrivateKey } from "./helpers/webhooks.ts";

interface Check {
  name: string;
  status: string;
  message: string;
  fix?: string;
}

const manifest = readAppManifest();
let h: Harness;
let env: Record<string, string>;
let hookUrl: string;
let closedPort: number;

beforeAll(async () => {
  // The App registered exactly as app.yml says.
  h = await createHarness({
    simulator: {
      events: manifest.events,
      permissions: manifest.permissions as AppPermissions,
    },
    start: { redeliverOnStart: false },
  });
  hookUrl = `${h.conveyor.url}/api/github/webhooks`;
  env = {
    DATABASE_URL: h.database.url,
    APP_ID: String(h.sim.appId),
    PRIVATE_KEY: testPrivateKey(),
    WEBHOOK_SECRET,
    GITHUB_API_URL: h.sim.url,
    CONVEYOR_PUBLIC_URL: h.conveyor.url,
    CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
  };
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});
afterAll(async () => {
  await h?.close();
});
afterEach(() => {
  // Put the App back as it was registered.
  h.sim.setWebhook({ url: hookUrl, secret: WEBHOOK_SECRET });
  h.sim.setAppSettings({
    events: manifest.events,
    permissions: manifest.permissions as AppPermissions,
  });
  expect(h.sim.violations).toEqual([]);
});

async function doctor(extra: Record<string, string> = {}, argv = ["--json"]) {
  let stdout = "";
  const out: CliOutput = {
    stdout: (text) => {
      stdout += text;
    },
    stderr: () => {},
  };
  const code = await runDoctorCommand(argv, { ...env, ...extra }, out);
  const checks = argv.includes("--json") ? (JSON.parse(stdout) as { checks: Check[] }).checks : [];
  const check = (name: string) => checks.find((c) => c.name === name);
  return { code, stdout, checks, check };
}

describe("conveyor doctor: the App as GitHub sees it (on the simulator)", () => {
  it("passes an App registered as app.yml says, whose webhook reaches this server", async () => {
    const result = await doctor();
    expect(result.checks.map((c) => [c.name, c.status])).toEqual([
      ["configuration", "ok"],
      ["database", "ok"],
      ["github app", "ok"],
      ["app events", "ok"],
      ["app permissions", "ok"],
      ["webhook url", "ok"],
      ["webhook content type", "ok"],
      ["webhook reach", "ok"],
      ["webhook secret", "ok"],
      ["public url", "ok"],
      ["admin access", "ok"],
    ]);
    expect(result.code).toBe(0);
    expect(result.check("webhook url")?.message).toBe(hookUrl);
    expect(result.check("webhook reach")?.message).toBe(
      `a signed ping to ${hookUrl} was handled by this installation (its database recorded it)`,
    );
    // It asked GitHub with the App's JWT, and the ping is one recorded delivery.
    const asked = h.sim.requests.filter((r) => r.route?.startsWith("/app"));
    expect(asked.map((r) => [r.method, r.route, r.auth])).toEqual(
      expect.arrayContaining([
        ["GET", "/app", "app"],
        ["GET", "/app/hook/config", "app"],
      ]),
    );
    const pings = resultRows<{ n: number }>(
      await h.database.db.execute(
        sql`select count(*)::int as n from webhook_deliveries where event = 'ping'`,
      ),
    );
    expect(pings[0]?.n).toBeGreaterThan(0);
  });

  it("flags a wrong webhook URL with the fix, and that it does not reach this server", async () => {
    h.sim.setWebhook({ url: `${h.conveyor.url}/github/hooks`, secret: WEBHOOK_SECRET });
    const result = await doctor();
    expect(result.code).toBe(1);
    expect(result.check("webhook url")).toEqual({
      name: "webhook url",
      status: "fail",
      message: `the App's webhook URL is ${h.conveyor.url}/github/hooks, but Conveyor serves webhooks at ${hookUrl}`,
      fix: `On the App's settings page (General → Webhook), set Webhook URL to ${hookUrl}, tick Active and save`,
    });
    expect(result.check("webhook reach")).toMatchObject({
      status: "fail",
      message: `${h.conveyor.url}/github/hooks answered a signed ping with 404: nothing handles webhooks there`,
    });
    // The readable report prints the fix under the failed check.
    const text = await doctor({}, []);
    expect(text.stdout).toMatch(/^\[FAIL\] webhook url +the App's webhook URL is /m);
    expect(text.stdout).toContain(
      `fix: On the App's settings page (General → Webhook), set Webhook URL to ${hookUrl}`,
    );

    // Another host altogether: CONVEYOR_PUBLIC_URL says where GitHub should deliver.
    const elsewhere = `http://127.0.0.1:${closedPort}/api/github/webhooks`;
    h.sim.setWebhook({ url: elsewhere, secret: WEBHOOK_SECRET });
    const other = await doctor();
    expect(other.check("webhook url")).toMatchObject({
      status: "fail",
      message: `the App's webhook URL is ${elsewhere}, but CONVEYOR_PUBLIC_URL is ${h.conveyor.url}: GitHub delivers somewhere else`,
    });
    expect(other.check("webhook reach")).toMatchObject({
      status: "fail",
      message: expect.stringContaining(`${elsewhere} does not answer`),
      fix: expect.stringContaining("GitHub cannot reach 127.0.0.1 either"),
    });
  });

  it("accepts Probot's old default path (/) as a URL Conveyor serves", async () => {
    h.sim.setWebhook({ url: `${h.conveyor.url}/`, secret: WEBHOOK_SECRET });
    const result = await doctor();
    expect(result.check("webhook url")?.status).toBe("ok");
    expect(result.check("webhook reach")?.status).toBe("ok");
  });

  it("flags a form-encoded webhook, missing events and permissions, each with the fix", async () => {
    h.sim.setWebhook({ url: hookUrl, secret: WEBHOOK_SECRET, contentType: "form" });
    h.sim.setAppSettings({
      events: manifest.events.filter((e) => e !== "issue_comment"),
      permissions: {
        ...manifest.permissions,
        issues: "read",
        workflows: "write",
      } as AppPermissions,
    });
    const result = await doctor();
    expect(result.code).toBe(1);
    expect(result.check("webhook content type")).toMatchObject({
      status: "fail",
      message: expect.stringContaining("sends form"),
      fix: expect.stringContaining('PATCH /app/hook/config {"content_type":"json"}'),
    });
    expect(result.check("app events")).toMatchObject({
      status: "fail",
      message: "the App does not subscribe to `issue_comment`, so Conveyor never hears of them",
      fix: expect.stringContaining("tick issue_comment and save"),
    });
    expect(result.check("app permissions")).toMatchObject({
      status: "fail",
      message: "the App lacks permissions Conveyor needs: issues: read, needs write",
    });
  });

  it("says when the server at the webhook URL checks signatures with another secret", async () => {
    const result = await doctor({ WEBHOOK_SECRET: "not-the-servers-secret" });
    expect(result.check("webhook reach")).toMatchObject({
      status: "fail",
      message: `${hookUrl} refused the ping's signature: the server there checks with another WEBHOOK_SECRET than this configuration`,
    });
  });
});
