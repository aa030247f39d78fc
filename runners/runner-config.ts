import { existsSync, readFileSync, statSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { delimiter, dirname, isAbsolute, relative, resolve } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { ADAPTER_NAMES, type AdapterName } from "./adapters/agent-adapter.ts";

/** The file `conveyor-runner start` reads from its working directory when no other is named. */
export const RUNNER_CONFIG_FILE = "conveyor-runner.yml";

/**
 * How the agent is kept away from the runner (runners/sandbox.ts): `auto` picks `bwrap` when it
 * works here, else `users` when the runner is root; `none` is `--unsandboxed`.
 */
export const ISOLATION_SETTINGS = ["auto", "bwrap", "users", "none"] as const;
export type IsolationSetting = (typeof ISOLATION_SETTINGS)[number];

/** The agent's network: the host's (default), or none at all (bwrap only). */
export const NETWORK_SETTINGS = ["host", "none"] as const;
export type NetworkSetting = (typeof NETWORK_SETTINGS)[number];

/** What the runner needs to connect and run tasks, validated and with defaults applied. */
export interface RunnerConfig {
  /** http(s) base URL of the Conveyor server, without a trailing slash. */
  serverUrl: string;
  /** The runner token (`cvr_…`). Never log it. */
  token: string;
  name: string;
  capabilities: string[];
  slots: number;
  /** Absolute path under which each task gets its own workspace. */
  workDir: string;
  /** Absolute path of the journal of in-flight tasks. */
  journalPath: string;
  /**
   * The agent command as an argv array; it is never run through a shell. With a named adapter
   * (`--agent claude`), just its program: the adapter builds the rest for each task.
   */
  agent: string[];
  /** Which adapter starts the agent and reads its output: `command` for `--agent -- <argv…>`. */
  adapter: AdapterName;
  /** The model a named adapter asks for (`--model`); the tool's default when absent. */
  model: string | undefined;
  wallClockMinutes: number;
  idleMinutes: number;
  outputCapBytes: number;
  /** Which sandbox the agent and the verify commands run in; `none` is `--unsandboxed`. */
  isolation: IsolationSetting;
  network: NetworkSetting;
  /** Absolute paths the sandboxed agent may also write (bwrap only), e.g. the agent's own state. */
  sandboxWritable: string[];
  /**
   * `--ephemeral`: take one task, then drain and exit (for a one-time credential from
   * `conveyor runners jit`: an Actions job, a Kubernetes Job). Forces one slot.
   */
  ephemeral: boolean;
  /** The YAML file that was read, if any (absolute). */
  configFile: string | undefined;
  /** The file the token was read from, if it came from one (absolute); the sandbox hides it. */
  tokenFile: string | undefined;
  /** Where each setting came from: `flag --slots`, `env CONVEYOR_RUNNER_SLOTS`, `<file>:slots`, `default`. */
  sources: Record<RunnerSetting, string>;
}

export type RunnerSetting = Exclude<
  keyof RunnerConfig,
  "configFile" | "tokenFile" | "sources" | "adapter" | "ephemeral"
>;

/** The adapters `--agent <name>` accepts (`command` is `--agent -- <argv…>`). */
const NAMED_ADAPTERS: readonly AdapterName[] = ADAPTER_NAMES.filter((n) => n !== "command");

/** A configuration problem the operator must fix; its message names each bad setting and its source. */
export class RunnerConfigError extends Error {
  override name = "RunnerConfigError";
}

export interface LoadRunnerConfigOptions {
  /** The arguments after `start` (or `doctor`). */
  argv: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** The default runner name; `os.hostname()` unless given. */
  hostname?: () => string;
}

interface SettingSpec {
  flag: string;
  env: string;
  key: string;
  /** What the setting is, for "missing" messages. */
  what: string;
}

const SPECS: Record<RunnerSetting, SettingSpec> = {
  serverUrl: {
    flag: "--server",
    env: "CONVEYOR_SERVER_URL",
    key: "server_url",
    what: "server URL",
  },
  token: {
    flag: "--token-file",
    env: "CONVEYOR_RUNNER_TOKEN",
    key: "token",
    what: "runner token",
  },
  name: { flag: "--name", env: "CONVEYOR_RUNNER_NAME", key: "name", what: "runner name" },
  capabilities: {
    flag: "--capability",
    env: "CONVEYOR_RUNNER_CAPABILITIES",
    key: "capabilities",
    what: "capabilities",
  },
  slots: { flag: "--slots", env: "CONVEYOR_RUNNER_SLOTS", key: "slots", what: "slots" },
  workDir: {
    flag: "--work-dir",
    env: "CONVEYOR_RUNNER_WORK_DIR",
    key: "work_dir",
    what: "work dir",
  },
  journalPath: {
    flag: "--journal",
    env: "CONVEYOR_RUNNER_JOURNAL",
    key: "journal",
    what: "journal path",
  },
  agent: { flag: "--agent", env: "CONVEYOR_AGENT_COMMAND", key: "agent", what: "agent command" },
  model: { flag: "--model", env: "CONVEYOR_AGENT_MODEL", key: "model", what: "model" },
  wallClockMinutes: {
    flag: "--wall-clock-minutes",
    env: "CONVEYOR_RUNNER_WALL_CLOCK_MINUTES",
    key: "wall_clock_minutes",
    what: "wall-clock limit",
  },
  idleMinutes: {
    flag: "--idle-minutes",
    env: "CONVEYOR_RUNNER_IDLE_MINUTES",
    key: "idle_minutes",
    what: "idle limit",
  },
  outputCapBytes: {
    flag: "--output-cap-bytes",
    env: "CONVEYOR_RUNNER_OUTPUT_CAP_BYTES",
    key: "output_cap_bytes",
    what: "output cap",
  },
  isolation: {
    flag: "--isolation",
    env: "CONVEYOR_RUNNER_ISOLATION",
    key: "isolation",
    what: "isolation",
  },
  network: { flag: "--network", env: "CONVEYOR_RUNNER_NETWORK", key: "network", what: "network" },
  sandboxWritable: {
    flag: "--sandbox-writable",
    env: "CONVEYOR_RUNNER_SANDBOX_WRITABLE",
    key: "sandbox_writable",
    what: "writable paths",
  },
};

/** The token can also be named by a file: flag, variable and YAML key of that form. */
const TOKEN_FILE = {
  flag: "--token-file",
  env: "CONVEYOR_RUNNER_TOKEN_FILE",
  key: "token_file",
} as const;
const UNSANDBOXED_FLAG = "--unsandboxed";
/** Accepts plain `http://` to a server beyond this machine (the token then travels in the clear). */
const INSECURE_FLAG = "--insecure";
const EPHEMERAL_FLAG = "--ephemeral";
const EPHEMERAL_ENV = "CONVEYOR_RUNNER_EPHEMERAL";

const SETTINGS = Object.keys(SPECS) as RunnerSetting[];
const CONFIG_FLAG = "--config";
const CONFIG_ENV = "CONVEYOR_RUNNER_CONFIG";

const ARGV_EXPLANATION =
  'expected an argv array such as ["claude", "-p"] (or an adapter name: claude, codex, gemini, aider, opencode), not a single string: Conveyor runs the agent ' +
  "directly, without a shell, so text from an issue can never be read as shell syntax. Split the " +
  "command into its words yourself; for pipes, redirections or $VARIABLES, put them in a small " +
  "script and name the script here";

const CAPABILITY = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const MAX_MINUTES = 24 * 60;

const firstMessage = (error: z.ZodError) => error.issues[0]?.message ?? "invalid value";

/** Numbers arrive as strings from flags and env, as numbers (or strings) from YAML. */
const numeric = (value: unknown) =>
  typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value.trim()))
    ? Number(value.trim())
    : value;

