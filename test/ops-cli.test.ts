import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createAdaptorServer } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runExportCommand, runImportCommand } from "../src/cli/backup-command.ts";
import type { CliOutput } from "../src/cli/cli-support.ts";
import { runDoctorCommand } from "../src/cli/doctor-command.ts";
import { runTasksCommand } from "../src/cli/tasks-command.ts";
import { runTokensCommand } from "../src/cli/tokens-command.ts";
import { type ApiEnv, createApiAuth } from "../src/http/admin-auth.ts";
import { createOpsApi } from "../src/http/create-ops-api.ts";
import type { TaskJson } from "../src/http/task-json.ts";
import { createLogger } from "../src/logger.ts";
import { startRound } from "../src/store/best-of.ts";
import { schemaTables } from "../src/store/schema-tables.ts";
import { createTask, getTask, transitionTask, upsertRepository } from "../src/store/tasks.ts";
import {
  createGitHubSimulator,
  type GitHubSimulator,
} from "./github-sim/create-github-simulator.ts";
import { seedEveryTable } from "./helpers/seed-every-table.ts";
import { seedQueuedTask } from "./helpers/seed-task.ts";
import { spawnConveyor } from "./helpers/spawn-conveyor.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { testPrivateKey } from "./helpers/webhooks.ts";

/** Every table of the schema: what an export and an import cover. */
const TABLES = schemaTables().length;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

type Command = (argv: string[], env: Record<string, string>, out: CliOutput) => Promise<number>;

/** A command run in this process, its output captured. */
async function run(command: Command, argv: string[], env: Record<string, string>): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await command(argv, env, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

const tokens = (argv: string[], env: Record<string, string>) => run(runTokensCommand, argv, env);
const tasks = (argv: string[], env: Record<string, string>) => run(runTasksCommand, argv, env);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "conveyor-ops-cli-"));
  dirs.push(dir);
  return dir;
}

let database: TestDatabase;
let env: Record<string, string>;
/** A port nothing listens on (fetch refuses "bad ports" such as 1, so one is found). */
let closedPort: number;
let deadTask: string;
let runningTask: string;
const REPO_ID = 8080;

