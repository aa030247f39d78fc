import { loadConfig } from "../config.ts";
import type { TaskDetailsJson, TaskJson, TaskListItemJson } from "../http/task-json.ts";
import { TaskActionBody, TaskListQuery } from "../http/task-routes.ts";
import { toFieldProblems } from "../http/validation.ts";
import { CliError } from "./cli-error.ts";
import {
  type CliOutput,
  type Env,
  expectPositionals,
  formatTime,
  type ParsedArgs,
  parseCommandArgs,
  printJson,
  processOutput,
  renderTable,
  runCli,
  usage,
} from "./cli-support.ts";
import { type AdminApi, openAdminApi, readAnswer } from "./open-admin-api.ts";

export const TASKS_USAGE = `Usage: conveyor tasks <command>

Commands:
  list [--state <s>]... [--lane <l>]... [--repo <owner/name>] [--issue <n>]
       [--limit <n>] [--cursor <c>] [--json]
                      tasks, newest first (50 by default, at most 200 a page)
  show <task> [--json]
                      one task: its state, snapshot, pull request and whole history
  retry <task> [--reason <text>] [--json]
                      run a dead, failed, retry_wait or waiting_human task again now
  cancel <task> [--reason <text>] [--json]
                      stop a task for good (its runner is told to stop)
  help                show this help

<task> is a task id, or <owner/name>#<issue> for the newest task of that issue.
--state and --lane may be repeated or take a comma-separated list. States: queued, assigned,
running, pushed, review, merging, merged, waiting_human, retry_wait, failed, dead, cancelled,
held. Lanes: urgent, high, normal, low.

Retry and cancel need an admin token when they go through a server; the task's history records
who did it (token:<name>, CONVEYOR_ADMIN_TOKEN, or cli:<user> on a database opened directly).`;

const ISSUE_REF = /^([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)#(\d+)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `conveyor tasks list|show|retry|cancel`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runTasksCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    out.stderr(`conveyor tasks: missing command: list, show, retry or cancel\n\n${TASKS_USAGE}\n`);
    return 2;
  }
  if (command === "help" || command === "--help" || command === "-h") {
    out.stdout(`${TASKS_USAGE}\n`);
    return 0;
  }
  return runCli("tasks", out, async () => {
    const action = prepare(command, rest);
    if (action === "help") {
      out.stdout(`${TASKS_USAGE}\n`);
      return 0;
    }
    const api = await openAdminApi(loadConfig(env), env);
    try {
      if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
      return await action(api, out);
    } finally {
      await api.close();
    }
  });
}

type Action = (api: AdminApi, out: CliOutput) => Promise<number>;

function prepare(command: string, argv: readonly string[]): Action | "help" {
  switch (command) {
    case "list": {
      const args = parseCommandArgs(argv, {
        state: { type: "string", multiple: true, short: "s" },
        lane: { type: "string", multiple: true },
        repo: { type: "string" },
        issue: { type: "string" },
        limit: { type: "string", short: "n" },
        cursor: { type: "string" },
      });
      if (args.help) return "help";
      expectPositionals(args, [], "list");
      const query = listQuery(args);
      return async (api, out) => {
        const page = await readAnswer<{ tasks: TaskListItemJson[]; next_cursor: string | null }>(
          api,
          await api.request("GET", `/tasks?${query}`),
        );
        if (args.json) {
          printJson(out, page);
          return 0;
        }
        out.stdout(renderList(page.tasks));
        if (page.next_cursor) {
          out.stdout(`\nMore tasks: add --cursor ${page.next_cursor}\n`);
        }
        return 0;
      };
    }
    case "show": {
      const args = parseCommandArgs(argv);
      if (args.help) return "help";
      const [ref] = expectPositionals(args, ["task"], "show");
      checkRef(ref!);
      return async (api, out) => {
        const id = await resolveTask(api, ref!);
        const task = await readAnswer<TaskDetailsJson>(
          api,
          await api.request("GET", `/tasks/${id}`),
        );
        if (args.json) printJson(out, task);
        else out.stdout(renderDetails(task));
        return 0;
      };
    }
    case "retry":
    case "cancel": {
      const args = parseCommandArgs(argv, { reason: { type: "string" } });
      if (args.help) return "help";
      const [ref] = expectPositionals(args, ["task"], command);
      checkRef(ref!);
      const body = TaskActionBody.safeParse(
        args.values.reason === undefined ? {} : { reason: args.values.reason },
      );
      if (!body.success) throw usage(`--reason: ${body.error.issues[0]?.message}`);
      return async (api, out) => {
        const id = await resolveTask(api, ref!);
        const result = await readAnswer<{ changed: boolean; reason?: string; task: TaskJson }>(
          api,
          await api.request("POST", `/tasks/${id}/${command}`, { body: body.data }),
        );
        if (args.json) {
          printJson(out, result);
          return 0;
        }
        const { task } = result;
        const what = `Task ${task.task_id} (${task.repo}#${task.issue_number})`;
        out.stdout(
          result.changed
            ? command === "retry"
              ? `${what} is queued again (attempt ${task.attempts + 1} of ${task.max_attempts}).\n`
              : `${what} is cancelled; a runner working on it is told to stop.\n`
            : `${what}: nothing to do, ${result.reason}.\n`,
        );
        return 0;
      };
    }
    default:
      throw usage(`unknown command "${command}": expected list, show, retry or cancel`);
  }
}

