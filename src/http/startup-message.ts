import type { Logger } from "../logger.ts";

/** What the start-up message tells: facts known once the server listens. */
export interface StartupFacts {
  /** Where this process listens, as a browser on this machine reaches it. */
  url: string;
  /** `CONVEYOR_PUBLIC_URL`: where people and GitHub reach the server, when set. */
  publicUrl: string | undefined;
  /** Whether `APP_ID` and the private key are configured. */
  githubConfigured: boolean;
  /** Setup mode's one-time code for browsers on other machines. */
  setupCode?: string | undefined;
}

export interface StartupLine {
  level: "info" | "warn";
  url: string;
  msg: string;
}

/** The setup mode's one-line explanation (Probot's own banner says custom routes do not work). */
export const SETUP_MODE_MESSAGE =
  "GitHub App not configured (APP_ID, PRIVATE_KEY): register it at this URL, then restart; everything but webhooks works meanwhile";

/** The line with the setup code: the setup flow from another machine needs it. */
export const SETUP_CODE_MESSAGE =
  "from another machine, open this URL instead: it carries the one-time setup code (requests from this machine need none)";

/**
 * The lines logged once the server listens: where it is, the dashboard and, without App
 * credentials, the setup page and the setup code that lets a browser elsewhere use it. Links use `CONVEYOR_PUBLIC_URL` when it is set.
 */
export function renderStartupMessage(facts: StartupFacts): StartupLine[] {
  const base = facts.publicUrl ?? facts.url;
  const lines: StartupLine[] = [
    { level: "info", url: facts.url, msg: "conveyor listening" },
    {
      level: "info",
      url: `${base}/dashboard`,
      msg: "dashboard (sign in with CONVEYOR_ADMIN_TOKEN or a token from `conveyor tokens add`)",
    },
  ];
  if (!facts.githubConfigured) {
    lines.push({ level: "warn", url: `${base}/probot`, msg: SETUP_MODE_MESSAGE });
    if (facts.setupCode) {
      lines.push({
        level: "warn",
        url: `${base}/probot?setup_code=${facts.setupCode}`,
        msg: SETUP_CODE_MESSAGE,
      });
    }
  }
  return lines;
}

/** Logs {@link renderStartupMessage}'s lines, each with its link in the `url` field. */
export function logStartupMessage(logger: Logger, facts: StartupFacts): void {
  for (const line of renderStartupMessage(facts)) logger[line.level]({ url: line.url }, line.msg);
}
