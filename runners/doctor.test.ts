import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type DoctorConfig, type DoctorDeps, formatDoctorReport, runDoctor } from "./doctor.ts";
import type { HostFacts } from "./sandbox.ts";

const TOKEN = "cvr_DoctorTestToken0123456789abcdefghijklmnop";

/** How the fake server behaves; each mode mirrors an answer the real server gives. */
type Mode =
  | "conveyor" // 401 for unknown tokens, 404 for a valid one without an upgrade
  | "cooldown" // a valid token whose runner must wait (429 + Retry-After)
  | "setup" // no GitHub App yet: 503 for every token, with the reason
  | "open-proxy" // something that answers 200 to anything
  | "unhealthy" // /healthz 503
  | "slow"; // /healthz never answers in time

let mode: Mode = "conveyor";
let requests: { url: string; headers: IncomingHttpHeaders }[] = [];
let server: Server;
let serverUrl: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "runner-doctor-"));
  server = createServer((req, res) => {
    requests.push({ url: req.url ?? "", headers: req.headers });
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    if (mode === "open-proxy") return json(200, {});
    if (req.url === "/healthz") {
      if (mode === "slow") return; // never answers; the client's timeout ends it
      if (mode === "unhealthy") return json(503, { status: "unavailable" });
      return json(200, { status: "ok" });
    }
    if (req.url === "/runners/v1" && mode === "setup") {
      return json(503, { error: "GitHub App not configured: open /probot" });
    }
    if (req.url === "/runners/v1") {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        return json(401, {
          error: "unknown or revoked runner token (Authorization: Bearer cvr_…)",
        });
      }
      if (mode === "cooldown") {
        return json(429, { error: "too many invalid frames" }, { "retry-after": "30" });
      }
    }
    return json(404, { error: `No route for ${req.method} ${req.url}` });
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  mode = "conveyor";
  requests = [];
});

/** A URL on a port nothing listens on (it was just released). */
async function closedPortUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** An executable script in its own directory; returns [directory, path]. */
function script(name: string, body: string, executable = true): [string, string] {
  const bin = mkdtempSync(join(dir, "bin-"));
  const path = join(bin, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, executable ? 0o755 : 0o644);
  return [bin, path];
}

function config(overrides: Partial<DoctorConfig> = {}): DoctorConfig {
  const work = mkdtempSync(join(dir, "work-"));
  return {
    serverUrl,
    token: TOKEN,
    agent: [process.execPath, "agent.js"],
    workDir: join(work, "work"),
    journalPath: join(work, "state", "journal.json"),
    ...overrides,
  };
}

const BWRAP_HOST: HostFacts = {
  bwrap: { kind: "usable", path: "/usr/bin/bwrap" },
  isRoot: false,
  platform: "linux",
};

function deps(overrides: DoctorDeps = {}): DoctorDeps {
  const [gitDir] = script("git", 'echo "git version 2.39.5"');
  return {
    git: join(gitDir, "git"),
    env: { PATH: process.env.PATH },
    timeoutMs: 2_000,
    host: BWRAP_HOST,
    ...overrides,
  };
}

async function check(name: string, c: DoctorConfig, d: DoctorDeps) {
  const result = await runDoctor(c, d);
  const found = result.checks.find((x) => x.name === name);
  if (!found) throw new Error(`no ${name} check`);
  expect(JSON.stringify(result)).not.toContain(TOKEN);
  expect(formatDoctorReport(result)).not.toContain(TOKEN);
  return { result, check: found };
}