beforeAll(async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  database = await createTestDatabase();
  env = { DATABASE_URL: database.url };
  await upsertRepository(database.db, {
    repositoryId: REPO_ID,
    installationId: 1,
    fullName: "acme/widgets",
  });
  const ids: string[] = [];
  for (const n of [1, 2, 3]) {
    const { task } = await createTask(
      database.db,
      {
        repositoryId: REPO_ID,
        installationId: 1,
        issueNumber: n,
        title: `Issue number ${n} with a title long enough to be cut short in the table of tasks`,
        body: "",
        lane: n === 3 ? "urgent" : "normal",
        capabilities: [],
        maxAttempts: 3,
        limits: {},
        queuedBy: "octocat",
      },
      "label added",
    );
    ids.push(task.taskId);
  }
  for (const id of ids.slice(0, 2)) {
    await transitionTask(database.db, {
      taskId: id,
      to: "assigned",
      actor: "dispatcher",
      reason: "t",
    });
    await transitionTask(database.db, { taskId: id, to: "running", actor: "runner", reason: "t" });
  }
  await transitionTask(database.db, {
    taskId: ids[0]!,
    to: "dead",
    actor: "dispatcher",
    reason: "gave up",
    set: { attempts: 3, lastError: "agent crashed" },
  });
  [deadTask, runningTask] = ids as [string, string];
});
afterAll(async () => {
  await database?.drop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("conveyor tokens", () => {
  it("adds (shown once), lists as a table and as JSON, and revokes", async () => {
    const added = await tokens(["add", "ci-bot", "--role", "admin", "--json"], env);
    expect(added.code).toBe(0);
    const { secret, token } = JSON.parse(added.stdout) as {
      secret: string;
      token: { name: string; role: string };
    };
    expect(secret).toMatch(/^cva_/);
    expect(token).toMatchObject({ name: "ci-bot", role: "admin" });
    expect(added.stderr).toContain("cannot be shown again");

    const human = await tokens(["add", "grafana"], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("Created token grafana with the read role");
    expect(human.stdout).toMatch(/^cva_[A-Za-z0-9_-]{43}$/m);

    const table = await tokens(["list"], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME +ROLE +STATUS +LAST USED +CREATED +ID$/m);
    expect(table.stdout).toMatch(
      /^ci-bot +admin +active +never +\d{4}-\d\d-\d\d \d\d:\d\d UTC +[0-9a-f-]{36}$/m,
    );
    expect(table.stdout).toMatch(/^grafana +read +active /m);
    expect(table.stdout).not.toContain(secret);

    const revoked = await tokens(["revoke", "grafana"], env);
    expect(revoked).toMatchObject({ code: 0 });
    expect(revoked.stdout).toMatch(
      /^Token grafana is revoked \(since .*\): it no longer works\.$/m,
    );
    const listed = JSON.parse((await tokens(["list", "--json"], env)).stdout) as {
      tokens: { name: string; status: string }[];
    };
    expect(listed.tokens.map((t) => [t.name, t.status])).toEqual([
      ["ci-bot", "active"],
      ["grafana", "revoked"],
    ]);
    const missing = await tokens(["revoke", "nobody"], env);
    expect(missing).toMatchObject({ code: 1, stderr: "conveyor tokens: no token named nobody\n" });
  });

  it.each([
    [[], /missing command/],
    [["frob"], /unknown command "frob"/],
    [["add"], /add needs <name>/],
    [["add", "Bad_Name"], /name: expected 1-63 lower-case/],
    [["add", "x", "--role", "root"], /--role: expected read or admin/],
    [["add", "x", "--rol", "admin"], /Unknown option '--rol'/],
    [["list", "extra"], /list takes no arguments/],
  ])("%j exits 2 explaining the mistake", async (argv, message) => {
    const result = await tokens(argv, { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe("");
  });
});

describe("conveyor tasks", () => {
  it("lists tasks as an aligned table and as JSON, with filters", async () => {
    const table = await tasks(["list"], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TASK +ISSUE +STATE +LANE +ATTEMPTS +RUNNER +UPDATED +TITLE$/);
    expect(lines).toHaveLength(4);
    // Newest first; columns line up under the header.
    expect(lines[1]).toMatch(
      /^[0-9a-f-]{36} +acme\/widgets#3 +queued +urgent +0\/3 +- +\S+ \S+ UTC +Issue number 3 with a title long enough to be cut…$/,
    );
    expect(lines[3]).toMatch(new RegExp(`^${deadTask} +acme/widgets#1 +dead +normal +3/3 `));
    const column = lines[0]!.indexOf("STATE");
    for (const line of lines.slice(1))
      expect(line.slice(column, column + 4)).toMatch(/^(queu|dead|runn)/);

    const json = await tasks(["list", "--state", "dead,running", "--json"], env);
    const page = JSON.parse(json.stdout) as { tasks: TaskJson[]; next_cursor: string | null };
    expect(page.tasks.map((t) => t.state).sort()).toEqual(["dead", "running"]);
    expect(page.next_cursor).toBeNull();

    const paged = await tasks(["list", "--limit", "1"], env);
    expect(paged.stdout).toMatch(/^More tasks: add --cursor \S+$/m);
  });

  it("shows a task by id or by owner/name#issue, with its history", async () => {
    const byRef = await tasks(["show", "acme/widgets#1"], env);
    expect(byRef.code).toBe(0);
    expect(byRef.stdout).toContain(`Task ${deadTask}`);
    expect(byRef.stdout).toMatch(/^ {2}state +dead \(attempts 3 of 3, generation 0\)$/m);
    expect(byRef.stdout).toMatch(/^ {2}last error +agent crashed$/m);
    expect(byRef.stdout).toMatch(/^AT +ACTOR +CHANGE +GEN +REASON$/m);
    expect(byRef.stdout).toMatch(/ octocat +- → queued +0 +label added$/m);
    const byId = JSON.parse((await tasks(["show", deadTask, "--json"], env)).stdout) as {
      task_id: string;
      events: unknown[];
    };
    expect(byId).toMatchObject({ task_id: deadTask });
    expect(byId.events).toHaveLength(4);
  });

  it("retries a dead task, recording who ran the command", async () => {
    const retried = await tasks(["retry", deadTask, "--reason", "agent fixed"], env);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toBe(
      `Task ${deadTask} (acme/widgets#1) is queued again (attempt 1 of 3).\n`,
    );
    const [event] = await database.rows<{ actor: string; reason: string }>(sql`
      select actor, reason from task_events where task_id = ${deadTask} order by event_id desc limit 1`);
    const actor = `cli:${userInfo().username}`;
    expect(event).toEqual({ actor, reason: `retried by ${actor} from dead: agent fixed` });
    const again = await tasks(["retry", deadTask, "--json"], env);
    expect(JSON.parse(again.stdout)).toMatchObject({
      changed: false,
      reason: "task is already queued",
    });
  });

  it("refuses to retry a running task (exit 1, the reason) and cancels it", async () => {
    const refused = await tasks(["retry", runningTask], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      "conveyor tasks: task is running: only dead, failed, retry_wait, waiting_human tasks can be retried (it is being worked on now)\n",
    );
    const cancelled = await tasks(["cancel", "acme/widgets#2"], env);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(/is cancelled; a runner working on it is told to stop\.$/m);
  });

  it.each([
    [["list", "--state", "sleeping"], /--state: expected task states: queued, /],
    [["list", "--limit", "0"], /--limit: expected a number from 1 to 200/],
    [["show"], /show needs <task>/],
    [["show", "nope"], /expected a task id or <owner\/name>#<issue>, got "nope"/],
    [["retry", "acme/widgets#1", "--reason", ""], /--reason: expected text/],
    [["cancel", "acme/widgets#1", "--force"], /Unknown option '--force'/],
  ])("%j exits 2 explaining the mistake", async (argv, message) => {
    const result = await tasks(argv, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it("says so when there is no such task (exit 1)", async () => {
    const result = await tasks(["show", "00000000-0000-4000-8000-000000000000"], env);
    expect(result).toMatchObject({
      code: 1,
      stderr: "conveyor tasks: no task 00000000-0000-4000-8000-000000000000\n",
    });
    const byIssue = await tasks(["retry", "acme/widgets#999"], env);
    expect(byIssue.code).toBe(1);
    expect(byIssue.stderr).toContain("no task for acme/widgets#999");
  });

  it("prints a best-of task's candidates under it; the issue resolves to the task", async () => {
    const task = await seedQueuedTask(database.db, {
      repositoryId: REPO_ID,
      installationId: 1,
      issueNumber: 40,
      title: "Two ways",
    });
    await database.db.execute(sql`update tasks set best_of = 2 where task_id = ${task.taskId}`);
    expect(await startRound(database.db, (await getTask(database.db, task.taskId))!)).toBe(true);
    const children = await database.rows<{ task_id: string }>(
      sql`select task_id from tasks where parent_task_id = ${task.taskId} order by candidate`,
    );

    const lines = (await tasks(["list", "--repo", "acme/widgets"], env)).stdout.split("\n");
    const at = lines.findIndex((l) => l.startsWith(task.taskId));
    expect(lines[at]).toMatch(/ running +normal .*\[best of 2\] Two ways$/);
    expect(lines[at + 1]).toMatch(new RegExp(`^ {2}${children[0]!.task_id} +candidate 1 +queued `));
    expect(lines[at + 2]).toMatch(new RegExp(`^ {2}${children[1]!.task_id} +candidate 2 +queued `));
    expect(lines.filter((l) => l.includes("acme/widgets#40"))).toHaveLength(1);

    const shown = await tasks(["show", "acme/widgets#40"], env);
    expect(shown.stdout).toContain(`Task ${task.taskId}`);
    expect(shown.stdout).toMatch(/^ {2}best of +2$/m);
    expect(shown.stdout).toMatch(/^K +TASK +STATE +RUNNER +ADAPTER +COST +BRANCH +RANK$/m);
    expect(shown.stdout).toMatch(/^2 +\S+ +queued +- +any +- +conveyor\/issue-40-2 +-$/m);
    const child = await tasks(["show", children[1]!.task_id], env);
    expect(child.stdout).toMatch(new RegExp(`^ {2}candidate +2 of task ${task.taskId}$`, "m"));
    await transitionTask(database.db, {
      taskId: task.taskId,
      to: "cancelled",
      actor: "test",
      reason: "done looking",
    });
  });
});

describe("conveyor export and import", () => {
  it("backs up to a file and restores into an empty database; the restore exports the same", async () => {
    const source = await createTestDatabase();
    const target = await createTestDatabase();
    try {
      await seedEveryTable(source);
      const dir = tempDir();
      const file = join(dir, "backup.json");
      const exported = await run(runExportCommand, [file], { DATABASE_URL: source.url });
      expect(exported.code).toBe(0);
      expect(exported.stdout).toBe("");
      expect(exported.stderr).toMatch(/^ {2}tasks: 2 rows$/m);
      expect(exported.stderr).toMatch(
        new RegExp(
          `^Exported \\d+ rows from ${TABLES} tables \\(.*\\) in .* s to ${file}\\.$`,
          "m",
        ),
      );
      expect(() => JSON.parse(readFileSync(file, "utf8"))).not.toThrow();

      const refused = await run(runExportCommand, [file], { DATABASE_URL: source.url });
      expect(refused).toMatchObject({ code: 1 });
      expect(refused.stderr).toContain(`${file} exists: choose another file, or pass --force`);

      const imported = await run(runImportCommand, [file], { DATABASE_URL: target.url });
      expect(imported.code).toBe(0);
      expect(imported.stdout).toMatch(
        new RegExp(
          `^Imported \\d+ rows into ${TABLES} tables \\(migration \\d{4}_\\w+\\) in .* s; \\d+ id sequences moved past the restored rows\\.\n$`,
        ),
      );

      const again = join(dir, "again.json");
      expect((await run(runExportCommand, [again], { DATABASE_URL: target.url })).code).toBe(0);
      const stamp = (text: string) => text.replace(/"exported_at":"[^"]+"/, "");
      expect(stamp(readFileSync(again, "utf8"))).toBe(stamp(readFileSync(file, "utf8")));

      const twice = await run(runImportCommand, [file], { DATABASE_URL: target.url });
      expect(twice.code).toBe(1);
      expect(twice.stderr).toMatch(/^conveyor import: the database is not empty \(/);
      // To standard output without a file; --force replaces.
      const toStdout = await run(runExportCommand, [], { DATABASE_URL: target.url });
      expect(stamp(toStdout.stdout)).toBe(stamp(readFileSync(file, "utf8")));
      expect(
        (await run(runExportCommand, [file, "--force"], { DATABASE_URL: target.url })).code,
      ).toBe(0);
      expect(existsSync(`${file}.partial-${process.pid}`)).toBe(false);
    } finally {
      await source.drop();
      await target.drop();
    }
  });

  it("refuses a file that is not an export, saying what is wrong", async () => {
    const file = join(tempDir(), "notes.json");
    writeFileSync(file, '{"notes": []}\n');
    const result = await run(runImportCommand, [file], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/line 1: expected the export header/);
    const missing = await run(runImportCommand, [join(tempDir(), "absent.json")], env);
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toMatch(/cannot read .*absent\.json: ENOENT/);
    expect((await run(runImportCommand, [], env)).code).toBe(2);
  });
});

describe("the CLI through a server's admin API (CONVEYOR_URL)", () => {
  let server: Server;
  let url: string;
  let readToken: string;
  let adminToken: string;

  beforeAll(async () => {
    const logger = createLogger({ level: "silent" });
    const auth = createApiAuth({ db: database.db, adminToken: undefined, logger });
    const app = new Hono<ApiEnv>();
    app.get("/healthz", (c) => c.json({ status: "ok" }));
    app.route("/api", createOpsApi({ database, auth, logger, onTasksChanged: () => {} }));
    server = createAdaptorServer({ fetch: app.fetch }) as Server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const read = JSON.parse((await tokens(["add", "remote-read", "--json"], env)).stdout);
    const admin = JSON.parse(
      (await tokens(["add", "remote-admin", "--role", "admin", "--json"], env)).stdout,
    );
    readToken = read.secret;
    adminToken = admin.secret;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it("reads with a read token, and is told which role acting needs", async () => {
    const remote = { CONVEYOR_URL: url, CONVEYOR_TOKEN: readToken };
    const list = await tasks(["list", "--json"], remote);
    expect(list.code).toBe(0);
    expect(list.stderr).toBe(`conveyor: going through the server at ${url}\n`);
    expect((JSON.parse(list.stdout) as { tasks: unknown[] }).tasks.length).toBeGreaterThan(0);
    const retry = await tasks(["cancel", "acme/widgets#3"], remote);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toContain(
      "this needs the admin role, and token remote-read has the read role: use a token created with --role admin",
    );
    const acted = await tasks(["cancel", "acme/widgets#3"], {
      CONVEYOR_URL: url,
      CONVEYOR_TOKEN: adminToken,
    });
    expect(acted.code).toBe(0);
    const [event] = await database.rows<{ actor: string }>(sql`
      select e.actor from task_events e join tasks t using (task_id)
      where t.issue_number = 3 and t.repository_id = ${REPO_ID} order by e.event_id desc limit 1`);
    expect(event?.actor).toBe("token:remote-admin");
  });

  it("explains a wrong token, a missing token and an unreachable server", async () => {
    const wrong = await tokens(["list"], { CONVEYOR_URL: url, CONVEYOR_TOKEN: "cva_wrong" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`the server at ${url} refused the token: unknown token`);
    const none = await tokens(["list"], { CONVEYOR_URL: url });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("set CONVEYOR_TOKEN to an API token");
    const down = await tasks(["list"], {
      CONVEYOR_URL: `http://127.0.0.1:${closedPort}`,
      CONVEYOR_TOKEN: readToken,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`),
    );
    const bad = await tasks(["list"], { CONVEYOR_URL: "ftp://x", CONVEYOR_TOKEN: readToken });
    expect(bad).toMatchObject({ code: 2 });
    expect(bad.stderr).toContain("CONVEYOR_URL: expected an http(s) URL");
  });

  it("doctor finds the server at CONVEYOR_PUBLIC_URL, and says what to fix when it does not answer", async () => {
    const up = await run(runDoctorCommand, ["--json"], { ...env, CONVEYOR_PUBLIC_URL: url });
    const checks = (
      JSON.parse(up.stdout) as { checks: { name: string; status: string; message: string }[] }
    ).checks;
    expect(checks.find((c) => c.name === "public url")).toMatchObject({
      status: "ok",
      message: `${url}/healthz answers: GitHub can deliver to ${url}/api/github/webhooks if it reaches this address too`,
    });
    const down = await run(runDoctorCommand, [], {
      ...env,
      CONVEYOR_PUBLIC_URL: `http://127.0.0.1:${closedPort}`,
    });
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(
      new RegExp(
        `^\\[FAIL\\] public url +http://127\\.0\\.0\\.1:${closedPort}/healthz does not answer: .*ECONNREFUSED`,
        "m",
      ),
    );
    expect(down.stdout).toMatch(
      /^ +fix: Start the server \(npm start\), and make sure CONVEYOR_PUBLIC_URL reaches it/m,
    );
  });
});

describe("conveyor doctor", () => {
  let sim: GitHubSimulator;
  const privateKey = testPrivateKey();

  beforeAll(async () => {
    sim = await createGitHubSimulator({
      dataDir: tempDir(),
      appId: 31337,
      appSlug: "conveyor-doctor",
      privateKeyPem: privateKey,
    });
  });
  afterAll(async () => {
    await sim?.close();
  });

  const checkOf = (result: Run, name: string) =>
    (
      JSON.parse(result.stdout) as {
        checks: { name: string; status: string; message: string; fix?: string }[];
      }
    ).checks.find((c) => c.name === name);

  it("checks the App GitHub accepts a JWT for; an App without a webhook URL fails (exit 1)", async () => {
    // A working App, registered on the simulator without a webhook: test/doctor.test.ts has one
    // that passes every check.
    const result = await run(runDoctorCommand, ["--json"], {
      ...env,
      APP_ID: "31337",
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET: "s3cret",
      GITHUB_API_URL: sim.url,
      CONVEYOR_ADMIN_TOKEN: "doctor-admin-token-0123456789",
    });
    expect(result.code).toBe(1);
    expect(
      JSON.parse(result.stdout).checks.map((c: { name: string; status: string }) => [
        c.name,
        c.status,
      ]),
    ).toEqual([
      ["configuration", "ok"],
      ["database", "ok"],
      ["github app", "ok"],
      ["app events", "ok"],
      ["app permissions", "warn"],
      ["webhook url", "fail"],
      ["webhook content type", "ok"],
      ["webhook reach", "skip"],
      ["webhook secret", "ok"],
      ["public url", "warn"],
      ["admin access", "ok"],
    ]);
    expect(checkOf(result, "github app")?.message).toBe(
      `GitHub accepts the App's JWT: conveyor-doctor (App 31337) at ${sim.url}`,
    );
    expect(checkOf(result, "webhook url")).toMatchObject({
      message: "the App has no webhook URL, so GitHub sends Conveyor nothing",
      fix: "On the App's settings page (General → Webhook), set Webhook URL to <CONVEYOR_PUBLIC_URL>/api/github/webhooks, tick Active and save",
    });
    // The simulator's App has more than app.yml asks for (app.yml now asks for `members: read`
    // too; the extra is write access to statuses): said, but no failure.
    expect(checkOf(result, "app permissions")?.message).toContain(
      "more permissions than Conveyor needs: statuses: write (needs read)",
    );
    expect(sim.violations).toEqual([]);
  });

  it("says which variable is wrong when the configuration is broken, and skips the rest", async () => {
    const result = await run(runDoctorCommand, [], { PORT: "abc", DATABASE_URL: "mysql://x" });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^\[FAIL\] configuration +PORT: expected a port number \(0-65535\); DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL$/m,
    );
    expect(result.stdout).toMatch(/^ +fix: Fix the variables named above/m);
    expect(result.stdout).toMatch(/^\[skip\] database +skipped until the configuration is valid$/m);
    expect(result.stdout).toMatch(/1 problem to fix\.\n$/);
  });

  it("says how to fix an unreachable or missing database", async () => {
    const refused = await run(runDoctorCommand, ["--json"], {
      DATABASE_URL: `postgres://conveyor:pw-xxxxxxxx@127.0.0.1:${closedPort}/conveyor`,
    });
    expect(refused.code).toBe(1);
    expect(checkOf(refused, "database")).toEqual({
      name: "database",
      status: "fail",
      message: `cannot connect to PostgreSQL at conveyor@127.0.0.1:${closedPort}/conveyor: connection refused`,
      fix: "Start PostgreSQL, or correct the host and port in DATABASE_URL",
    });
    expect(refused.stdout).not.toContain("pw-xxxxxxxx");
    const missingUrl = new URL(database.url);
    missingUrl.pathname = "/conveyor_no_such_database";
    const missing = await run(runDoctorCommand, ["--json"], {
      DATABASE_URL: missingUrl.toString(),
    });
    expect(checkOf(missing, "database")).toMatchObject({
      status: "fail",
      message: expect.stringContaining('database "conveyor_no_such_database" does not exist'),
      fix: "Create the database (e.g. createdb <name>), or correct its name in DATABASE_URL",
    });
  });

  it("says how to fix a private key that does not parse or belongs to another App", async () => {
    const garbage =
      "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n";
    const broken = await run(runDoctorCommand, ["--json"], {
      ...env,
      APP_ID: "31337",
      PRIVATE_KEY: garbage,
      WEBHOOK_SECRET: "s3cret",
      GITHUB_API_URL: sim.url,
    });
    expect(broken.code).toBe(1);
    expect(checkOf(broken, "github app")).toMatchObject({
      status: "fail",
      message: expect.stringMatching(/^the private key does not parse: /),
      fix: expect.stringContaining("Generate a new private key on the App's settings page"),
    });
    const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs1", format: "pem" })
      .toString();
    const wrong = await run(runDoctorCommand, ["--json"], {
      ...env,
      APP_ID: "31337",
      PRIVATE_KEY: otherKey,
      WEBHOOK_SECRET: "s3cret",
      GITHUB_API_URL: sim.url,
    });
    expect(checkOf(wrong, "github app")).toMatchObject({
      status: "fail",
      message: expect.stringMatching(/^GitHub refused the App's JWT \(401: /),
      fix: expect.stringContaining(
        "APP_ID (31337) and the private key must belong to the same App",
      ),
    });
    const nowhere = await run(runDoctorCommand, ["--json"], {
      ...env,
      APP_ID: "31337",
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET: "s3cret",
      GITHUB_API_URL: `http://127.0.0.1:${closedPort}`,
    });
    expect(checkOf(nowhere, "github app")).toMatchObject({
      status: "fail",
      message: expect.stringContaining(
        `cannot reach GITHUB_API_URL (http://127.0.0.1:${closedPort}): `,
      ),
    });
  });
});

describe("the commands as real processes", () => {
  it("wires tasks and doctor into bin/conveyor.js with their exit codes", async () => {
    const output = async (args: string[], processEnv: Record<string, string>) => {
      const child = spawnConveyor(args, processEnv);
      const code = await child.exited;
      return { code, output: child.output() };
    };
    const [list, doctor, help] = await Promise.all([
      output(["tasks", "list", "--json", "--state", "queued"], env),
      output(["doctor"], { PORT: "abc" }),
      output(["tokens", "--help"], {}),
    ]);
    expect(list.code).toBe(0);
    expect(
      (JSON.parse(list.output) as { tasks: TaskJson[] }).tasks.every((t) => t.state === "queued"),
    ).toBe(true);
    expect(doctor.code).toBe(1);
    expect(doctor.output).toContain("PORT: expected a port number");
    expect(help).toMatchObject({
      code: 0,
      output: expect.stringContaining("Usage: conveyor tokens <command>"),
    });
  }, 90_000);
});
