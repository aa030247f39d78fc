import { loadConfig } from "../config.ts";
import { ApiTokenName, ApiTokenRequest } from "../core/api-tokens.ts";
import type { ApiTokenJson } from "../http/token-routes.ts";
import {
  type CliOutput,
  type Env,
  expectPositionals,
  formatTime,
  type ParsedArgs,
  parseCommandArgs,
  printJson,
  processOutput,
  renderTable,
  runCli,
  usage,
} from "./cli-support.ts";
import { type AdminApi, openAdminApi, readAnswer } from "./open-admin-api.ts";

export const TOKENS_USAGE = `Usage: conveyor tokens <command>

Commands:
  add <name> [--role read|admin] [--json]
                      create an API token and print it (shown once); the role defaults to read
  list [--json]       every token: role, status, when it was last used
  revoke <name|id> [--json]
                      revoke a token: it stops working at once and its dashboard sessions end
  help                show this help

Roles: read may look (tasks, runners, metrics, the database report); admin may also act (retry,
cancel, runners, tokens, settings, export, import). Send a token as "Authorization: Bearer <token>"
to the admin API, or sign in to the dashboard with it. CONVEYOR_ADMIN_TOKEN is always admin.

Without DATABASE_URL these commands use the embedded database in CONVEYOR_DATA_DIR; while a
server holds it they go through its admin API with CONVEYOR_ADMIN_TOKEN (or CONVEYOR_TOKEN).
With CONVEYOR_URL they go to that server's admin API.`;

/** `conveyor tokens add|list|revoke`. Returns the exit code: 0 done, 1 failed, 2 usage. */
export async function runTokensCommand(
  argv: readonly string[],
  env: Env = process.env,
  out: CliOutput = processOutput,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    out.stderr(`conveyor tokens: missing command: add, list or revoke\n\n${TOKENS_USAGE}\n`);
    return 2;
  }
  if (command === "help" || command === "--help" || command === "-h") {
    out.stdout(`${TOKENS_USAGE}\n`);
    return 0;
  }
  return runCli("tokens", out, async () => {
    if (!["add", "list", "revoke"].includes(command)) {
      throw usage(`unknown command "${command}": expected add, list or revoke`);
    }
    const args = parseCommandArgs(
      rest,
      command === "add" ? { role: { type: "string", short: "r" } } : {},
    );
    if (args.help) {
      out.stdout(`${TOKENS_USAGE}\n`);
      return 0;
    }
    const action = prepare(command, args);
    const api = await openAdminApi(loadConfig(env), env);
    try {
      if (api.via === "server") out.stderr(`conveyor: going through ${api.description}\n`);
      return await action(api, out);
    } finally {
      await api.close();
    }
  });
}

type Action = (api: AdminApi, out: CliOutput) => Promise<number>;

/** Checks the command line before anything is opened, and returns what to do. */
function prepare(command: string, args: ParsedArgs): Action {
  switch (command) {
    case "add": {
      const [name] = expectPositionals(args, ["name"], "add");
      const parsed = ApiTokenRequest.safeParse({
        name,
        ...(args.values.role === undefined ? {} : { role: args.values.role }),
      });
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw usage(`${issue.path[0] === "role" ? "--role" : "name"}: ${issue.message}`);
      }
      return async (api, out) => {
        const created = await readAnswer<{ token: ApiTokenJson; secret: string }>(
          api,
          await api.request("POST", "/tokens", { body: parsed.data }),
          [201],
        );
        if (args.json) {
          printJson(out, created);
          out.stderr("conveyor: store the token now: it cannot be shown again.\n");
        } else {
          out.stdout(renderCreated(created.token, created.secret));
        }
        return 0;
      };
    }
    case "list":
      expectPositionals(args, [], "list");
      return async (api, out) => {
        const { tokens } = await readAnswer<{ tokens: ApiTokenJson[] }>(
          api,
          await api.request("GET", "/tokens"),
        );
        if (args.json) printJson(out, { tokens });
        else out.stdout(renderList(tokens));
        return 0;
      };
    case "revoke": {
      const [ref] = expectPositionals(args, ["name|id"], "revoke");
      if (!ApiTokenName.safeParse(ref).success && !/^[0-9a-f-]{36}$/i.test(ref!)) {
        throw usage(`expected a token's name or id, got "${ref}"`);
      }
      return async (api, out) => {
        const token = await readAnswer<ApiTokenJson>(
          api,
          await api.request("POST", `/tokens/${encodeURIComponent(ref!)}/revoke`),
        );
        out.stdout(
          args.json
            ? `${JSON.stringify(token, null, 2)}\n`
            : `Token ${token.name} is revoked (since ${formatTime(token.revoked_at)}): it no longer works.\n`,
        );
        return 0;
      };
    }
    default:
      throw usage(`unknown command "${command}"`);
  }
}

function renderCreated(token: ApiTokenJson, secret: string): string {
  return [
    `Created token ${token.name} with the ${token.role} role (id ${token.token_id}).`,
    "",
    "The token is below. Store it now (e.g. in your password manager or CI secrets):",
    "it is shown only this once and cannot be shown again.",
    "",
    secret,
    "",
    `Use it as "Authorization: Bearer <token>". Lost it? conveyor tokens revoke ${token.name}, then add another.`,
    "",
  ].join("\n");
}

function renderList(tokens: ApiTokenJson[]): string {
  if (tokens.length === 0) {
    return "No API tokens. Create one with: conveyor tokens add <name> --role read|admin\n";
  }
  return renderTable([
    ["NAME", "ROLE", "STATUS", "LAST USED", "CREATED", "ID"],
    ...tokens.map((t) => [
      t.name,
      t.role,
      t.status,
      formatTime(t.last_used_at),
      formatTime(t.created_at),
      t.token_id,
    ]),
  ]);
}
