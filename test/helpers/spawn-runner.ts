import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import { createRunner } from "../../src/store/runners.ts";
import { waitFor } from "./wait-for.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface RunnerProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
}

/**
 * `conveyor-runner <args>` as a real process, with the scripted agent unless told otherwise.
 * `cwd` defaults to the checkout; another directory keeps a `conveyor-runner.yml` there from
 * being read. A `BWRAP_PATH` of the tests (see prerequisites.ts) is put first on the runner's PATH,
 * where the runner looks for bwrap.
 */
export function spawnRunnerProcess(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string } = {},
): RunnerProcess {
  const child = spawn(process.execPath, [join(ROOT, "bin/conveyor-runner.js"), ...args], {
    cwd: options.cwd ?? ROOT,
    env: {
      PATH: [process.env.BWRAP_PATH && dirname(process.env.BWRAP_PATH), process.env.PATH]
        .filter(Boolean)
        .join(delimiter),
      HOME: process.env.HOME ?? "/tmp",
      LOG_LEVEL: "debug",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return { child, output: () => output, exited };
}

/** The scripted agent's argv, for `--agent -- …`. */
export const SCRIPTED_AGENT = [process.execPath, `${ROOT}runners/scripted-agent-bin.js`];

/**
 * A registered runner process with the scripted agent, connected to the harness's server, in its
 * own work directory. `stop` kills it and removes the directory. `again` starts the same runner
 * (token, work directory and journal) after a crash.
 */
export async function startScriptedRunner(
  harness: { conveyor: { url: string }; database: { db: Db } },
  name: string,
  again?: { token: string; workDir: string },
  env: Record<string, string> = {},
): Promise<{ runner: RunnerProcess; token: string; workDir: string; stop(): void }> {
  const token =
    again?.token ??
    (await createRunner(harness.database.db, { name, capabilities: [], tier: "normal" })).token;
  const workDir = again?.workDir ?? mkdtempSync(join(tmpdir(), `conveyor-${name}-`));
  const runner = spawnRunnerProcess(
    [
      "start",
      ...["--server", harness.conveyor.url, "--name", name, "--slots", "2"],
      ...["--work-dir", join(workDir, "work"), "--journal", join(workDir, "journal.json")],
      ...["--agent", "--", ...SCRIPTED_AGENT],
    ],
    { CONVEYOR_RUNNER_TOKEN: token, ...env },
  );
  return {
    runner,
    token,
    workDir,
    stop() {
      runner.child.kill("SIGKILL");
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** Opens an issue whose body is a `conveyor-script` for the scripted agent and labels it. */
export async function queueScriptedIssue(
  harness: {
    repo: string;
    sim: {
      openIssue(
        repo: string,
        issue: { title: string; body: string; user: string },
      ): Promise<{ issue: { number: number } }>;
      addLabel(
        repo: string,
        n: number,
        label: string,
        options: { sender: string },
      ): Promise<unknown>;
    };
    database: { db: Db };
  },
  title: string,
  script: string,
): Promise<{ issueNumber: number; taskId: string }> {
  const body = `\`\`\`conveyor-script\n${script}\n\`\`\`\n`;
  const { issue } = await harness.sim.openIssue(harness.repo, { title, body, user: "octocat" });
  await harness.sim.addLabel(harness.repo, issue.number, "conveyor", { sender: "octocat" });
  // The label's delivery is answered once stored; the intake loop creates the task soon after.
  const row = await waitFor(
    async () =>
      resultRows<{ task_id: string }>(
        await harness.database.db.execute(
          sql`select task_id from tasks where issue_number = ${issue.number} and state not in ('merged', 'cancelled')`,
        ),
      )[0],
    { timeoutMs: 15_000, message: `a task for issue #${issue.number}` },
  );
  return { issueNumber: issue.number, taskId: row.task_id };
}
