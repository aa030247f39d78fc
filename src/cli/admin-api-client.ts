import type { FieldError, RunnerRegistration } from "../core/runner-registration.ts";
import type { RunnerJson } from "../http/runner-json.ts";
import { CliError } from "./cli-error.ts";
import type { RunnerRegistry } from "./runner-registry.ts";

interface ErrorBody {
  error?: string;
  errors?: FieldError[];
}

/**
 * The runner commands through a running server's admin API (`/api/runners`), for when that server
 * holds the embedded database. Every failure becomes a {@link CliError} that says what to fix.
 */
export function createAdminApiClient(options: {
  url: string;
  adminToken: string;
  /** How the operator should think of this server (e.g. "the server at … (process 12)"). */
  description: string;
  timeoutMs?: number;
}): RunnerRegistry {
  const { url, adminToken, description } = options;

  async function call(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    let response: Response;
    try {
      response = await fetch(`${url}/api${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
      });
    } catch (error) {
      // fetch hides the reason (ECONNREFUSED, …) in `cause`.
      const cause = (error as Error).cause;
      const reason = cause instanceof Error ? cause.message : (error as Error).message;
      throw new CliError(
        `cannot reach ${description}: ${reason}. ` +
          "Is it still running? If it stopped, run the command again.",
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text.slice(0, 200) };
    }
    return { status: response.status, json };
  }

  function fail(status: number, json: unknown): never {
    const body = (json ?? {}) as ErrorBody;
    switch (status) {
      case 401:
        throw new CliError(
          `${description} refused the admin token: CONVEYOR_ADMIN_TOKEN here differs from the server's. ` +
            "Set it to the value the server was started with.",
        );
      case 503:
        throw new CliError(
          `${description} cannot do this: ${body.error ?? "service unavailable"}. ` +
            "Or stop the server and run this command again to use the database directly.",
        );
      case 422:
        throw new CliError(
          (body.errors ?? []).map((e) => `${e.field}: ${e.message}`).join("\n") ||
            body.error ||
            "invalid request",
          2,
        );
      case 409:
        throw new CliError(body.error ?? "conflict");
      default:
        throw new CliError(`${description} answered HTTP ${status}: ${body.error ?? "no details"}`);
    }
  }

  return {
    via: "server",
    description,
    async add(registration: RunnerRegistration) {
      const { status, json } = await call("POST", "/runners", registration);
      if (status !== 201) fail(status, json);
      return json as { runner: RunnerJson; token: string };
    },
    async list() {
      const { status, json } = await call("GET", "/runners");
      if (status !== 200) fail(status, json);
      return (json as { runners: RunnerJson[] }).runners;
    },
    async revoke(name: string) {
      const { status, json } = await call("POST", `/runners/${encodeURIComponent(name)}/revoke`);
      // A 404 for the name, not for a route this server lacks.
      if (status === 404 && (json as ErrorBody).error === `no runner named ${name}`) {
        return undefined;
      }
      if (status !== 200) fail(status, json);
      return json as RunnerJson;
    },
    async close() {},
  };
}