describe("runDoctor", () => {
  it("passes every check on a healthy setup", async () => {
    const result = await runDoctor(config(), deps());
    expect(result.checks.map((c) => [c.name, c.ok])).toEqual([
      ["git", true],
      ["agent command", true],
      ["work dir", true],
      ["journal", true],
      ["server", true],
      ["token", true],
      ["sandbox", true],
    ]);
    expect(result.ok).toBe(true);
    expect(formatDoctorReport(result)).toContain("All checks passed.");
  });

  it("checks the token with the bearer header and no upgrade headers, after a decoy is refused", async () => {
    await runDoctor(config(), deps());
    const probes = requests.filter((r) => r.url === "/runners/v1");
    expect(probes.map((p) => p.headers.authorization)).toEqual([
      expect.stringMatching(/^Bearer cvr_conveyor-doctor-probe/),
      `Bearer ${TOKEN}`,
    ]);
    for (const probe of probes) {
      expect(probe.headers.upgrade).toBeUndefined();
      expect(probe.headers["sec-websocket-key"]).toBeUndefined();
    }
    // The token goes to /runners/v1 only, never to /healthz.
    const health = requests.find((r) => r.url === "/healthz");
    expect(health?.headers.authorization).toBeUndefined();
  });

  it.each([
    [
      "a refused token",
      "conveyor",
      { token: "cvr_RevokedToken0123456789abcdefghijklmnop" },
      false,
      /refused the runner token .*npx conveyor runners add/,
    ],
    [
      "a token in a reconnect wait",
      "cooldown",
      {},
      true,
      /accepts the runner token, but .* wait 30 s/,
    ],
    ["a server without runner routes", "setup", {}, false, /does not take runners yet/],
    [
      "a proxy that answers 200 to anything",
      "open-proxy",
      {},
      false,
      /answered 200 to an unknown token/,
    ],
  ] as const)("token: %s", async (_, serverMode, overrides, ok, detail) => {
    mode = serverMode;
    const { check: token, result } = await check("token", config(overrides), deps());
    expect(token.ok).toBe(ok);
    expect(token.detail).toMatch(detail);
    expect(result.ok).toBe(ok);
  });

  it.each([
    ["an unhealthy server", "unhealthy", undefined, /answered 503, not 200/],
    ["a server that does not answer in time", "slow", undefined, /no answer within 0.3 s/],
    ["nothing listening", "conveyor", "closed", /cannot reach .*ECONNREFUSED.*--server/],
  ] as const)("server: %s", async (_, serverMode, url, detail) => {
    mode = serverMode;
    const { check: health, result } = await check(
      "server",
      config(url ? { serverUrl: await closedPortUrl() } : {}),
      deps({ timeoutMs: 300 }),
    );
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(detail);
    const token = result.checks.find((c) => c.name === "token");
    expect(token).toMatchObject({ ok: false, detail: expect.stringContaining("not checked") });
    expect(formatDoctorReport(result)).toMatch(/2 of 7 checks failed/);
  });

  it.each([
    [
      "bwrap when it works",
      "auto",
      BWRAP_HOST,
      true,
      /^bwrap \(\/usr\/bin\/bwrap\): own PID and mount namespaces/,
    ],
    [
      "a user per slot as root without bwrap",
      "auto",
      { bwrap: { kind: "missing" }, isRoot: true, platform: "linux" },
      true,
      /^a user per slot \(conveyor-slot-<n>\).*bwrap unusable: bwrap is not on PATH/,
    ],
    [
      "nothing without bwrap or root: fails, as start refuses",
      "auto",
      { bwrap: { kind: "missing" }, isRoot: false, platform: "linux" },
      false,
      /no sandbox for the agent: bwrap is not on PATH: install bubblewrap.*needs the runner to run as root.*--unsandboxed/,
    ],
    [
      "a bwrap that cannot make namespaces",
      "bwrap",
      {
        bwrap: {
          kind: "broken",
          path: "/usr/bin/bwrap",
          reason: "No permissions to create new namespace",
        },
        isRoot: false,
        platform: "linux",
      },
      false,
      /bwrap was asked for, but \/usr\/bin\/bwrap cannot create a sandbox here \(No permissions/,
    ],
    [
      "--unsandboxed: passes, with a warning",
      "none",
      { bwrap: { kind: "missing" }, isRoot: false, platform: "linux" },
      true,
      /^WARNING: none \(--unsandboxed\): the agent runs as the runner's own user and can read its token/,
    ],
  ] as const)("sandbox: %s", async (_, isolation, host, ok, detail) => {
    const { check: sandbox, result } = await check(
      "sandbox",
      config({ isolation }),
      deps({ host: host as HostFacts }),
    );
    expect(sandbox.ok).toBe(ok);
    expect(sandbox.detail).toMatch(detail);
    expect(result.ok).toBe(ok);
  });

  it("sandbox: probes this machine's bwrap when not told (a test prerequisite)", async () => {
    const { check: sandbox } = await check("sandbox", config(), deps({ host: undefined }));
    expect(sandbox).toMatchObject({ ok: true, detail: expect.stringMatching(/^bwrap \(\//) });
  });

  it("notes that plain http beyond this machine sends the token unencrypted", async () => {
    const fetchLocal: typeof fetch = (input, init) =>
      fetch(String(input).replace("http://conveyor.example.com", serverUrl), init);
    const { check: health } = await check(
      "server",
      config({ serverUrl: "http://conveyor.example.com" }),
      deps({ fetch: fetchLocal }),
    );
    expect(health.ok).toBe(true);
    expect(health.detail).toContain("unencrypted");
  });

  it.each([
    ["missing", () => "/nonexistent/conveyor-test/git", /not found: install git 2\.31 or newer/],
    [
      "too old",
      () => script("git", 'echo "git version 2.30.9"')[1],
      /git 2\.30\.9 is too old.*GIT_CONFIG_COUNT/,
    ],
    ["not git", () => script("git", 'echo "hello"')[1], /could not read git's version/],
    ["failing", () => script("git", "exit 3")[1], /git --version` failed/],
  ])("git: %s", async (_, git, detail) => {
    const { check: result } = await check("git", config(), deps({ git: git() }));
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(detail);
  });

  it.each([
    ["2.31.0", true],
    ["2.31", true],
    ["3.0.0", true],
    ["2.45.2.windows.1", true],
    ["1.99.9", false],
  ])("git: version %s is %s", async (version, ok) => {
    const git = script("git", `echo "git version ${version}"`)[1];
    const { check: result } = await check("git", config(), deps({ git }));
    expect(result.ok).toBe(ok);
  });

  it("git: finds the real git on PATH", async () => {
    const { check: result } = await check("git", config(), {
      ...deps(),
      git: "git",
      env: { PATH: process.env.PATH },
    });
    expect(result).toMatchObject({ ok: true, detail: expect.stringMatching(/^git \d+\.\d+/) });
  });

  it.each([
    [
      "a missing absolute path",
      () => ({ agent: ["/nonexistent/conveyor-test/agent", "-p"] }),
      () => ({}),
      /\/nonexistent\/conveyor-test\/agent does not exist/,
    ],
    [
      "a program not on PATH",
      () => ({ agent: ["conveyor-test-no-such-agent"] }),
      () => ({ env: { PATH: mkdtempSync(join(dir, "empty-path-")) } }),
      /"conveyor-test-no-such-agent" is not on PATH \(searched 1 directories\)/,
    ],
    [
      "a file that is not executable",
      () => ({ agent: [script("agent", "true", false)[1]] }),
      () => ({}),
      /is not executable \(chmod \+x\)/,
    ],
    ["a directory", () => ({ agent: [dir] }), () => ({}), /is not a file/],
    [
      "a relative path",
      () => ({ agent: ["./bin/agent.sh"] }),
      () => ({}),
      /relative path, which would be looked up inside each task's workspace/,
    ],
    ["an empty program", () => ({ agent: [""] }), () => ({}), /the agent command is empty/],
  ] as const)("agent command: %s", async (_, overrides, depOverrides, detail) => {
    const { check: agent, result } = await check(
      "agent command",
      config(overrides()),
      deps(depOverrides()),
    );
    expect(agent.ok).toBe(false);
    expect(agent.detail).toMatch(detail);
    expect(result.ok).toBe(false);
  });

  it("agent command: found on PATH", async () => {
    const [bin, path] = script("my-agent", "true");
    const { check: agent } = await check(
      "agent command",
      config({ agent: ["my-agent", "--flag"] }),
      deps({ env: { PATH: `/nonexistent/dir:${bin}` } }),
    );
    expect(agent).toMatchObject({ ok: true, detail: `my-agent → ${path}` });
  });

  it("work dir and journal: a path that cannot be created is reported with the setting to change", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const result = await runDoctor(
      config({ workDir: join(file, "work"), journalPath: join(file, "state", "journal.json") }),
      deps(),
    );
    const work = result.checks.find((c) => c.name === "work dir");
    const journal = result.checks.find((c) => c.name === "journal");
    expect(work).toMatchObject({ ok: false, detail: expect.stringContaining("--work-dir") });
    expect(work?.detail).toContain("ENOTDIR");
    expect(journal).toMatchObject({ ok: false, detail: expect.stringContaining("--journal") });
    expect(formatDoctorReport(result)).toMatch(/FAIL {2}work dir/);
  });
});
