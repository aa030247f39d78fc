import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config.ts";
import {
  compareEvents,
  compareHookContentType,
  compareHookUrl,
  comparePermissions,
  type HookFacts,
  hostReach,
  type Verdict,
} from "../core/app-registration.ts";
import { recordedDeliveryIds } from "../store/webhook-deliveries.ts";
import type { Check } from "./doctor-check.ts";

/** The checks of the App as GitHub sees it, in the order `conveyor doctor` prints them. */
export const APP_REGISTRATION_CHECKS = [
  "app events",
  "app permissions",
  "webhook url",
  "webhook content type",
  "webhook reach",
] as const;

/** What `GET /app` says about the App's subscriptions. */
export interface AppFacts {
  events?: string[];
  permissions?: Record<string, string>;
}

/** What Conveyor needs: `app.yml`'s events and permissions (the file shipped with Conveyor). */
export function readAppManifest(path = new URL("../../app.yml", import.meta.url)): {
  events: string[];
  permissions: Record<string, string>;
} {
  const manifest = parse(readFileSync(path, "utf8")) as {
    default_events?: string[];
    default_permissions?: Record<string, string>;
  };
  return {
    events: manifest.default_events ?? [],
    permissions: manifest.default_permissions ?? {},
  };
}

const asCheck = (name: string, verdict: Verdict): Check => ({ name, ...verdict });
const skipped = (names: readonly string[], message: string): Check[] =>
  names.map((name) => ({ name, status: "skip", message }));

export interface AppRegistrationOptions {
  config: Config;
  /** A JWT of the App, which `GET /app` just accepted. */
  jwt: string;
  app: AppFacts;
  timeoutMs: number;
  /** This installation's database, when the doctor could open it: a ping must land there. */
  database: Database | undefined;
}

/**
 * The App as GitHub sees it: its events and permissions against `app.yml`, its webhook's URL and
 * content type against what Conveyor serves, and whether that URL reaches this server (a signed
 * `ping` delivery, which this server's database must then hold).
 */
export async function checkAppRegistration(options: AppRegistrationOptions): Promise<Check[]> {
  const { config, app } = options;
  const wanted = readAppManifest();
  const checks: Check[] = [
    asCheck("app events", compareEvents(wanted.events, app.events ?? [])),
    asCheck("app permissions", comparePermissions(wanted.permissions, app.permissions ?? {})),
  ];
  const hook = await readHookConfig(config, options.jwt, options.timeoutMs);
  if ("problem" in hook) {
    return [
      ...checks,
      hook.problem,
      ...skipped(
        ["webhook content type", "webhook reach"],
        "skipped: the webhook configuration could not be read",
      ),
    ];
  }
  const expectation = {
    publicUrl: config.publicUrl,
    webhookProxyUrl: config.webhookProxyUrl,
    githubApiUrl: config.githubApiUrl,
  };
  checks.push(asCheck("webhook url", compareHookUrl(hook.facts, expectation)));
  checks.push(asCheck("webhook content type", compareHookContentType(hook.facts.contentType)));
  checks.push(await checkHookReach(options, hook.facts));
  return checks;
}