const wholeNumber = (min: number, max: number, what: string) =>
  z.preprocess(
    numeric,
    z
      .number({ error: `expected ${what}: a whole number from ${min} to ${max}` })
      .int({ error: `expected ${what}: a whole number from ${min} to ${max}` })
      .min(min, { error: `expected ${what}: a whole number from ${min} to ${max}` })
      .max(max, { error: `expected ${what}: a whole number from ${min} to ${max}` }),
  );

/** Minutes, fractions allowed (0.1 = 6 s: short limits are useful for trying an agent out). */
const minutes = (max: number, what: string) =>
  z.preprocess(
    numeric,
    z
      .number({ error: `expected ${what}: a number of minutes from 0.05 to ${max}` })
      .min(0.05, { error: `expected ${what}: a number of minutes from 0.05 to ${max}` })
      .max(max, { error: `expected ${what}: a number of minutes from 0.05 to ${max}` }),
  );

const SCHEMAS: Record<RunnerSetting, z.ZodType> = {
  serverUrl: z
    .string({ error: "expected the server's http(s) URL, e.g. https://conveyor.example.com" })
    .trim()
    .superRefine((value, ctx) => {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        ctx.addIssue({
          code: "custom",
          message: "expected the server's http(s) URL, e.g. https://conveyor.example.com",
        });
        return;
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        ctx.addIssue({
          code: "custom",
          message: `expected an http:// or https:// URL (the runner derives ws(s)://…/runners/v1 itself), got ${url.protocol}//`,
        });
      } else if (url.username || url.password) {
        ctx.addIssue({
          code: "custom",
          message: "expected a URL without user:password@ (the runner token is the credential)",
        });
      } else if (url.search || url.hash) {
        ctx.addIssue({ code: "custom", message: "expected a URL without ?query or #fragment" });
      }
    })
    .transform((value) => value.replace(/\/+$/, "")),
  token: z
    .string({ error: "expected a runner token" })
    .trim()
    .regex(/^cvr_[A-Za-z0-9_-]{16,}$/, {
      error:
        "expected a runner token starting with cvr_, as printed once by `conveyor runners add` (the value given is not shown)",
    }),
  name: z
    .string({ error: "expected a name (1-100 characters)" })
    .trim()
    .min(1, { error: "expected a name (1-100 characters)" })
    .max(100, { error: "expected a name (1-100 characters)" }),
  capabilities: z
    .array(
      z.string({ error: "expected capability names" }).regex(CAPABILITY, {
        error:
          "expected capability names of lower-case letters, digits, '.', '_' or '-' (starting with a letter or digit, at most 63 characters)",
      }),
      { error: "expected a list of capability names, e.g. [gpu, docker]" },
    )
    .max(50, { error: "expected at most 50 capabilities" })
    .transform((caps) => [...new Set(caps)]),
  slots: wholeNumber(1, 64, "how many tasks run at once"),
  workDir: z
    .string({ error: "expected a directory path" })
    .trim()
    .min(1, { error: "expected a directory path" }),
  journalPath: z
    .string({ error: "expected a file path" })
    .trim()
    .min(1, { error: "expected a file path" }),
  agent: z
    .array(
      z.string({
        error: 'expected every element of the argv array to be a string (quote numbers: "5")',
      }),
      {
        error: ARGV_EXPLANATION,
      },
    )
    .min(1, { error: "expected a non-empty argv array: the agent's program and its arguments" })
    .max(200, { error: "expected at most 200 arguments" })
    .superRefine((argv, ctx) => {
      if (!argv[0]?.trim()) {
        ctx.addIssue({ code: "custom", message: "expected the agent's program as argv[0]" });
      }
      if (argv.some((arg) => arg.includes("\0"))) {
        ctx.addIssue({ code: "custom", message: "expected arguments without NUL characters" });
      }
    }),
  model: z
    .string({ error: "expected a model name, e.g. claude-sonnet-4-5" })
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/, {
      error: "expected a model name of letters, digits and . _ : / @ - (at most 128)",
    }),
  wallClockMinutes: minutes(MAX_MINUTES, "how long one task may run"),
  idleMinutes: minutes(MAX_MINUTES, "how long the agent may stay silent"),
  outputCapBytes: wholeNumber(
    1024,
    100 * 1024 * 1024,
    "how many bytes of output the agent may print",
  ),
  isolation: z.enum(ISOLATION_SETTINGS, {
    error:
      "expected auto (bwrap, else a user per slot), bwrap, users or none (the same as --unsandboxed)",
  }),
  network: z.enum(NETWORK_SETTINGS, {
    error: "expected host (the agent uses the host's network) or none (no network; bwrap only)",
  }),
  sandboxWritable: z
    .array(
      z
        .string({ error: "expected directory paths" })
        .trim()
        .min(1, { error: "expected directory paths" }),
      { error: "expected a list of paths, e.g. [/home/runner/.claude]" },
    )
    .max(20, { error: "expected at most 20 paths" }),
};

