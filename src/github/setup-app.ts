import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";

/** A Node request handler in Probot's style: true when it answered the request. */
export type NodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
) => // biome-ignore lint/suspicious/noConfusingVoidType: Probot's own handler type returns void
boolean | void | Promise<boolean | void>;

type SetupAppFactory = (options: {
  host: string;
  port: number;
  log: Logger;
  updateEnv?: (env: Record<string, string>) => Record<string, string>;
  SmeeClient?: { createChannel(): Promise<string> };
}) => () => Promise<NodeHandler>;

/**
 * Probot's first-run flow (`/probot`: register the GitHub App from `app.yml`, then write its
 * credentials to `.env`), with the page's styles and images (`/probot/static/*`). Probot does not
 * export it, so it is loaded from the files next to Probot's entry point.
 *
 * Probot's start-up talk is left out: its banner says "custom routes will not work until APP_ID and
 * PRIVATE_KEY are configured", which is not true of Conveyor (the dashboard, API, health checks
 * and metrics work), and Conveyor says what to do itself once it listens (`startup-message.ts`).
 * Nor does it open a smee.io webhook proxy channel: Conveyor runs no proxy client, so GitHub's
 * deliveries would go nowhere.
 */
export async function createSetupHandler(options: {
  host: string;
  port: number;
  log: Logger;
}): Promise<NodeHandler> {
  const { setupAppFactory } = (await importFromProbot("./apps/setup.js")) as {
    setupAppFactory: SetupAppFactory;
  };
  const { staticFilesHandler } = (await importFromProbot("./server/handlers/static-files.js")) as {
    staticFilesHandler: NodeHandler;
  };
  const log = quietUntilReady(options.log);
  const setup = await setupAppFactory({
    host: options.host,
    port: options.port,
    log: log.logger,
    SmeeClient: {
      createChannel: () => Promise.reject(new Error("Conveyor runs no webhook proxy")),
    },
  })();
  log.ready();
  return async (req, res) =>
    (await staticFilesHandler(req, res)) || setup(req, withOneDoctype(res));
}

async function importFromProbot(path: string): Promise<unknown> {
  return import(new URL(path, import.meta.resolve("probot")).href);
}

/**
 * A logger that drops info and warn records until `ready()`: Probot's set-up writes its banner and
 * smee notices then. Later records (the "restart the server" note after registering) go through.
 */
function quietUntilReady(log: Logger): { logger: Logger; ready(): void } {
  let quiet = true;
  const silent = () => {};
  const logger = new Proxy(log, {
    get(target, property, receiver) {
      if (quiet && (property === "info" || property === "warn")) return silent;
      return Reflect.get(target, property, receiver);
    },
  });
  return {
    logger,
    ready() {
      quiet = false;
    },
  };
}

/**
 * Probot 14's setup page starts with `<!DOCTYPE html>` twice; a page sent as one string gets
 * exactly one.
 */
function withOneDoctype(res: ServerResponse): ServerResponse {
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.end = ((chunk?: unknown, ...rest: unknown[]) =>
    end(typeof chunk === "string" ? oneDoctype(chunk) : chunk, ...rest)) as typeof res.end;
  return res;
}

/** Collapses a run of leading doctype declarations into one; other text is returned unchanged. */
export function oneDoctype(text: string): string {
  return text.replace(/^(?:\s*<!DOCTYPE html>)+\s*/i, "<!DOCTYPE html>\n");
}
