// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these are GitHub Actions ${{ }} expressions, not JavaScript templates
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { validateWorkflow } from "@action-validator/core";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";

/**
 * The subset of GitHub Actions' workflow syntax this project uses, strict (an unknown key is a
 * typo, not a feature), plus our own rules: top-level least-privilege `permissions`, never
 * `write-all`, a `timeout-minutes` on every job, no `pull_request_target`, and no `${{ }}` pasted
 * into a `run:` script (values go through `env`, so no input can become shell syntax).
 * Reference: https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions
 */
const WORKFLOWS_DIR = join(import.meta.dirname, "..", "workflows");

const expression = z.string().regex(/^\$\{\{[\s\S]+\}\}$/, "expected a ${{ … }} expression");
const scalar = z.union([z.string(), z.number(), z.boolean()]);
const envMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), scalar);
const minutes = z.union([z.number().int().positive().max(360), expression]);
const condition = z.union([z.string(), z.boolean()]);

const PERMISSION_SCOPES = [
  "actions",
  "attestations",
  "checks",
  "contents",
  "deployments",
  "discussions",
  "id-token",
  "issues",
  "models",
  "packages",
  "pages",
  "pull-requests",
  "repository-projects",
  "security-events",
  "statuses",
] as const;
const permissions = z.union([
  z.literal("read-all"),
  z.literal("write-all"), // parsed so the rule below can name it
  z.partialRecord(z.enum(PERMISSION_SCOPES), z.enum(["read", "write", "none"])),
]);

const Step = z
  .strictObject({
    id: z.string().optional(),
    name: z.string().optional(),
    if: condition.optional(),
    uses: z
      .string()
      .regex(/^(\.\/\S+|docker:\/\/\S+|[\w.-]+\/[\w./-]+@[\w.-]+)$/, "expected owner/repo@ref")
      .optional(),
    with: z.record(z.string(), scalar).optional(),
    run: z.string().min(1).optional(),
    shell: z.string().optional(),
    "working-directory": z.string().optional(),
    env: envMap.optional(),
    "continue-on-error": z.union([z.boolean(), expression]).optional(),
    "timeout-minutes": minutes.optional(),
  })
  .superRefine((step, ctx) => {
    if ((step.uses === undefined) === (step.run === undefined)) {
      ctx.addIssue({ code: "custom", message: "a step has exactly one of uses or run" });
    }
    if (step.with && !step.uses) {
      ctx.addIssue({ code: "custom", path: ["with"], message: "with belongs to a uses step" });
    }
    if (step.run?.includes("${{")) {
      ctx.addIssue({
        code: "custom",
        path: ["run"],
        message: "no ${{ }} in run scripts (script injection): pass the value through env",
      });
    }
  });

const Job = z.strictObject({
  name: z.string().optional(),
  "runs-on": z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.strictObject({ group: z.string().optional(), labels: z.unknown().optional() }),
  ]),
  // Required: an unbounded job can burn six hours of minutes.
  "timeout-minutes": minutes,
  needs: z.union([z.string(), z.array(z.string())]).optional(),
  if: condition.optional(),
  permissions: permissions.optional(),
  env: envMap.optional(),
  defaults: z.strictObject({ run: z.record(z.string(), z.string()) }).optional(),
  concurrency: z.unknown().optional(),
  strategy: z.unknown().optional(),
  outputs: z.record(z.string(), z.string()).optional(),
  environment: z.unknown().optional(),
  services: z.unknown().optional(),
  container: z.unknown().optional(),
  "continue-on-error": z.union([z.boolean(), expression]).optional(),
  steps: z.array(Step).min(1),
});

const CallInput = z
  .strictObject({
    description: z.string().optional(),
    required: z.boolean().optional(),
    type: z.enum(["string", "number", "boolean"]),
    default: scalar.optional(),
  })
  .superRefine((input, ctx) => {
    if (input.default !== undefined && typeof input.default !== input.type) {
      ctx.addIssue({
        code: "custom",
        path: ["default"],
        message: `default must be a ${input.type}`,
      });
    }
    if (input.required && input.default !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["default"],
        message: "a required input has no default",
      });
    }
  });

const WorkflowCall = z
  .strictObject({
    inputs: z.record(z.string(), CallInput).optional(),
    secrets: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
        z
          .strictObject({ description: z.string().optional(), required: z.boolean().optional() })
          .nullable(),
      )
      .optional(),
    outputs: z
      .record(z.string(), z.strictObject({ description: z.string().optional(), value: z.string() }))
      .optional(),
  })
  .nullable();

const EVENTS = [
  "push",
  "pull_request",
  "pull_request_target",
  "workflow_call",
  "workflow_dispatch",
  "schedule",
  "release",
  "merge_group",
] as const;
const filters = z
  .strictObject({
    branches: z.array(z.string()).optional(),
    "branches-ignore": z.array(z.string()).optional(),
    tags: z.array(z.string()).optional(),
    paths: z.array(z.string()).optional(),
    "paths-ignore": z.array(z.string()).optional(),
    types: z.array(z.string()).optional(),
  })
  .nullable();
