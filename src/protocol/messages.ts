import { z } from "zod";

/**
 * The runner WebSocket protocol, version 1. Server and runner both import this module
 * and nothing else of each other. Frames are JSON objects `{type, ...}`; field names are the
 * contract, and fields may grow (unknown fields are ignored, never an error).
 */
export const PROTOCOL_VERSION = 1;

const taskId = z.uuid().describe("the task's id");
const generation = z
  .number()
  .int()
  .min(1)
  .describe("the attempt: incremented by the server on every assignment of the task");
/** Runner frames may carry an `id`; the server's `ack`, `stale` or `error` echoes it. */
const frameId = z
  .string()
  .max(64)
  .optional()
  .describe("yours to choose; the server's direct reply echoes it");
/** The `id` of the runner frame a server frame answers. */
const replyId = z
  .string()
  .max(64)
  .optional()
  .describe("the `id` of the frame this answers, if it had one");
/** The discriminator every frame starts with. */
const frameType = <T extends string>(type: T) => z.literal(type).describe("the frame's type");
const capability = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/);

export const TASK_STAGES = ["cloning", "agent", "verifying", "uploading"] as const;

// runner → server

export const Hello = z.object({
  type: frameType("hello"),
  id: frameId,
  protocol: z.literal(PROTOCOL_VERSION).describe("the protocol version you speak"),
  name: z
    .string()
    .min(1)
    .max(100)
    .describe("shown in logs and on the dashboard; the runner's identity is its token"),
  version: z.string().max(50).describe("your runner's version"),
  capabilities: z
    .array(capability)
    .max(50)
    .describe(
      "what this machine can do; only those the runner was registered with (`conveyor runners add --capability`) count, the rest are ignored with a warning in the server log. A task is offered only if every capability it needs is among them",
    ),
  slots: z.number().int().min(1).max(64).describe("how many tasks this connection runs at once"),
  running: z
    .array(
      z.object({
        task_id: taskId,
        generation: generation.describe("the generation you hold it at"),
      }),
    )
    .max(64)
    .describe(
      "the tasks you are still working on (after a reconnect, or a restart that read your journal); `[]` on a fresh start",
    ),
});

export const Accept = z.object({
  type: frameType("accept"),
  id: frameId,
  task_id: taskId,
  generation,
});

export const Reject = z.object({
  type: frameType("reject"),
  id: frameId,
  task_id: taskId,
  generation,
  reason: z.string().min(1).max(1000).describe("why you turn it down, for the task's history"),
});

const count = (what: string) => z.number().int().min(0).optional().describe(what);

/**
 * Live figures of one attempt's agent, sent in heartbeats. Every field is optional (report what
 * the tool's output has said so far); figures are totals so far, never increments, so a lost
 * heartbeat loses nothing.
 */
export const Progress = z
  .object({
    adapter: z
      .string()
      .max(40)
      .optional()
      .describe("the adapter that runs the agent (`claude`, `codex`, …, `command`)"),
    model: z.string().max(100).optional().describe("the model the agent was asked to use"),
    tool: z
      .string()
      .max(300)
      .optional()
      .describe(
        "the agent's current tool call, as a line (`Edit src/sizes.ts`, `Bash npm test`); untrusted text",
      ),
    turns: count("model round trips so far"),
    tokens: count("tokens so far: input (cached or not) plus output"),
    input_tokens: count("input tokens so far (including cache reads and writes)"),
    output_tokens: count("output tokens so far"),
    cache_read_tokens: count("input tokens read from the prompt cache so far"),
    cache_write_tokens: count("input tokens written to the prompt cache so far"),
    cost_usd: z.number().min(0).optional().describe("what the model calls cost so far, in USD"),
  })
  .describe("the agent's progress so far; report what you know, leave out the rest");

export const Heartbeat = z.object({
  type: frameType("heartbeat"),
  id: frameId,
  task_id: taskId,
  generation,
  stage: z.enum(TASK_STAGES).describe("what the task is doing, for the dashboard"),
  message: z
    .string()
    .max(1000)
    .optional()
    .describe("a line of progress (say, the agent's last output line), for the dashboard"),
  progress: Progress.optional().describe(
    "what the agent has done so far, as its adapter read it from the tool's output; the server keeps it on the attempt and shows it in the status comment and on the task page",
  ),
});