/** The query string for `GET /api/tasks`, checked here so a typo is a usage error (exit 2). */
function listQuery(args: ParsedArgs): string {
  const v = args.values;
  const raw: Record<string, unknown> = {};
  if (v.state !== undefined) raw.state = v.state;
  if (v.lane !== undefined) raw.lane = v.lane;
  if (v.repo !== undefined) raw.repo = v.repo;
  if (v.issue !== undefined) raw.issue = v.issue;
  if (v.limit !== undefined) raw.limit = v.limit;
  if (v.cursor !== undefined) raw.cursor = v.cursor;
  const parsed = TaskListQuery.safeParse(raw);
  if (!parsed.success) {
    throw usage(
      toFieldProblems(parsed.error)
        .map((p) => `--${p.path.split(".")[0]}: ${p.message}`)
        .join("\n"),
    );
  }
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(raw)) {
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
  }
  return query.toString();
}

function checkRef(ref: string): void {
  if (!UUID.test(ref) && !ISSUE_REF.test(ref)) {
    throw usage(`expected a task id or <owner/name>#<issue>, got "${ref}"`);
  }
}

/** A task id as given, or the newest task of `owner/name#N`. */
async function resolveTask(api: AdminApi, ref: string): Promise<string> {
  const issue = ISSUE_REF.exec(ref);
  if (!issue) return ref;
  const query = new URLSearchParams({ repo: issue[1]!, issue: issue[2]!, limit: "1" });
  const { tasks } = await readAnswer<{ tasks: TaskJson[] }>(
    api,
    await api.request("GET", `/tasks?${query}`),
  );
  if (!tasks[0])
    throw new CliError(`no task for ${ref} (see: conveyor tasks list --repo ${issue[1]})`);
  return tasks[0].task_id;
}

function truncate(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function renderList(tasks: TaskListItemJson[]): string {
  if (tasks.length === 0) return "No tasks match.\n";
  return renderTable([
    ["TASK", "ISSUE", "STATE", "LANE", "ATTEMPTS", "RUNNER", "UPDATED", "TITLE"],
    ...tasks.flatMap((t) => [
      [
        t.task_id,
        `${t.repo}#${t.issue_number}`,
        t.state,
        t.lane,
        `${t.attempts}/${t.max_attempts}`,
        t.runner_name ?? "-",
        formatTime(t.updated_at),
        truncate(t.best_of > 1 ? `[best of ${t.best_of}] ${t.title}` : t.title, 50),
      ],
      // A best-of-N task's candidates (of every round), under it.
      ...(t.candidates ?? []).map((c) => [
        `  ${c.task_id}`,
        `  candidate ${c.k}`,
        c.state,
        "",
        "",
        c.runner_name ?? "-",
        "",
        [c.adapter, c.picked ? "picked" : null].filter(Boolean).join(", ") || "-",
      ]),
    ]),
  ]);
}

/** `2025-11-25 10:43:07 UTC`: seconds matter in a history. */
function formatSeconds(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

function renderDetails(task: TaskDetailsJson): string {
  const rows: [string, string][] = [
    ["issue", `${task.repo}#${task.issue_number}: ${truncate(task.title, 70)}`],
    [
      "state",
      `${task.state} (attempts ${task.attempts} of ${task.max_attempts}, generation ${task.generation})`,
    ],
    ["lane", task.lane],
    ["capabilities", task.capabilities.join(", ") || "none"],
    ["queued by", `${task.queued_by} at ${formatSeconds(task.created_at)}`],
    ["runner", task.runner_name ?? task.runner_id ?? "-"],
    [
      "pull request",
      task.pull_request
        ? `#${task.pull_request.number} ${task.pull_request.url} (${task.pull_request.state})`
        : "-",
    ],
    ["last error", task.last_error ?? "-"],
    ["snapshot", task.snapshot_hash],
  ];
  if (task.parent_task_id)
    rows.splice(1, 0, ["candidate", `${task.candidate} of task ${task.parent_task_id}`]);
  if (task.best_of > 1) rows.splice(1, 0, ["best of", String(task.best_of)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const head = [
    `Task ${task.task_id}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    "",
    ...(task.candidates?.length
      ? [
          "Candidates:",
          renderTable([
            ["K", "TASK", "STATE", "RUNNER", "ADAPTER", "COST", "BRANCH", "RANK"],
            ...task.candidates.map((c) => [
              String(c.k),
              c.task_id,
              c.state,
              c.runner_name ?? "-",
              c.adapter ?? "any",
              c.cost_usd === null ? "-" : `$${c.cost_usd.toFixed(2)}`,
              c.branch,
              c.picked ? `${c.rank ?? "-"} picked` : String(c.rank ?? c.failure ?? "-"),
            ]),
          ]).trimEnd(),
          "",
        ]
      : []),
    "History:",
  ].join("\n");
  const history = renderTable([
    ["AT", "ACTOR", "CHANGE", "GEN", "REASON"],
    ...task.events.map((e) => [
      formatSeconds(e.at),
      e.actor,
      `${e.from_state ?? "-"} → ${e.to_state}`,
      String(e.generation),
      truncate(e.reason, 80),
    ]),
  ]);
  return `${head}\n${history}`;
}
