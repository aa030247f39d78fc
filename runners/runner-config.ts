import { existsSync, readFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";

/** The file `conveyor-runner start` reads from its working directory when no other is named. */
export const RUNNER_CONFIG_FILE = "conveyor-runner.yml";

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
  /** The agent command as an argv array; it is never run through a shell. */
  agent: string[];
  wallClockMinutes: number;
  idleMinutes: number;
  outputCapBytes: number;
  /** The YAML file that was read, if any (absolute). */
  configFile: string | undefined;
  /** Where each setting came from: `flag --slots`, `env CONVEYOR_RUNNER_SLOTS`, `<file>:slots`, `default`. */
  sources: Record<RunnerSetting, string>;
}

export type RunnerSetting = Exclude<keyof RunnerConfig, "configFile" | "sources">;

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
  token: { flag: "--token", env: "CONVEYOR_RUNNER_TOKEN", key: "token", what: "runner token" },
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
};

const SETTINGS = Object.keys(SPECS) as RunnerSetting[];
const CONFIG_FLAG = "--config";
const CONFIG_ENV = "CONVEYOR_RUNNER_CONFIG";

const ARGV_EXPLANATION =
  'expected an argv array such as ["claude", "-p"], not a single string: Conveyor runs the agent ' +
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
  wallClockMinutes: minutes(MAX_MINUTES, "how long one task may run"),
  idleMinutes: minutes(MAX_MINUTES, "how long the agent may stay silent"),
  outputCapBytes: wholeNumber(
    1024,
    100 * 1024 * 1024,
    "how many bytes of output the agent may print",
  ),
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
};

/** A raw value and where it came from; `base` is the directory a relative path is resolved in. */
interface Raw {
  value: unknown;
  source: string;
  base: string;
}

type Layer = Partial<Record<RunnerSetting, Raw>>;

const FLAG_TO_SETTING = new Map<string, RunnerSetting>(
  SETTINGS.filter((s) => s !== "agent").map((s) => [SPECS[s].flag, s]),
);

/** Splits `--flag value` / `--flag=value` into a layer; errors are collected, not thrown. */
function parseFlags(argv: readonly string[], cwd: string, problems: string[]) {
  const layer: Layer = {};
  let configPath: string | undefined;
  const seen = new Set<string>();
  const once = (flag: string) => {
    if (seen.has(flag)) problems.push(`  ${flag}: given more than once; give it once`);
    seen.add(flag);
  };
  const capabilities: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--agent") {
      if (argv[i + 1] !== "--") {
        problems.push(
          "  --agent: expected the agent's argv after `--`, e.g. --agent -- claude -p (everything after -- is the agent's argv), or --agent-json '[\"claude\",\"-p\"]'",
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
    const known = flag === CONFIG_FLAG || flag === "--agent-json" || FLAG_TO_SETTING.has(flag);
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
  return { layer, configPath };
}

/** `["claude","-p"]` → argv; anything that is not JSON is kept as the string (refused later). */
function parseAgentJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseEnv(env: Readonly<Record<string, string | undefined>>, cwd: string): Layer {
  const layer: Layer = {};
  for (const setting of SETTINGS) {
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
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const setting = KEY_TO_SETTING.get(key);
    if (!setting) {
      const guess = closest(key, [...KEY_TO_SETTING.keys()]);
      problems.push(
        `  ${shown}:${key}: unknown setting${guess ? ` (did you mean ${guess}?)` : ""}; known settings: ${[...KEY_TO_SETTING.keys()].join(", ")}`,
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
  const how = setting === "agent" ? "--agent -- <program> <args…>, --agent-json" : spec.flag;
  return `  ${setting}: the ${spec.what} is required; set ${how}, env ${spec.env}, or ${spec.key} in ${configShown}`;
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
  const envLayer = parseEnv(env, cwd);

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
  for (const setting of SETTINGS) {
    const raw = flags.layer[setting] ?? envLayer[setting] ?? fileLayer[setting];
    if (raw === undefined) {
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
      if (setting === "workDir" || setting === "journalPath") {
        values[setting] = resolve(cwd, parsed.data as string);
      }
      continue;
    }
    const parsed = SCHEMAS[setting].safeParse(raw.value);
    if (!parsed.success) {
      problems.push(
        `  ${setting} (${raw.source}): ${firstMessage(parsed.error)}${shown(setting, raw.value)}`,
      );
      continue;
    }
    values[setting] =
      setting === "workDir" || setting === "journalPath"
        ? resolve(raw.base, parsed.data as string)
        : parsed.data;
    sources[setting] = raw.source;
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

  if (problems.length > 0) {
    // Belt and braces: whatever a message quotes, a runner token never leaves this function.
    const message = `Invalid runner configuration:\n${problems.join("\n")}`;
    throw new RunnerConfigError(message.replace(/cvr_[A-Za-z0-9_-]+/g, "cvr_…"));
  }
  return {
    ...(values as Omit<RunnerConfig, "configFile" | "sources">),
    configFile,
    sources: sources as Record<RunnerSetting, string>,
  };
}

/** The runner socket's URL for a server URL: `https://h/p` → `wss://h/p/runners/v1`. */
export function runnerSocketUrl(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, "ws").replace(/\/+$/, "")}/runners/v1`;
}

/** Help text for `conveyor-runner start` (and `doctor`, which reads the same settings). */
export const RUNNER_CONFIG_USAGE = `Usage: conveyor-runner start [options] [--agent -- <program> <args…>]
       conveyor-runner doctor [options]

Settings come from ${RUNNER_CONFIG_FILE} in the current directory (or --config <path> /
${CONFIG_ENV}), then environment variables, then flags; a later source wins.

  flag                        env                                 ${RUNNER_CONFIG_FILE}
  --server <url>              CONVEYOR_SERVER_URL                 server_url          required; http(s)
  --token <cvr_…>             CONVEYOR_RUNNER_TOKEN               token               required
  --name <name>               CONVEYOR_RUNNER_NAME                name                default: host name
  --capability <cap>          CONVEYOR_RUNNER_CAPABILITIES (a,b)  capabilities        repeatable
  --slots <n>                 CONVEYOR_RUNNER_SLOTS               slots               1-64, default 1
  --work-dir <dir>            CONVEYOR_RUNNER_WORK_DIR            work_dir            default .conveyor-runner/work
  --journal <file>            CONVEYOR_RUNNER_JOURNAL             journal             default .conveyor-runner/journal.json
  --agent -- <argv…>          CONVEYOR_AGENT_COMMAND (JSON array) agent               required; an argv array
  --agent-json '<json>'
  --wall-clock-minutes <n>    CONVEYOR_RUNNER_WALL_CLOCK_MINUTES  wall_clock_minutes  default 60
  --idle-minutes <n>          CONVEYOR_RUNNER_IDLE_MINUTES        idle_minutes        default 10
  --output-cap-bytes <n>      CONVEYOR_RUNNER_OUTPUT_CAP_BYTES    output_cap_bytes    default 10485760
  --config <file>             ${CONFIG_ENV}

The agent is an argv array, never a shell command: issue text must not reach a shell. Everything
after "--agent --" is the agent's argv, e.g.
  conveyor-runner start --server https://conveyor.example.com --agent -- claude -p --permission-mode acceptEdits
Prefer CONVEYOR_RUNNER_TOKEN to --token: command lines are visible to other users in process lists.
`;
