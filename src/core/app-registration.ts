/**
 * How the GitHub App is registered, as GitHub shows it (`GET /app`, `GET /app/hook/config`),
 * against what Conveyor needs (`app.yml`, the webhook routes it serves): each difference with the
 * fix. Pure; `conveyor doctor` reads the facts and prints the verdicts.
 */

/** Access levels in the order they grant more. */
const LEVELS = ["read", "write", "admin"] as const;

/** The webhook routes a configured Conveyor serves (the second: Probot's old default). */
export const WEBHOOK_PATHS = ["/api/github/webhooks", "/"] as const;

export interface Verdict {
  status: "ok" | "warn" | "fail";
  message: string;
  fix?: string;
}

const rank = (level: string | undefined) => LEVELS.indexOf(level as (typeof LEVELS)[number]);
const list = (items: readonly string[]) => items.map((i) => `\`${i}\``).join(", ");

/** The App's event subscriptions against `app.yml`'s `default_events`. */
export function compareEvents(expected: readonly string[], actual: readonly string[]): Verdict {
  const missing = expected.filter((e) => !actual.includes(e));
  const extra = actual.filter((e) => !expected.includes(e));
  if (missing.length > 0) {
    return {
      status: "fail",
      message: `the App does not subscribe to ${list(missing)}, so Conveyor never hears of them`,
      fix: `On the App's settings page, Permissions & events → Subscribe to events: tick ${missing.join(", ")} and save (app.yml lists every event Conveyor needs)`,
    };
  }
  if (extra.length > 0) {
    return {
      status: "warn",
      message: `the App subscribes to every event Conveyor needs, and also to ${list(extra)}, which it does not use`,
      fix: `Untick ${extra.join(", ")} under Permissions & events → Subscribe to events, so GitHub sends only what Conveyor reads`,
    };
  }
  return {
    status: "ok",
    message: `subscribed to exactly the events in app.yml (${expected.join(", ")})`,
  };
}

/**
 * Permissions of `app.yml` that only one feature needs: without them Conveyor works, less that
 * feature, so their absence is a warning naming it, not a failure.
 */
export const FEATURE_PERMISSIONS: Readonly<Record<string, string>> = {
  actions:
    "GitHub Actions on demand (`runners.actions` in .github/conveyor.yml) cannot dispatch the runner workflow",
};

/** The App's permissions against `app.yml`'s `default_permissions`. */
export function comparePermissions(
  expected: Readonly<Record<string, string>>,
  actual: Readonly<Record<string, string>>,
): Verdict {
  const lacking = Object.entries(expected).filter(
    ([name, level]) => rank(actual[name]) < rank(level),
  );
  const short = lacking
    .filter(([name]) => !(name in FEATURE_PERMISSIONS))
    .map(([name, level]) => `${name}: ${actual[name] ?? "none"}, needs ${level}`);
  const featureShort = lacking.filter(([name]) => name in FEATURE_PERMISSIONS);
  const more = Object.entries(actual)
    .filter(([name, level]) => rank(level) > rank(expected[name]))
    .map(
      ([name, level]) => `${name}: ${level}${expected[name] ? ` (needs ${expected[name]})` : ""}`,
    );
  if (short.length > 0) {
    return {
      status: "fail",
      message: `the App lacks permissions Conveyor needs: ${short.join("; ")}`,
      fix: "On the App's settings page, Permissions & events → Repository permissions: raise them to what app.yml says and save; then each installation's owner must accept the new permissions (Settings → Integrations → GitHub Apps → Review request)",
    };
  }
  if (featureShort.length > 0) {
    return {
      status: "warn",
      message: featureShort
        .map(
          ([name, level]) =>
            `the App has ${name}: ${actual[name] ?? "none"}, not ${level}: ${FEATURE_PERMISSIONS[name]}`,
        )
        .join("; "),
      fix: `On the App's settings page, Permissions & events → Repository permissions: set ${featureShort.map(([name, level]) => `${name} to ${level}`).join(", ")} and save, then each installation's owner accepts it; or leave it if you do not use that feature`,
    };
  }
  if (more.length > 0) {
    const workflows = more.some((m) => m.startsWith("workflows:"));
    return {
      status: "warn",
      message: `the App has more permissions than Conveyor needs: ${more.join("; ")}${workflows ? ". With `workflows` a change to .github/workflows/ could be pushed: Conveyor refuses such changes itself, but least privilege means GitHub should refuse them too" : ""}`,
      fix: "Lower them under Permissions & events → Repository permissions to what app.yml says (least privilege)",
    };
  }
  return { status: "ok", message: "the permissions are those in app.yml" };
}

