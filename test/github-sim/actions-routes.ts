import { parse } from "yaml";
import { type ApiRoutes, actorOf, bodyOf, repoOf } from "./api-route.ts";
import { HttpError } from "./http-error.ts";
import type { SimContext } from "./sim-context.ts";
import type { SimRepo } from "./sim-state.ts";

/** A `workflow_dispatch` GitHub accepted: what a fake Actions would start a run for. */
export interface WorkflowDispatch {
  repo: string;
  /** The workflow's path, `.github/workflows/<file>`. */
  workflow: string;
  ref: string;
  /** The commit the ref pointed at. */
  sha: string;
  /** The inputs as the run sees them: the workflow's defaults, then those given. */
  inputs: Record<string, string>;
  actor: string;
  runId: number;
}

/** What happens on a dispatch GitHub accepted (a fake Actions starts its run here). */
export type OnWorkflowDispatch = (dispatch: WorkflowDispatch) => void;

let nextRunId = 9_000_000_000;

interface DispatchInput {
  required?: boolean;
  default?: unknown;
}

/** Reads `on.workflow_dispatch` of a workflow file: its inputs, or undefined without the trigger. */
function dispatchTrigger(text: string): Record<string, DispatchInput> | undefined {
  let document: unknown;
  try {
    document = parse(text);
  } catch {
    return undefined;
  }
  const on =
    (document as { on?: unknown; true?: unknown } | null)?.on ??
    // YAML 1.1 readers turn a bare `on` key into `true`; the `yaml` package does not, but be safe.
    (document as { true?: unknown } | null)?.true;
  if (on === "workflow_dispatch") return {};
  if (Array.isArray(on)) return on.includes("workflow_dispatch") ? {} : undefined;
  if (on && typeof on === "object" && "workflow_dispatch" in on) {
    const trigger = (
      on as { workflow_dispatch?: { inputs?: Record<string, DispatchInput> } | null }
    ).workflow_dispatch;
    return trigger?.inputs ?? {};
  }
  return undefined;
}

async function workflowFile(ctx: SimContext, repo: SimRepo, id: string, sha: string) {
  // GitHub also takes the numeric id; the simulator knows workflows by file name only.
  if (!/^[^/]+\.ya?ml$/.test(id)) throw new HttpError(404, "Not Found");
  const path = `.github/workflows/${id}`;
  const found = await ctx.git.readFile(repo.fullName, sha, path);
  if (!found?.content) throw new HttpError(404, "Not Found");
  return { path, text: found.content.toString("utf8") };
}

/**
 * `POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches`, with GitHub's refusals:
 * an unknown workflow (404), an unknown ref, a workflow without `workflow_dispatch`, inputs the
 * workflow does not declare or a required one missing (422). The App needs `actions: write`.
 * https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event
 */
export function createActionsRoutes(onDispatch: () => OnWorkflowDispatch | undefined): ApiRoutes {
  return {
    "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches": {
      auth: "installation",
      permissions: [["actions", "write"]],
      async handle(ctx, request) {
        const repo = repoOf(request);
        const body = bodyOf<{
          ref: string;
          inputs?: Record<string, unknown>;
          return_run_details?: boolean;
        }>(request);
        const ref = body.ref.replace(/^refs\/(heads|tags)\//, "");
        const sha = await ctx.git.resolveCommit(repo.fullName, ref);
        if (!sha) throw new HttpError(422, `No ref found for: ${body.ref}`);
        const workflow = await workflowFile(ctx, repo, request.params.workflow_id!, sha);
        const declared = dispatchTrigger(workflow.text);
        if (!declared)
          throw new HttpError(422, "Workflow does not have 'workflow_dispatch' trigger");
        const given = body.inputs ?? {};
        const unexpected = Object.keys(given).filter((key) => !(key in declared));
        if (unexpected.length) {
          throw new HttpError(422, `Unexpected inputs provided: ${JSON.stringify(unexpected)}`);
        }
        const inputs: Record<string, string> = {};
        for (const [name, input] of Object.entries(declared)) {
          const value = given[name] ?? input?.default;
          if (value === undefined || value === "") {
            if (input?.required) throw new HttpError(422, `Required input '${name}' not provided`);
            continue;
          }
          inputs[name] = typeof value === "string" ? value : JSON.stringify(value);
        }
        const runId = nextRunId++;
        onDispatch()?.({
          repo: repo.fullName,
          workflow: workflow.path,
          ref,
          sha,
          inputs,
          actor: actorOf(request).login,
          runId,
        });
        if (!body.return_run_details) return { status: 204 };
        return {
          status: 200,
          body: {
            workflow_run_id: runId,
            run_url: `${ctx.base}/repos/${repo.fullName}/actions/runs/${runId}`,
            html_url: `${ctx.base}/${repo.fullName}/actions/runs/${runId}`,
          },
        };
      },
    },
  };
}
