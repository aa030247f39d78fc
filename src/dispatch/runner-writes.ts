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
 * The writes a task's runner makes on its way through (`accept`, the change set's upload,
 * `complete`), each group-committed per instance (`createGroupCommit`): the runners' frames that
 * arrive while one statement of a kind runs share the next one. With many slots busy a task costs a
 * fraction of a commit for each, instead of one apiece.
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
  });
  const uploads = createGroupCommit({
    run: (inputs: ChangeSetUpload[]) => storeChangeSets(db, inputs),
    keyOf: (upload) => upload.taskId,
  });
  const completes = createGroupCommit({
    run: (items: { fence: Fence; result: CompleteResult; attempt: AttemptEnd }[]) =>
      completeTasks(db, items),
    keyOf: (item) => item.fence.taskId,
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