export interface HookFacts {
  /** `GET /app/hook/config`'s `url`; empty when the App has none. */
  url: string;
  contentType: string | undefined;
  insecureSsl: string | number | undefined;
}

export interface HookExpectation {
  /** `CONVEYOR_PUBLIC_URL`, when set. */
  publicUrl: string | undefined;
  /** `WEBHOOK_PROXY_URL`, when set: the App's webhook should be that channel. */
  webhookProxyUrl: string | undefined;
  /**
   * `GITHUB_API_URL`: where GitHub is decides what it can reach (github.com reaches neither this
   * machine's loopback nor a private network; a GitHub Enterprise Server inside one does).
   */
  githubApiUrl: string;
}

const trimSlashes = (url: string) => url.replace(/\/+$/, "");

/** Where a host name points: this machine, a private network, or anywhere. */
export function hostReach(hostname: string): "loopback" | "private" | "public" {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(host);
  const [a, b] = ipv4 ? [Number(ipv4[1]), Number(ipv4[2])] : [-1, -1];
  if (host === "localhost" || host.endsWith(".localhost") || host === "::1" || a === 127) {
    return "loopback";
  }
  if (
    a === 10 ||
    (a === 192 && b === 168) ||
    (a === 172 && b >= 16 && b <= 31) ||
    /^f[cd][0-9a-f]{2}:/.test(host) ||
    host.endsWith(".local") ||
    host.endsWith(".internal")
  ) {
    return "private";
  }
  return "public";
}

/** The URL the App's webhook should have (the first one Conveyor serves on the public URL). */
export function expectedHookUrl(
  expect: Pick<HookExpectation, "publicUrl" | "webhookProxyUrl">,
): string | undefined {
  if (expect.webhookProxyUrl) return expect.webhookProxyUrl;
  return expect.publicUrl ? `${expect.publicUrl}${WEBHOOK_PATHS[0]}` : undefined;
}

const SET_URL_FIX = (url: string) =>
  `On the App's settings page (General → Webhook), set Webhook URL to ${url}, tick Active and save`;