const On = z.union([
  z.enum(EVENTS),
  z.array(z.enum(EVENTS)).min(1),
  z.strictObject({
    push: filters.optional(),
    pull_request: filters.optional(),
    pull_request_target: filters.optional(),
    merge_group: filters.optional(),
    release: filters.optional(),
    workflow_call: WorkflowCall.optional(),
    workflow_dispatch: z.unknown().optional(),
    schedule: z.array(z.strictObject({ cron: z.string() })).optional(),
  }),
]);

const Workflow = z
  .strictObject({
    name: z.string().optional(),
    "run-name": z.string().optional(),
    on: On,
    permissions: permissions.optional(),
    env: envMap.optional(),
    defaults: z.strictObject({ run: z.record(z.string(), z.string()) }).optional(),
    concurrency: z
      .union([
        z.string(),
        z.strictObject({
          group: z.string(),
          "cancel-in-progress": z.union([z.boolean(), expression]).optional(),
        }),
      ])
      .optional(),
    jobs: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/), Job),
  })
  .superRefine((workflow, ctx) => {
    if (Object.keys(workflow.jobs).length === 0) {
      ctx.addIssue({ code: "custom", path: ["jobs"], message: "expected at least one job" });
    }
    if (workflow.permissions === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["permissions"],
        message: "top-level permissions are required (least privilege, e.g. contents: read)",
      });
    }
    if (workflow.permissions === "write-all") {
      ctx.addIssue({ code: "custom", path: ["permissions"], message: "never write-all" });
    }
    for (const [id, job] of Object.entries(workflow.jobs)) {
      if (job.permissions === "write-all") {
        ctx.addIssue({
          code: "custom",
          path: ["jobs", id, "permissions"],
          message: "never write-all",
        });
      }
    }
    const on = workflow.on;
    const events = typeof on === "string" ? [on] : Array.isArray(on) ? on : Object.keys(on);
    if (events.includes("pull_request_target")) {
      ctx.addIssue({
        code: "custom",
        path: ["on", "pull_request_target"],
        message: "no pull_request_target: it runs fork code with the base repository's secrets",
      });
    }
  });

/** Validates one workflow's text; the problems as `path: message` lines (empty when valid). */
function problemsIn(text: string): string[] {
  let data: unknown;
  try {
    data = parse(text, { uniqueKeys: true });
  } catch (error) {
    return [`(yaml): ${(error as Error).message}`];
  }
  const result = Workflow.safeParse(data);
  return result.success
    ? []
    : result.error.issues.map((i) => `${i.path.join(".") || "(workflow)"}: ${i.message}`);
}

const files = readdirSync(WORKFLOWS_DIR).filter((f) => /\.ya?ml$/.test(f));

