import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkflowDispatch } from "./actions-routes.ts";
import { DEFAULT_APP_PERMISSIONS } from "./create-github-simulator.ts";
import { createTestProbot, startTestSimulator, type TestSimulator } from "./simulator-test-kit.ts";

/* The workflow dispatch route: GitHub's answers, and the fake Actions it calls. */

const WORKFLOW = `on:
  workflow_dispatch:
    inputs:
      runner_token:
        required: true
        type: string
      size:
        type: string
        default: small
jobs:
  x:
    runs-on: ubuntu-latest
    steps: [{ run: "true" }]
`;

describe("GitHub simulator: workflow dispatches", () => {
  let kit: TestSimulator;
  let limited: TestSimulator;
  const runs: WorkflowDispatch[] = [];
  const route = "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches" as const;
  const at = { owner: "acme", repo: "widgets" };

  async function octokitFor(target: TestSimulator) {
    const installationId = (await target.sim.createInstallation({ account: "acme" })).id;
    await target.sim.createRepository({
      owner: "acme",
      name: "widgets",
      installationId,
      files: {
        ".github/workflows/runner.yml": WORKFLOW,
        ".github/workflows/push-only.yml": "on: push\njobs: {}\n",
      },
    });
    return createTestProbot(target.sim, target.privateKey).auth(installationId);
  }

  beforeAll(async () => {
    kit = await startTestSimulator({ actions: (run) => runs.push(run) });
    const { actions: _, ...withoutActions } = DEFAULT_APP_PERMISSIONS;
    limited = await startTestSimulator({ permissions: withoutActions });
  });
  afterAll(async () => {
    await kit?.close();
    await limited?.close();
  });

  it("starts a run with the inputs and the workflow's defaults (204)", async () => {
    const octokit = await octokitFor(kit);
    const answer = await octokit.request(route, {
      ...at,
      workflow_id: "runner.yml",
      ref: "main",
      inputs: { runner_token: "cvr_x" },
    });
    expect(answer.status).toBe(204);
    expect(runs).toEqual([
      expect.objectContaining({
        repo: "acme/widgets",
        workflow: ".github/workflows/runner.yml",
        ref: "main",
        inputs: { runner_token: "cvr_x", size: "small" },
        actor: kit.sim.botLogin,
      }),
    ]);
    expect(kit.sim.workflowDispatches).toHaveLength(1);

    const refused = async (params: Record<string, unknown>) =>
      octokit.request(route, { ...at, workflow_id: "runner.yml", ref: "main", ...params }).then(
        () => ({ status: 0, message: "" }),
        (error: { status: number; response: { data: { message: string } } }) => ({
          status: error.status,
          message: error.response.data.message,
        }),
      );
    expect(await refused({ workflow_id: "missing.yml" })).toEqual({
      status: 404,
      message: "Not Found",
    });
    expect(await refused({ workflow_id: "push-only.yml" })).toEqual({
      status: 422,
      message: "Workflow does not have 'workflow_dispatch' trigger",
    });
    expect(await refused({ ref: "nope", inputs: { runner_token: "x" } })).toEqual({
      status: 422,
      message: "No ref found for: nope",
    });
    expect(await refused({ inputs: { runner_token: "x", extra: "y" } })).toEqual({
      status: 422,
      message: 'Unexpected inputs provided: ["extra"]',
    });
    expect(await refused({ inputs: {} })).toEqual({
      status: 422,
      message: "Required input 'runner_token' not provided",
    });
    expect(runs).toHaveLength(1);
    expect(kit.sim.violations).toEqual([]);
  });

  it("refuses an App without actions: write (403)", async () => {
    const octokit = await octokitFor(limited);
    const error = await octokit
      .request(route, {
        ...at,
        workflow_id: "runner.yml",
        ref: "main",
        inputs: { runner_token: "x" },
      })
      .catch((e: { status: number }) => e);
    expect((error as { status: number }).status).toBe(403);
    expect(limited.sim.workflowDispatches).toEqual([]);
  });
});
