import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { DEFAULT_WEBHOOK_PATH } from "../http/create-http-app.ts";
import type { NodeHandler } from "../http/node-handler.ts";
import { SETUP_CODE_COOKIE, SETUP_CODE_PARAMETER, type SetupGuard } from "./setup-access.ts";

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

export interface SetupHandlerOptions {
  host: string;
  port: number;
  log: Logger;
  /** `CONVEYOR_PUBLIC_URL`: where GitHub reaches this server, when set. */
  publicUrl: string | undefined;
  /** `WEBHOOK_PROXY_URL`: a webhook proxy channel (local development), when set. */
  webhookProxyUrl: string | undefined;
  /** Who may write credentials: this machine, or whoever has the code from the log. */
  guard: SetupGuard;
}

/** Why a request to a route that writes credentials was refused. */
export const SETUP_REFUSED =
  "the setup routes that write the App's credentials accept only requests from this machine, or with the one-time setup code printed in the server log (header X-Conveyor-Setup-Code, or open /probot?setup_code=<code>)";

/**
 * Probot's first-run flow (`/probot`: register the GitHub App from `app.yml`, then write its
 * credentials to `.env`), with the page's styles and images (`/probot/static/*`). Probot does not
 * export it, so it is loaded from the files next to Probot's entry point.
 *
 * Conveyor renders the `/probot` page itself, from Probot's manifest and view, because Probot's
 * page starts with `<!DOCTYPE html>` twice, puts the manifest into an attribute unescaped, and
 * registers the webhook at `<base URL>/`: here the App's webhook is the one Conveyor serves
 * ({@link setupWebhookUrl}) unless `app.yml` names one.
 *
 * The routes that write credentials (`POST /probot/import`, the manifest callback
 * `GET /probot/setup`) and the pages leading to them answer only requests from this machine or
 * with the setup code from the log (`setup-access.ts`), so a server exposed before it is
 * configured cannot be taken over by whoever finds it first.
 *
 * Probot's start-up talk is left out: its banner says "custom routes will not work until APP_ID and
 * PRIVATE_KEY are configured", which is not true of Conveyor (the dashboard, API, health checks
 * and metrics work), and Conveyor says what to do itself once it listens (`startup-message.ts`).
 * Nor does it open a smee.io channel by itself: a developer who wants one sets `WEBHOOK_PROXY_URL`
 * (`webhook-proxy.ts` forwards it), so no start-up depends on smee.io answering.
 */