describe("workflows/", () => {
  it("holds the workflows we expect", () => {
    expect(files).toEqual(expect.arrayContaining(["ci.yml", "conveyor-runner.yml"]));
  });

  it.each(files)("%s is a valid workflow that follows our rules", (file) => {
    expect(problemsIn(readFileSync(join(WORKFLOWS_DIR, file), "utf8"))).toEqual([]);
  });

  // GitHub's published workflow schema (SchemaStore, bundled by action-validator), besides our rules.
  it.each(files)("%s passes GitHub's workflow schema", (file) => {
    const { errors } = validateWorkflow(readFileSync(join(WORKFLOWS_DIR, file), "utf8"));
    expect(errors).toEqual([]);
  });

  it("the schema check can fail", () => {
    const { errors } = validateWorkflow("on: push\njobs:\n  x:\n    runs-on: 3\n    stepz: []\n");
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe("workflows/conveyor-runner.yml", () => {
  const workflow = parse(readFileSync(join(WORKFLOWS_DIR, "conveyor-runner.yml"), "utf8"));
  const call = workflow.on.workflow_call;
  const job = workflow.jobs.runner;
  const steps: { name?: string; uses?: string; run?: string; with?: Record<string, unknown> }[] =
    job.steps;

  it("is reusable, with the documented inputs and defaults and a required token secret", () => {
    expect(Object.keys(workflow.on)).toEqual(["workflow_call"]);
    expect(call.inputs).toMatchObject({
      "server-url": { required: true, type: "string" },
      "name-prefix": { type: "string" },
      capabilities: { type: "string" },
      slots: { type: "number", default: 1 },
      "minutes-to-live": { type: "number", default: 50 },
      "agent-command": { required: true, type: "string" },
      "node-version": { type: "string" },
      "conveyor-repository": { type: "string" },
      "conveyor-ref": { type: "string", default: "main" },
    });
    expect(call.secrets.CONVEYOR_RUNNER_TOKEN).toMatchObject({ required: true });
    expect(workflow.permissions).toEqual({ contents: "read" });
  });

  it("checks out only Conveyor, without persisting a credential", () => {
    const checkouts = steps.filter((s) => s.uses?.startsWith("actions/checkout@"));
    expect(checkouts).toHaveLength(1);
    expect(checkouts[0]?.with).toMatchObject({
      repository: "${{ inputs.conveyor-repository }}",
      ref: "${{ inputs.conveyor-ref }}",
      "persist-credentials": false,
    });
  });

  it("starts the runner bounded in time and drains it with SIGTERM before the job's limit", () => {
    const start = steps.find((s) => s.run?.includes("conveyor-runner start"));
    expect(start?.run).toMatch(
      /^timeout --foreground --signal=TERM --kill-after="\$\{DRAIN_MINUTES\}m" --preserve-status\s+"\$\{MINUTES_TO_LIVE\}m" npx conveyor-runner start$/,
    );
    expect(job["timeout-minutes"]).toBe("${{ inputs.job-timeout-minutes }}");
    const defaults = call.inputs;
    expect(defaults["job-timeout-minutes"].default).toBeGreaterThanOrEqual(
      defaults["minutes-to-live"].default + defaults["drain-minutes"].default + 5,
    );
    // The token reaches only the steps that need it, as env, never on a command line.
    const withToken = steps.filter((s) => JSON.stringify(s).includes("CONVEYOR_RUNNER_TOKEN"));
    expect(withToken.map((s) => s.name)).toEqual([
      "Mask the runner token",
      "Check the runner's setup",
      "Run the runner",
    ]);
    // Masked first, before any step could print it (a one-time credential arrives as an input).
    expect(steps[0]?.run).toBe('echo "::add-mask::$CONVEYOR_RUNNER_TOKEN"');
    expect(call.inputs.ephemeral).toMatchObject({ type: "boolean", default: false });
    expect(job.env.CONVEYOR_RUNNER_EPHEMERAL).toBe("${{ inputs.ephemeral }}");
    expect(JSON.stringify(job.env)).not.toContain("secrets.");
  });
});

// The rules catch what they are for: each of these must be refused.
describe("workflow rules", () => {
  const valid = {
    on: { workflow_dispatch: null },
    permissions: { contents: "read" },
    jobs: {
      build: { "runs-on": "ubuntu-latest", "timeout-minutes": 10, steps: [{ run: "true" }] },
    },
  };
  const mutate = (f: (w: typeof valid & Record<string, unknown>) => void) => {
    const copy = structuredClone(valid) as typeof valid & Record<string, unknown>;
    f(copy);
    return JSON.stringify(copy); // JSON is YAML
  };

  it("accepts the minimal valid workflow", () => {
    expect(problemsIn(JSON.stringify(valid))).toEqual([]);
  });

  it.each([
    [
      "no top-level permissions",
      mutate((w) => delete (w as Partial<typeof w>).permissions),
      "permissions: top-level permissions are required",
    ],
    [
      "write-all",
      mutate((w) => Object.assign(w, { permissions: "write-all" })),
      "permissions: never write-all",
    ],
    [
      "write-all on a job",
      mutate((w) => Object.assign(w.jobs.build, { permissions: "write-all" })),
      "jobs.build.permissions: never write-all",
    ],
    [
      "a job without timeout-minutes",
      mutate((w) => delete (w.jobs.build as Partial<typeof w.jobs.build>)["timeout-minutes"]),
      "jobs.build.timeout-minutes",
    ],
    [
      "pull_request_target",
      mutate((w) => Object.assign(w, { on: { pull_request_target: null } })),
      "on.pull_request_target: no pull_request_target",
    ],
    [
      "pull_request_target as a list",
      mutate((w) => Object.assign(w, { on: ["push", "pull_request_target"] })),
      "no pull_request_target",
    ],
    [
      "an expression in a run script",
      mutate((w) =>
        Object.assign(w.jobs.build.steps[0]!, { run: "echo ${{ github.event.issue.title }}" }),
      ),
      "jobs.build.steps.0.run: no ${{ }} in run scripts",
    ],
    [
      "a typo in a key",
      mutate((w) => Object.assign(w.jobs.build, { "timeout-minute": 5 })),
      'Unrecognized key: "timeout-minute"',
    ],
    [
      "a step with both uses and run",
      mutate((w) => Object.assign(w.jobs.build.steps[0]!, { uses: "actions/checkout@v4" })),
      "exactly one of uses or run",
    ],
    [
      "an unpinned action",
      mutate((w) => Object.assign(w.jobs.build, { steps: [{ uses: "actions/checkout" }] })),
      "expected owner/repo@ref",
    ],
    [
      "an input whose default has the wrong type",
      mutate((w) =>
        Object.assign(w, {
          on: { workflow_call: { inputs: { n: { type: "number", default: "50" } } } },
        }),
      ),
      "on.workflow_call.inputs.n.default: default must be a number",
    ],
    ["a duplicated key", "on: push\non: pull_request\npermissions: {}\njobs: {}", "(yaml)"],
  ])("refuses %s", (_, text, expected) => {
    expect(problemsIn(text).join("\n")).toContain(expected);
  });
});
