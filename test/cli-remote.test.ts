import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliOutput } from "../src/cli/cli-support.ts";
import { runDoctorCommand } from "../src/cli/doctor-command.ts";
import { runMigrateCommand } from "../src/cli/migrate-command.ts";
import { runRunnersCommand } from "../src/cli/runners-command.ts";
import { runTokensCommand } from "../src/cli/tokens-command.ts";
import type { RunnerJson } from "../src/http/runner-json.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "./helpers/conveyor-harness.ts";
import { connectRunner } from "./helpers/fake-runner.ts";

/*
 * Every CLI command honours CONVEYOR_URL: it goes to that server's admin API, never to a database
 * of its own. The proof that matters: a runner token printed by `conveyor runners add` is one the
 * running server knows (it connects), and no embedded database appears where the CLI ran.
 */

type Command = (argv: string[], env: Record<string, string>, out: CliOutput) => Promise<number>;

async function run(command: Command, argv: string[], env: Record<string, string>) {
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

let h: Harness;
let dir: string;
let remote: Record<string, string>;
/** Where an embedded database would go if a command ignored CONVEYOR_URL. */
let dataDir: string;
let readToken: string;

beforeAll(async () => {
  h = await createHarness({ start: { publishPullRequests: false } });
  dir = mkdtempSync(join(tmpdir(), "conveyor-cli-remote-"));
  dataDir = join(dir, "data");
  // No DATABASE_URL: without CONVEYOR_URL these commands would open an embedded database here.
  remote = {
    CONVEYOR_URL: h.conveyor.url,
    CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
    CONVEYOR_DATA_DIR: dataDir,
  };
  const created = await run(runTokensCommand, ["add", "remote-reader", "--json"], remote);
  expect(created.code, created.stderr).toBe(0);
  readToken = (JSON.parse(created.stdout) as { secret: string }).secret;
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("conveyor runners with CONVEYOR_URL", () => {
  it("registers on the server: the printed token connects; list and revoke act on the same runner", async () => {
    const added = await run(
      runRunnersCommand,
      ["add", "remote-1", "--class", "heavy", "--json"],
      remote,
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.stderr).toContain(`conveyor: going through the server at ${h.conveyor.url}\n`);
    const { runner, token } = JSON.parse(added.stdout) as { runner: RunnerJson; token: string };
    expect(runner).toMatchObject({ name: "remote-1", class: "heavy", tier: "heavy" });

    const socket = await connectRunner(h.conveyor.url, token);
    const listed = await run(runRunnersCommand, ["list", "--json"], remote);
    expect(listed.code, listed.stderr).toBe(0);
    const { runners } = JSON.parse(listed.stdout) as { runners: RunnerJson[] };
    expect(runners.find((r) => r.name === "remote-1")).toMatchObject({
      status: "active",
      connected: { busy_slots: 0 },
    });
    const table = await run(runRunnersCommand, ["list"], remote);
    expect(table.stdout).toMatch(/^NAME +CLASS +CAPABILITIES +STATUS/);
    expect(table.stdout).toMatch(/^remote-1 +heavy +- +connected \(0 busy\)/m);

    const revoked = await run(runRunnersCommand, ["revoke", "remote-1"], remote);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^Runner remote-1 is revoked/);
    expect(await socket.closed).toEqual({ code: 1008, reason: "runner token revoked" });
    const missing = await run(runRunnersCommand, ["revoke", "nobody"], remote);
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toContain("no runner named nobody (see: conveyor runners list)");
    expect(existsSync(dataDir)).toBe(false);
  });

  it("accepts --tier with a deprecation note, and needs an admin token to register", async () => {
    const old = await run(runRunnersCommand, ["add", "remote-2", "--tier", "light"], remote);
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toContain("conveyor: --tier is deprecated: use --class");
    expect(old.stdout).toContain("Registered runner remote-2 (id ");
    expect(old.stdout).toContain(", class light, capabilities: none)");

    const reader = { CONVEYOR_URL: h.conveyor.url, CONVEYOR_TOKEN: readToken };
    const list = await run(runRunnersCommand, ["list", "--json"], reader);
    expect(list.code, list.stderr).toBe(0);
    const refused = await run(runRunnersCommand, ["add", "remote-3"], reader);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("this needs the admin role");
    const wrong = await run(runRunnersCommand, ["list"], { ...reader, CONVEYOR_TOKEN: "cva_nope" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`the server at ${h.conveyor.url} refused the token`);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe("conveyor migrate and doctor with CONVEYOR_URL", () => {
  it("migrate asks the server, which has nothing left to apply", async () => {
    const migrated = await run(runMigrateCommand, ["--json"], remote);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stderr).toBe(`conveyor: going through the server at ${h.conveyor.url}\n`);
    const body = JSON.parse(migrated.stdout) as { applied: string[]; current: string };
    expect(body.applied).toEqual([]);
    expect(body.current).toMatch(/^\d{4}_/);
    const human = await run(runMigrateCommand, [], remote);
    expect(human.stdout).toBe("database schema is current\n");
    const reader = await run(runMigrateCommand, [], {
      CONVEYOR_URL: h.conveyor.url,
      CONVEYOR_TOKEN: readToken,
    });
    expect(reader.code).toBe(1);
    expect(reader.stderr).toContain("this needs the admin role");
    expect(existsSync(dataDir)).toBe(false);
  });

  it("POST /api/admin/migrate validates its body like every admin route", async () => {
    const response = await fetch(`${h.conveyor.url}/api/admin/migrate`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ dry_run: true }),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({
      error: "invalid request: dry_run: unknown field",
      fields: [{ path: "dry_run", message: "unknown field" }],
    });
    const anonymous = await fetch(`${h.conveyor.url}/api/admin/migrate`, { method: "POST" });
    expect(anonymous.status).toBe(401);
  });

  it("doctor checks the server, its readiness, the token's role and the database", async () => {
    const admin = await run(runDoctorCommand, ["--json"], remote);
    expect(admin.code, admin.stdout).toBe(0);
    const checks = (
      JSON.parse(admin.stdout) as { checks: { name: string; status: string; message: string }[] }
    ).checks;
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["server", "ok"],
      ["readiness", "ok"],
      ["token", "ok"],
      ["database", "ok"],
    ]);
    expect(checks[2]!.message).toBe("accepted: CONVEYOR_ADMIN_TOKEN (admin)");
    expect(checks[3]!.message).toMatch(/^postgres database reachable; schema is current/);

    const reader = await run(runDoctorCommand, [], {
      CONVEYOR_URL: h.conveyor.url,
      CONVEYOR_TOKEN: readToken,
    });
    expect(reader.code).toBe(0);
    expect(reader.stdout).toMatch(/\[warn\] +token +accepted: remote-reader \(read\)/);

    const wrong = await run(runDoctorCommand, [], {
      CONVEYOR_URL: h.conveyor.url,
      CONVEYOR_TOKEN: "cva_nope",
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/\[FAIL\] +token +the server refused the token/);
    expect(wrong.stdout).toMatch(/\[skip\] +database/);
    expect(existsSync(dataDir)).toBe(false);
  });
});
