import { z } from "zod";

/**
 * The runner WebSocket protocol, version 1. Server and runner both import this module
 * and nothing else of each other. Frames are JSON objects `{type, ...}`; field names are the
 * contract, and fields may grow (unknown fields are ignored, never an error).
 */
export const PROTOCOL_VERSION = 1;

const taskId = z.uuid();
const generation = z.number().int().min(1);
/** Runner frames may carry an `id`; the server's `ack`, `stale` or `error` echoes it. */
const frameId = z.string().max(64).optional();
const capability = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/);

export const TASK_STAGES = ["cloning", "agent", "verifying", "uploading"] as const;

// runner → server

export const Hello = z.object({
  type: z.literal("hello"),
  id: frameId,
  protocol: z.literal(PROTOCOL_VERSION),
  name: z.string().min(1).max(100),
  version: z.string().max(50),
  capabilities: z.array(capability).max(50),
  slots: z.number().int().min(1).max(64),
  running: z.array(z.object({ task_id: taskId, generation })).max(64),
});

export const Accept = z.object({
  type: z.literal("accept"),
  id: frameId,
  task_id: taskId,
  generation,
});

export const Reject = z.object({
  type: z.literal("reject"),
  id: frameId,
  task_id: taskId,
  generation,
  reason: z.string().min(1).max(1000),
});

export const Heartbeat = z.object({
  type: z.literal("heartbeat"),
  id: frameId,
  task_id: taskId,
  generation,
  stage: z.enum(TASK_STAGES),
  message: z.string().max(1000).optional(),
});

export const Log = z.object({
  type: z.literal("log"),
  id: frameId,
  task_id: taskId,
  generation,
  chunk: z.string().max(64 * 1024),
});

export const TaskStats = z.object({
  files_changed: z.number().int().min(0).optional(),
  lines_added: z.number().int().min(0).optional(),
  lines_removed: z.number().int().min(0).optional(),
  duration_ms: z.number().int().min(0).optional(),
  tokens: z.number().int().min(0).optional(),
  cost_usd: z.number().min(0).optional(),
});

/**
 * The repository's verify commands, run by the runner after the agent. A failure still delivers
 * the change (a person may want it), and the safety policy never auto-merges it.
 */
export const Verification = z.object({
  passed: z.boolean(),
  commands: z
    .array(
      z.object({
        argv: z.array(z.string()),
        exit_code: z.number().int().nullable(),
        passed: z.boolean(),
        output_tail: z.string().max(8_192),
      }),
    )
    .max(10),
});

export const Complete = z.object({
  type: z.literal("complete"),
  id: frameId,
  task_id: taskId,
  generation,
  changes_digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  summary: z.string().max(20_000),
  stats: TaskStats,
  verification: Verification.optional(),
});

export const Fail = z.object({
  type: z.literal("fail"),
  id: frameId,
  task_id: taskId,
  generation,
  reason: z.string().min(1).max(1000),
  retryable: z.boolean(),
  detail: z.string().max(20_000),
});

export const Drain = z.object({ type: z.literal("drain"), id: frameId });
export const Ping = z.object({ type: z.literal("ping"), id: frameId });

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
export type RunnerMessageType = RunnerMessage["type"];

// server → runner

export const Welcome = z.object({
  type: z.literal("welcome"),
  runner_id: z.uuid(),
  heartbeat_ms: z.number().int().positive(),
  lease_ms: z.number().int().positive(),
  accept_ms: z.number().int().positive(),
  reconcile: z.array(z.object({ task_id: taskId, action: z.enum(["continue", "cancel"]) })),
});

export const Assign = z.object({
  type: z.literal("assign"),
  task_id: taskId,
  generation,
  repo: z.object({
    full_name: z.string(),
    clone_url: z.string(),
    default_branch: z.string(),
    base_sha: z.string().regex(/^[0-9a-f]{40}$/),
  }),
  issue: z.object({
    number: z.number().int(),
    title: z.string(),
    body: z.string(),
    url: z.string(),
  }),
  branch: z.string(),
  read_token: z.object({ value: z.string(), expires_at: z.string() }),
  limits: z.object({
    wall_clock_minutes: z.number().optional(),
    idle_minutes: z.number().optional(),
    output_bytes: z.number().optional(),
  }),
  verify: z.array(z.array(z.string())).optional(),
  feedback: z.string().optional(),
});

export const Cancel = z.object({
  type: z.literal("cancel"),
  task_id: taskId,
  generation,
  reason: z.string(),
});

export const Ack = z.object({ type: z.literal("ack"), id: frameId });

export const Stale = z.object({
  type: z.literal("stale"),
  id: frameId,
  task_id: taskId,
  generation,
  reason: z.string(),
});

export const FieldError = z.object({ field: z.string(), error: z.string(), detail: z.string() });

export const ErrorFrame = z.object({
  type: z.literal("error"),
  id: frameId,
  code: z.enum(["invalid_frame", "invalid_json", "protocol", "not_found", "conflict", "internal"]),
  message: z.string(),
  errors: z.array(FieldError),
});

export const RateLimited = z.object({
  type: z.literal("rate_limited"),
  id: frameId,
  retry_after_ms: z.number().int().min(0),
});

export const Pong = z.object({ type: z.literal("pong"), id: frameId });

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

export const ChangedFile = z.object({
  path: z.string().min(1).max(4096),
  action: z.enum(["add", "modify", "delete"]),
  mode: z.enum(["100644", "100755", "120000"]).default("100644"),
  encoding: z.enum(["utf8", "base64"]).default("utf8"),
  content: z.string().default(""),
});

export const ChangeSet = z.object({
  base_sha: z.string().regex(/^[0-9a-f]{40}$/),
  message: z.string().min(1).max(10_000),
  files: z.array(ChangedFile).min(1).max(10_000),
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
