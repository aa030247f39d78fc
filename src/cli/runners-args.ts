import { parseArgs } from "node:util";
import {
  OneTimeRunnerRequest,
  parseDurationSeconds,
  RunnerName,
  RunnerRegistration,
  toFieldErrors,
} from "../core/runner-registration.ts";

export const RUNNERS_USAGE = `Usage: conveyor runners <command>

Commands:
  add <name> [--capability <cap>]... [--repos <owner/name|owner/*>]...
      [--class light|normal|heavy] [--json]
                   register a runner and print its token (shown once)
  jit [--capability <cap>]... [--repos <owner/name|owner/*>]... [--ttl 1h] [--name <name>] [--json]
                   mint a one-time credential: it registers one ephemeral runner, is good
                   for one connection and at most one task, and expires unused after --ttl
                   (60s to 7d, default 1h); run the runner with --ephemeral
  list [--json]    every runner, revoked ones included
  revoke <name> [--json]
                   revoke a runner: its token stops working and its connections close
  help             show this help

Names and capabilities: 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter
or digit. --capability may be repeated or take a comma-separated list; a task labelled
needs:<cap> only goes to runners with <cap>. --class (default normal) orders dispatch: among the
free runners that can take a task, a light one is offered it first, then normal, then heavy, so
heavy machines get work only when no lighter one can take it. It changes no rate limit. --tier is
its old name, still accepted (deprecated).
--repos limits the runner to those repositories (owner/name) or owners (owner/*), repeatable or
comma-separated; without it the runner takes tasks from every repository.

With CONVEYOR_URL these commands go to that server's admin API (CONVEYOR_TOKEN, an admin API
token, or CONVEYOR_ADMIN_TOKEN). Otherwise with DATABASE_URL they use that database; without it
the embedded database in CONVEYOR_DATA_DIR, or, while a server holds it, that server's admin API
with CONVEYOR_ADMIN_TOKEN (or CONVEYOR_TOKEN).`;

export type RunnersArgs =
  | { command: "help" }
  | {
      command: "add";
      registration: RunnerRegistration;
      json: boolean;
      /** Things to tell the operator on stderr (a deprecated flag). */
      notes?: string[];
    }
  | { command: "jit"; request: OneTimeRunnerRequest; json: boolean }
  | { command: "list"; json: boolean }
  | { command: "revoke"; name: string; json: boolean }
  | { command: "usage-error"; message: string; showUsage: boolean };

/** A command line to refuse; the whole usage text only helps when the command itself is wrong. */
const usageError = (message: string, showUsage = false): RunnersArgs => ({
  command: "usage-error",
  message,
  showUsage,
});

/** Parses `conveyor runners …` (argv after `runners`) into a command, or says what is wrong. */
export function parseRunnersArgs(argv: readonly string[]): RunnersArgs {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      return usageError("missing command: add, jit, list or revoke", true);
    case "help":
    case "--help":
    case "-h":
      return { command: "help" };
    case "add":
      return parseAdd(rest);
    case "jit":
      return parseJit(rest);
    case "list":
      return parseWith(rest, {}, (values, positionals) =>
        positionals.length > 0
          ? usageError(`list takes no arguments (got ${positionals.join(" ")})`)
          : { command: "list", json: values.json === true },
      );
    case "revoke":
      return parseWith(rest, {}, (values, positionals) => {
        if (positionals.length !== 1) {
          return usageError(
            positionals.length === 0 ? "revoke needs the runner's name" : "revoke takes one name",
          );
        }
        const name = RunnerName.safeParse(positionals[0]);
        if (!name.success) {
          return usageError(`name: ${toFieldErrors(name.error)[0]?.message ?? "invalid"}`);
        }
        return { command: "revoke", name: name.data, json: values.json === true };
      });
    default:
      return usageError(`unknown command "${command}"`, true);
  }
}

function parseAdd(argv: readonly string[]): RunnersArgs {
  return parseWith(
    argv,
    {
      capability: { type: "string", multiple: true, short: "c" },
      repos: { type: "string", multiple: true },
      class: { type: "string" },
      // Deprecated: the old name of --class.
      tier: { type: "string", short: "t" },
    },
    (values, positionals) => {
      if (positionals.length !== 1) {
        return usageError(
          positionals.length === 0 ? "add needs the runner's name" : "add takes one name",
        );
      }
      const capabilities = listValues(values.capability);
      const parsed = RunnerRegistration.safeParse({
        name: positionals[0],
        capabilities,
        repos: listValues(values.repos),
        ...(values.class === undefined ? {} : { class: values.class }),
        ...(values.tier === undefined ? {} : { tier: values.tier }),
      });
      if (!parsed.success) {
        return usageError(
          toFieldErrors(parsed.error)
            .map((e) => `${flagFor(e.field)}: ${e.message}`)
            .join("\n"),
        );
      }
      return {
        command: "add",
        registration: parsed.data,
        json: values.json === true,
        ...(values.tier === undefined
          ? {}
          : {
              notes: ["--tier is deprecated: use --class (the same setting under a clearer name)"],
            }),
      };
    },
  );
}

function parseJit(argv: readonly string[]): RunnersArgs {
  return parseWith(
    argv,
    {
      capability: { type: "string", multiple: true, short: "c" },
      repos: { type: "string", multiple: true },
      ttl: { type: "string" },
      name: { type: "string" },
    },
    (values, positionals) => {
      if (positionals.length > 0) {
        return usageError(`jit takes no arguments (got ${positionals.join(" ")})`);
      }
      let ttlSeconds: number | undefined;
      if (values.ttl !== undefined) {
        ttlSeconds = parseDurationSeconds(values.ttl as string);
        if (ttlSeconds === undefined) {
          return usageError("--ttl: expected a duration such as 90s, 15m, 1h or 2d");
        }
      }
      const parsed = OneTimeRunnerRequest.safeParse({
        capabilities: listValues(values.capability),
        repos: listValues(values.repos),
        ...(ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds }),
        ...(values.name === undefined ? {} : { name: values.name }),
      });
      if (!parsed.success) {
        return usageError(
          toFieldErrors(parsed.error)
            .map((e) => `${flagFor(e.field)}: ${e.message}`)
            .join("\n"),
        );
      }
      return { command: "jit", request: parsed.data, json: values.json === true };
    },
  );
}

/** A repeatable flag's values, each of which may be a comma-separated list. */
function listValues(value: unknown): string[] {
  return ((value as string[] | undefined) ?? [])
    .flatMap((item) => item.split(","))
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Names a field error after what the operator typed. */
function flagFor(field: string): string {
  if (field.startsWith("capabilities")) return "--capability";
  if (field.startsWith("repos")) return "--repos";
  if (field === "ttl_seconds") return "--ttl";
  if (field === "class") return "--class";
  if (field === "tier") return "--tier";
  return field;
}

type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

function parseWith(
  argv: readonly string[],
  options: OptionSpec,
  then: (values: Record<string, unknown>, positionals: string[]) => RunnersArgs,
): RunnersArgs {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // parseArgs names the option ("Unknown option '--nope'. To specify a positional …"); the
    // first sentence is the useful part.
    return usageError((error as Error).message.split(". ")[0] ?? "invalid arguments");
  }
  if (parsed.values.help) return { command: "help" };
  return then(parsed.values, parsed.positionals);
}
