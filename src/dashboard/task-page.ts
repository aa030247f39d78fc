import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Db } from "../../db/client.ts";
import type { ApiAuth, ApiEnv } from "../http/admin-auth.ts";
import { type CandidateJson, toCandidateJson } from "../http/task-json.ts";
import { type AttemptRow, lastLogLines, listAttempts, logLinesAfter } from "../store/attempts.ts";
import { getTaskDetails } from "../store/task-queries.ts";

/** How often an open task page's stream looks for new log lines and changes (tests shorten it). */
export interface TaskPageTimings {
  pollMs: number;
  /** How often the stream checks that its session or token still stands. */
  recheckMs: number;
}

export const DEFAULT_TASK_PAGE_TIMINGS: TaskPageTimings = { pollMs: 1_000, recheckMs: 30_000 };

/** Log lines a page gets when it opens (the newest), and per event batch at most. */
const FIRST_LINES = 500;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `id` can be a task id (anything else is a 404 without a query). */
export function isTaskId(id: string): boolean {
  return UUID.test(id);
}

/** What the task page shows, as `/dashboard/tasks/:id/state` returns it. */
export interface TaskPageState {
  task: {
    task_id: string;
    repo: string;
    issue_number: number;
    title: string;
    state: string;
    lane: string;
    generation: number;
    attempts: number;
    max_attempts: number;
    runner_name: string | null;
    last_error: string | null;
    created_at: string;
    updated_at: string;
    finished_at: string | null;
    /** Best of N: how many candidates the task runs (1: none). */
    best_of: number;
    /** For a candidate: the task it is a candidate of (the page links back), and its k. */
    parent_task_id: string | null;
    candidate: number | null;
  };
  /** A best-of-N task's candidates, every round (each links to its own page and log). */
  candidates: CandidateJson[];
  pull_request: {
    number: number;
    url: string;
    state: string;
    head_sha: string;
    /** The latest `Conveyor / safety` verdict and tier, when one was written. */
    verdict: string | null;
    tier: number | null;
  } | null;
  /** The runner's account of the latest result (summary, stats, verification), if any. */
  result: unknown;
  attempts: AttemptRow[];
  /** Every attempt's figures added up (a figure no attempt reported stays null). */
  usage: { cost_usd: number | null; tokens: number | null; turns: number | null };
  events: {
    event_id: number;
    at: string;
    actor: string;
    from_state: string | null;
    to_state: string;
    generation: number;
    reason: string;
  }[];
}

/** The task page's facts, or undefined for an unknown task. */
export async function readTaskPageState(
  db: Db,
  taskId: string,
): Promise<TaskPageState | undefined> {
  const details = await getTaskDetails(db, taskId);
  if (!details) return undefined;
  const { task, events, pullRequest, candidates } = details;
  const attempts = await listAttempts(db, taskId);
  // The merger writes `<verdict>:<tier>:<digest>` (see store/metrics.ts).
  const verdict = /^([a-z_]+):([0-9]):/.exec(pullRequest?.verdictDigest ?? "");
  const sum = (key: "cost_usd" | "tokens" | "turns") => {
    const known = attempts.map((a) => a[key]).filter((v): v is number => v !== null);
    return known.length ? known.reduce((a, b) => a + b, 0) : null;
  };
  return {
    task: {
      task_id: task.taskId,
      repo: task.fullName,
      issue_number: task.issueNumber,
      title: task.title,
      state: task.state,
      lane: task.lane,
      generation: task.generation,
      attempts: task.attempts,
      max_attempts: task.maxAttempts,
      runner_name: task.runnerName,
      last_error: task.lastError,
      created_at: task.createdAt.toISOString(),
      updated_at: task.updatedAt.toISOString(),
      finished_at: task.finishedAt?.toISOString() ?? null,
      best_of: task.bestOf,
      parent_task_id: task.parentTaskId,
      candidate: task.candidate,
    },
    candidates: candidates.map(toCandidateJson),
    pull_request: pullRequest
      ? {
          number: pullRequest.prNumber,
          url: pullRequest.url,
          state: pullRequest.state,
          head_sha: pullRequest.headSha,
          verdict: verdict?.[1] ?? null,
          tier: verdict ? Number(verdict[2]) : null,
        }
      : null,
    result: task.result ?? null,
    attempts,
    usage: { cost_usd: sum("cost_usd"), tokens: sum("tokens"), turns: sum("turns") },
    events: events.map((e) => ({
      event_id: e.eventId,
      at: e.at.toISOString(),
      actor: e.actor,
      from_state: e.fromState,
      to_state: e.toState,
      generation: e.generation,
      reason: e.reason,
    })),
  };
}

