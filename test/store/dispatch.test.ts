import { sql } from "drizzle-orm";
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
  const claim = (runnerId: string, maxRunningPerInstallation?: number) =>
    claimNextTask(database.db, {
      runnerId,
      capabilities: [],
      agingMs: 30 * 60_000,
      acceptMs: 30_000,
      maxRunningPerInstallation,
    });
  let issues = 100;
  const queue = (repository: number, installationId: number, limits: Record<string, unknown>) =>
    createTask(
      database.db,
      {
        repositoryId: repository,
        installationId,
        issueNumber: ++issues,
        title: `Campaign issue ${issues}`,
        body: "",
        lane: "normal",
        capabilities: [],
        maxAttempts: 3,
        limits,
        queuedBy: "octocat",
      },
      "label added",
    );
  /** Finishes every task of these repositories so the next test starts from an empty queue. */
  const finishAll = async (ids: number[]) => {
    for (const id of ids) {
      await database.db.execute(
        sql`update tasks set state = 'cancelled', finished_at = now() where repository_id = ${id}`,
      );
    }
  };
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

  it("holds a repository to its tasks.max_running, counting assigned and running tasks", async () => {
    const capped = 2003;
    const other = 2004;
    for (const id of [capped, other]) {
      await upsertRepository(database.db, {
        repositoryId: id,
        installationId: 5,
        fullName: `acme/r${id}`,
      });
    }
    for (let i = 0; i < 3; i++) await queue(capped, 5, { max_running: 2 });
    await queue(other, 5, {});
    const claimedBy = async () => {
      const claimed = await claim((await newRunner()).runnerId);
      return claimed && Number(claimed.repository_id);
    };
    expect(await claimedBy()).toBe(capped);
    expect(await claimedBy()).toBe(capped);
    // The third of the capped repository waits; the other repository's task is not held up.
    expect(await claimedBy()).toBe(other);
    expect(await claimedBy()).toBeUndefined();
    // One of the two moves on to running: still counted.
    await database.db.execute(
      sql`update tasks set state = 'running' where task_id = (
            select task_id from tasks where repository_id = ${capped} and state = 'assigned' limit 1)`,
    );
    expect(await claimedBy()).toBeUndefined();
    // One finishes: the third may go.
    await database.db.execute(
      sql`update tasks set state = 'pushed' where repository_id = ${capped} and state = 'running'`,
    );
    expect(await claimedBy()).toBe(capped);
    await finishAll([capped, other]);
  });

  it("holds an installation to CONVEYOR_MAX_RUNNING_PER_INSTALLATION over its repositories", async () => {
    const [a, b, elsewhere] = [2005, 2006, 2007];
    await upsertRepository(database.db, { repositoryId: a, installationId: 6, fullName: "six/a" });
    await upsertRepository(database.db, { repositoryId: b, installationId: 6, fullName: "six/b" });
    await upsertRepository(database.db, {
      repositoryId: elsewhere,
      installationId: 7,
      fullName: "seven/c",
    });
    await queue(a, 6, {});
    await queue(b, 6, {});
    await queue(a, 6, {});
    await queue(elsewhere, 7, {});
    const claimed: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const task = await claim((await newRunner()).runnerId, 2);
      claimed.push(task && Number(task.installation_id));
    }
    expect(claimed).toEqual([6, 6, 7, undefined]);
    // Without the limit the installation's third task is claimed.
    expect(Number((await claim((await newRunner()).runnerId))?.installation_id)).toBe(6);
    await finishAll([a, b, elsewhere]);
  });
});