export const Log = z.object({
  type: frameType("log"),
  id: frameId,
  task_id: taskId,
  generation,
  chunk: z
    .string()
    .max(64 * 1024)
    .describe("the next piece of the agent's output (characters are UTF-16 code units)"),
});

export const TaskStats = z
  .object({
    files_changed: count("files the change set touches"),
    lines_added: count("lines added"),
    lines_removed: count("lines removed"),
    duration_ms: count("how long the attempt took"),
    tokens: count("model tokens the agent used: input (cached or not) plus output"),
    input_tokens: count("of those, input tokens (including cache reads and writes)"),
    output_tokens: count("of those, output tokens"),
    cache_read_tokens: count("input tokens read from the model's prompt cache"),
    cache_write_tokens: count("input tokens written to the model's prompt cache"),
    turns: count("model round trips the agent took"),
    cost_usd: z.number().min(0).optional().describe("what the agent's model calls cost, in USD"),
  })
  .describe("numbers for the pull request's table; report what you know, leave out the rest");

/** Which agent made the attempt: the analytics group attempts by adapter and model. */
export const AgentInfo = z
  .object({
    adapter: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,39}$/)
      .describe(
        "the runner's adapter (`claude`, `codex`, `gemini`, `aider`, `opencode`, `command`)",
      ),
    model: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe("the model it asked for (`--model`), when one was chosen"),
  })
  .describe("the agent that made this attempt, for the outcome analytics");

/**
 * The repository's verify commands, run by the runner after the agent. A failure still delivers
 * the change (a person may want it), and the safety policy never auto-merges it.
 */
export const Verification = z
  .object({
    passed: z.boolean().describe("whether every command passed"),
    commands: z
      .array(
        z.object({
          argv: z.array(z.string()).describe("the command, as the `assign` gave it"),
          exit_code: z
            .number()
            .int()
            .nullable()
            .describe("its exit status; `null` if it was killed (a limit, a signal)"),
          passed: z.boolean().describe("whether it passed (exit status 0)"),
          output_tail: z.string().max(8_192).describe("the end of its output"),
        }),
      )
      .max(10)
      .describe("one entry per command run, in order; you may stop at the first failure"),
  })
  .describe(
    "the result of the `assign`'s `verify` commands. A failed verification is still a result: send `complete` with `passed: false`, not `fail`; such a change is never merged automatically",
  );

export const Complete = z.object({
  type: frameType("complete"),
  id: frameId,
  task_id: taskId,
  generation,
  changes_digest: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/)
    .describe(
      "the digest the upload of this task's change set returned (the latest upload, if you uploaded more than once)",
    ),
  summary: z
    .string()
    .max(20_000)
    .default("")
    .describe("your account of the change, shown as plain text in the pull request"),
  stats: TaskStats.default({}),
  verification: Verification.optional(),
  agent: AgentInfo.optional(),
});

/** The `fail` reason of an attempt stopped by its budget (`limits.max_*`); never retried. */
export const BUDGET_EXCEEDED = "budget exceeded";

export const Fail = z.object({
  type: frameType("fail"),
  id: frameId,
  task_id: taskId,
  generation,
  reason: z
    .string()
    .min(1)
    .max(1000)
    .describe("what went wrong, in a line; the issue's status comment and the next attempt see it"),
  retryable: z
    .boolean()
    .describe(
      "`true`: another attempt may succeed (it follows after backoff, unless that was the last attempt); `false`: the task is dead at once. A `fail` with reason `budget exceeded` is never retried, whatever this says (`/retry` revives the task)",
    ),
  detail: z
    .string()
    .max(20_000)
    .default("")
    .describe(
      "more about it (say, the end of the agent's output); its start is shown after the reason",
    ),
  stats: TaskStats.optional().describe(
    "what the failed attempt used (tokens, turns, cost), when the agent said; kept on the attempt",
  ),
  agent: AgentInfo.optional(),
});

export const Drain = z.object({ type: frameType("drain"), id: frameId });
export const Ping = z.object({ type: frameType("ping"), id: frameId });

