import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdaptorServer } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { createAdminRoutes } from "../src/http/admin-routes.ts";
import type { RunnerJson } from "../src/http/runner-json.ts";
import { createLogger } from "../src/logger.ts";
import { readServerInfo, serverInfoPath, writeServerInfo } from "../src/server-info.ts";
import { findRunnerByToken, hashRunnerToken, listRunners } from "../src/store/runners.ts";
import { spawnConveyor } from "./helpers/spawn-conveyor.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/test-database.ts";
import { waitFor } from "./helpers/wait-for.ts";

const ADMIN_TOKEN = "cli-test-admin-token-0123456789";
// Each run starts a process that compiles the CLI; PGlite adds a few seconds more.
const SLOW = 90_000;

interface CliRun {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** `conveyor <args>` as a real process, with stdout and stderr kept apart. */
async function conveyor(args: string[], env: Record<string, string>): Promise<CliRun> {
  const process = spawnConveyor(args, env);
  let stdout = "";
  let stderr = "";
  process.child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  process.child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await process.exited;
  return { code, stdout, stderr };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "conveyor-runners-cli-"));
  dirs.push(dir);
  return dir;
}

/** The token from the human output of `runners add`: the one line that is just a token. */
function tokenIn(stdout: string): string {
  const match = /^(cvr_[A-Za-z0-9_-]{43})$/m.exec(stdout);
  if (!match?.[1]) throw new Error(`no token in:\n${stdout}`);
  return match[1];
}

describe("conveyor runners: the command line", () => {
  it.each([
    [["runners"], /missing command/],
    [["runners", "frob"], /unknown command "frob"/],
    [["runners", "add"], /add needs the runner's name/],
    [["runners", "add", "Bad_Name"], /name: expected 1-63 lower-case/],
    [["runners", "add", "r1", "--tier", "huge"], /--tier: expected one of light, normal, heavy/],
    [["runners", "add", "r1", "--capabilities", "gpu"], /Unknown option '--capabilities'/],
  ])(
    "%j exits 2 explaining the mistake, without touching a database",
    async (args, message) => {
      const dataDir = tempDir();
      const run = await conveyor(args, { CONVEYOR_DATA_DIR: dataDir });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe("");
      expect(existsSync(join(dataDir, "pgdata"))).toBe(false);
    },
    SLOW,
  );

  it(
    "prints its help with exit 0",
    async () => {
      const run = await conveyor(["runners", "help"], { CONVEYOR_DATA_DIR: tempDir() });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("Usage: conveyor runners <command>");
    },
    SLOW,
  );
});

describe("conveyor runners with DATABASE_URL", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    // Not migrated: the CLI migrates a database it opens itself.
    database = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => {
    await database?.drop();
  });

  it(
    "adds, lists and revokes runners on PostgreSQL",
    async () => {
      const env = { DATABASE_URL: database.url };
      const added = await conveyor(
        [
          "runners",
          "add",
          "r1",
          "--capability",
          "gpu",
          "--capability",
          "docker",
          "--class",
          "heavy",
          "--json",
        ],
        env,
      );
      expect(added.stderr).toContain("cannot be shown again");
      expect(added.code).toBe(0);
      const { runner, token } = JSON.parse(added.stdout) as { runner: RunnerJson; token: string };
      expect(runner).toMatchObject({ name: "r1", capabilities: ["docker", "gpu"], class: "heavy" });
      expect(token).toMatch(/^cvr_/);
      expect((await findRunnerByToken(database.db, token))?.runnerId).toBe(runner.runner_id);

      const human = await conveyor(["runners", "add", "r2"], env);
      expect(human.code).toBe(0);
      expect(human.stdout).toContain("Registered runner r2");
      expect(human.stdout).toMatch(/cannot be shown again/);
      const token2 = tokenIn(human.stdout);
      expect((await findRunnerByToken(database.db, token2))?.name).toBe("r2");

      const duplicate = await conveyor(["runners", "add", "r1"], env);
      expect(duplicate.code).toBe(1);
      expect(duplicate.stderr).toContain(
        "a runner named r1 exists; revoke it or pick another name",
      );
      expect(duplicate.stdout).toBe("");

      const list = await conveyor(["runners", "list", "--json"], env);
      expect(list.code).toBe(0);
      const listed = JSON.parse(list.stdout) as { runners: RunnerJson[] };
      expect(listed.runners.map((r) => [r.name, r.status])).toEqual([
        ["r1", "active"],
        ["r2", "active"],
      ]);
      for (const secret of [token, token2, hashRunnerToken(token)]) {
        expect(list.stdout).not.toContain(secret);
      }

      const revoked = await conveyor(["runners", "revoke", "r1"], env);
      expect(revoked.code).toBe(0);
      expect(revoked.stdout).toMatch(/Runner r1 is revoked .*its token no longer works/);
      expect(await findRunnerByToken(database.db, token)).toBeUndefined();
      expect(await findRunnerByToken(database.db, token2)).toBeDefined();

      const table = await conveyor(["runners", "list"], env);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/^NAME +CLASS +CAPABILITIES +STATUS/);
      expect(table.stdout).toMatch(/^r1 +heavy +docker,gpu +revoked/m);
      expect(table.stdout).toMatch(/^r2 +normal +- +active/m);

      const missing = await conveyor(["runners", "revoke", "nobody"], env);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("no runner named nobody");
    },
    SLOW,
  );
});