const DEFAULTS: Partial<Record<RunnerSetting, (hostname: () => string) => unknown>> = {
  name: (hostname) => hostname(),
  capabilities: () => [],
  slots: () => 1,
  workDir: () => ".conveyor-runner/work",
  journalPath: () => ".conveyor-runner/journal.json",
  wallClockMinutes: () => 60,
  idleMinutes: () => 10,
  outputCapBytes: () => 10 * 1024 * 1024,
  isolation: () => "auto",
  network: () => "host",
  sandboxWritable: () => [],
};

/** Settings that may stay unset (no default value either). */
const OPTIONAL_SETTINGS = new Set<RunnerSetting>(["model"]);

/**
 * A raw value and where it came from; `base` is the directory a relative path is resolved in.
 * `fromFile` marks a token given as the path of a file that holds it.
 */
interface Raw {
  value: unknown;
  source: string;
  base: string;
  fromFile?: boolean;
}

type Layer = Partial<Record<RunnerSetting, Raw>>;

const FLAG_TO_SETTING = new Map<string, RunnerSetting>(
  SETTINGS.filter((s) => s !== "agent" && s !== "token").map((s) => [SPECS[s].flag, s]),
);

/** Settings whose relative paths are resolved against the directory of their source. */
const PATH_SETTINGS = new Set<RunnerSetting>(["workDir", "journalPath"]);

