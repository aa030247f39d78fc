import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import { claimNextTask } from "../../src/store/dispatch.ts";
import { createRunner, findRunnerById } from "../../src/store/runners.ts";
import { createTask, upsertRepository } from "../../src/store/tasks.ts";
import { BACKENDS } from "../helpers/backends.ts";

describe.each(BACKENDS)("claiming tasks on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  const repositoryId = 2002;
  let runners = 0;
  const claim = (runnerId: string) =>
    claimNextTask(database.db, {
      runnerId,
      capabilities: [],
      agingMs: 30 * 60_000,
      acceptMs: 30_000,
    });
  const newRunner = async () =>
    (
      await createRunner(database.db, {
        name: `claimer-${++runners}`,
        capabilities: [],
        tier: "normal",
      })
    ).runner;

  beforeAll(async () => {
    database = await backend.open();
    await upsertRepository(database.db, {
      repositoryId,
      installationId: 1,
      fullName: "acme/widgets",
    });
  });
  afterAll(async () => {
    await database?.dispose();
  });

  it("leaves an idle runner's last assignment alone when there is nothing to claim", async () => {
    const runner = await newRunner();
    expect(await claim(runner.runnerId)).toBeUndefined();
    expect((await findRunnerById(database.db, runner.runnerId))?.lastAssignedAt).toBeNull();
  });

  it("records when the runner was last assigned a task", async () => {
    const runner = await newRunner();
    await createTask(
      database.db,
      {
        repositoryId,
        installationId: 1,
        issueNumber: 7,
        title: "Add a greeting",
        body: "Say hello",
        lane: "normal",
        capabilities: [],
        maxAttempts: 3,
        limits: {},
        queuedBy: "octocat",
      },
      "label added",
    );
    const claimed = await claim(runner.runnerId);
    expect(claimed).toMatchObject({ issue_number: 7, generation: 1 });
    expect((await findRunnerById(database.db, runner.runnerId))?.lastAssignedAt).toBeInstanceOf(
      Date,
    );
  });
});