export async function createSetupHandler(options: SetupHandlerOptions): Promise<NodeHandler> {
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
  const { importView } = (await importFromProbot("./views/import.js")) as {
    importView: (options: { name?: string; GH_HOST: string; WEBHOOK_PROXY_URL: string }) => string;
  };
  const { updateEnv } = (await importFromProbot("./helpers/update-env.js")) as {
    updateEnv: (env: Record<string, string>) => Record<string, string>;
  };
  const { guard } = options;
  const log = quietUntilReady(options.log);
  const setup = await setupAppFactory({
    host: options.host,
    port: options.port,
    log: log.logger,
    updateEnv(env) {
      const written = updateEnv(env);
      // Credentials are in `.env` now: the code has done its job and admits nobody else.
      if (env.APP_ID) guard.consume();
      return written;
    },
    SmeeClient: {
      createChannel: () => Promise.reject(new Error("set WEBHOOK_PROXY_URL for a webhook proxy")),
    },
  })();
  log.ready();
  const creation = new ManifestCreation();

  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    if (req.method === "GET" && (path === "/probot" || path === "/probot/import")) {
      const access = guard.access(req);
      if (url.searchParams.has(SETUP_CODE_PARAMETER) && (access === "code" || access === "local")) {
        // The code moves into a cookie (it comes back with GitHub's redirect to /probot/setup) and
        // out of the address bar and the history.
        const cookie =
          access === "code"
            ? `${SETUP_CODE_COOKIE}=${encodeURIComponent(guard.code)}; Path=/probot; HttpOnly; SameSite=Lax; Max-Age=3600${requestBaseUrl(req).startsWith("https:") ? "; Secure" : ""}`
            : undefined;
        res.writeHead(303, { location: path, ...(cookie ? { "set-cookie": cookie } : {}) }).end();
        return true;
      }
      if (access === "no-code" || access === "wrong-code") {
        res
          .writeHead(403, { "content-type": "text/html; charset=utf-8" })
          .end(renderSetupCodePage(path, access === "wrong-code"));
        return true;
      }
      const pkg = creation.pkg;
      const baseUrl = requestBaseUrl(req);
      const webhookUrl = setupWebhookUrl({ ...options, baseUrl });
      if (path === "/probot/import") {
        // Probot's page tells the user to point the App's webhook at WEBHOOK_PROXY_URL, empty
        // when there is none: here it is the URL Conveyor serves.
        const page = importView({
          name: pkg.name,
          GH_HOST: `https://${process.env.GHE_HOST ?? "github.com"}`,
          WEBHOOK_PROXY_URL: escapeAttribute(webhookUrl),
        });
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(oneDoctype(page));
        return true;
      }
      if (path === "/probot") {
        const manifest = conveyorManifest(creation.getManifest({ pkg, baseUrl }), {
          generatedUrls: [`${baseUrl}/`, process.env.WEBHOOK_PROXY_URL],
          webhookUrl,
        });
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
    }
    const writesCredentials =
      (req.method === "POST" && path === "/probot/import") ||
      (req.method === "GET" && path === "/probot/setup");
    if (writesCredentials) {
      const access = guard.access(req);
      if (access !== "local" && access !== "code") {
        options.log.warn(
          { address: req.socket.remoteAddress, path, access },
          "setup: refused a credential write from another machine without the setup code",
        );
        res
          .writeHead(403, { "content-type": "application/json" })
          .end(JSON.stringify({ error: SETUP_REFUSED }));
        return true;
      }
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

/**
 * Where the App registered by the setup flow gets its webhooks: the proxy channel in local
 * development (`WEBHOOK_PROXY_URL`), otherwise Conveyor's webhook route on `CONVEYOR_PUBLIC_URL`,
 * or on the address the setup page was opened at.
 */
export function setupWebhookUrl(options: {
  baseUrl: string;
  publicUrl: string | undefined;
  webhookProxyUrl: string | undefined;
}): string {
  return (
    options.webhookProxyUrl ?? `${options.publicUrl ?? options.baseUrl}${DEFAULT_WEBHOOK_PATH}`
  );
}

/**
 * Probot's manifest with the webhook at `webhookUrl`, unless `app.yml` named its own: Probot
 * writes `<base URL>/` or its `WEBHOOK_PROXY_URL` (`generatedUrls`), and any other URL came from
 * `app.yml`'s `hook_attributes`.
 */
export function conveyorManifest(
  probotManifest: string,
  options: { generatedUrls: readonly (string | undefined)[]; webhookUrl: string },
): string {
  const manifest = JSON.parse(probotManifest) as { hook_attributes?: { url?: string } };
  const trim = (url: string | undefined) => url?.replace(/\/+$/, "");
  const generated = new Set(options.generatedUrls.filter(Boolean).map(trim));
  const url = manifest.hook_attributes?.url;
  if (url === undefined || generated.has(trim(url))) {
    manifest.hook_attributes = { ...manifest.hook_attributes, url: options.webhookUrl };
  }
  return JSON.stringify(manifest);
}

/** The page that asks a browser on another machine for the setup code from the server's log. */
export function renderSetupCodePage(path: string, wrong: boolean): string {
  const problem = wrong
    ? "That setup code is not valid: it is wrong, or credentials were written with it already (a restart prints a new one)."
    : "This server is not configured yet, and you are not on its machine.";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Setup code needed | Conveyor</title>
<link rel="stylesheet" href="/probot/static/primer.css">
</head>
<body class="bg-gray-light">
<main class="container-md p-6">
<h1>Setup code needed</h1>
<p>${problem}</p>
<p>To register or import its GitHub App from here, enter the one-time setup code the server printed in its log at start-up (the line with <code>setup_code=</code>). Requests from the server's own machine need no code.</p>
<form method="get" action="${path}">
<label for="setup_code">Setup code</label>
<input class="form-control" id="setup_code" name="setup_code" autocomplete="off" required>
<button class="btn btn-primary" type="submit">Continue</button>
</form>
</main>
</body>
</html>
`;
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