/** Splits `--flag value` / `--flag=value` into a layer; errors are collected, not thrown. */
function parseFlags(argv: readonly string[], cwd: string, problems: string[]) {
  const layer: Layer = {};
  let configPath: string | undefined;
  let insecure = false;
  let ephemeral = false;
  const seen = new Set<string>();
  const once = (flag: string) => {
    if (seen.has(flag)) problems.push(`  ${flag}: given more than once; give it once`);
    seen.add(flag);
  };
  const capabilities: string[] = [];
  const writable: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--token" || arg.startsWith("--token=")) {
      // Not echoed, and its value is skipped rather than reported as a stray argument.
      problems.push(
        `  --token: the runner token is never taken from the command line, where every user of the machine (and the agent, through /proc/<pid>/cmdline) can read it; put it in a file only the runner's user can read (chmod 600) and give ${TOKEN_FILE.flag} <file>, or set env ${SPECS.token.env}`,
      );
      if (arg === "--token" && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) i++;
      continue;
    }
    if (arg === INSECURE_FLAG) {
      once(INSECURE_FLAG);
      insecure = true;
      continue;
    }
    if (arg === EPHEMERAL_FLAG) {
      once(EPHEMERAL_FLAG);
      ephemeral = true;
      continue;
    }
    if (arg === UNSANDBOXED_FLAG) {
      once(UNSANDBOXED_FLAG);
      layer.isolation = { value: "none", source: `flag ${UNSANDBOXED_FLAG}`, base: cwd };
      continue;
    }
    if (
      arg === "--agent" &&
      NAMED_ADAPTERS.includes(argv[i + 1] as AdapterName) &&
      (argv[i + 2] === undefined || argv[i + 2]!.startsWith("--"))
    ) {
      once("--agent");
      layer.agent = { value: argv[i + 1], source: "flag --agent", base: cwd };
      i++;
      continue;
    }
    if (arg === "--agent") {
      if (argv[i + 1] !== "--") {
        problems.push(
          `  --agent: expected an adapter name (${NAMED_ADAPTERS.join(", ")}) or the agent's argv after \`--\`, e.g. --agent -- claude -p (everything after -- is the agent's argv), or --agent-json '["claude","-p"]'`,
        );
        // Skip the words meant for the agent rather than reporting each as unknown.
        while (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) i++;
        continue;
      }
      once("--agent");
      layer.agent = { value: argv.slice(i + 2), source: "flag --agent --", base: cwd };
      break;
    }
    if (arg === "--") {
      problems.push(
        "  --: `--` is only understood after --agent (--agent -- <program> <args…>); to pass the agent, write --agent before it",
      );
      break;
    }
    if (!arg.startsWith("--")) {
      // Not echoed: a stray word may be a secret that lost its flag.
      problems.push(
        `  argument ${i + 1}: unexpected (settings are --flags); see \`conveyor-runner start --help\``,
      );
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const known =
      flag === CONFIG_FLAG ||
      flag === "--agent-json" ||
      flag === TOKEN_FILE.flag ||
      FLAG_TO_SETTING.has(flag);
    if (flag === UNSANDBOXED_FLAG || flag === EPHEMERAL_FLAG) {
      problems.push(`  ${flag}: takes no value; write ${flag} alone`);
      continue;
    }
    if (!known) {
      problems.push(`  ${flag}: unknown flag; see \`conveyor-runner start --help\``);
      continue;
    }
    let value: string | undefined;
    if (eq > 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        problems.push(`  ${flag}: expects a value`);
        continue;
      }
      value = next;
      i++;
    }
    if (flag === CONFIG_FLAG) {
      once(flag);
      configPath = value;
    } else if (flag === "--agent-json") {
      once(flag);
      layer.agent = { value: parseAgentJson(value), source: "flag --agent-json", base: cwd };
    } else if (flag === "--capability") {
      capabilities.push(
        ...value
          .split(",")
          .map((c) => c.trim())
          .filter(Boolean),
      );
      layer.capabilities = { value: capabilities, source: "flag --capability", base: cwd };
    } else if (flag === SPECS.sandboxWritable.flag) {
      writable.push(value);
      layer.sandboxWritable = { value: writable, source: `flag ${flag}`, base: cwd };
    } else if (flag === TOKEN_FILE.flag) {
      once(flag);
      layer.token = { value, source: `flag ${flag}`, base: cwd, fromFile: true };
    } else {
      once(flag);
      layer[FLAG_TO_SETTING.get(flag)!] = { value, source: `flag ${flag}`, base: cwd };
    }
  }
  if (seen.has("--agent") && seen.has("--agent-json")) {
    problems.push(
      "  --agent-json: give the agent either with --agent -- … or --agent-json, not both",
    );
  }
  if (seen.has(UNSANDBOXED_FLAG) && seen.has(SPECS.isolation.flag)) {
    problems.push(
      `  ${UNSANDBOXED_FLAG}: give either ${UNSANDBOXED_FLAG} or ${SPECS.isolation.flag}, not both`,
    );
  }
  return { layer, configPath, insecure, ephemeral };
}

