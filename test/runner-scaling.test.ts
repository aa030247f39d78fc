import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import type { ServerMessage } from "../src/protocol/messages.ts";
import { createRunner } from "../src/store/runners.ts";
import { createTask, upsertRepository } from "../src/store/tasks.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner, type FakeRunner } from "./helpers/fake-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";

/*
 * `GET /api/scaling` and `conveyor_runners_wanted` follow the queue: 50 tasks queue (40 needing
 * nothing special, 10 needing `gpu`), instant runners take and finish them, the queue drains.
 */

let h: Harness;
const sockets: FakeRunner[] = [];

beforeAll(async () => {
  // Tasks are seeded straight into the database: reconciliation would cancel them (no issues).
  h = await createHarness({ start: { publishPullRequests: false, reconcileOnStart: false } });
  await upsertRepository(h.database.db, {
    repositoryId: h.repositoryId,
    installationId: h.installationId,
    fullName: h.repo,
  });
});
afterAll(async () => {
  for (const s of sockets.splice(0)) s.close();
  await h?.close();
});

interface Scaling {
  runners_wanted: number;
  waiting: number;
  free_slots: number;
  capability_sets: {
    capabilities: string[];
    waiting: number;
    free_slots: number;
    runners_wanted: number;
  }[];
}

async function scaling(query = ""): Promise<Scaling> {
  const response = await fetch(`${h.conveyor.url}/api/scaling${query}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Scaling;
}

/** `conveyor_runners_wanted` by its `capabilities` label, from a fresh scrape. */
async function wantedSeries(): Promise<Record<string, number>> {
  const text = await (await fetch(`${h.conveyor.url}/metrics`)).text();
  const series: Record<string, number> = {};
  for (const match of text.matchAll(
    /^conveyor_runners_wanted\{capabilities="([^"]*)"\} (\S+)$/gm,
  )) {
    series[match[1] ?? ""] = Number(match[2]);
  }
  return series;
}

/** A runner that accepts, uploads and completes every assignment at once. */
async function instantRunner(name: string, capabilities: string[], slots: number) {
  const { token } = await createRunner(h.database.db, { name, capabilities });
  const runner = await connectRunner(h.conveyor.url, token, { name, capabilities, slots });
  sockets.push(runner);
  runner.ws.on("message", (data) => {
    const frame = JSON.parse(String(data)) as ServerMessage;
    if (frame.type !== "assign") return;
    work(frame).catch((error: unknown) => runnerErrors.push(error));
  });
  async function work(frame: Extract<ServerMessage, { type: "assign" }>) {
    const fence = { task_id: frame.task_id, generation: frame.generation };
    const id = `accept-${frame.task_id}-${frame.generation}`;
    runner.send({ type: "accept", id, ...fence });
    await runner.next("ack", (f) => f.id === id, 20_000);
    const response = await fetch(
      `${h.conveyor.url}/runners/v1/tasks/${frame.task_id}/changes?generation=${frame.generation}`,
      {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          base_sha: frame.repo.base_sha,
          message: "change",
          files: [{ path: `f-${frame.issue.number}.txt`, action: "add", content: "x" }],
        }),
      },
    );
    const { digest } = (await response.json()) as { digest: string };
    runner.send({
      type: "complete",
      ...fence,
      changes_digest: digest,
      summary: "done",
      stats: {},
    });
  }
  return runner;
}

/** What the instant runners' handlers threw (checked before the test ends). */
const runnerErrors: unknown[] = [];

describe("runners wanted", () => {
  it("follows 50 tasks as they queue, run and drain", async () => {
    expect(await scaling()).toEqual({
      runners_wanted: 0,
      waiting: 0,
      free_slots: 0,
      capability_sets: [],
    });
    await waitFor(async () => (await wantedSeries())[""] === 0, {
      message: "the empty series at 0",
    });

    for (let n = 1; n <= 50; n++) {
      await createTask(
        h.database.db,
        {
          repositoryId: h.repositoryId,
          installationId: h.installationId,
          issueNumber: 1000 + n,
          title: `Task ${n}`,
          body: "",
          lane: "normal",
          capabilities: n <= 10 ? ["gpu"] : [],
          maxAttempts: 3,
          limits: {},
          queuedBy: "octocat",
        },
        "label added",
      );
    }
    expect(await scaling()).toEqual({
      runners_wanted: 50,
      waiting: 50,
      free_slots: 0,
      capability_sets: [
        { capabilities: [], waiting: 40, free_slots: 0, runners_wanted: 40 },
        { capabilities: ["gpu"], waiting: 10, free_slots: 0, runners_wanted: 10 },
      ],
    });
    // A fleet asks about the work its runners can take: what they offer, in their scope.
    expect((await scaling("?capabilities=")).runners_wanted).toBe(40);
    expect((await scaling("?capabilities=gpu,docker")).runners_wanted).toBe(50);
    expect((await scaling("?repos=globex/*")).runners_wanted).toBe(0);
    expect((await scaling("?repos=acme/widgets&capabilities=gpu")).runners_wanted).toBe(50);
    const bad = await fetch(`${h.conveyor.url}/api/scaling?repos=nope&capabilities=GPU`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(bad.status).toBe(422);
    await waitFor(
      async () => {
        const series = await wantedSeries();
        return series[""] === 40 && series.gpu === 10;
      },
      { message: "the series at 40 and 10" },
    );

    // Runners without gpu take the 40 plain tasks; the gpu ones still want runners.
    const seen: number[] = [];
    await instantRunner("plain-1", [], 4);
    await instantRunner("plain-2", [], 4);
    await waitFor(
      async () => {
        const now = await scaling();
        seen.push(now.runners_wanted);
        return now.waiting === 10;
      },
      { timeoutMs: 60_000, message: "the plain tasks drained" },
    );
    // Never more wanted than queued, and down to the gpu tasks once the plain ones ran (a read
    // between a result and the next claim may see a slot free for a moment).
    expect(
      seen.every((n) => n >= 0 && n <= 50),
      seen.join(" "),
    ).toBe(true);
    expect(seen.at(-1)).toBe(10);
    expect(await scaling()).toMatchObject({
      capability_sets: [{ capabilities: ["gpu"], waiting: 10, free_slots: 0, runners_wanted: 10 }],
    });
    await waitFor(
      async () => {
        const series = await wantedSeries();
        return series[""] === 0 && series.gpu === 10;
      },
      { message: "the series at 0 and 10" },
    );

    // A gpu runner drains the rest.
    await instantRunner("gpu-1", ["gpu"], 3);
    await waitFor(async () => (await scaling()).waiting === 0, {
      timeoutMs: 60_000,
      message: "the queue drained",
    });
    expect(await scaling()).toEqual({
      runners_wanted: 0,
      waiting: 0,
      free_slots: 0,
      capability_sets: [],
    });
    await waitFor(
      async () => {
        const series = await wantedSeries();
        return series[""] === 0 && series.gpu === undefined;
      },
      { message: "the series back at 0" },
    );
    // Every result is in before the server stops: nothing is left in flight.
    await waitFor(
      async () =>
        resultRows<{ n: number }>(
          await h.database.db.execute(
            sql`select count(*)::int as n from tasks where state in ('assigned', 'running')`,
          ),
        )[0]?.n === 0,
      { timeoutMs: 30_000, message: "every result in" },
    );
    expect(runnerErrors).toEqual([]);
    expect(h.sim.violations).toEqual([]);
  });
});
