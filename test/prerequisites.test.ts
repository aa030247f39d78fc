import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Found,
  findOnPath,
  type Host,
  PREREQUISITES,
  planPrerequisites,
} from "./helpers/prerequisites.ts";

const SCRIPT = fileURLToPath(new URL("../scripts/test-prerequisites.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));

const byName = (name: string) => PREREQUISITES.find((p) => p.name.startsWith(name))!;
const found = (where: string): Found => ({ kind: "found", where });
const missing: Found = { kind: "missing" };

function results(states: Record<string, Found>) {
  return PREREQUISITES.map((prerequisite) => ({
    prerequisite,
    found: states[prerequisite.name.split(" ")[0]!] ?? found("/usr/bin/x"),
  }));
}

describe("planPrerequisites", () => {
  const root: Host = { isRoot: true, hasApt: true, install: "auto" };
  it.each([
    {
      why: "everything there",
      states: {},
      host: root,
      expected: { kind: "ready" },
    },
    {
      why: "root with apt installs what is missing, one package each",
      states: { Chromium: missing, promtool: missing },
      host: root,
      expected: { kind: "install", packages: ["chromium", "prometheus"] },
    },
    {
      why: "not root: stops with sudo and the exact packages",
      states: { Chromium: missing },
      host: { ...root, isRoot: false },
      expected: {
        kind: "stop",
        says: "sudo apt-get install -y --no-install-recommends chromium",
      },
    },
    {
      why: "CONVEYOR_TEST_INSTALL=never: stops even as root, and says why",
      states: { PostgreSQL: missing },
      host: { ...root, install: "never" },
      expected: { kind: "stop", says: "CONVEYOR_TEST_INSTALL=never" },
    },
    {
      why: "no apt (another OS): names the packages and the variables",
      states: { promtool: missing },
      host: { isRoot: false, hasApt: false, install: "auto" },
      expected: { kind: "stop", says: "PROMTOOL_PATH" },
    },
    {
      why: "a variable that names nothing stops, installing would not help",
      states: {
        Chromium: { kind: "broken", reason: "CHROMIUM_PATH=/nope is not an executable file" },
      },
      host: root,
      expected: { kind: "stop", says: "CHROMIUM_PATH=/nope" },
    },
  ] as const)("$why", ({ states, host, expected }) => {
    const plan = planPrerequisites(results(states as Record<string, Found>), host);
    expect(plan.kind).toBe(expected.kind);
    if (plan.kind === "install" && "packages" in expected) {
      expect(plan.packages).toEqual(expected.packages);
    }
    if (plan.kind === "stop" && "says" in expected) expect(plan.message).toContain(expected.says);
  });

  it("finds bwrap, Chromium and promtool through their variables before PATH", () => {
    expect(byName("Chromium").find({ PATH: "", CHROMIUM_PATH: process.execPath })).toEqual(
      found(process.execPath),
    );
    expect(byName("promtool").find({ PATH: "", PROMTOOL_PATH: "/no/such/promtool" }).kind).toBe(
      "broken",
    );
    expect(byName("promtool").find({ PATH: "" })).toEqual(missing);
    expect(byName("bubblewrap").find({ PATH: "", BWRAP_PATH: process.execPath })).toEqual(
      found(process.execPath),
    );
    expect(byName("bubblewrap").find({ PATH: "", BWRAP_PATH: "/no/such/bwrap" }).kind).toBe(
      "broken",
    );
  });
});

describe("npm test's first step on a machine without bwrap, Chromium or promtool", () => {
  // A PATH with node, git and (where the machine has it) apt-get, and nothing else.
  const bin = mkdtempSync(join(tmpdir(), "conveyor-prereq-"));
  for (const tool of ["node", "git", "apt-get"]) {
    const where = tool === "node" ? process.execPath : findOnPath([tool], process.env);
    if (where) symlinkSync(where, join(bin, tool));
  }
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  function runScript(env: Record<string, string>, args: string[] = []) {
    const started = Date.now();
    return new Promise<{ code: number; output: string; ms: number }>((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", SCRIPT, ...args],
        { cwd: ROOT, env: { PATH: bin, HOME: tmpdir(), ...env }, timeout: 30_000 },
        (error, stdout, stderr) =>
          resolve({
            code: error ? ((error as { code?: number }).code ?? 1) : 0,
            output: `${stdout}${stderr}`,
            ms: Date.now() - started,
          }),
      );
    });
  }

  it("stops at once with the exact command when it may not install", async () => {
    const run = await runScript({ CONVEYOR_TEST_INSTALL: "never" });
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain("bubblewrap (bwrap), for every test that starts conveyor-runner");
    expect(run.output).toContain("Chromium, for test/dashboard.test.ts");
    expect(run.output).toContain("promtool, for test/metrics.test.ts");
    expect(run.output).toMatch(
      /apt-get install -y --no-install-recommends bubblewrap chromium prometheus/,
    );
    expect(run.output).toContain("BWRAP_PATH, CHROMIUM_PATH, PROMTOOL_PATH");
    expect(run.ms).toBeLessThan(10_000);
  });

  it("as root with apt, plans the install (dry run); otherwise stops", async () => {
    const run = await runScript({}, ["--dry-run"]);
    const canInstall = process.getuid?.() === 0 && findOnPath(["apt-get"], process.env);
    if (canInstall) {
      expect(run.code, run.output).toBe(0);
      expect(run.output).toContain("missing bubblewrap (bwrap), for every test that starts");
      expect(run.output).toContain("Chromium, for test/dashboard.test.ts");
      expect(run.output).toContain(
        "apt-get install -y --no-install-recommends bubblewrap chromium prometheus",
      );
    } else {
      expect(run.code, run.output).toBe(1);
      expect(run.output).toContain("bubblewrap chromium prometheus");
    }
  });

  it("refuses a CONVEYOR_TEST_INSTALL it does not know", async () => {
    const run = await runScript({ CONVEYOR_TEST_INSTALL: "yes" });
    expect(run.code).toBe(2);
    expect(run.output).toContain('CONVEYOR_TEST_INSTALL must be "auto" or "never"');
  });
});