/** `["claude","-p"]` → argv; anything that is not JSON is kept as the string (refused later). */
function parseAgentJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseEnv(
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
  problems: string[],
): Layer {
  const layer: Layer = {};
  const tokenFile = env[TOKEN_FILE.env]?.trim();
  if (tokenFile) {
    if (env[SPECS.token.env]?.trim()) {
      problems.push(
        `  env ${TOKEN_FILE.env}: give either ${SPECS.token.env} or ${TOKEN_FILE.env}, not both`,
      );
    }
    layer.token = { value: tokenFile, source: `env ${TOKEN_FILE.env}`, base: cwd, fromFile: true };
  }
  for (const setting of SETTINGS) {
    if (setting === "token" && layer.token) continue;
    const name = SPECS[setting].env;
    const value = env[name]?.trim();
    if (value === undefined || value === "") continue;
    let parsed: unknown = value;
    if (setting === "agent") parsed = parseAgentJson(value);
    if (setting === "capabilities") {
      parsed = value
        .split(",")
        .map((c) => c.trim())
        .filter(Boolean);
    }
    if (setting === "sandboxWritable") parsed = value.split(delimiter).filter(Boolean);
    layer[setting] = { value: parsed, source: `env ${name}`, base: cwd };
  }
  return layer;
}

const KEY_TO_SETTING = new Map<string, RunnerSetting>(SETTINGS.map((s) => [SPECS[s].key, s]));

function parseFile(
  path: string,
  shown: string,
  problems: string[],
): { layer: Layer; read: boolean } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    problems.push(`  ${shown}: cannot read the config file (${(error as Error).message})`);
    return { layer: {}, read: false };
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const at = error.linePos?.[0];
      problems.push(
        `  ${shown}${at ? `:${at.line}:${at.col}` : ""}: not valid YAML (${error.message.split("\n")[0]})`,
      );
    }
    return { layer: {}, read: true };
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return { layer: {}, read: true };
  if (typeof data !== "object" || Array.isArray(data)) {
    problems.push(`  ${shown}: expected a mapping of settings (server_url: …, agent: […])`);
    return { layer: {}, read: true };
  }
  const layer: Layer = {};
  const base = dirname(path);
  const entries = data as Record<string, unknown>;
  if (entries[SPECS.token.key] != null) {
    const problem = privateFileProblem(path);
    if (problem) {
      problems.push(
        `  ${shown}:${SPECS.token.key}: the file holds the runner token but ${problem}: chmod 600 ${shown}, or move the token to a file of its own (${TOKEN_FILE.key})`,
      );
    }
    if (entries[TOKEN_FILE.key] != null) {
      problems.push(
        `  ${shown}:${TOKEN_FILE.key}: give either ${SPECS.token.key} or ${TOKEN_FILE.key}, not both`,
      );
    }
  }
  for (const [key, value] of Object.entries(entries)) {
    if (key === TOKEN_FILE.key) {
      if (value === null) continue;
      if (entries[SPECS.token.key] == null) {
        layer.token = { value, source: `${shown}:${key}`, base, fromFile: true };
      }
      continue;
    }
    const setting = KEY_TO_SETTING.get(key);
    if (!setting) {
      const guess = closest(key, [...KEY_TO_SETTING.keys(), TOKEN_FILE.key]);
      problems.push(
        `  ${shown}:${key}: unknown setting${guess ? ` (did you mean ${guess}?)` : ""}; known settings: ${[...KEY_TO_SETTING.keys(), TOKEN_FILE.key].join(", ")}`,
      );
      continue;
    }
    if (value === null) continue;
    layer[setting] = { value, source: `${shown}:${key}`, base };
  }
  return { layer, read: true };
}

/** The known key nearest to a typo, if it is near enough to be a likely slip. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase().replace(/-/g, "_"), candidate);
    if (!best || distance < best.distance) best = { candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.candidate.length / 4))
    ? best.candidate
    : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Shows a value in an error, except the token, which is never echoed. */
