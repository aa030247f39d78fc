import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  loadRunnerConfig,
  RUNNER_CONFIG_USAGE,
  RunnerConfigError,
  runnerSocketUrl,
} from "./runner-config.ts";

const TOKEN = "cvr_Secret0123456789abcdefghijklmnopqrstuvwxyz";
const OTHER_TOKEN = "cvr_Other0123456789abcdefghijklmnopqrstuvwxyz";
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "runner-config-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh directory with `conveyor-runner.yml` holding `yaml` (none when undefined), mode 0600. */
function workspace(yaml?: string): string {
  const cwd = mkdtempSync(join(dir, "case-"));
  if (yaml !== undefined) writeFileSync(join(cwd, "conveyor-runner.yml"), yaml, { mode: 0o600 });
  return cwd;
}

/** A token file in a fresh directory, with the given mode. */
function tokenFile(content: string, mode = 0o600): string {
  const path = join(mkdtempSync(join(dir, "token-")), "runner-token");
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

const REQUIRED_ENV = {
  CONVEYOR_SERVER_URL: "https://conveyor.example.com",
  CONVEYOR_RUNNER_TOKEN: TOKEN,
  CONVEYOR_AGENT_COMMAND: '["claude","-p"]',
};

/** The required variables, less those the YAML sets (the environment would win over the file). */
function requiredEnvBelow(yaml: string | undefined): Record<string, string> {
  const env: Record<string, string> = { ...REQUIRED_ENV };
  if (yaml?.includes("server_url:")) delete env.CONVEYOR_SERVER_URL;
  if (yaml?.includes("agent:")) delete env.CONVEYOR_AGENT_COMMAND;
  if (yaml?.includes("token:")) delete env.CONVEYOR_RUNNER_TOKEN;
  return env;
}

function load(argv: string[], env: Record<string, string> = {}, yaml?: string) {
  return loadRunnerConfig({ argv, env, cwd: workspace(yaml), hostname: () => "build-box" });
}

function errorOf(fn: () => unknown): RunnerConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RunnerConfigError);
    return error as RunnerConfigError;
  }
  throw new Error("expected a RunnerConfigError");
}

