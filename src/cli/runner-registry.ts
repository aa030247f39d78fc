import type { RunnerRegistration } from "../core/runner-registration.ts";
import type { RunnerJson } from "../http/runner-json.ts";

/**
 * Where `conveyor runners` commands go: a database the CLI opened itself, or the admin API of the
 * server that holds the embedded database. Both answer in the API's JSON shape.
 */
export interface RunnerRegistry {
  /** A database this process opened, or the admin API of the server holding the database. */
  readonly via: "database" | "server";
  /** For the operator: where the commands go. */
  readonly description: string;
  add(registration: RunnerRegistration): Promise<{ runner: RunnerJson; token: string }>;
  list(): Promise<RunnerJson[]>;
  /** The revoked runner, or undefined when there is no runner of that name. */
  revoke(name: string): Promise<RunnerJson | undefined>;
  close(): Promise<void>;
}