function shown(setting: RunnerSetting, value: unknown): string {
  if (setting === "token") return "";
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value);
  if (text === undefined) return "";
  return `, got ${text.length > 80 ? `${text.slice(0, 77)}…` : text}`;
}

function missing(setting: RunnerSetting, configShown: string): string {
  const spec = SPECS[setting];
  if (setting === "token") {
    return `  token: the runner token is required; set ${TOKEN_FILE.flag} <file> (chmod 600), env ${spec.env} or ${TOKEN_FILE.env}, or ${TOKEN_FILE.key} in ${configShown}`;
  }
  const how = setting === "agent" ? "--agent -- <program> <args…>, --agent-json" : spec.flag;
  return `  ${setting}: the ${spec.what} is required; set ${how}, env ${spec.env}, or ${spec.key} in ${configShown}`;
}

/**
 * Why a file that holds a secret is not private enough (readable or writable by its group or by
 * others), or undefined when it is fine. Only the mode is checked: the owner is whoever the
 * operator chose.
 */
export function privateFileProblem(path: string): string | undefined {
  if (process.platform === "win32") return undefined;
  const mode = statSync(path).mode & 0o777;
  return mode & 0o077
    ? `is readable or writable by its group or others (mode ${mode.toString(8).padStart(4, "0")})`
    : undefined;
}