/** The App's webhook URL against the one Conveyor serves. */
export function compareHookUrl(hook: HookFacts, expect: HookExpectation): Verdict {
  const wanted = expectedHookUrl(expect);
  if (!hook.url) {
    return {
      status: "fail",
      message: "the App has no webhook URL, so GitHub sends Conveyor nothing",
      fix: SET_URL_FIX(wanted ?? `<CONVEYOR_PUBLIC_URL>${WEBHOOK_PATHS[0]}`),
    };
  }
  let url: URL;
  try {
    url = new URL(hook.url);
  } catch {
    return {
      status: "fail",
      message: `the App's webhook URL ${hook.url} does not parse`,
      fix: SET_URL_FIX(wanted ?? `<CONVEYOR_PUBLIC_URL>${WEBHOOK_PATHS[0]}`),
    };
  }
  if (expect.webhookProxyUrl) {
    return trimSlashes(hook.url) === trimSlashes(expect.webhookProxyUrl)
      ? {
          status: "ok",
          message: `${hook.url}: the webhook proxy channel (WEBHOOK_PROXY_URL), which npm start forwards to this server`,
        }
      : {
          status: "fail",
          message: `the App's webhook URL is ${hook.url}, but WEBHOOK_PROXY_URL is ${expect.webhookProxyUrl}: the proxy client listens where GitHub does not send`,
          fix: `${SET_URL_FIX(expect.webhookProxyUrl)}, or set WEBHOOK_PROXY_URL to the App's webhook URL`,
        };
  }
  if (expect.publicUrl) {
    const accepted = WEBHOOK_PATHS.map((path) => trimSlashes(`${expect.publicUrl}${path}`));
    if (!accepted.includes(trimSlashes(hook.url))) {
      const elsewhere = url.origin !== new URL(expect.publicUrl).origin;
      return {
        status: "fail",
        message: elsewhere
          ? `the App's webhook URL is ${hook.url}, but CONVEYOR_PUBLIC_URL is ${expect.publicUrl}: GitHub delivers somewhere else`
          : `the App's webhook URL is ${hook.url}, but Conveyor serves webhooks at ${wanted}`,
        fix: elsewhere
          ? `${SET_URL_FIX(wanted!)}, or correct CONVEYOR_PUBLIC_URL`
          : SET_URL_FIX(wanted!),
      };
    }
  } else if (!WEBHOOK_PATHS.some((path) => trimSlashes(url.pathname) === trimSlashes(path))) {
    return {
      status: "fail",
      message: `the App's webhook URL is ${hook.url}, but Conveyor serves webhooks only at ${WEBHOOK_PATHS[0]} (and /)`,
      fix: SET_URL_FIX(`${url.origin}${WEBHOOK_PATHS[0]}`),
    };
  }
  const reach = hostReach(url.hostname);
  const github = hostReach(new URL(expect.githubApiUrl).hostname);
  if (reach === "loopback" && github !== "loopback") {
    return {
      status: "fail",
      message: `the App's webhook URL is ${hook.url}: GitHub (${expect.githubApiUrl}) cannot deliver to this machine's loopback address`,
      fix: "Give the server an address GitHub reaches (CONVEYOR_PUBLIC_URL) and set the App's webhook URL to it + /api/github/webhooks, or for local development set WEBHOOK_PROXY_URL to a https://smee.io channel and make that the App's webhook URL",
    };
  }
  if (reach === "private" && github === "public") {
    return {
      status: "warn",
      message: `the App's webhook URL ${hook.url} is on a private network, which GitHub (${expect.githubApiUrl}) can reach only if it is inside it`,
      fix: "Give the server a public https address (CONVEYOR_PUBLIC_URL) and set the App's webhook URL to it + /api/github/webhooks",
    };
  }
  const insecure = String(hook.insecureSsl ?? "0") === "1";
  if (insecure) {
    return {
      status: "warn",
      message: `${hook.url} is served, but GitHub is told not to verify its TLS certificate (insecure_ssl 1)`,
      fix: "Enable SSL verification on the App's settings page (General → Webhook) once the certificate is valid",
    };
  }
  return {
    status: "ok",
    message: `${hook.url}${wanted ? "" : " (CONVEYOR_PUBLIC_URL is not set, so only its path could be checked)"}`,
  };
}

/** GitHub Apps send JSON unless told otherwise; Conveyor (Probot) refuses form-encoded bodies. */
export function compareHookContentType(contentType: string | undefined): Verdict {
  if (contentType === undefined || contentType === "json") {
    return { status: "ok", message: "json" };
  }
  return {
    status: "fail",
    message: `the App's webhook sends ${contentType}, but Conveyor reads only JSON (it answers 415 to anything else)`,
    fix: 'Switch it to JSON with the App\'s JWT: PATCH /app/hook/config {"content_type":"json"} (https://docs.github.com/en/rest/apps/webhooks#update-a-webhook-configuration-for-an-app)',
  };
}