describe("conveyor runners on the embedded database, no server running", () => {
  it(
    "opens the data directory itself, migrates it, and lets go of it",
    async () => {
      const dataDir = tempDir();
      const env = { CONVEYOR_DATA_DIR: dataDir };
      const added = await conveyor(["runners", "add", "laptop", "-c", "node20"], env);
      expect(added.code).toBe(0);
      expect(added.stderr).toBe("");
      const token = tokenIn(added.stdout);

      const list = await conveyor(["runners", "list"], env);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^laptop +normal +node20 +active +never/m);

      const revoked = await conveyor(["runners", "revoke", "laptop"], env);
      expect(revoked.code).toBe(0);

      // The lock is released and nothing pretends to be a server.
      expect(existsSync(join(dataDir, "conveyor.pid"))).toBe(false);
      expect(readServerInfo(dataDir)).toBeUndefined();
      const database = await createDatabase({ dataDir });
      try {
        expect((await listRunners(database.db)).map((r) => r.name)).toEqual(["laptop"]);
        expect(await findRunnerByToken(database.db, token)).toBeUndefined();
      } finally {
        await database.close();
      }
    },
    SLOW,
  );
});

/**
 * Stands in for `conveyor start` holding the embedded database: this process opens it (so the
 * lock file names this live process), serves the admin routes on a real port and publishes
 * server.json the way the server does once it is listening.
 */
async function holdDataDir(dataDir: string) {
  const database: Database = await createDatabase({ dataDir });
  await migrate(database.db);
  const revoked: string[] = [];
  let connected: string[] = [];
  const app = new Hono();
  app.route(
    "/api",
    createAdminRoutes({
      db: database.db,
      adminToken: ADMIN_TOKEN,
      logger: createLogger({ level: "silent" }),
      onRunnerRevoked: (runnerId) => revoked.push(runnerId),
      listConnectedRunners: () =>
        connected.map((runnerId) => ({
          runnerId,
          connectedAt: "2025-01-01T00:00:00.000Z",
          busySlots: 1,
        })),
    }),
  );
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeServerInfo(dataDir, { pid: process.pid, url });
  return {
    database,
    url,
    revoked,
    setConnected(ids: string[]) {
      connected = ids;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await database.close();
    },
  };
}

