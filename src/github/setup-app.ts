import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { DEFAULT_WEBHOOK_PATH } from "../http/create-http-app.ts";
import type { NodeHandler } from "../http/node-handler.ts";

type SetupAppFactory = (options: {
  host: string;
  port: number;
  log: Logger;
  updateEnv?: (env: Record<string, string>) => Record<string, string>;
  SmeeClient?: { createChannel(): Promise<string> };
}) => () => Promise<NodeHandler>;

interface ManifestCreation {
  readonly pkg: { name?: string; version?: string; description?: string };
  readonly createAppUrl: string;
  getManifest(options: { pkg: unknown; baseUrl: string }): string;
}

type SetupView = (options: {
  name?: string;
  version?: string;
  description?: string;
  createAppUrl: string;
  manifest: string;
}) => string;

/**
 * Probot's first-run flow (`/probot`: register the GitHub App from `app.yml`, then write its
 * credentials to `.env`), with the page's styles and images (`/probot/static/*`). Probot does not
 * export it, so it is loaded from the files next to Probot's entry point.
 *
 * Conveyor renders the `/probot` page itself, from Probot's manifest and view, because Probot's
 * page starts with `<!DOCTYPE html>` twice, puts the manifest into an attribute unescaped, and
 * registers the webhook at `<base URL>/`, where Conveyor has no webhook route: here it is
 * `<base URL>/api/github/webhooks` (unless `app.yml` or `WEBHOOK_PROXY_URL` names one).
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
  const { ManifestCreation } = (await importFromProbot("./manifest-creation.js")) as {
    ManifestCreation: new () => ManifestCreation;
  };
  const { setupView } = (await importFromProbot("./views/setup.js")) as { setupView: SetupView };
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
  const creation = new ManifestCreation();

  return async (req, res) => {
    if (req.method === "GET" && req.url?.split("?")[0] === "/probot") {
      const pkg = creation.pkg;
      const baseUrl = requestBaseUrl(req);
      const manifest = conveyorManifest(creation.getManifest({ pkg, baseUrl }), baseUrl);
      const page = setupView({
        name: pkg.name,
        version: pkg.version,
        description: pkg.description,
        createAppUrl: creation.createAppUrl,
        manifest: escapeAttribute(manifest),
      });
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(oneDoctype(page));
      return true;
    }
    return (await staticFilesHandler(req, res)) || setup(req, res);
  };
}

async function importFromProbot(path: string): Promise<unknown> {
  return import(new URL(path, import.meta.resolve("probot")).href);
}

/**
 * The address the browser used, as Probot works it out (a proxy's `X-Forwarded-*` first): GitHub
 * sends the browser back there after registering.
 */
function requestBaseUrl(req: IncomingMessage): string {
  const forwardedProto = req.headers["x-forwarded-proto"];
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted;
  const protocol =
    (typeof forwardedProto === "string" ? forwardedProto : forwardedProto?.[0])
      ?.split(",")[0]
      ?.trim() || (encrypted ? "https" : "http");
  const forwardedHost = req.headers["x-forwarded-host"];
  const host =
    (typeof forwardedHost === "string" ? forwardedHost : req.headers.host) ?? "localhost";
  return `${protocol}://${host}`;
}

/** Probot's manifest with the webhook at Conveyor's webhook route instead of `<base URL>/`. */
export function conveyorManifest(probotManifest: string, baseUrl: string): string {
  const manifest = JSON.parse(probotManifest) as { hook_attributes?: { url?: string } };
  if (manifest.hook_attributes?.url === `${baseUrl}/`) {
    manifest.hook_attributes.url = `${baseUrl}${DEFAULT_WEBHOOK_PATH}`;
  }
  return JSON.stringify(manifest);
}

/** Text for a quoted HTML attribute value (either quote); the browser decodes it back. */
export function escapeAttribute(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/'/g, "&#39;")
    .replace(/"/g, "&quot;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
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

/** Collapses a run of leading doctype declarations into one (Probot 14's setup view has two). */
export function oneDoctype(text: string): string {
  return text.replace(/^(?:\s*<!DOCTYPE html>)+\s*/i, "<!DOCTYPE html>\n");
}