export const RunnerMessage = z.discriminatedUnion("type", [
  Hello,
  Accept,
  Reject,
  Heartbeat,
  Log,
  Complete,
  Fail,
  Drain,
  Ping,
]);
export type RunnerMessage = z.infer<typeof RunnerMessage>;
/** A runner frame as a runner may send it: fields with defaults may be left out. */
export type RunnerMessageInput = z.input<typeof RunnerMessage>;
export type RunnerMessageType = RunnerMessage["type"];

// server → runner

export const RECONCILE_ACTIONS = ["continue", "cancel"] as const;

export const Welcome = z.object({
  type: frameType("welcome"),
  runner_id: z.uuid().describe("the id the server knows this runner by"),
  heartbeat_ms: z
    .number()
    .int()
    .positive()
    .describe("send a `heartbeat` for each running task at least this often"),
  lease_ms: z
    .number()
    .int()
    .positive()
    .describe("how long a lease lasts after `accept`, a `heartbeat` or a `continue`"),
  accept_ms: z
    .number()
    .int()
    .positive()
    .describe("how long you have to `accept` or `reject` an `assign`"),
  reconcile: z
    .array(
      z.object({
        task_id: taskId,
        action: z
          .enum(RECONCILE_ACTIONS)
          .describe(
            "`continue`: it is still yours (an `assign` with its clone details follows); `cancel`: drop it",
          ),
      }),
    )
    .describe("one entry per task of `hello.running`, in the same order"),
});

export const Assign = z.object({
  type: frameType("assign"),
  task_id: taskId,
  generation: generation.describe(
    "the attempt; the same as in your `hello.running` when this re-sends a task you continue",
  ),
  repo: z
    .object({
      full_name: z.string().describe("`owner/name`"),
      clone_url: z.string().describe("clone over HTTPS from here"),
      default_branch: z.string().describe("the repository's default branch"),
      base_sha: z
        .string()
        .regex(/^[0-9a-f]{40}$/)
        .describe("check out this commit: your change set is against it"),
    })
    .describe("where to clone, and which commit to start from"),
  issue: z
    .object({
      number: z.number().int().describe("the issue's number"),
      title: z.string().describe("its title when the task was queued"),
      body: z.string().describe("its body when the task was queued (later edits are not included)"),
      url: z.string().describe("its page on GitHub"),
    })
    .describe("what to do: the issue as it was when the task was queued"),
  branch: z.string().describe("the branch the pull request will use, `conveyor/issue-<number>`"),
  read_token: z
    .object({
      value: z
        .string()
        .describe("clone over HTTPS as user `x-access-token` with this as the password"),
      expires_at: z.string().describe("when it stops working (ISO 8601), about an hour from now"),
    })
    .describe(
      "a GitHub installation token with read-only access (`contents`, `metadata`) to this one repository",
    ),
  limits: z
    .object({
      wall_clock_minutes: z.number().optional().describe("the agent's total run time"),
      idle_minutes: z.number().optional().describe("time the agent may go without output"),
      output_bytes: z.number().optional().describe("bytes of output the agent may write"),
      max_cost_usd: z
        .number()
        .optional()
        .describe(
          "stop the agent once its reported cost passes this (USD) and `fail` with reason `budget exceeded`",
        ),
      max_tokens: z
        .number()
        .optional()
        .describe(
          "stop the agent once its reported tokens (input plus output) pass this; reason `budget exceeded`",
        ),
      max_turns: z
        .number()
        .optional()
        .describe("stop the agent once its model round trips pass this; reason `budget exceeded`"),
    })
    .describe(
      "for you to enforce on the agent (the repository's `tasks.limits`); a missing field means: use your own default",
    ),
  verify: z
    .array(z.array(z.string()))
    .optional()
    .describe(
      "the repository's `verify.commands` (at most 10), each an argv array: run them after the agent, without a shell, and report them in `complete.verification`; `[]` when there are none",
    ),
  feedback: z
    .string()
    .optional()
    .describe(
      "for the agent, when there is something to learn from before: review or CI feedback, or `The previous attempt did not succeed: <reason>`",
    ),
});

