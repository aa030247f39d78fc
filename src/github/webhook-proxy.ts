import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { DEFAULT_WEBHOOK_PATH } from "../http/create-http-app.ts";
import type { Lifecycle } from "../lifecycle.ts";

export interface WebhookProxyDeps {
  config: Pick<Config, "webhookProxyUrl">;
  logger: Logger;
  /** This server's webhook route, once it listens (the forwarded deliveries go there). */
  target: () => string;
}

/**
 * This server's webhook route as the proxy client in the same process reaches it: over loopback
 * when it listens on every interface, else on the address it listens on.
 */
export function webhookProxyTarget(host: string, port: number): string {
  const address = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${address.includes(":") ? `[${address}]` : address}:${port}${DEFAULT_WEBHOOK_PATH}`;
}

/** What the smee client needs of a logger: `console`'s `info` and `error`. */
interface SmeeLogger {
  info(...data: unknown[]): void;
  error(...data: unknown[]): void;
}

const text = (data: unknown[]) =>
  data.map((d) => (d instanceof Error ? d.message : String(d))).join(" ");

/**
 * Local development without a public address: with `WEBHOOK_PROXY_URL` set (a smee.io channel,
 * registered as the App's webhook URL), a smee client receives GitHub's deliveries from the
 * channel as server-sent events and posts each to this server's webhook route with GitHub's
 * headers, so the signature is checked and the delivery handled like one from GitHub.
 *
 * Started after the listener (it needs the port) and without waiting for the channel: a proxy
 * that cannot connect is logged and keeps retrying, and never keeps the server from starting.
 */
export function createWebhookProxy(deps: WebhookProxyDeps): Lifecycle | undefined {
  const source = deps.config.webhookProxyUrl;
  if (!source) return undefined;
  const log = deps.logger.child({ component: "webhook-proxy" });
  const logger: SmeeLogger = {
    info: (...data) => log.info({ detail: text(data) }, "webhook proxy"),
    error: (...data) => log.warn({ detail: text(data) }, "webhook proxy problem"),
  };
  let client: { start(): Promise<unknown>; stop(): Promise<void> } | undefined;
  let stopped = false;
  return {
    async start() {
      // Loaded only when a proxy is configured: production servers never load it.
      const { SmeeClient } = await import("smee-client");
      if (stopped) return;
      const target = deps.target();
      client = new SmeeClient({ source, target, logger });
      log.info({ source, target }, "webhook proxy: forwarding deliveries from WEBHOOK_PROXY_URL");
      client.start().catch((error: unknown) => {
        log.warn({ err: error, source }, "webhook proxy could not connect to WEBHOOK_PROXY_URL");
      });
    },
    async stop() {
      stopped = true;
      await client?.stop();
    },
  };
}