describe("loadRunnerConfig", () => {
  it("applies the defaults", () => {
    const cwd = workspace();
    const config = loadRunnerConfig({ argv: [], env: REQUIRED_ENV, cwd, hostname: () => "box" });
    expect(config).toMatchObject({
      serverUrl: "https://conveyor.example.com",
      token: TOKEN,
      name: "box",
      capabilities: [],
      slots: 1,
      workDir: join(cwd, ".conveyor-runner/work"),
      journalPath: join(cwd, ".conveyor-runner/journal.json"),
      agent: ["claude", "-p"],
      wallClockMinutes: 60,
      idleMinutes: 10,
      outputCapBytes: 10 * 1024 * 1024,
      configFile: undefined,
    });
    expect(config.sources.slots).toBe("default");
    expect(config.sources.token).toBe("env CONVEYOR_RUNNER_TOKEN");
  });

  const FILE = [
    "server_url: https://file.example.com/",
    `token: ${OTHER_TOKEN}`,
    "name: from-file",
    "capabilities: [docker]",
    "slots: 2",
    "work_dir: file-work",
    "journal: file-journal.json",
    "agent: [file-agent, --flag]",
    "wall_clock_minutes: 30",
    "idle_minutes: 5",
    "output_cap_bytes: 2048",
  ].join("\n");

  // Precedence: file < env < flags, one row per setting.
  it.each([
    ["serverUrl", [], {}, "https://file.example.com", "conveyor-runner.yml:server_url"],
    [
      "serverUrl",
      ["--insecure"],
      { CONVEYOR_SERVER_URL: "http://env.example.com" },
      "http://env.example.com",
      "env CONVEYOR_SERVER_URL",
    ],
    [
      "serverUrl",
      ["--server", "https://flag.example.com/prefix/"],
      { CONVEYOR_SERVER_URL: "http://env.example.com" },
      "https://flag.example.com/prefix",
      "flag --server",
    ],
    ["token", [], { CONVEYOR_RUNNER_TOKEN: TOKEN }, TOKEN, "env CONVEYOR_RUNNER_TOKEN"],
    ["name", [], { CONVEYOR_RUNNER_NAME: "env-name" }, "env-name", "env CONVEYOR_RUNNER_NAME"],
    ["name", ["--name", "flag-name"], { CONVEYOR_RUNNER_NAME: "x" }, "flag-name", "flag --name"],
    ["capabilities", [], {}, ["docker"], "conveyor-runner.yml:capabilities"],
    [
      "capabilities",
      [],
      { CONVEYOR_RUNNER_CAPABILITIES: "gpu, node ,gpu" },
      ["gpu", "node"],
      "env CONVEYOR_RUNNER_CAPABILITIES",
    ],
    [
      "capabilities",
      ["--capability", "a", "--capability", "b.c"],
      { CONVEYOR_RUNNER_CAPABILITIES: "gpu" },
      ["a", "b.c"],
      "flag --capability",
    ],
    ["slots", [], { CONVEYOR_RUNNER_SLOTS: "3" }, 3, "env CONVEYOR_RUNNER_SLOTS"],
    ["slots", ["--slots", "4"], { CONVEYOR_RUNNER_SLOTS: "3" }, 4, "flag --slots"],
    [
      "agent",
      [],
      { CONVEYOR_AGENT_COMMAND: '["env-agent"]' },
      ["env-agent"],
      "env CONVEYOR_AGENT_COMMAND",
    ],
    [
      "agent",
      ["--agent-json", '["json-agent","x"]'],
      { CONVEYOR_AGENT_COMMAND: '["env-agent"]' },
      ["json-agent", "x"],
      "flag --agent-json",
    ],
    [
      "agent",
      ["--slots", "2", "--agent", "--", "claude", "-p", "--slots", "--", "$(rm -rf /)"],
      {},
      ["claude", "-p", "--slots", "--", "$(rm -rf /)"],
      "flag --agent --",
    ],
    ["wallClockMinutes", [], {}, 30, "conveyor-runner.yml:wall_clock_minutes"],
    [
      "wallClockMinutes",
      ["--wall-clock-minutes", "90"],
      { CONVEYOR_RUNNER_WALL_CLOCK_MINUTES: "45" },
      90,
      "flag --wall-clock-minutes",
    ],
    [
      "idleMinutes",
      [],
      { CONVEYOR_RUNNER_IDLE_MINUTES: "7" },
      7,
      "env CONVEYOR_RUNNER_IDLE_MINUTES",
    ],
    ["idleMinutes", ["--idle-minutes=8"], {}, 8, "flag --idle-minutes"],
    [
      "outputCapBytes",
      ["--output-cap-bytes", "4096"],
      { CONVEYOR_RUNNER_OUTPUT_CAP_BYTES: "3000" },
      4096,
      "flag --output-cap-bytes",
    ],
  ] as const)("%s: %j %j → %j from %s", (setting, argv, env, expected, source) => {
    const config = load([...argv], env, FILE);
    expect(config[setting]).toEqual(expected);
    expect(config.sources[setting]).toBe(source);
  });

  it("resolves paths from the file against the file's directory, others against cwd", () => {
    const cwd = workspace();
    mkdirSync(join(cwd, "etc"));
    writeFileSync(
      join(cwd, "etc", "runner.yml"),
      "server_url: https://x.example\nagent: [a]\nwork_dir: w\njournal: j.json\n",
    );
    const fromFile = loadRunnerConfig({
      argv: ["--config", "etc/runner.yml"],
      env: { CONVEYOR_RUNNER_TOKEN: TOKEN },
      cwd,
    });
    expect(fromFile.workDir).toBe(join(cwd, "etc", "w"));
    expect(fromFile.journalPath).toBe(join(cwd, "etc", "j.json"));
    expect(fromFile.configFile).toBe(join(cwd, "etc", "runner.yml"));
    const fromEnv = loadRunnerConfig({
      argv: ["--work-dir", "fw"],
      env: {
        CONVEYOR_RUNNER_TOKEN: TOKEN,
        CONVEYOR_RUNNER_CONFIG: "etc/runner.yml",
        CONVEYOR_RUNNER_JOURNAL: "ej.json",
      },
      cwd,
    });
    expect(fromEnv.workDir).toBe(join(cwd, "fw"));
    expect(fromEnv.journalPath).toBe(join(cwd, "ej.json"));
  });

  it("reads the annotated example file", () => {
    const cwd = workspace();
    const config = loadRunnerConfig({
      argv: ["--config", join(import.meta.dirname, "..", "conveyor-runner.example.yml")],
      env: { CONVEYOR_RUNNER_TOKEN: TOKEN },
      cwd,
    });
    expect(config.agent[0]).toBe("claude");
    expect(config.adapter).toBe("claude");
    expect(config.capabilities).toEqual(["docker", "node"]);
  });

  it("treats empty environment variables as unset", () => {
    const config = load([], {
      ...REQUIRED_ENV,
      CONVEYOR_RUNNER_SLOTS: "",
      CONVEYOR_RUNNER_NAME: " ",
    });
    expect(config.slots).toBe(1);
    expect(config.name).toBe("build-box");
  });

  // The token travels in the Authorization header: never in the clear beyond this machine.
  it.each([
    ["http://conveyor.example.com", false],
    ["http://10.0.0.5:3000", false],
    ["http://[2001:db8::1]:3000", false],
    ["https://conveyor.example.com", true],
    ["http://localhost:3000", true],
    ["http://127.0.0.1:3000", true],
    ["http://[::1]:3000", true],
  ])("%s is %s without --insecure", (url, accepted) => {
    const attempt = () => load(["--server", url], {}, FILE);
    if (accepted) {
      expect(attempt().serverUrl).toBe(url);
    } else {
      expect(attempt).toThrow(/serverUrl \(flag --server\): plain http:\/\/ .*give --insecure/);
      expect(load(["--server", url, "--insecure"], {}, FILE).serverUrl).toBe(url);
    }
  });

  // Every bad value is reported with its source and what is expected.
  it.each([
    [["--server", "ftp://x.example"], {}, "", "serverUrl (flag --server)", "http:// or https://"],
    [
      [],
      { CONVEYOR_SERVER_URL: "not a url" },
      "",
      "serverUrl (env CONVEYOR_SERVER_URL)",
      "http(s) URL",
    ],
    [
      [],
      {},
      "server_url: https://u:p@x.example",
      "conveyor-runner.yml:server_url",
      "user:password",
    ],
    [["--slots", "0"], {}, "", "slots (flag --slots)", "whole number from 1 to 64"],
    [["--slots", "1.5"], {}, "", "slots (flag --slots)", "whole number from 1 to 64"],
    [[], { CONVEYOR_RUNNER_SLOTS: "many" }, "", "slots (env CONVEYOR_RUNNER_SLOTS)", "1 to 64"],
    [[], {}, "slots: 65", "slots (conveyor-runner.yml:slots)", "1 to 64"],
    [["--capability", "GPU"], {}, "", "capabilities (flag --capability)", "lower-case"],
    [
      [],
      { CONVEYOR_RUNNER_CAPABILITIES: "ok,-bad" },
      "",
      "capabilities (env CONVEYOR_RUNNER_CAPABILITIES)",
      "lower-case",
    ],
    [[], {}, "capabilities: gpu", "capabilities (conveyor-runner.yml:capabilities)", "a list"],
    [["--name", ""], {}, "", "name (flag --name)", "1-100 characters"],
    [
      ["--wall-clock-minutes", "0"],
      {},
      "",
      "wallClockMinutes (flag --wall-clock-minutes)",
      "0.05 to 1440",
    ],
    [
      [],
      { CONVEYOR_RUNNER_IDLE_MINUTES: "-1" },
      "",
      "idleMinutes (env CONVEYOR_RUNNER_IDLE_MINUTES)",
      "number of minutes",
    ],
    [
      [],
      {},
      "output_cap_bytes: 10",
      "outputCapBytes (conveyor-runner.yml:output_cap_bytes)",
      "1024",
    ],
    [
      ["--idle-minutes", "61"],
      {},
      "",
      "idleMinutes (flag --idle-minutes)",
      "at most the wall-clock limit",
    ],
    [
      [],
      { CONVEYOR_RUNNER_JOURNAL: ".conveyor-runner/work/j.json" },
      "",
      "journalPath (env CONVEYOR_RUNNER_JOURNAL)",
      "outside the work dir",
    ],
    [
      [],
      { CONVEYOR_RUNNER_TOKEN: "secret-without-prefix" },
      "",
      "token (env CONVEYOR_RUNNER_TOKEN)",
      "starting with cvr_",
    ],
    [["--token", "cvr_short"], {}, "", "--token:", "never taken from the command line"],
    [[`--token=${TOKEN}`], {}, "", "--token:", "--token-file <file>"],
    [["--isolation", "docker"], {}, "", "isolation (flag --isolation)", "auto"],
    [["--unsandboxed", "--isolation", "bwrap"], {}, "", "--unsandboxed", "not both"],
    [["--unsandboxed=yes"], {}, "", "--unsandboxed", "takes no value"],
    [
      [],
      { CONVEYOR_RUNNER_NETWORK: "allowlist" },
      "",
      "network (env CONVEYOR_RUNNER_NETWORK)",
      "host",
    ],
    [
      [],
      { CONVEYOR_RUNNER_TOKEN_FILE: "/nonexistent/token" },
      "",
      "token (env CONVEYOR_RUNNER_TOKEN_FILE)",
      "both",
    ],
    [
      ["--sandbox-writable", ".conveyor-runner"],
      {},
      "",
      "sandboxWritable (flag --sandbox-writable)",
      "holds the work dir",
    ],
    [
      [],
      {},
      "sandbox_writable: [/]",
      "sandboxWritable (conveyor-runner.yml:sandbox_writable)",
      "holds the journal",
    ],
    [["--bogus", "1"], {}, "", "--bogus", "unknown flag"],
    [["--slots"], {}, "", "--slots", "expects a value"],
    [["--slots", "2", "--slots", "3"], {}, "", "--slots", "more than once"],
    [["--", "claude"], {}, "", "--:", "only understood after --agent"],
    [["--agent", "claude", "-p"], {}, "", "--agent", "after `--`"],
    [["--agent-json", '["a"]', "--agent", "--", "b"], {}, "", "--agent-json", "not both"],
    [["--config", "missing.yml"], {}, undefined, "flag --config", "does not exist"],
    [
      [],
      { CONVEYOR_RUNNER_CONFIG: "missing.yml" },
      undefined,
      "env CONVEYOR_RUNNER_CONFIG",
      "does not exist",
    ],
    [
      [],
      {},
      "servr_url: https://x",
      "conveyor-runner.yml:servr_url",
      "unknown setting (did you mean server_url?)",
    ],
    [[], {}, "server_url: [unclosed", "conveyor-runner.yml", "not valid YAML"],
    [[], {}, "slots: 1\nslots: 2", "conveyor-runner.yml", "not valid YAML"],
    [[], {}, "- just\n- a list", "conveyor-runner.yml", "expected a mapping"],
  ] as const)("refuses %j %j %j, naming %s", (argv, env, yaml, source, expected) => {
    const error = errorOf(() => load([...argv], { ...requiredEnvBelow(yaml), ...env }, yaml));
    expect(error.message).toContain(source);
    expect(error.message).toContain(expected);
  });

  it("names every missing required setting and how to set it", () => {
    const error = errorOf(() => load([], {}));
    for (const text of [
      "serverUrl: the server URL is required; set --server, env CONVEYOR_SERVER_URL, or server_url in conveyor-runner.yml",
      "token: the runner token is required; set --token-file <file> (chmod 600), env CONVEYOR_RUNNER_TOKEN or CONVEYOR_RUNNER_TOKEN_FILE, or token_file in conveyor-runner.yml",
      "agent: the agent command is required; set --agent -- <program> <args…>, --agent-json, env CONVEYOR_AGENT_COMMAND",
    ]) {
      expect(error.message).toContain(text);
    }
  });

  it("reports several problems at once", () => {
    const error = errorOf(() => load(["--slots", "0", "--server", "x"], REQUIRED_ENV));
    expect(error.message).toMatch(/^Invalid runner configuration:\n/);
    expect(error.message.split("\n").filter((l) => l.startsWith("  "))).toHaveLength(2);
  });

  // A string is refused wherever it comes from, with the reason: no shell ever sees issue text.
  it.each([
    [["--agent-json", "claude -p"], {}, "", "flag --agent-json"],
    [["--agent-json", '"claude -p"'], {}, "", "flag --agent-json"],
    [
      [],
      { CONVEYOR_AGENT_COMMAND: "claude -p --permission-mode acceptEdits" },
      "",
      "env CONVEYOR_AGENT_COMMAND",
    ],
    [[], { CONVEYOR_AGENT_COMMAND: '"claude -p"' }, "", "env CONVEYOR_AGENT_COMMAND"],
    [[], {}, "agent: claude -p", "conveyor-runner.yml:agent"],
    [[], {}, 'agent: "sh -c \\"claude < $CONVEYOR_PROMPT_FILE\\""', "conveyor-runner.yml:agent"],
  ] as const)("refuses an agent given as a string: %j %j %j", (argv, env, yaml, source) => {
    const { CONVEYOR_AGENT_COMMAND: _, ...rest } = REQUIRED_ENV;
    const error = errorOf(() => load([...argv], { ...rest, ...env }, yaml));
    expect(error.message).toContain(`agent (${source}): expected an argv array`);
    expect(error.message).toContain("without a shell");
  });

  it.each([
    [["--agent", "--"], "non-empty argv array"],
    [["--agent-json", "[]"], "non-empty argv array"],
    [["--agent-json", '[""]'], "program as argv[0]"],
    [["--agent-json", '["claude", 5]'], "to be a string"],
    [["--agent-json", '{"cmd":"claude"}'], "expected an argv array"],
  ] as const)("refuses a malformed agent argv %j", (argv, expected) => {
    const error = errorOf(() => load([...argv], REQUIRED_ENV));
    expect(error.message).toContain(expected);
  });

  // The token never appears in an error, whatever went wrong and wherever it came from.
  it.each([
    ["a bad token from a flag", ["--token", "cvr_short!"], {}, undefined],
    ["a token-like stray argument", ["--tokn", TOKEN], {}, undefined],
    ["a bare stray argument", [TOKEN], {}, undefined],
    ["a token in an unknown YAML key", [], {}, `tokn: ${TOKEN}`],
    ["a YAML syntax error next to the token", [], {}, `token: ${TOKEN}\n  bad: [`],
    ["a token-looking agent string", [], { CONVEYOR_AGENT_COMMAND: `run ${TOKEN}` }, undefined],
    ["a token without its prefix", ["--token", "hunter2-very-secret-value"], {}, undefined],
  ] as const)("never echoes the token: %s", (_, argv, env, yaml) => {
    const error = errorOf(() => load([...argv], { ...requiredEnvBelow(yaml), ...env }, yaml));
    expect(error.message).not.toContain(TOKEN);
    expect(error.message).not.toContain("Secret0123456789");
    expect(error.message).not.toContain("hunter2");
    expect(error.message).not.toContain("cvr_short!");
  });

  it("reads the token from a private file named by a flag, a variable or the YAML file", () => {
    const file = tokenFile(`  ${TOKEN}\n`);
    const fromFlag = load(["--token-file", file], { ...REQUIRED_ENV, CONVEYOR_RUNNER_TOKEN: "" });
    expect(fromFlag.token).toBe(TOKEN);
    expect(fromFlag.tokenFile).toBe(file);
    expect(fromFlag.sources.token).toBe(`flag --token-file (${file})`);
    // A flag wins over the environment, as for every setting.
    expect(load(["--token-file", file], REQUIRED_ENV).sources.token).toMatch(/^flag --token-file/);

    const { CONVEYOR_RUNNER_TOKEN: _, ...withoutToken } = REQUIRED_ENV;
    const fromEnv = load([], { ...withoutToken, CONVEYOR_RUNNER_TOKEN_FILE: file });
    expect(fromEnv.token).toBe(TOKEN);
    expect(fromEnv.sources.token).toBe(`env CONVEYOR_RUNNER_TOKEN_FILE (${file})`);

    const cwd = workspace(`token_file: secrets/token\n`);
    mkdirSync(join(cwd, "secrets"));
    writeFileSync(join(cwd, "secrets", "token"), TOKEN, { mode: 0o600 });
    const fromYaml = loadRunnerConfig({ argv: [], env: withoutToken, cwd });
    expect(fromYaml.token).toBe(TOKEN);
    expect(fromYaml.tokenFile).toBe(join(cwd, "secrets", "token"));
    expect(fromYaml.sources.token).toMatch(/^conveyor-runner\.yml:token_file/);
    expect(load([], REQUIRED_ENV).tokenFile).toBeUndefined();
  });

  it.each([
    ["readable by others", () => tokenFile(TOKEN, 0o644), "mode 0644", "chmod 600"],
    ["readable by its group", () => tokenFile(TOKEN, 0o640), "mode 0640", "chmod 600"],
    ["missing", () => join(dir, "no-such-token"), "cannot read the token file", "ENOENT"],
    ["a directory", () => mkdtempSync(join(dir, "tokdir-")), "not a regular file", ""],
    ["not a token", () => tokenFile("hunter2-secret"), "starting with cvr_", ""],
  ])("refuses a token file that is %s, without echoing it", (_, make, expected, fix) => {
    const path = make();
    const error = errorOf(() =>
      load(["--token-file", path], { ...REQUIRED_ENV, CONVEYOR_RUNNER_TOKEN: "" }),
    );
    expect(error.message).toContain("token (flag --token-file");
    expect(error.message).toContain(expected);
    expect(error.message).toContain(fix);
    expect(error.message).not.toContain("Secret0123456789");
    expect(error.message).not.toContain("hunter2");
  });

  it("refuses a config file that holds the token but others may read", () => {
    const cwd = workspace(`token: ${TOKEN}\n`);
    chmodSync(join(cwd, "conveyor-runner.yml"), 0o644);
    const { CONVEYOR_RUNNER_TOKEN: _, ...env } = REQUIRED_ENV;
    const error = errorOf(() => loadRunnerConfig({ argv: [], env, cwd }));
    expect(error.message).toContain(
      "conveyor-runner.yml:token: the file holds the runner token but is readable or writable by its group or others (mode 0644): chmod 600 conveyor-runner.yml",
    );
    expect(error.message).not.toContain("Secret0123456789");
    chmodSync(join(cwd, "conveyor-runner.yml"), 0o600);
    expect(loadRunnerConfig({ argv: [], env, cwd }).token).toBe(TOKEN);
  });

  it("reads the sandbox settings: --unsandboxed, isolation, network, writable paths", () => {
    const defaults = load([], REQUIRED_ENV);
    expect(defaults).toMatchObject({ isolation: "auto", network: "host", sandboxWritable: [] });
    const off = load(["--unsandboxed"], REQUIRED_ENV);
    expect(off.isolation).toBe("none");
    expect(off.sources.isolation).toBe("flag --unsandboxed");
    const set = load(
      ["--network", "none", "--sandbox-writable", "/opt/agent-state", "--sandbox-writable", "rel"],
      { ...REQUIRED_ENV, CONVEYOR_RUNNER_ISOLATION: "bwrap" },
    );
    expect(set).toMatchObject({ isolation: "bwrap", network: "none" });
    expect(set.sandboxWritable[0]).toBe("/opt/agent-state");
    expect(set.sandboxWritable[1]).toMatch(/\/rel$/);
    expect(
      load([], { ...REQUIRED_ENV, CONVEYOR_RUNNER_SANDBOX_WRITABLE: "/a:/b" }).sandboxWritable,
    ).toEqual(["/a", "/b"]);
  });

  it("derives the socket URL from the server URL", () => {
    expect(runnerSocketUrl("https://c.example/base")).toBe("wss://c.example/base/runners/v1");
    expect(runnerSocketUrl("http://localhost:3000")).toBe("ws://localhost:3000/runners/v1");
  });

  it("reads --ephemeral (one task, one slot) from the flag or CONVEYOR_RUNNER_EPHEMERAL", () => {
    expect(load([], REQUIRED_ENV).ephemeral).toBe(false);
    expect(load(["--ephemeral"], REQUIRED_ENV).ephemeral).toBe(true);
    expect(load([], { ...REQUIRED_ENV, CONVEYOR_RUNNER_EPHEMERAL: "true" }).ephemeral).toBe(true);
    expect(load([], { ...REQUIRED_ENV, CONVEYOR_RUNNER_EPHEMERAL: "0" }).ephemeral).toBe(false);
    expect(errorOf(() => load(["--ephemeral", "--slots", "2"], REQUIRED_ENV)).message).toContain(
      "--ephemeral takes one task, so it runs with one slot",
    );
    expect(
      errorOf(() => load([], { ...REQUIRED_ENV, CONVEYOR_RUNNER_EPHEMERAL: "yes" })).message,
    ).toContain("env CONVEYOR_RUNNER_EPHEMERAL: expected 1, true, 0 or false");
    expect(errorOf(() => load(["--ephemeral=1"], REQUIRED_ENV)).message).toContain(
      "--ephemeral: takes no value",
    );
  });

  it("documents every flag and variable in the usage text", () => {
    for (const word of [
      "--ephemeral",
      "CONVEYOR_RUNNER_EPHEMERAL",
      "--server",
      "--token-file",
      "CONVEYOR_RUNNER_TOKEN_FILE",
      "token_file",
      "--isolation",
      "--unsandboxed",
      "--network",
      "--sandbox-writable",
      "--name",
      "--capability",
      "--slots",
      "--work-dir",
      "--journal",
      "--agent --",
      "--agent-json",
      "--wall-clock-minutes",
      "--idle-minutes",
      "--output-cap-bytes",
      "--config",
      "CONVEYOR_RUNNER_CONFIG",
      "CONVEYOR_AGENT_COMMAND",
      "CONVEYOR_RUNNER_OUTPUT_CAP_BYTES",
    ]) {
      expect(RUNNER_CONFIG_USAGE).toContain(word);
    }
  });
});