export const Cancel = z.object({
  type: frameType("cancel"),
  task_id: taskId,
  generation,
  reason: z.string().describe("why, for your logs"),
});

export const Ack = z.object({ type: frameType("ack"), id: replyId });

export const Stale = z.object({
  type: frameType("stale"),
  id: replyId,
  task_id: taskId,
  generation,
  reason: z.string().describe("why, for your logs"),
});

export const FieldError = z.object({
  field: z
    .string()
    .describe("dotted path of the field (`running.0.task_id`); `(frame)` for the frame as a whole"),
  error: z.string().describe("a machine-readable code"),
  detail: z.string().describe("a human-readable explanation"),
});

export const ERROR_CODES = [
  "invalid_frame",
  "invalid_json",
  "protocol",
  "not_found",
  "conflict",
  "internal",
] as const;

export const ErrorFrame = z.object({
  type: frameType("error"),
  id: replyId,
  code: z.enum(ERROR_CODES).describe("what kind of refusal (see Errors)"),
  message: z.string().describe("a human-readable explanation"),
  errors: z.array(FieldError).describe("one entry per bad field; `[]` when there are none"),
});

export const RateLimited = z.object({
  type: frameType("rate_limited"),
  id: replyId,
  retry_after_ms: z
    .number()
    .int()
    .min(0)
    .describe("send the frame again after this many milliseconds"),
});

export const Pong = z.object({ type: frameType("pong"), id: replyId });

export const ServerMessage = z.discriminatedUnion("type", [
  Welcome,
  Assign,
  Cancel,
  Ack,
  Stale,
  ErrorFrame,
  RateLimited,
  Pong,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

// The change set, uploaded over HTTP: PUT /runners/v1/tasks/{task_id}/changes?generation=g

export const MAX_CHANGE_SET_BYTES = 25 * 1024 * 1024;

/** The upload's URL parameters: the task in the path, the generation in the query string. */
export const UploadTarget = z.object({
  task_id: z
    .string({ error: "expected a task id" })
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      error: "expected a lowercase UUID",
    }),
  generation: z.coerce
    .number({ error: "expected a whole number" })
    .int({ error: "expected a whole number" })
    .min(1, { error: "expected a generation of at least 1" }),
});

export const ChangedFile = z.object({
  path: z
    .string()
    .min(1)
    .max(4096)
    .describe("relative to the repository root, `/` as the separator (see the path rules)"),
  action: z.enum(["add", "modify", "delete"]).describe("what happens to the file"),
  mode: z
    .enum(["100644", "100755", "120000"])
    .default("100644")
    .describe(
      "`100644` a file, `100755` an executable, `120000` a symlink (`content` is its target)",
    ),
  encoding: z
    .enum(["utf8", "base64"])
    .default("utf8")
    .describe("how `content` is written; use `base64` for binary files"),
  content: z
    .string()
    .default("")
    .describe("the file's complete new content (not a patch); ignored for `delete`"),
});

export const ChangeSet = z.object({
  base_sha: z
    .string()
    .regex(/^[0-9a-f]{40}$/)
    .describe("the `repo.base_sha` of the `assign`"),
  message: z.string().min(1).max(10_000).describe("the commit message"),
  files: z
    .array(ChangedFile)
    .min(1)
    .max(10_000)
    .describe("every file the change adds, modifies or deletes"),
});
export type ChangeSet = z.infer<typeof ChangeSet>;

export type FieldError = z.infer<typeof FieldError>;

/** Zod issues as the protocol's field-level errors. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    field: issue.path.map(String).join(".") || "(frame)",
    error: issue.code,
    detail: issue.message,
  }));
}

/** Every schema of the protocol as JSON Schema, for `GET /api/schemas`. */
export function protocolJsonSchemas(): Record<string, unknown> {
  const schemas = {
    RunnerMessage,
    ServerMessage,
    ChangeSet,
  };
  return {
    protocol: PROTOCOL_VERSION,
    schemas: Object.fromEntries(
      Object.entries(schemas).map(([name, schema]) => [
        name,
        z.toJSONSchema(schema, { io: "input" }),
      ]),
    ),
  };
}
