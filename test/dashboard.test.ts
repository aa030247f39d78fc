import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { createApiToken, revokeApiToken } from "../src/store/api-tokens.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { requirePrerequisite } from "./helpers/prerequisites.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * The dashboard in a real browser (headless Chromium) against a real server, runner, database and
 * the GitHub simulator: signing in, a task moving from queued to merged without a reload, Retry,
 * Acknowledge, what a read token may not do, sessions that end, and a phone-width layout.
 * Screenshots land in test/artifacts/ (ignored by git).
 */

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
];

let h: Harness;
let browser: Browser;
let runner: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
let adminSecret: string;
let readSecret: string;
const contexts: BrowserContext[] = [];
/** Console errors and failed page scripts (a CSP violation shows up here). */
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  h = await createHarness({
    files: { "src/app.txt": "line 1\nline 2\nline 3\n" },
    start: {
      dashboardTimings: {
        hub: { recheckEveryMs: 1_000, chartsEveryMs: 3_000 },
      },
    },
  });
  adminSecret = (await createApiToken(h.database.db, { name: "ops-admin", role: "admin" })).secret;
  readSecret = (await createApiToken(h.database.db, { name: "viewer", role: "read" })).secret;
  browser = await chromium.launch({
    executablePath: requirePrerequisite("Chromium"),
    args: CHROMIUM_ARGS,
  });
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  runner?.stop();
  await h?.close();
});

afterEach(async () => {
  // One test's pages at a time: each open page is a stream the server keeps feeding.
  for (const context of contexts.splice(0)) await context.close().catch(() => {});
  expect(h.sim.violations).toEqual([]);
  expect(pageErrors.splice(0)).toEqual([]);
});