/** Reads a token file: a regular, private file holding the token (surrounding blanks ignored). */
function readTokenFile(path: string): { token: string } | { problem: string } {
  let info: ReturnType<typeof statSync>;
  try {
    info = statSync(path);
  } catch (error) {
    return {
      problem: `cannot read the token file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    };
  }
  if (!info.isFile()) return { problem: `the token file ${path} is not a regular file` };
  if (info.size > 4096) return { problem: `the token file ${path} is larger than 4 KiB` };
  const problem = privateFileProblem(path);
  if (problem) {
    return {
      problem: `the token file ${path} ${problem}; make it readable by the runner's user only: chmod 600 ${path}`,
    };
  }
  try {
    return { token: readFileSync(path, "utf8").trim() };
  } catch (error) {
    return {
      problem: `cannot read the token file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    };
  }
}

/**
 * Reads the runner's settings from, in increasing precedence, a YAML file (`conveyor-runner.yml`
 * in `cwd`, or `--config <path>` / `CONVEYOR_RUNNER_CONFIG`), environment variables and flags.
 * Throws {@link RunnerConfigError} naming every bad setting, where it came from and what is
 * expected; the token is never echoed. Relative paths from the file are resolved against the
 * file's directory, others against `cwd`.
 */
export function loadRunnerConfig(options: LoadRunnerConfigOptions): RunnerConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const hostname = options.hostname ?? osHostname;
  const problems: string[] = [];

  const flags = parseFlags(options.argv, cwd, problems);
  const envLayer = parseEnv(env, cwd, problems);

  const envConfig = env[CONFIG_ENV]?.trim() || undefined;
  const named = flags.configPath ?? envConfig;
  const configPath = resolve(cwd, named ?? RUNNER_CONFIG_FILE);
  const configShown = isAbsolute(named ?? "")
    ? configPath
    : relative(cwd, configPath) || configPath;
  let fileLayer: Layer = {};
  let configFile: string | undefined;
  if (named !== undefined || existsSync(configPath)) {
    const where = flags.configPath !== undefined ? `flag ${CONFIG_FLAG}` : `env ${CONFIG_ENV}`;
    if (named !== undefined && !existsSync(configPath)) {
      problems.push(`  ${where}: the config file ${configShown} does not exist`);
    } else {
      const parsed = parseFile(configPath, configShown, problems);
      fileLayer = parsed.layer;
      if (parsed.read) configFile = configPath;
    }
  }

  const values: Partial<Record<RunnerSetting, unknown>> = {};
  const sources: Partial<Record<RunnerSetting, string>> = {};
  let tokenFile: string | undefined;
  for (const setting of SETTINGS) {
    let raw = flags.layer[setting] ?? envLayer[setting] ?? fileLayer[setting];
    if (raw?.fromFile) {
      if (typeof raw.value !== "string" || raw.value.trim() === "") {
        problems.push(`  token (${raw.source}): expected the path of a file holding the token`);
        continue;
      }
      tokenFile = resolve(raw.base, raw.value.trim());
      const read = readTokenFile(tokenFile);
      if ("problem" in read) {
        problems.push(`  token (${raw.source}): ${read.problem}`);
        continue;
      }
      raw = { ...raw, value: read.token, source: `${raw.source} (${tokenFile})` };
    }
    if (raw === undefined) {
      if (OPTIONAL_SETTINGS.has(setting)) {
        sources[setting] = "default";
        continue;
      }
      const fallback = DEFAULTS[setting];
      if (!fallback) {
        problems.push(missing(setting, configShown));
        continue;
      }
      const parsed = SCHEMAS[setting].safeParse(fallback(hostname));
      if (!parsed.success) {
        problems.push(
          `  ${setting} (default): ${firstMessage(parsed.error)}; set ${SPECS[setting].flag} or env ${SPECS[setting].env}`,
        );
        continue;
      }
      values[setting] = parsed.data;
      sources[setting] = "default";
      if (PATH_SETTINGS.has(setting)) values[setting] = resolve(cwd, parsed.data as string);
      continue;
    }
    if (setting === "agent" && NAMED_ADAPTERS.includes(raw.value as AdapterName)) {
      // A named adapter (`--agent claude`, `agent: claude`) builds its argv for each task.
      values.agent = raw.value;
      sources.agent = raw.source;
      continue;
    }
    const parsed = SCHEMAS[setting].safeParse(raw.value);
    if (!parsed.success) {
      problems.push(
        `  ${setting} (${raw.source}): ${firstMessage(parsed.error)}${shown(setting, raw.value)}`,
      );
      continue;
    }
    values[setting] = PATH_SETTINGS.has(setting)
      ? resolve(raw.base, parsed.data as string)
      : setting === "sandboxWritable"
        ? (parsed.data as string[]).map((path) => resolve(raw.base, path))
        : parsed.data;
    sources[setting] = raw.source;
  }

  // The runner token goes in the Authorization header of every request: in the clear over plain
  // http, to anyone on the path. Only this machine is exempt, unless the operator says otherwise.
  if (typeof values.serverUrl === "string" && !flags.insecure) {
    const url = new URL(values.serverUrl);
    if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
      problems.push(
        `  serverUrl (${sources.serverUrl}): plain http:// to a server beyond this machine would send the runner token in the clear; use https:// (the socket then uses wss://), or give ${INSECURE_FLAG} to accept that`,
      );
    }
  }
  if (
    typeof values.idleMinutes === "number" &&
    typeof values.wallClockMinutes === "number" &&
    values.idleMinutes > values.wallClockMinutes
  ) {
    problems.push(
      `  idleMinutes (${sources.idleMinutes}): expected at most the wall-clock limit of ${values.wallClockMinutes} minutes (${sources.wallClockMinutes}), got ${values.idleMinutes}`,
    );
  }
  if (typeof values.workDir === "string" && typeof values.journalPath === "string") {
    const inside = relative(values.workDir, values.journalPath);
    if (!inside.startsWith("..") && !isAbsolute(inside)) {
      problems.push(
        `  journalPath (${sources.journalPath}): expected a path outside the work dir ${values.workDir} (${sources.workDir}), where workspaces are deleted`,
      );
    }
  }

  // A writable path must not uncover what the sandbox hides: the agent could reach the work dir of
  // other tasks, the journal, or the files that hold the token through it.
  const secretPaths = [
    ["the work dir", values.workDir],
    ["the journal", values.journalPath],
    ["the config file", configFile],
    ["the token file", tokenFile],
  ] as const;
  for (const path of Array.isArray(values.sandboxWritable) ? values.sandboxWritable : []) {
    for (const [what, secret] of secretPaths) {
      if (typeof secret !== "string") continue;
      const inside = relative(path, secret);
      if (inside === "" || (!inside.startsWith("..") && !isAbsolute(inside))) {
        problems.push(
          `  sandboxWritable (${sources.sandboxWritable}): ${path} holds ${what} ${secret}; name a directory that holds none of the runner's own files`,
        );
      }
    }
  }

  // A named adapter builds the argv itself; the config keeps its program for doctor and the sandbox.
  let adapter: AdapterName = "command";
  if (typeof values.agent === "string") {
    adapter = values.agent as AdapterName;
    values.agent = [adapter];
  } else if (values.model !== undefined && values.agent !== undefined) {
    problems.push(
      `  model (${sources.model}): --model applies to a named adapter (--agent ${NAMED_ADAPTERS.join("|")}); with --agent -- <argv…>, put the model in the argv`,
    );
  }

  const ephemeralEnv = env[EPHEMERAL_ENV]?.trim().toLowerCase();
  if (ephemeralEnv && !["1", "true", "0", "false"].includes(ephemeralEnv)) {
    problems.push(`  env ${EPHEMERAL_ENV}: expected 1, true, 0 or false`);
  }
  const ephemeral = flags.ephemeral || ephemeralEnv === "1" || ephemeralEnv === "true";
  if (ephemeral && typeof values.slots === "number" && values.slots !== 1) {
    problems.push(
      `  slots (${sources.slots}): ${EPHEMERAL_FLAG} takes one task, so it runs with one slot; drop the slots setting`,
    );
  }

  if (problems.length > 0) {
    // Belt and braces: whatever a message quotes, a runner token never leaves this function.
    const message = `Invalid runner configuration:\n${problems.join("\n")}`;
    throw new RunnerConfigError(message.replace(/cvr_[A-Za-z0-9_-]+/g, "cvr_…"));
  }
  return {
    ...(values as Omit<RunnerConfig, "configFile" | "tokenFile" | "sources" | "adapter">),
    model: values.model as string | undefined,
    adapter,
    ephemeral,
    configFile,
    tokenFile,
    sources: sources as Record<RunnerSetting, string>,
  };
}

