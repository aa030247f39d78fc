import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { requirePrerequisite } from "./helpers/prerequisites.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * A task's page in a real browser (headless Chromium) against a real server, runner, database and
 * the GitHub simulator: reached from the dashboard, it shows the log lines as the agent prints
 * them (hostile ones as text), the timeline, the attempt and, at the end, the pull request.
 */

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

let h: Harness;
let browser: Browser;
let runner: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  h = await createHarness({
    files: { "src/app.txt": "one\n" },
    start: { dashboardTimings: { taskPage: { pollMs: 100, recheckMs: 1_000 } } },
  });
  browser = await chromium.launch({
    executablePath: requirePrerequisite("Chromium"),
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});
afterAll(async () => {
  await browser?.close();
  runner?.stop();
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
  expect(pageErrors.splice(0)).toEqual([]);
});

async function signedInPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[14]/.test(m.text())) pageErrors.push(m.text());
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.goto(`${h.conveyor.url}/dashboard`);
  await page.fill("#token", ADMIN_TOKEN);
  await Promise.all([
    page.waitForURL(`${h.conveyor.url}/dashboard`),
    page.click("button[type=submit]"),
  ]);
  await page.locator("#connection[data-state=live]").waitFor();
  return page;
}

const logLines = (page: Page) => page.locator("#log .line").allTextContents();

describe("the task page", () => {
  it("needs a sign-in, and answers 404 for a task that does not exist", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    const anonymous = await fetch(`${h.conveyor.url}/dashboard/tasks/${id}`, {
      redirect: "manual",
    });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get("location")).toBe("/dashboard/sign-in");
    expect((await fetch(`${h.conveyor.url}/dashboard/tasks/${id}/events`)).status).toBe(401);
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    expect(
      (await fetch(`${h.conveyor.url}/dashboard/tasks/${id}/state`, { headers: auth })).status,
    ).toBe(404);
    expect(
      (await fetch(`${h.conveyor.url}/dashboard/tasks/x'1/state`, { headers: auth })).status,
    ).toBe(404);
  });

  it("lists a best-of task's candidates, each linked to its own page, which links back", async () => {
    // No runner is connected yet: the candidates stay queued while the page is looked at.
    const { issue } = await h.sim.openIssue(h.repo, {
      title: "Two ways",
      body: "Try.",
      user: "octocat",
    });
    await h.sim.addLabel(h.repo, issue.number, "conveyor:best-of-2", { sender: "octocat" });
    await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "octocat" });
    const children = await waitFor(
      async () => {
        const rows = resultRows<{ task_id: string; parent_task_id: string; candidate: number }>(
          await h.database.db.execute(sql`
            select task_id, parent_task_id, candidate from tasks
            where issue_number = ${issue.number} and parent_task_id is not null
            order by candidate`),
        );
        return rows.length === 2 ? rows : undefined;
      },
      { message: "the two candidates" },
    );
    const parentId = children[0]!.parent_task_id;

    const page = await signedInPage();
    // The dashboard's queue lists the issue once.
    await page.locator(`li[data-task-id="${parentId}"]`).first().waitFor();
    for (const child of children) {
      expect(await page.locator(`li[data-task-id="${child.task_id}"]`).count()).toBe(0);
    }
    await page.goto(`${h.conveyor.url}/dashboard/tasks/${parentId}`);
    await page.locator("#candidates-body tr").nth(1).waitFor();
    expect(await page.locator("#candidates").isHidden()).toBe(false);
    expect(await page.locator("#task-title").textContent()).toBe("Best of 2 · Two ways");
    const link = page.locator('#candidates-body tr[data-k="2"] a');
    expect(await link.getAttribute("href")).toBe(`/dashboard/tasks/${children[1]!.task_id}`);
    await Promise.all([
      page.waitForURL(`**/dashboard/tasks/${children[1]!.task_id}`),
      link.click(),
    ]);
    const back = page.locator("#task-facts a.parent");
    await back.waitFor();
    expect(await back.getAttribute("href")).toBe(`/dashboard/tasks/${parentId}`);
    expect(await page.locator("#task-title").textContent()).toBe("Candidate 2 · Two ways");
    expect(await page.locator("#candidates").isHidden()).toBe(true);
    await page.context().close();

    // Cancelled, so the runner of the next test never gets the candidates (one that already
    // delivered its change stays `pushed`, its figures kept; the others are cancelled).
    const cancel = await fetch(`${h.conveyor.url}/api/tasks/${parentId}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(cancel.status).toBe(200);
    await waitFor(
      async () =>
        resultRows<{ n: number }>(
          await h.database.db.execute(sql`
            select count(*)::int as n from tasks
            where parent_task_id = ${parentId}
              and state in ('queued', 'assigned', 'running', 'retry_wait', 'held')`),
        )[0]?.n === 0,
      // On the best-of loop's next pass; a loaded CI machine has taken over 20 s.
      { timeoutMs: 60_000, message: "the candidates cancelled" },
    );
  }, 90_000);

  it("is linked from the dashboard and shows the log lines as they arrive, hostile ones as text", async () => {
    const page = await signedInPage();
    // Between the lines the agent waits longer than a heartbeat, so they reach the server apart.
    const script = [
      'print "first line from the agent"',
      "sleep 1500",
      'print "<img src=x onerror=window.__pwned=1> <script>window.__pwned=2</script>"',
      "sleep 1500",
      'print "last line"',
      "write src/app.txt\n<<<\ntwo\n>>>",
    ].join("\n");
    const { taskId, issueNumber } = await queueScriptedIssue(h, "Show the page", script);
    runner = await startScriptedRunner(h, "page-runner");

    // The dashboard links the task to its page.
    const link = page.locator(`li[data-task-id="${taskId}"] a.ref`).first();
    await link.waitFor();
    expect(await link.getAttribute("href")).toBe(`/dashboard/tasks/${taskId}`);
    await Promise.all([
      page.waitForURL(`${h.conveyor.url}/dashboard/tasks/${taskId}`),
      link.click(),
    ]);
    await page.locator("#connection[data-state=live]").waitFor();
    expect(await page.locator("#task-ref").textContent()).toBe(`${h.repo}#${issueNumber}`);

    // The first line shows while the agent still works, before the last one exists.
    await page.locator("#log .line", { hasText: "first line from the agent" }).waitFor();
    expect(await logLines(page)).not.toContain("last line");
    await page.screenshot({ path: `${ARTIFACTS}task-page-running.png`, fullPage: true });
    await page.locator("#log .line", { hasText: "last line" }).waitFor();
    const lines = await logLines(page);
    expect(lines).toContain(
      "<img src=x onerror=window.__pwned=1> <script>window.__pwned=2</script>",
    );
    expect(lines.indexOf("first line from the agent")).toBeLessThan(lines.indexOf("last line"));
    // Shown as text: no element was made from it, no script ran.
    expect(await page.locator("#log img, #log script").count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();

    // The rest of the page follows the task: the attempt, the timeline, the pull request.
    await page.locator("#task-facts a", { hasText: "#" }).waitFor({ timeout: 30_000 });
    expect(await page.locator("#attempts-body tr").count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator("#attempts-body tr").first().textContent()).toContain("command");
    const timeline = await page.locator("#timeline li").allTextContents();
    expect(timeline.some((t) => t.includes("queued → assigned"))).toBe(true);
    expect(timeline.some((t) => t.includes("running → pushed"))).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}task-page-done.png`, fullPage: true });
    await page.context().close();
    await waitFor(async () => (await h.sim.listPulls(h.repo)).length > 0, {
      message: "the pull request",
    });
  });
});
