import { parseArgs } from "node:util";
import { RunnerName, RunnerRegistration, toFieldErrors } from "../core/runner-registration.ts";

export const RUNNERS_USAGE = `Usage: conveyor runners <command>

Commands:
  add <name> [--capability <cap>]... [--tier light|normal|heavy] [--json]
                   register a runner and print its token (shown once)
  list [--json]    every runner, revoked ones included
  revoke <name> [--json]
                   revoke a runner: its token stops working and its connections close
  help             show this help

Names and capabilities: 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter
or digit. --capability may be repeated or take a comma-separated list. The tier sets the runner's
rate limits (default normal).

Without DATABASE_URL these commands use the embedded database in CONVEYOR_DATA_DIR; while a
server holds it, they go through that server's admin API with CONVEYOR_ADMIN_TOKEN.`;

export type RunnersArgs =
  | { command: "help" }
  | { command: "add"; registration: RunnerRegistration; json: boolean }
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
      return usageError("missing command: add, list or revoke", true);
    case "help":
    case "--help":
    case "-h":
      return { command: "help" };
    case "add":
      return parseAdd(rest);
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
      tier: { type: "string", short: "t" },
    },
    (values, positionals) => {
      if (positionals.length !== 1) {
        return usageError(
          positionals.length === 0 ? "add needs the runner's name" : "add takes one name",
        );
      }
      const capabilities = ((values.capability as string[] | undefined) ?? [])
        .flatMap((value) => value.split(","))
        .map((value) => value.trim())
        .filter(Boolean);
      const parsed = RunnerRegistration.safeParse({
        name: positionals[0],
        capabilities,
        ...(values.tier === undefined ? {} : { tier: values.tier }),
      });
      if (!parsed.success) {
        return usageError(
          toFieldErrors(parsed.error)
            .map((e) => `${flagFor(e.field)}: ${e.message}`)
            .join("\n"),
        );
      }
      return { command: "add", registration: parsed.data, json: values.json === true };
    },
  );
}

/** Names a field error after what the operator typed. */
function flagFor(field: string): string {
  if (field.startsWith("capabilities")) return "--capability";
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
