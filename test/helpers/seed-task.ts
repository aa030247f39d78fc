import type { Db } from "../../db/client.ts";
import { createTask, upsertRepository } from "../../src/store/tasks.ts";

/**
 * A task queued straight into the database (no webhook, no GitHub) in a repository that is
 * created if it is missing, as a trusted person's label would have queued it.
 */
export async function seedQueuedTask(
  db: Db,
  task: { repositoryId: number; installationId: number; issueNumber: number; title: string },
) {
  await upsertRepository(db, {
    repositoryId: task.repositoryId,
    installationId: task.installationId,
    fullName: "acme/widgets",
  });
  const { task: created } = await createTask(
    db,
    {
      ...task,
      body: "",
      lane: "normal",
      capabilities: [],
      maxAttempts: 3,
      limits: {},
      queuedBy: "octocat",
    },
    "label added",
  );
  return created;
}
