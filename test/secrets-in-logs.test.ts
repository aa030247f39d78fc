import { Writable } from "node:stream";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultRows } from "../db/client.ts";
import { createLogger, REDACT_PATHS } from "../src/logger.ts";
import { getTask } from "../src/store/tasks.ts";
import {
  ADMIN_TOKEN,
  createHarness,
  type Harness,
  WEBHOOK_SECRET,
} from "./helpers/conveyor-harness.ts";
import { queueScriptedIssue, startScriptedRunner } from "./helpers/spawn-runner.ts";
import { waitFor } from "./helpers/wait-for.ts";
import { testPrivateKey } from "./helpers/webhooks.ts";

/*
 * Secrets never reach a log: the server's and the runner's output at `trace` through a whole task
 * (webhook, assignment, clone, agent, upload, pull request) holds no token, key, webhook secret or
 * Authorization value, and the redaction paths that make it so are exercised by the same logger.
 */

let h: Harness;
let serverLog = "";
const capture = new Writable({
  write(chunk, _encoding, done) {
    serverLog += chunk.toString();
    done();
  },
});
let scripted: Awaited<ReturnType<typeof startScriptedRunner>> | undefined;

beforeAll(async () => {
  h = await createHarness({
    start: { logger: createLogger({ level: "trace", format: "json", destination: capture }) },
  });
});
afterAll(async () => {
  scripted?.stop();
  await h?.close();
});

/** Everything that must never appear, with the pattern that finds it. */
function leaks(text: string, runnerToken: string): string[] {
  const found: string[] = [];
  const key = testPrivateKey()
    .split("\n")
    .filter((line) => line.length > 40);
  const checks: [string, RegExp | string][] = [
    ["runner token", runnerToken],
    ["runner token shape", /cvr_[A-Za-z0-9_-]{16,}/],
    ["installation token", /ghs_[A-Za-z0-9]{20,}/],
    ["app JWT", /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/],
    ["webhook secret", WEBHOOK_SECRET],
    ["admin token", ADMIN_TOKEN],
    ["Authorization value", /"authorization":"(?!\[redacted\])/i],
    ["bearer credential", /\b(Bearer|token|Basic) [A-Za-z0-9._~+/=-]{12,}/],
    ["x-access-token URL", /x-access-token:[^@\s"]+@/],
    ...key.map((line, i) => [`private key line ${i}`, line] as [string, string]),
  ];
  for (const [what, pattern] of checks) {
    if (typeof pattern === "string" ? text.includes(pattern) : pattern.test(text)) found.push(what);
  }
  return found;
}

describe("logs through a whole task", { timeout: 90_000 }, () => {
  it("hold no token, key, secret or Authorization value, server or runner", async () => {
    scripted = await startScriptedRunner(h, "log-runner", undefined, { LOG_LEVEL: "trace" });
    const { taskId } = await queueScriptedIssue(h, "Logs", "write notes.txt\n<<<\nhello\n>>>");
    await waitFor(
      async () => {
        const [pr] = resultRows<{ pr_number: number }>(
          await h.database.db.execute(
            sql`select pr_number from pull_requests where task_id = ${taskId}`,
          ),
        );
        const task = await getTask(h.database.db, taskId);
        return pr && task?.publishedGeneration === task?.generation;
      },
      {
        timeoutMs: 60_000,
        message: `a pull request\n${scripted.runner.output()}\n${serverLog
          .split("\n")
          .filter((line) => /"level":[456]0/.test(line))
          .join("\n")}`,
      },
    );
    const runnerLog = scripted.runner.output();
    // The logs are real: both sides logged the task's steps at trace level.
    expect(serverLog).toContain(taskId);
    expect(serverLog).toMatch(/"deliveryId"/);
    expect(runnerLog).toContain(taskId);
    expect(leaks(serverLog, scripted.token)).toEqual([]);
    expect(leaks(runnerLog, scripted.token)).toEqual([]);
  });

  it("keep no secret an agent prints in the task's stored log", async () => {
    // A careless or hostile agent prints secrets (here from its script, so the issue's own text
    // holds them too and the server's trace log is not what this checks).
    const script = [
      `print "log-marker token ghs_${"A".repeat(36)} secret ${WEBHOOK_SECRET}"`,
      `print "clone https://x-access-token:ghs_${"B".repeat(36)}@github.com/acme/widgets.git"`,
      `print "admin ${ADMIN_TOKEN} Authorization: Bearer ${"c".repeat(30)}"`,
      "write printed.txt\n<<<\nprinted\n>>>",
    ].join("\n");
    scripted ??= await startScriptedRunner(h, "log-runner", undefined, { LOG_LEVEL: "trace" });
    const { taskId } = await queueScriptedIssue(h, "Printed secrets", script);
    const stored = await waitFor(
      async () => {
        const lines = resultRows<{ line: string }>(
          await h.database.db.execute(
            sql`select line from attempt_logs where task_id = ${taskId} order by line_id`,
          ),
        ).map((r) => r.line);
        return lines.includes("wrote printed.txt") ? lines.join("\n") : undefined;
      },
      { timeoutMs: 60_000, message: "the printed lines in the task's log" },
    );
    expect(stored).toContain("log-marker token [redacted] secret [redacted]");
    expect(stored).toContain("clone https://[redacted]@github.com");
    expect(stored).toContain("admin [redacted] Authorization: Bearer [redacted]");
    expect(leaks(stored, scripted.token)).toEqual([]);
  });

  it("redacts every configured path, and the check above would have seen a leak", () => {
    let out = "";
    const logger = createLogger({
      level: "info",
      format: "json",
      destination: new Writable({
        write(chunk, _encoding, done) {
          out += chunk.toString();
          done();
        },
      }),
    });
    const secret = "ghs_abcdefghijklmnopqrstuvwxyz0123456789";
    for (const path of REDACT_PATHS) {
      const record: Record<string, unknown> = {};
      // Build the record the path names: `a.b` → {a: {b}}, `*.b` → {any: {b}}, `a["b"]` → {a: {b}}.
      const parts = path.replace(/\["([^"]+)"\]/g, ".$1").split(".");
      let at = record;
      for (const part of parts.slice(0, -1)) {
        const next: Record<string, unknown> = {};
        at[part === "*" ? "wrapper" : part] = next;
        at = next;
      }
      at[parts.at(-1)!] = `Bearer ${secret}`;
      logger.info(record, `path ${path}`);
    }
    expect(out.split("\n").filter(Boolean)).toHaveLength(REDACT_PATHS.length);
    expect(out).not.toContain(secret);
    // Control: the same value outside a redacted path is found by the leak check.
    logger.info({ note: `Bearer ${secret}` }, "unredacted");
    expect(leaks(out + JSON.stringify({ note: `Bearer ${secret}` }), "cvr_none")).toContain(
      "installation token",
    );
  });
});
