import type { Db } from "../../db/client.ts";
import type { AttemptEnd } from "../store/attempts.ts";
import {
  acceptTasks,
  type ChangeSetUpload,
  type CompleteResult,
  type Completion,
  completeTasks,
  storeChangeSets,
  type UploadOutcome,
} from "../store/dispatch.ts";
import { createGroupCommit } from "./group-commit.ts";

type Fence = { taskId: string; generation: number; runnerId: string };

/**
 * How long a runner's write waits for others to share its statement. A busy fleet's frames arrive
 * spread out, and without the wait most statements carried two or three of them: in
 * `npm run bench`'s queue-throughput (8 runners, 16 slots) commits per task fell from about 1.8
 * to 1.1 with it, and tasks per second rose by a fifth or more. Nothing waits on it but the
 * frame's own reply.
 */
export const GATHER_MS = 2;

/**
 * The writes a task's runner makes on its way through (`accept`, the change set's upload,
 * `complete`), each group-committed per instance (`createGroupCommit`): the runners' frames that
 * arrive within `GATHER_MS`, or while one statement of a kind runs, share the next one. With many
 * slots busy a task costs a fraction of a commit for each, instead of one apiece.
 */
export interface RunnerWrites {
  accept(fence: Fence): Promise<boolean>;
  storeChangeSet(upload: ChangeSetUpload): Promise<UploadOutcome>;
  complete(fence: Fence, result: CompleteResult, attempt: AttemptEnd): Promise<Completion>;
  /** Resolves once every write queued so far was carried out. */
  flush(): Promise<void>;
}

export function createRunnerWrites(db: Db, leaseMs: number): RunnerWrites {
  const accepts = createGroupCommit({
    run: (fences: Fence[]) => acceptTasks(db, fences, leaseMs),
    gatherMs: GATHER_MS,
  });
  const uploads = createGroupCommit({
    run: (inputs: ChangeSetUpload[]) => storeChangeSets(db, inputs),
    keyOf: (upload) => upload.taskId,
    gatherMs: GATHER_MS,
  });
  const completes = createGroupCommit({
    run: (items: { fence: Fence; result: CompleteResult; attempt: AttemptEnd }[]) =>
      completeTasks(db, items),
    keyOf: (item) => item.fence.taskId,
    gatherMs: GATHER_MS,
  });
  return {
    accept: (fence) => accepts.submit(fence),
    storeChangeSet: (upload) => uploads.submit(upload),
    complete: (fence, result, attempt) => completes.submit({ fence, result, attempt }),
    async flush() {
      await Promise.all([accepts.flush(), uploads.flush(), completes.flush()]);
    },
  };
}
