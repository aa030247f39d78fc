import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { ALERT_ISSUE_LABEL } from "../src/core/alert-issue.ts";
import { DEFAULT_SETTINGS } from "../src/core/alert-settings.ts";
import { insertErrorEvents } from "../src/store/error-events.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { waitFor } from "./helpers/wait-for.ts";

const MIN = 60_000;
let h: Harness;
let clock = Date.now();

beforeAll(async () => {
  h = await createHarness({
    start: {
      now: () => clock,
      // The tests check when they want to (a day is "never" here; setTimeout caps at 24.8 days).
      alertStartDelayMs: 24 * 60 * MIN,
      alertCheckIntervalMs: 24 * 60 * MIN,
    },
  });
});
afterAll(async () => {
  await h?.close();
});
afterEach(() => {
  expect(h.sim.violations).toEqual([]);
});

const api = (path: string, init: RequestInit & { json?: unknown } = {}) =>
  fetch(`${h.conveyor.url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(init.json !== undefined ? { "content-type": "application/json" } : {}),
      ...init.headers,
    },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
const put = (json: unknown) => api("/api/settings", { method: "PUT", json });

const alertIssues = () =>
  h.sim
    .listIssues(h.repo)
    .filter((i) =>
      i.labels.some((l) => (typeof l === "string" ? l : l.name) === ALERT_ISSUE_LABEL),
    );

describe("settings API", () => {
  it("shows the defaults, changes what it is given, and refuses anything else with the field", async () => {
    const initial = await api("/api/settings");
    expect(initial.status).toBe(200);
    expect(await initial.json()).toEqual(DEFAULT_SETTINGS);

    const changed = await put({ alerts: { failure_rate: { threshold_percent: 40 } } });
    expect(changed.status).toBe(200);
    const body = (await changed.json()) as typeof DEFAULT_SETTINGS;
    expect(body.alerts.failure_rate.threshold_percent).toBe(40);
    expect(
      ((await (await api("/api/settings")).json()) as typeof DEFAULT_SETTINGS).alerts.failure_rate
        .threshold_percent,
    ).toBe(40);

    for (const [patch, path] of [
      [{ alerts: { failure_rate: { threshold: 40 } } }, "alerts.failure_rate.threshold"],
      [{ alerts: { nope: {} } }, "alerts.nope"],
      [{ other: 1 }, "other"],
      [{ alerts: { stuck_task: { minutes: 0 } } }, "alerts.stuck_task.minutes"],
      [{ alerts: { github_issues: { enabled: true } } }, "alerts.github_issues.repository"],
      [[1, 2], "body"],
    ] as const) {
      const refused = await put(patch);
      expect(refused.status).toBe(422);
      const error = (await refused.json()) as { error: string; fields: { path: string }[] };
      expect(error.fields.map((f) => f.path)).toEqual([path]);
      expect(error.error).toContain(path);
    }
    const notJson = await api("/api/settings", {
      method: "PUT",
      body: "{oops",
      headers: { "content-type": "application/json" },
    });
    expect(notJson.status).toBe(422);
    // Nothing of the refused patches stuck.
    const after = (await (await api("/api/settings")).json()) as typeof DEFAULT_SETTINGS;
    expect(after.alerts.stuck_task).toEqual(DEFAULT_SETTINGS.alerts.stuck_task);
  });

  it("takes only an installed repository for alert issues", async () => {
    const refused = await put({
      alerts: { github_issues: { enabled: true, repository: "acme/elsewhere" } },
    });
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({
      fields: [
        {
          path: "alerts.github_issues.repository",
          message:
            "acme/elsewhere is not a repository the App is installed on; install it there first",
        },
      ],
    });
    const accepted = await put({
      alerts: { github_issues: { enabled: true, repository: "ACME/Widgets" } },
    });
    expect(accepted.status).toBe(200);
  });

  it("needs the admin token to change settings", async () => {
    const response = await fetch(`${h.conveyor.url}/api/settings`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ alerts: { error_rate: { enabled: false } } }),
    });
    expect(response.status).toBe(401);
  });
});

describe("alerts as GitHub issues, through the API", () => {
  it("opens an issue on fire, comments on a reminder, stays quiet once acknowledged, closes on clear", async () => {
    await h.database.db.execute(sql`delete from error_events`);
    // Errors keep coming: 11 in the hour before each check.
    const errorsNow = () =>
      insertErrorEvents(
        h.database.db,
        Array.from({ length: 11 }, () => ({
          source: "merger",
          message: "boom",
          at: new Date(clock),
        })),
      );
    await errorsNow();
    await h.conveyor.monitoring.checkAlerts();
    const [issue] = alertIssues();
    expect(issue).toBeDefined();
    expect(issue?.title).toContain("error rate");
    expect(issue?.body).toContain("11 errors in the last hour");
    expect(issue?.user?.login).toBe("conveyor[bot]");

    const listed = (await (await api("/api/alerts")).json()) as {
      firing: { id: number; rule: string; github_issue: { number: number; repository: string } }[];
    };
    const alert = listed.firing.find((a) => a.rule === "error_rate");
    expect(alert?.github_issue).toEqual({ repository: "acme/widgets", number: issue?.number });

    // A reminder after the 30 min cooldown.
    clock += 31 * MIN;
    await errorsNow();
    await h.conveyor.monitoring.checkAlerts();
    const comments = () => h.sim.listComments(h.repo, issue!.number).map((c) => c.body ?? "");
    expect(comments()).toEqual([expect.stringContaining("Still firing")]);

    // Nobody may name someone else as the acknowledger.
    const claimed = await api(`/api/alerts/${alert!.id}/ack`, {
      method: "POST",
      json: { by: "maria" },
    });
    expect(claimed.status).toBe(422);
    expect(JSON.stringify(await claimed.json())).toMatch(/token or session you signed in with/);
    // Acknowledged, by the token that signed in: no more reminders.
    const ack = await api(`/api/alerts/${alert!.id}/ack`, { method: "POST" });
    expect(ack.status).toBe(200);
    expect(await ack.json()).toMatchObject({
      acknowledged_by: "CONVEYOR_ADMIN_TOKEN",
      status: "firing",
    });
    clock += 31 * MIN;
    await errorsNow();
    await h.conveyor.monitoring.checkAlerts();
    expect(comments()).toHaveLength(1);

    // A higher threshold clears it at the next check, and the issue closes.
    expect((await put({ alerts: { error_rate: { max_per_hour: 50 } } })).status).toBe(200);
    await h.conveyor.monitoring.checkAlerts();
    const closed = h.sim.getIssue(h.repo, issue!.number);
    expect(closed.state).toBe("closed");
    expect(comments().at(-1)).toContain("Cleared");
    const after = (await (await api("/api/alerts")).json()) as {
      firing: unknown[];
      recent: { id: number; status: string }[];
    };
    expect(after.recent.find((a) => a.id === alert!.id)?.status).toBe("cleared");
    expect(alertIssues().filter((i) => i.state === "open")).toEqual([]);

    // Nothing to acknowledge any more; unknown and malformed ids are told apart.
    expect((await api(`/api/alerts/${alert!.id}/ack`, { method: "POST" })).status).toBe(409);
    expect((await api("/api/alerts/999999/ack", { method: "POST" })).status).toBe(404);
    expect((await api("/api/alerts/abc/ack", { method: "POST" })).status).toBe(422);
    expect(
      (await api(`/api/alerts/${alert!.id}/ack`, { method: "POST", json: { who: "x" } })).status,
    ).toBe(422);
  });

  it("counts a webhook whose effect failed, and alerts on it", async () => {
    await put({ alerts: { error_rate: { enabled: false } } });
    // The permission lookup fails while the intake loop acts on the stored label event: the
    // delivery was answered 200, its effect is retried.
    h.sim.injectFault("GET /repos/{owner}/{repo}/collaborators/{username}/permission", 500);
    const { issue } = await h.sim.openIssue(h.repo, { title: "Fails", body: "", user: "maint" });
    const { status } = await h.sim.addLabel(h.repo, issue.number, "conveyor", { sender: "maint" });
    expect(status).toBe(200);
    const rows = await waitFor(async () => {
      const r = resultRows<{ source: string; details: { event?: string } }>(
        await h.database.db.execute(
          sql`select source, details from error_events where source = 'webhook'`,
        ),
      );
      return r.length ? r : undefined;
    });
    expect(rows[0]?.details.event).toBe("issues");
    const metrics = await (await fetch(`${h.conveyor.url}/metrics`)).text();
    expect(metrics).not.toContain(
      'conveyor_webhook_deliveries_total{event="issues",outcome="failed"}',
    );
    expect(metrics).toContain('conveyor_errors_total{source="webhook"} 1');
    // The fault was one answer: the retry queues the task.
    await h.sim.idle();
    const [task] = resultRows<{ state: string }>(
      await h.database.db.execute(
        sql`select state from tasks where issue_number = ${issue.number}`,
      ),
    );
    expect(task?.state).toBe("queued");

    await h.conveyor.monitoring.checkAlerts();
    const listed = (await (await api("/api/alerts")).json()) as {
      firing: { rule: string; message: string }[];
    };
    expect(listed.firing).toContainEqual(
      expect.objectContaining({
        rule: "webhook_failures",
        message: expect.stringContaining("1 webhook delivery failed in the last 15 min"),
      }),
    );
    expect(alertIssues().filter((i) => i.state === "open")).toHaveLength(1);
  });

  it("answers a poller that has the current alerts with a 304", async () => {
    const first = await api("/api/alerts");
    const etag = first.headers.get("etag");
    expect(etag).toBeTruthy();
    expect((await api("/api/alerts", { headers: { "if-none-match": etag! } })).status).toBe(304);
    expect((await api("/api/alerts?recent=-1")).status).toBe(422);
  });

  it("tells live views on every instance when alerts or settings change", async () => {
    const other = await h.startAnother();
    const heard: string[] = [];
    const heardElsewhere: string[] = [];
    const stopHere = h.conveyor.monitoring.subscribe((topic) => heard.push(topic));
    other.monitoring.subscribe((topic) => heardElsewhere.push(topic));
    // Subscribing starts LISTEN; let it settle before changing anything.
    await waitFor(async () => {
      await put({ alerts: { stuck_task: { cooldown_minutes: 11 } } });
      return heard.includes("settings") && heardElsewhere.includes("settings");
    });
    await insertErrorEvents(
      h.database.db,
      Array.from({ length: 3 }, () => ({ source: "merger", message: "x", at: new Date(clock) })),
    );
    await put({ alerts: { error_rate: { enabled: true, max_per_hour: 1 } } });
    clock += 60 * MIN;
    await insertErrorEvents(
      h.database.db,
      Array.from({ length: 3 }, () => ({ source: "merger", message: "x", at: new Date(clock) })),
    );
    await h.conveyor.monitoring.checkAlerts();
    await waitFor(() => heard.includes("alerts") && heardElsewhere.includes("alerts"));
    stopHere();
    const before = heard.length;
    const elsewhere = heardElsewhere.length;
    await put({ alerts: { stuck_task: { cooldown_minutes: 12 } } });
    await waitFor(() => heardElsewhere.length > elsewhere);
    expect(heard).toHaveLength(before);
  });
});