describe("agent adapters", () => {
  const { CONVEYOR_AGENT_COMMAND: _, ...withoutAgent } = REQUIRED_ENV;

  it.each<[string, string[], Record<string, string>, string | undefined, object]>([
    [
      "--agent claude",
      ["--agent", "claude"],
      {},
      undefined,
      { adapter: "claude", agent: ["claude"], model: undefined },
    ],
    [
      "--agent codex --model",
      ["--agent", "codex", "--model", "gpt-5-codex"],
      {},
      undefined,
      { adapter: "codex", agent: ["codex"], model: "gpt-5-codex" },
    ],
    [
      "env",
      [],
      { CONVEYOR_AGENT_COMMAND: "gemini", CONVEYOR_AGENT_MODEL: "gemini-2.5-pro" },
      undefined,
      { adapter: "gemini", model: "gemini-2.5-pro" },
    ],
    [
      "YAML",
      [],
      {},
      "agent: opencode\nmodel: anthropic/claude-sonnet-4-5\n",
      { adapter: "opencode", model: "anthropic/claude-sonnet-4-5" },
    ],
    [
      "an argv",
      ["--agent", "--", "aider", "--yes-always"],
      {},
      undefined,
      { adapter: "command", agent: ["aider", "--yes-always"] },
    ],
  ])("reads %s", (_name, argv, env, yaml, expected) => {
    expect(load(argv, { ...withoutAgent, ...env }, yaml)).toMatchObject(expected);
  });

  it.each<[string[], string]>([
    [["--agent", "--", "my-agent", "--model", "x"], ""],
    [
      ["--model", "x", "--agent", "--", "my-agent"],
      "model (flag --model): --model applies to a named adapter",
    ],
    [
      ["--agent", "claude", "--model", "bad model; rm -rf /"],
      "model (flag --model): expected a model name",
    ],
    [
      ["--agent", "clade"],
      "--agent: expected an adapter name (claude, codex, gemini, aider, opencode)",
    ],
    [["--agent", "claude", "-p"], "--agent: expected an adapter name"],
  ])("%j", (argv, expected) => {
    if (!expected) {
      // After `--agent --` every word is the agent's, --model included.
      expect(load(argv, withoutAgent)).toMatchObject({
        adapter: "command",
        agent: ["my-agent", "--model", "x"],
      });
      return;
    }
    expect(errorOf(() => load(argv, withoutAgent)).message).toContain(expected);
  });
});