async function readHookConfig(
  config: Config,
  jwt: string,
  timeoutMs: number,
): Promise<{ facts: HookFacts } | { problem: Check }> {
  const name = "webhook url";
  try {
    const response = await fetch(`${config.githubApiUrl}/app/hook/config`, {
      headers: {
        authorization: `Bearer ${jwt}`,
        accept: "application/vnd.github+json",
        "user-agent": "conveyor-doctor",
        "x-github-api-version": "2022-11-28",
      },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json().catch(() => ({}))) as {
      url?: string;
      content_type?: string;
      insecure_ssl?: string | number;
      message?: string;
    };
    if (response.status === 404) {
      return {
        problem: {
          name,
          status: "fail",
          message: "GitHub says the App has no webhook (GET /app/hook/config: 404)",
          fix: "On the App's settings page (General → Webhook), tick Active and set Webhook URL to <CONVEYOR_PUBLIC_URL>/api/github/webhooks",
        },
      };
    }
    if (!response.ok) {
      return {
        problem: {
          name,
          status: "fail",
          message: `GitHub answered ${response.status} to GET /app/hook/config: ${body.message ?? "no message"}`,
          fix: "Try again later; if it persists, check https://www.githubstatus.com and GITHUB_API_URL",
        },
      };
    }
    return {
      facts: {
        url: body.url ?? "",
        contentType: body.content_type,
        insecureSsl: body.insecure_ssl,
      },
    };
  } catch (error) {
    return {
      problem: {
        name,
        status: "fail",
        message: `cannot read the App's webhook configuration: ${(error as Error).message}`,
        fix: "Check GITHUB_API_URL and this machine's network",
      },
    };
  }
}

/**
 * Sends the App's webhook URL a `ping` delivery signed with this configuration's secret, the way
 * GitHub would, and reads the answer: Conveyor handles a ping like any event it does not act on
 * (it records the delivery), so with the database at hand the doctor also sees that it was this
 * server that answered.
 */
async function checkHookReach(options: AppRegistrationOptions, hook: HookFacts): Promise<Check> {
  const name = "webhook reach";
  const { config } = options;
  if (!hook.url) return { name, status: "skip", message: "the App has no webhook URL" };
  if (config.webhookProxyUrl) {
    return {
      name,
      status: "skip",
      message: `deliveries go through WEBHOOK_PROXY_URL; npm start forwards them to this server (its log shows "webhook proxy" lines)`,
    };
  }
  const secret = config.github?.webhookSecret ?? "development";
  const deliveryId = randomUUID();
  const body = JSON.stringify({
    zen: "conveyor doctor: is this Conveyor?",
    hook_id: 0,
    hook: { type: "App", app_id: config.github?.appId, active: true },
  });
  let response: Response;
  try {
    response = await fetch(hook.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "conveyor-doctor",
        "x-github-event": "ping",
        "x-github-delivery": deliveryId,
        "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
      },
      body,
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: "manual",
    });
  } catch (error) {
    const host = new URL(hook.url).hostname;
    return {
      name,
      status: "fail",
      message: `${hook.url} does not answer: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`,
      fix:
        hostReach(host) !== "public"
          ? `GitHub cannot reach ${host} either: give the server a public https address (CONVEYOR_PUBLIC_URL, and the App's webhook on it), or for local development set WEBHOOK_PROXY_URL to a https://smee.io channel and make it the App's webhook URL`
          : "Make the URL reach this server: DNS, TLS certificate, firewall, and a reverse proxy forwarding POST /api/github/webhooks to Conveyor",
    };
  }
  const text = await response.text().catch(() => "");
  if (response.ok) {
    if (!options.database) {
      return {
        name,
        status: "ok",
        message: `a signed ping to ${hook.url} was accepted (${response.status})`,
      };
    }
    // A ping has no effect: the server answers it at once and writes its record just after.
    let recorded = false;
    for (let waited = 0; !recorded && waited <= 5_000; waited += 100) {
      if (waited) await new Promise((resolve) => setTimeout(resolve, 100));
      recorded = (await recordedDeliveryIds(options.database.db, [deliveryId])).has(deliveryId);
    }
    return recorded
      ? {
          name,
          status: "ok",
          message: `a signed ping to ${hook.url} was handled by this installation (its database recorded it)`,
        }
      : {
          name,
          status: "fail",
          message: `${hook.url} accepted a signed ping (${response.status}), but this installation's database has no record of it: the URL reaches another server`,
          fix: "Point the App's webhook URL (or the reverse proxy behind it) at this server, or run doctor with the DATABASE_URL of the server it reaches",
        };
  }
  if ((response.status === 400 || response.status === 401) && /signature/i.test(text)) {
    return {
      name,
      status: "fail",
      message: `${hook.url} refused the ping's signature: the server there checks with another WEBHOOK_SECRET than this configuration`,
      fix: "Set WEBHOOK_SECRET, here and on the server, to the App's webhook secret (General → Webhook secret on its settings page; set a new one there if it is lost)",
    };
  }
  if (response.status === 503 && /not configured/i.test(text)) {
    return {
      name,
      status: "fail",
      message: `${hook.url} reaches a Conveyor in setup mode: it has no App credentials and refuses deliveries`,
      fix: "Set APP_ID, PRIVATE_KEY_PATH (or PRIVATE_KEY) and WEBHOOK_SECRET on that server and restart it",
    };
  }
  return {
    name,
    status: "fail",
    message: `${hook.url} answered a signed ping with ${response.status}${response.status === 404 ? ": nothing handles webhooks there" : ""}`,
    fix: config.publicUrl
      ? `Set the App's webhook URL to ${config.publicUrl}/api/github/webhooks, and make a reverse proxy in front forward it to Conveyor`
      : "Set the App's webhook URL to <this server's public address>/api/github/webhooks (and CONVEYOR_PUBLIC_URL to that address)",
  };
}
