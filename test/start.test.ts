import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SETUP_CODE_MESSAGE, SETUP_MODE_MESSAGE } from "../src/http/startup-message.ts";
import { htmlProblems } from "./helpers/html-problems.ts";
import { type ConveyorProcess, spawnConveyor } from "./helpers/spawn-conveyor.ts";
import { createTestDatabase } from "./helpers/test-database.ts";

const started: ConveyorProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of started.splice(0)) p.child.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "conveyor-start-"));
  dirs.push(dir);
  return dir;
}

function start(env: Record<string, string>): ConveyorProcess {
  const process = spawnConveyor(["start"], { HOST: "127.0.0.1", PORT: "0", ...env });
  started.push(process);
  return process;
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

describe("conveyor start (a real process)", () => {
  it("runs on the embedded database, answers health checks, and exits 0 on SIGTERM", async () => {
    // Readable lines forced: stdout is a pipe here, which would get JSON.
    const conveyor = start({ CONVEYOR_DATA_DIR: dataDir(), LOG_FORMAT: "pretty" });
    const url = await conveyor.listening;
    expect(await getJson(`${url}/healthz`)).toEqual({ status: 200, body: { status: "ok" } });
    expect(await getJson(`${url}/readyz`)).toMatchObject({
      status: 200,
      body: { status: "setup", database: "pglite", github: "setup" },
    });
    // Without App credentials it serves Probot's registration page: valid HTML, with its assets.
    const setup = await fetch(`${url}/probot`);
    expect(setup.status).toBe(200);
    const page = await setup.text();
    expect(page).toContain("Register GitHub App");
    expect(htmlProblems(page)).toEqual([]);
    // The App it registers gets its webhooks at Conveyor's webhook route.
    const manifest = JSON.parse(
      (/value='([^']*)'/.exec(page)?.[1] ?? "").replace(
        /&(#39|quot|lt|gt|amp);/g,
        (_, e: string) => ({ "#39": "'", quot: '"', lt: "<", gt: ">", amp: "&" })[e] ?? "",
      ),
    );
    expect(manifest).toMatchObject({
      name: "Conveyor",
      hook_attributes: { url: `${url}/api/github/webhooks` },
      redirect_url: `${url}/probot/setup`,
    });
    const assets = [...page.matchAll(/(?:href|src)="(\/probot\/static\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets).toHaveLength(3);
    for (const asset of assets) expect((await fetch(`${url}${asset}`)).status).toBe(200);
    conveyor.child.kill("SIGTERM");
    expect(await conveyor.exited).toBe(0);

    const output = conveyor.output();
    for (const line of output.trimEnd().split("\n")) {
      expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S/);
    }
    expect(output).toContain(` INFO  conveyor listening url=${url}\n`);
    expect(output).toContain(
      " INFO  dashboard (sign in with CONVEYOR_ADMIN_TOKEN or a token from `conveyor tokens add`)" +
        ` url=${url}/dashboard\n`,
    );
    expect(output).toContain(` WARN  ${SETUP_MODE_MESSAGE} url=${url}/probot\n`);
    // The setup code for another machine's browser, in a link (quoted: it holds `=`).
    expect(output).toContain(` WARN  ${SETUP_CODE_MESSAGE} url="${url}/probot?setup_code=`);
    expect(output).toMatch(/setup_code=[0-9a-f]{32}"\n/);
    expect(output).toContain(" INFO  conveyor stopped\n");
    // Probot's banner says custom routes do not work without credentials: false for Conveyor.
    expect(output).not.toMatch(/custom routes|Welcome to Probot|smee/i);
  });

  it("refuses a second process on the same embedded database with a clear message", async () => {
    const dir = dataDir();
    const first = start({ CONVEYOR_DATA_DIR: dir });
    await first.listening;
    const second = start({ CONVEYOR_DATA_DIR: dir });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/in use by process \d+/);
  });

  it("exits non-zero naming PORT when PORT is not a number", async () => {
    const conveyor = start({ PORT: "abc", CONVEYOR_DATA_DIR: dataDir() });
    expect(await conveyor.exited).toBe(2);
    expect(conveyor.output()).toContain("PORT: expected a port number");
  });

  it("starts two instances on one PostgreSQL database at once", async () => {
    const database = await createTestDatabase({ migrated: false });
    try {
      const [a, b] = [start({ DATABASE_URL: database.url }), start({ DATABASE_URL: database.url })];
      const urls = await Promise.all([a.listening, b.listening]);
      for (const url of urls) {
        expect(await getJson(`${url}/readyz`)).toMatchObject({
          status: 200,
          body: { database: "postgres" },
        });
      }
      a.child.kill("SIGTERM");
      b.child.kill("SIGTERM");
      expect(await Promise.all([a.exited, b.exited])).toEqual([0, 0]);
      // Not a terminal: JSON lines, one record each, and no Probot banner there either.
      const records = a
        .output()
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(records.map((r) => r.msg)).toContain(SETUP_MODE_MESSAGE);
      expect(a.output()).not.toMatch(/custom routes|Welcome to Probot|smee/i);
    } finally {
      await database.drop();
    }
  });
});
