import type { Logger } from "pino";
import type { NodeHandler } from "../http/node-handler.ts";

type SetupAppFactory = (options: {
  host: string;
  port: number;
  log: Logger;
  updateEnv?: (env: Record<string, string>) => Record<string, string>;
}) => () => Promise<NodeHandler>;

/**
 * Probot's first-run flow (`/probot`: register the GitHub App from `app.yml`, then write its
 * credentials to `.env`). Probot does not export it, so it is loaded from the file next to Probot's
 * entry point.
 */
export async function createSetupHandler(options: {
  host: string;
  port: number;
  log: Logger;
}): Promise<NodeHandler> {
  const url = new URL("./apps/setup.js", import.meta.resolve("probot"));
  const { setupAppFactory } = (await import(url.href)) as { setupAppFactory: SetupAppFactory };
  return setupAppFactory(options)();
}
