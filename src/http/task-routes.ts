import { Hono } from "hono";
import type { Logger } from "pino";
import { z } from "zod";
import type { Db } from "../../db/client.ts";
import { LANES, TASK_STATES } from "../core/task-states.ts";
import {
  getTaskDetails,
  listCandidates,
  listTasks,
  runTaskAction,
  type TaskCursor,
} from "../store/task-queries.ts";
import type { ApiAuth, ApiEnv } from "./admin-auth.ts";
import { toTaskDetailsJson, toTaskJson, toTaskListItemJson } from "./task-json.ts";
import { parseJsonBody, parseQuery, smallBody } from "./validation.ts";

export interface TaskRoutesDeps {
  db: Db;
  auth: ApiAuth;
  logger: Logger;
  /** Called after a task changed, so status comments are rewritten and runners are told. */
  onTasksChanged: () => void;
}

/** `state=dead,failed` or `state=dead&state=failed`. */
const listOf = <const T extends readonly [string, ...string[]]>(values: T, what: string) =>
  z
    .union([z.string(), z.array(z.string())])
    .transform((v) =>
      (Array.isArray(v) ? v : [v])
        .flatMap((s) => s.split(","))
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(values, { error: `expected ${what}: ${values.join(", ")}` })));

const CURSOR_ERROR = "expected the next_cursor of a previous page";

function encodeCursor(cursor: TaskCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.taskId])).toString("base64url");
}

// How Postgres prints a timestamptz (`2026-01-02 03:04:05.123456+00`), which is what cursors hold.
const TIMESTAMP = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d(:?\d\d)?|Z)?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const Cursor = z.string().transform((value, ctx): TaskCursor => {
  try {
    const [createdAt, taskId] = JSON.parse(Buffer.from(value, "base64url").toString()) as unknown[];
    if (
      typeof createdAt === "string" &&
      TIMESTAMP.test(createdAt) &&
      typeof taskId === "string" &&
      UUID.test(taskId)
    ) {
      return { createdAt, taskId };
    }
  } catch {
    // Falls through to the issue below.
  }
  ctx.addIssue({ code: "custom", message: CURSOR_ERROR });
  return z.NEVER;
});

export const TaskListQuery = z.strictObject({
  state: listOf(TASK_STATES, "task states").optional(),
  lane: listOf(LANES, "lanes").optional(),
  repo: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, { error: "expected owner/name" })
    .optional(),
  issue: z.coerce
    .number({ error: "expected an issue number" })
    .int({ error: "expected an issue number" })
    .positive({ error: "expected an issue number" })
    .optional(),
  limit: z.coerce
    .number({ error: "expected a number from 1 to 200" })
    .int({ error: "expected a number from 1 to 200" })
    .min(1, { error: "expected a number from 1 to 200" })
    .max(200, { error: "expected a number from 1 to 200" })
    .default(50),
  cursor: Cursor.optional(),
});

/** Optional note on a retry or cancel, kept in the task's history. */
export const TaskActionBody = z.strictObject({
  reason: z
    .string({ error: "expected text" })
    .trim()
    .min(1, { error: "expected text" })
    .max(500, { error: "expected at most 500 characters" })
    .optional(),
});

/**
 * `/api/tasks`: list and show for `read`, retry and cancel for `admin`. Retry and cancel go
 * through the task machine's guarded transitions; the event names the token as the actor.
 */
export function createTaskRoutes(deps: TaskRoutesDeps): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  const logger = deps.logger.child({ component: "admin-api" });

  routes.get("/tasks", deps.auth.read, async (c) => {
    const query = parseQuery(c, TaskListQuery);
    if (!query.ok) return query.response;
    const { state, lane, repo, issue, limit, cursor } = query.data;
    const page = await listTasks(deps.db, {
      states: state,
      lanes: lane,
      repo,
      issueNumber: issue,
      limit,
      after: cursor,
    });
    const bestOf = page.tasks.filter((t) => t.bestOf > 1).map((t) => t.taskId);
    const candidates = await listCandidates(deps.db, bestOf);
    return c.json({
      tasks: page.tasks.map((task) => toTaskListItemJson(task, candidates)),
      next_cursor: page.nextCursor && encodeCursor(page.nextCursor),
    });
  });

  routes.get("/tasks/:id", deps.auth.read, async (c) => {
    const id = c.req.param("id");
    const details = UUID.test(id) ? await getTaskDetails(deps.db, id) : undefined;
    if (!details) return c.json({ error: `no task ${id}` }, 404);
    return c.json(toTaskDetailsJson(details));
  });

  for (const action of ["retry", "cancel"] as const) {
    routes.post(`/tasks/:id/${action}`, deps.auth.admin, smallBody, async (c) => {
      const id = c.req.param("id");
      const body = await parseJsonBody(c, TaskActionBody);
      if (!body.ok) return body.response;
      if (!UUID.test(id)) return c.json({ error: `no task ${id}` }, 404);
      const principal = c.get("principal");
      const outcome = await runTaskAction(deps.db, id, action, {
        actor: principal.actor,
        reason: body.data.reason,
      });
      switch (outcome.kind) {
        case "not-found":
          return c.json({ error: `no task ${id}` }, 404);
        case "refused":
          return c.json({ error: outcome.reason, task: toTaskJson(outcome.task) }, 409);
        case "unchanged":
          return c.json({ changed: false, reason: outcome.reason, task: toTaskJson(outcome.task) });
        case "moved":
          logger.info(
            { taskId: id, action, actor: principal.actor, state: outcome.task.state },
            action === "retry" ? "task retried" : "task cancelled",
          );
          deps.onTasksChanged();
          return c.json({ changed: true, task: toTaskJson(outcome.task) });
      }
    });
  }

  return routes;
}