/** Whether a URL's host is this machine (`localhost`, `127.0.0.0/8`, `[::1]`). */
export function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === "localhost" ||
    hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/** The runner socket's URL for a server URL: `https://h/p` → `wss://h/p/runners/v1`. */
export function runnerSocketUrl(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, "ws").replace(/\/+$/, "")}/runners/v1`;
}

/** Help text for `conveyor-runner start` (and `doctor`, which reads the same settings). */
export const RUNNER_CONFIG_USAGE = `Usage: conveyor-runner start [options] [--agent <adapter> | --agent -- <program> <args…>]
       conveyor-runner doctor [options]

Settings come from ${RUNNER_CONFIG_FILE} in the current directory (or --config <path> /
${CONFIG_ENV}), then environment variables, then flags; a later source wins.

  flag                        env                                 ${RUNNER_CONFIG_FILE}
  --server <url>              CONVEYOR_SERVER_URL                 server_url          required; http(s)
  --token-file <file>         CONVEYOR_RUNNER_TOKEN_FILE          token_file          the token, in a chmod 600 file
                              CONVEYOR_RUNNER_TOKEN               token               or the token itself
  --name <name>               CONVEYOR_RUNNER_NAME                name                default: host name
  --capability <cap>          CONVEYOR_RUNNER_CAPABILITIES (a,b)  capabilities        repeatable
  --slots <n>                 CONVEYOR_RUNNER_SLOTS               slots               1-64, default 1
  --work-dir <dir>            CONVEYOR_RUNNER_WORK_DIR            work_dir            default .conveyor-runner/work
  --journal <file>            CONVEYOR_RUNNER_JOURNAL             journal             default .conveyor-runner/journal.json
  --agent <adapter>           CONVEYOR_AGENT_COMMAND              agent               required: claude, codex, gemini, aider, opencode,
  --agent -- <argv…>          (a name or a JSON array)                                or any command as an argv array
  --agent-json '<json>'
  --model <name>              CONVEYOR_AGENT_MODEL                model               the model a named adapter asks for
  --wall-clock-minutes <n>    CONVEYOR_RUNNER_WALL_CLOCK_MINUTES  wall_clock_minutes  default 60
  --idle-minutes <n>          CONVEYOR_RUNNER_IDLE_MINUTES        idle_minutes        default 10
  --output-cap-bytes <n>      CONVEYOR_RUNNER_OUTPUT_CAP_BYTES    output_cap_bytes    default 10485760
  --isolation <mode>          CONVEYOR_RUNNER_ISOLATION           isolation           auto|bwrap|users|none, default auto
  --unsandboxed                                                                       the same as --isolation none
  --insecure                                                                          allow plain http:// to a server beyond this machine
  --ephemeral                 CONVEYOR_RUNNER_EPHEMERAL=1                             take one task, then drain and exit 0 (one slot);
                                                                                      for a one-time credential (conveyor runners jit)
  --network <mode>            CONVEYOR_RUNNER_NETWORK             network             host|none, default host
  --sandbox-writable <dir>    CONVEYOR_RUNNER_SANDBOX_WRITABLE (a:b) sandbox_writable repeatable; bwrap only
  --config <file>             ${CONFIG_ENV}

The agent is an argv array, never a shell command: issue text must not reach a shell. Everything
after "--agent --" is the agent's argv, e.g.
  conveyor-runner start --server https://conveyor.example.com --token-file /etc/conveyor/token --agent -- claude -p --permission-mode acceptEdits
The token is never taken from the command line (--token is refused): command lines are visible to
every user of the machine. The agent and the verify commands run in a sandbox (bwrap, or a user per
slot when the runner is root) that cannot see the runner's process, token, config, journal or
other tasks' workspaces; without one the runner refuses to start unless --unsandboxed is given.
`;