export interface TaskPageRoutesDeps {
  db: Db;
  auth: ApiAuth;
  timings?: Partial<TaskPageTimings> | undefined;
  /** Whether the request's session or token still stands (checked while a stream is open). */
  stillAllowed(c: Context<ApiEnv>): () => Promise<boolean>;
}

/**
 * `/dashboard/tasks/:id/state` (JSON) and `/dashboard/tasks/:id/events` (server-sent events: the
 * page's state as `task` whenever it changes, and each new log line as `log`, with its id as the
 * event id, so a reconnecting browser resumes after the last line it has). Both need the same
 * sign-in as the rest of the dashboard. Streams poll the database, so a page follows a task
 * whichever instance its runner is connected to.
 */
export function mountTaskPageRoutes(routes: Hono<ApiEnv>, deps: TaskPageRoutesDeps) {
  const timings = { ...DEFAULT_TASK_PAGE_TIMINGS, ...deps.timings };
  const open = new Set<() => void>();

  routes.get("/dashboard/tasks/:id/state", deps.auth.read, async (c) => {
    c.header("Cache-Control", "no-store");
    const id = c.req.param("id");
    const state = isTaskId(id) ? await readTaskPageState(deps.db, id) : undefined;
    if (!state) return c.json({ error: `no task ${id}` }, 404);
    return c.json(state);
  });

  routes.get("/dashboard/tasks/:id/events", deps.auth.read, async (c) => {
    const id = c.req.param("id");
    const first = isTaskId(id) ? await readTaskPageState(deps.db, id) : undefined;
    if (!first) return c.json({ error: `no task ${id}` }, 404);
    const stillAllowed = deps.stillAllowed(c);
    const resumeFrom = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? Number.NaN);
    c.header("Cache-Control", "no-store");
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      let stopped = false;
      let wake: () => void = () => {};
      const stop = () => {
        stopped = true;
        wake();
      };
      open.add(stop);
      stream.onAbort(stop);
      try {
        let lastState = JSON.stringify(first);
        await stream.writeSSE({ event: "task", data: lastState, retry: 2_000 });
        let lastLine = 0;
        const lines =
          Number.isSafeInteger(resumeFrom) && resumeFrom >= 0
            ? await logLinesAfter(deps.db, id, resumeFrom, FIRST_LINES)
            : await lastLogLines(deps.db, id, FIRST_LINES);
        for (const line of lines) {
          await stream.writeSSE({
            event: "log",
            id: String(line.line_id),
            data: JSON.stringify(line),
          });
          lastLine = line.line_id;
        }
        if (!lines.length && Number.isSafeInteger(resumeFrom)) lastLine = resumeFrom;
        let checkedAt = Date.now();
        while (!stopped && !stream.aborted) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timings.pollMs);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (stopped || stream.aborted) break;
          if (Date.now() - checkedAt >= timings.recheckMs) {
            checkedAt = Date.now();
            if (!(await stillAllowed())) {
              await stream.writeSSE({ event: "signed-out", data: "{}" });
              break;
            }
          }
          for (const line of await logLinesAfter(deps.db, id, lastLine, FIRST_LINES)) {
            await stream.writeSSE({
              event: "log",
              id: String(line.line_id),
              data: JSON.stringify(line),
            });
            lastLine = line.line_id;
          }
          const state = await readTaskPageState(deps.db, id);
          const text = JSON.stringify(state ?? null);
          if (state && text !== lastState) {
            lastState = text;
            await stream.writeSSE({ event: "task", data: text });
          }
        }
      } finally {
        open.delete(stop);
      }
    });
  });

  return {
    /** Ends every open task stream (before the HTTP server closes, which would wait for them). */
    close() {
      for (const stop of [...open]) stop();
    },
  };
}
