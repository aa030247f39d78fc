import { performance } from "node:perf_hooks";
import type { ServerMessage } from "../../src/protocol/messages.ts";
import type { BenchRunnerOptions } from "./bench-runner.ts";
import type { Simulator } from "./system.ts";
import { labeledPayload, signWebhook, webhookHeaders } from "./webhooks.ts";

type Assign = Extract<ServerMessage, { type: "assign" }>;

/**
 * Routes what every simulated runner sees (assignments, completions, problems) to whoever waits
 * for it. Runners are created with `hub.runnerOptions`.
 */
export function createDispatchHub() {
  const assignWaiters = new Map<number, (value: { assign: Assign; at: number }) => void>();
  const completed = new Map<string, number>();
  const completeWaiters = new Map<string, (at: number) => void>();
  const problems: string[] = [];
  /** `cancel` frames by reason (e.g. a sweep that raced a `complete`: "task is pushed"). */
  const cancels: Record<string, number> = {};
  let completions = 0;
  const runnerOptions: Pick<
    BenchRunnerOptions,
    "onAssign" | "onCompleted" | "onProblem" | "onCancel"
  > = {
    onAssign(assign, at) {
      assignWaiters.get(assign.issue.number)?.({ assign, at });
      assignWaiters.delete(assign.issue.number);
    },
    onCompleted(taskId, at) {
      completions++;
      const waiter = completeWaiters.get(taskId);
      if (waiter) {
        completeWaiters.delete(taskId);
        waiter(at);
      } else completed.set(taskId, at);
    },
    onProblem(problem) {
      if (problems.length < 100) problems.push(problem);
    },
    onCancel(cancel) {
      cancels[cancel.reason] = (cancels[cancel.reason] ?? 0) + 1;
    },
  };
  return {
    runnerOptions,
    problems,
    cancels,
    /** Tasks completed so far, over every runner. */
    completions: () => completions,
    /** Resolves when a runner gets the assignment for the issue. */
    waitForAssign(issueNumber: number, timeoutMs = 30_000) {
      return withTimeout(
        new Promise<{ assign: Assign; at: number }>((resolve) =>
          assignWaiters.set(issueNumber, resolve),
        ),
        timeoutMs,
        () =>
          `no runner was assigned issue #${issueNumber} within ${timeoutMs / 1000} s` +
          (problems.length ? ` (runner problems: ${problems.slice(-3).join("; ")})` : ""),
      );
    },
    /** Resolves when the runner holding the task had its `complete` acknowledged. */
    waitForCompletion(taskId: string, timeoutMs = 30_000) {
      const at = completed.get(taskId);
      if (at !== undefined) {
        completed.delete(taskId);
        return Promise.resolve(at);
      }
      return withTimeout(
        new Promise<number>((resolve) => completeWaiters.set(taskId, resolve)),
        timeoutMs,
        () =>
          `task ${taskId} was not completed within ${timeoutMs / 1000} s` +
          (problems.length ? ` (runner problems: ${problems.slice(-3).join("; ")})` : ""),
      );
    },
  };
}

export type DispatchHub = ReturnType<typeof createDispatchHub>;

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message())), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface DispatchSamples {
  /** Webhook request sent → `assign` frame received by a runner, ms. */
  dispatchMs: number[];
  /** Webhook request sent → its 200 response, ms. */
  webhookResponseMs: number[];
}

/**
 * Sends signed `issues.labeled` webhooks one at a time, each for a new issue opened in the
 * simulator with the intake label, and times each to the `assign` frame at a runner. The runner
 * finishes the task before the next webhook goes, so every webhook finds idle runners.
 */
export async function measureDispatch(options: {
  serverUrl: string;
  sim: Simulator;
  hub: DispatchHub;
  count: number;
  warmup: number;
  onProgress?: (done: number) => void;
}): Promise<DispatchSamples> {
  const samples: DispatchSamples = { dispatchMs: [], webhookResponseMs: [] };
  const total = options.warmup + options.count;
  const step = Math.max(1, Math.round(total / 10));
  for (let i = 0; i < total; i++) {
    const issue = await options.sim.call<Record<string, unknown> & { number: number }>(
      "openIssue",
      {
        title: `Benchmark task ${i + 1}`,
        body: "Make the benchmark pass.",
        labels: ["conveyor"],
      },
    );
    const webhook = await signWebhook("issues", labeledPayload(options.sim.info, issue));
    const assigned = options.hub.waitForAssign(issue.number);
    // Until the webhook gets an answer a lost assignment is not yet an error.
    assigned.catch(() => {});
    const sent = performance.now();
    const response = await fetch(`${options.serverUrl}/api/github/webhooks`, {
      method: "POST",
      headers: webhookHeaders(webhook),
      body: webhook.body,
    });
    const answered = performance.now();
    const text = await response.text();
    if (!response.ok) {
      throw new Error(`the webhook for issue #${issue.number} got ${response.status}: ${text}`);
    }
    const { assign, at } = await assigned;
    await options.hub.waitForCompletion(assign.task_id);
    if (i >= options.warmup) {
      samples.dispatchMs.push(at - sent);
      samples.webhookResponseMs.push(answered - sent);
    }
    if ((i + 1) % step === 0) options.onProgress?.(i + 1);
  }
  return samples;
}