async function newPage(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("console", (message) => {
    if (message.type() === "error" && !isExpectedFailure(message.text())) {
      pageErrors.push(message.text());
    }
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  return page;
}

/** The browser logs the 401/403 answers the tests provoke on purpose; nothing else may fail. */
function isExpectedFailure(text: string): boolean {
  return /status of (401|403)/.test(text);
}

async function signIn(page: Page, secret: string): Promise<void> {
  await page.goto(`${h.conveyor.url}/dashboard`);
  expect(new URL(page.url()).pathname).toBe("/dashboard/sign-in");
  await page.fill("#token", secret);
  await Promise.all([
    page.waitForURL(`${h.conveyor.url}/dashboard`),
    page.click("button[type=submit]"),
  ]);
  await page.locator("#connection[data-state=live]").waitFor();
}

const taskRow = (page: Page, list: string, taskId: string) =>
  page.locator(`#${list}-list li[data-task-id="${taskId}"]`);

async function insertAlert(rule: string, message: string): Promise<number> {
  const [row] = resultRows<{ alert_id: number }>(
    await h.database.db.execute(sql`
      insert into alerts (rule, severity, message)
      values (${rule}, 'critical', ${message}) returning alert_id`),
  );
  return Number(row!.alert_id);
}

async function sessionCookie(page: Page): Promise<string> {
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === "conveyor_session");
  if (!cookie) throw new Error("no session cookie");
  return `${cookie.name}=${cookie.value}`;
}

describe("dashboard", () => {
  let deadTaskId: string;

  it("signs an admin in and shows a task go from queued to merged without a reload", async () => {
    const page = await newPage();
    // A wrong token is refused with the reason, and nothing is set.
    await page.goto(`${h.conveyor.url}/dashboard/sign-in`);
    await page.fill("#token", "cva_not-a-real-token");
    const refused = await Promise.all([
      page.waitForResponse(
        (r) => r.url().endsWith("/dashboard/sign-in") && r.request().method() === "POST",
      ),
      page.click("button[type=submit]"),
    ]);
    expect(refused[0].status()).toBe(401);
    await expect(page.locator(".message").textContent()).resolves.toContain(
      "unknown or was revoked",
    );
    expect(await page.context().cookies()).toEqual([]);

    await signIn(page, adminSecret);
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({ name: "conveyor_session", httpOnly: true, sameSite: "Strict" });
    await expect(page.locator("#viewer").textContent()).resolves.toBe("ops-admin · admin");
    // Survives only as long as the page is not reloaded.
    await page.evaluate("window.notReloaded = true");

    // No runner yet: the task waits in its lane.
    const { taskId } = await queueScriptedIssue(
      h,
      "Tiny fix",
      'print "warming up the agent"\nsleep 2500\nwrite src/app.txt\n<<<\nline 1\nline two\nline 3\n>>>',
    );
    await taskRow(page, "queue", taskId).waitFor();
    await expect(page.locator('#queue-lanes [data-lane="normal"] b').textContent()).resolves.toBe(
      "1",
    );

    runner = await startScriptedRunner(h, "dash-runner");
    // In flight, with the stage of the last heartbeat and the end of the agent's output.
    const inFlight = taskRow(page, "in-flight", taskId);
    await inFlight.locator(".badge", { hasText: "agent" }).waitFor({ timeout: 15_000 });
    await expect(taskRow(page, "queue", taskId).count()).resolves.toBe(0);
    await inFlight.locator("details.log summary").click();
    await inFlight.locator("details.log pre", { hasText: "warming up the agent" }).waitFor();
    const runnerRow = page.locator("#runners-list li", { hasText: "dash-runner" });
    // Its last heartbeat's stage (the agent, or already a later one on a slow machine).
    const stage = await runnerRow.locator("[data-stage]").getAttribute("data-stage");
    expect(["agent", "verifying", "uploading"]).toContain(stage);
    await expect(runnerRow.getAttribute("data-state")).resolves.toBe("busy");
    await page.screenshot({ path: `${ARTIFACTS}dashboard-in-flight.png`, fullPage: true });
    await expect(runnerRow.textContent()).resolves.toContain("#");

    // The PR is written; green CI; Conveyor merges it.
    const pr = await waitFor(
      async () =>
        resultRows<{ pr_number: number; head_sha: string; url: string }>(
          await h.database.db.execute(
            sql`select pr_number, head_sha, url from pull_requests where task_id = ${taskId}`,
          ),
        )[0],
      { timeoutMs: 20_000, message: "a pull request" },
    );
    await h.sim.createCheckRun(h.repo, {
      name: "ci",
      headSha: pr.head_sha,
      status: "completed",
      conclusion: "success",
    });
    const result = page.locator(`#recent-list li[data-task-id="${taskId}"][data-state="merged"]`);
    await result.waitFor({ timeout: 20_000 });
    await expect(result.locator("a:not(.ref)").getAttribute("href")).resolves.toBe(pr.url);
    // The task's name links its own page.
    await expect(result.locator("a.ref").getAttribute("href")).resolves.toMatch(
      /^\/dashboard\/tasks\/[0-9a-f-]{36}$/,
    );
    await expect(result.textContent()).resolves.toMatch(/took \d+s/);
    await expect(taskRow(page, "in-flight", taskId).count()).resolves.toBe(0);
    expect(await page.evaluate("window.notReloaded")).toBe(true);

    // The charts drew (uPlot, served by the app), and their data saw the task wait and succeed.
    await page.locator("#chart-queue canvas").waitFor();
    expect(await page.evaluate("typeof window.uPlot")).toBe("function");
    const charts = await waitFor(async () => {
      const state = (await (
        await fetch(`${h.conveyor.url}/dashboard/state`, {
          headers: { authorization: `Bearer ${adminSecret}` },
        })
      ).json()) as { charts: { queue_depth: number[]; busy_slots: number[]; succeeded: number[] } };
      return state.charts.succeeded.some((n) => n > 0) ? state.charts : undefined;
    });
    expect(Math.max(...charts.queue_depth)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...charts.busy_slots)).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-desktop.png`, fullPage: true });
  });

  it("retries a dead task for an admin", async () => {
    const page = await newPage();
    await signIn(page, adminSecret);
    // An agent that changes nothing cannot be helped by retrying: the task dies at once.
    ({ taskId: deadTaskId } = await queueScriptedIssue(h, "Nothing to do", 'print "no change"'));
    const row = taskRow(page, "dead", deadTaskId);
    await row.waitFor({ timeout: 20_000 });
    await expect(row.textContent()).resolves.toContain("no_changes");
    await row.locator("button[data-action=retry]").click();
    await page.locator("#notice", { hasText: "is queued again" }).waitFor();
    const events = resultRows<{ actor: string }>(
      await h.database.db.execute(sql`
        select actor from task_events
        where task_id = ${deadTaskId} and from_state = 'dead' and to_state = 'queued'`),
    );
    expect(events).toEqual([{ actor: "token:ops-admin" }]);
    // It runs again and, changing nothing again, dies again: the list shows it once more.
    await row.waitFor({ timeout: 20_000 });
  });

  it("acknowledges an alert for an admin", async () => {
    const page = await newPage();
    await signIn(page, adminSecret);
    const alertId = await insertAlert("no_runners", "No runner has been online for 5 minutes");
    const row = page.locator(`#alerts-list li[data-alert-id="${alertId}"]`);
    await row.waitFor();
    await row.locator("button[data-action=ack]").click();
    await row.locator(".meta", { hasText: "acknowledged by" }).waitFor();
    const [stored] = resultRows<{ acknowledged_at: unknown; acknowledged_by: string }>(
      await h.database.db.execute(
        sql`select acknowledged_at, acknowledged_by from alerts where alert_id = ${alertId}`,
      ),
    );
    expect(stored?.acknowledged_at).not.toBeNull();
    expect(stored?.acknowledged_by).toBe("token:ops-admin");
    await expect(row.textContent()).resolves.toContain("acknowledged by token:ops-admin");
    await expect(row.locator("button").count()).resolves.toBe(0);
  });

  it("gives a read token no working Retry or Acknowledge, and the API answers 403", async () => {
    const page = await newPage();
    await signIn(page, readSecret);
    await expect(page.locator("#viewer").textContent()).resolves.toBe("viewer · read");
    const alertId = await insertAlert("stuck_tasks", "A task has not moved for 5 minutes");
    const retry = taskRow(page, "dead", deadTaskId).locator("button[data-action=retry]");
    await retry.waitFor({ timeout: 20_000 });
    expect(await retry.isDisabled()).toBe(true);
    expect(await retry.getAttribute("title")).toContain("admin");
    const ack = page.locator(`#alerts-list li[data-alert-id="${alertId}"] button[data-action=ack]`);
    await ack.waitFor();
    expect(await ack.isDisabled()).toBe(true);

    // The server decides, not the button: the same calls from the page are refused.
    const answers = await page.evaluate(
      async ({ taskId, alertId }) =>
        Promise.all(
          [`/api/tasks/${taskId}/retry`, `/api/alerts/${alertId}/ack`].map(async (path) => {
            const r = await fetch(path, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: "{}",
            });
            return { status: r.status, body: (await r.json()) as { error: string } };
          }),
        ),
      { taskId: deadTaskId, alertId },
    );
    for (const answer of answers) {
      expect(answer.status).toBe(403);
      expect(answer.body.error).toContain("admin role");
    }
    const [task] = resultRows<{ state: string }>(
      await h.database.db.execute(sql`select state::text from tasks where task_id = ${deadTaskId}`),
    );
    expect(task?.state).toBe("dead");
  });

  it("refuses cookie-authenticated changes from another site", async () => {
    const page = await newPage();
    await signIn(page, adminSecret);
    const cookie = await sessionCookie(page);
    const retry = (headers: Record<string, string>) =>
      fetch(`${h.conveyor.url}/api/tasks/${deadTaskId}/retry`, {
        method: "POST",
        headers: { cookie, "content-type": "application/json", ...headers },
        body: "{}",
      });
    const forged = await retry({ origin: "https://evil.example" });
    expect(forged.status).toBe(403);
    expect(((await forged.json()) as { error: string }).error).toContain("cross-site");
    expect((await retry({})).status).toBe(403);
    // Reading with the cookie is fine.
    const read = await fetch(`${h.conveyor.url}/api/tasks?state=dead`, { headers: { cookie } });
    expect(read.status).toBe(200);
  });

  it("shows each agent's outcomes in the Agents panel, with a chart", async () => {
    await h.database.db.execute(sql`
      insert into repositories (repository_id, installation_id, full_name)
      values (424242, 1, 'acme/agents') on conflict do nothing`);
    const [task] = resultRows<{ task_id: string }>(
      await h.database.db.execute(sql`
        insert into tasks (repository_id, installation_id, issue_number, state, title,
                           snapshot_hash, queued_by, finished_at)
        values (424242, 1, 1, 'cancelled', 'Agents panel', 'h', 'octocat', now())
        returning task_id`),
    );
    await h.database.db.execute(sql`
      insert into attempts (task_id, generation, outcome, adapter, model, cost_usd, tokens,
                            finished_at)
      values (${task!.task_id}, 1, 'failed', 'claude', 'claude-sonnet-4-5', 0.42, 5000, now())`);
    const page = await newPage();
    await signIn(page, readSecret);
    const row = page.locator("#agents-rows tr", { hasText: "claude · claude-sonnet-4-5" });
    await row.waitFor();
    expect(await row.locator("td").allTextContents()).toEqual([
      "1",
      "1",
      "0 (0 %)",
      "–",
      "0 / 0",
      "$0.42",
      "–",
      "–",
      "– / – / –",
    ]);
    await page.locator("#chart-agents canvas").waitFor();
  });

  it("lays out in one column on a phone without sideways scrolling", async () => {
    const page = await newPage({ width: 390, height: 844 });
    await signIn(page, adminSecret);
    await page.locator("#recent-list li").first().waitFor();
    await page.locator("#chart-queue canvas").waitFor();
    const layout = (await page.evaluate(`({
      scrollWidth: document.documentElement.scrollWidth,
      width: window.innerWidth,
      lefts: ["queue", "in-flight", "runners", "recent", "dead"].map(
        (id) => document.getElementById(id).getBoundingClientRect().left,
      ),
    })`)) as { scrollWidth: number; width: number; lefts: number[] };
    expect(layout.scrollWidth).toBeLessThanOrEqual(layout.width);
    expect(new Set(layout.lefts).size).toBe(1);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone.png`, fullPage: true });
  });

  it("ends sessions on sign-out and when their token is revoked", async () => {
    const page = await newPage();
    await signIn(page, adminSecret);
    const cookie = await sessionCookie(page);
    await Promise.all([
      page.waitForURL(`${h.conveyor.url}/dashboard/sign-in`),
      page.click(".sign-out button"),
    ]);
    expect((await fetch(`${h.conveyor.url}/api/tasks`, { headers: { cookie } })).status).toBe(401);
    await page.goto(`${h.conveyor.url}/dashboard`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/sign-in");

    // A page open with a token that gets revoked is sent to the sign-in page.
    const { secret } = await createApiToken(h.database.db, { name: "short-lived", role: "read" });
    const watcher = await newPage();
    await signIn(watcher, secret);
    await revokeApiToken(h.database.db, "short-lived");
    await watcher.waitForURL(/\/dashboard\/sign-in\?ended=1$/, { timeout: 10_000 });
    await expect(watcher.locator(".message").textContent()).resolves.toContain("session ended");

    // The admin token signs in too.
    const admin = await newPage();
    await signIn(admin, ADMIN_TOKEN);
    await expect(admin.locator("#viewer").textContent()).resolves.toContain("admin");
  });
});