describe("conveyor runners while a server holds the embedded database", () => {
  let dataDir: string;
  let held: Awaited<ReturnType<typeof holdDataDir>>;
  const lockFile = () => join(dataDir, "conveyor.pid");

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "conveyor-runners-held-"));
    held = await holdDataDir(dataDir);
  });
  afterAll(async () => {
    await held?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  afterEach(() => {
    // Whatever the CLI did, it never took or broke the server's lock.
    expect(readFileSync(lockFile(), "utf8").trim()).toBe(String(process.pid));
  });

  it(
    "goes through the server's admin API: add, list, revoke (which closes the runner's sockets)",
    async () => {
      const env = { CONVEYOR_DATA_DIR: dataDir, CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN };
      const added = await conveyor(["runners", "add", "busy-1", "--tier", "light"], env);
      expect(added.code).toBe(0);
      expect(added.stderr).toContain(`going through the server at ${held.url}`);
      const token = tokenIn(added.stdout);
      const runner = await findRunnerByToken(held.database.db, token);
      expect(runner).toMatchObject({ name: "busy-1", tier: "light" });

      held.setConnected([runner!.runnerId]);
      const list = await conveyor(["runners", "list", "--json"], env);
      expect(list.code).toBe(0);
      // Only the server knows who is connected: this answer came from its API.
      expect((JSON.parse(list.stdout) as { runners: RunnerJson[] }).runners).toEqual([
        expect.objectContaining({
          name: "busy-1",
          connected: { connected_at: "2025-01-01T00:00:00.000Z", busy_slots: 1 },
        }),
      ]);
      const table = await conveyor(["runners", "list"], env);
      expect(table.stdout).toMatch(/^busy-1 +light +- +connected \(1 busy\)/m);

      const duplicate = await conveyor(["runners", "add", "busy-1"], env);
      expect(duplicate.code).toBe(1);
      expect(duplicate.stderr).toContain("a runner named busy-1 exists");

      const revoked = await conveyor(["runners", "revoke", "busy-1"], env);
      expect(revoked.code).toBe(0);
      expect(held.revoked).toEqual([runner!.runnerId]);
      expect(await findRunnerByToken(held.database.db, token)).toBeUndefined();

      const missing = await conveyor(["runners", "revoke", "nobody"], env);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("no runner named nobody");
    },
    SLOW,
  );

  it(
    "explains that CONVEYOR_ADMIN_TOKEN is needed when it is not set",
    async () => {
      const run = await conveyor(["runners", "list"], { CONVEYOR_DATA_DIR: dataDir });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`in use by the server at ${held.url}`);
      expect(run.stderr).toContain("Set CONVEYOR_ADMIN_TOKEN");
      expect(run.stdout).toBe("");
    },
    SLOW,
  );

  it(
    "says the admin token differs from the server's when it is wrong",
    async () => {
      const run = await conveyor(["runners", "add", "nope"], {
        CONVEYOR_DATA_DIR: dataDir,
        CONVEYOR_ADMIN_TOKEN: "not-the-servers-admin-token",
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("refused the token: unknown token");
      expect((await listRunners(held.database.db)).map((r) => r.name)).not.toContain("nope");
    },
    SLOW,
  );

  it(
    "does not follow a server.json left behind by another process",
    async () => {
      const published = readFileSync(serverInfoPath(dataDir), "utf8");
      // A crashed server's leftovers: its pid is not the one holding the lock.
      writeFileSync(
        serverInfoPath(dataDir),
        JSON.stringify({ pid: process.pid + 100_000, url: "http://127.0.0.1:9" }),
      );
      try {
        const run = await conveyor(["runners", "list"], {
          CONVEYOR_DATA_DIR: dataDir,
          CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
        });
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`in use by process ${process.pid}`);
        expect(run.stderr).toContain("has not published its address");
      } finally {
        writeFileSync(serverInfoPath(dataDir), published);
      }
    },
    SLOW,
  );
});

describe("conveyor runners while `conveyor start` runs on the embedded database", () => {
  it(
    "registers, lists and revokes through the real server, which keeps its lock",
    async () => {
      const dataDir = tempDir();
      const server = spawnConveyor(["start"], {
        CONVEYOR_DATA_DIR: dataDir,
        PORT: "0",
        HOST: "127.0.0.1",
        CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
      });
      try {
        const url = await server.listening;
        const pid = server.child.pid!;
        // The server says where it is, for the CLI to find.
        expect(await waitFor(() => readServerInfo(dataDir))).toEqual({ pid, url });

        const env = { CONVEYOR_DATA_DIR: dataDir, CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN };
        const added = await conveyor(["runners", "add", "real-1", "-c", "gpu"], env);
        expect(added.stderr).toContain(`going through the server at ${url}`);
        expect(added.code).toBe(0);
        const token = tokenIn(added.stdout);

        const list = await conveyor(["runners", "list", "--json"], env);
        expect(list.code).toBe(0);
        expect((JSON.parse(list.stdout) as { runners: RunnerJson[] }).runners).toEqual([
          expect.objectContaining({ name: "real-1", capabilities: ["gpu"], status: "active" }),
        ]);

        const revoked = await conveyor(["runners", "revoke", "real-1"], env);
        expect(revoked.code).toBe(0);
        expect(readFileSync(join(dataDir, "conveyor.pid"), "utf8").trim()).toBe(String(pid));

        server.child.kill("SIGTERM");
        expect(await server.exited).toBe(0);
        expect(readServerInfo(dataDir)).toBeUndefined();
        // What the server wrote is in its database: the hash of the token, now revoked.
        const database = await createDatabase({ dataDir });
        try {
          const [runner] = await listRunners(database.db);
          expect(runner).toMatchObject({ name: "real-1", revokedAt: expect.any(Date) });
          expect(
            await database.rows(
              sql`select 1 from runners where token_hash = ${hashRunnerToken(token)}`,
            ),
          ).toHaveLength(1);
        } finally {
          await database.close();
        }
      } finally {
        server.child.kill("SIGKILL");
      }
    },
    SLOW,
  );
});
