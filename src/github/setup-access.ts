import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** The header a script (curl) sends the setup code in. */
export const SETUP_CODE_HEADER = "x-conveyor-setup-code";
/** The query parameter a browser sends it in, once: `/probot?setup_code=…`. */
export const SETUP_CODE_PARAMETER = "setup_code";
/** The cookie that carries it through GitHub's redirect back to `/probot/setup`. */
export const SETUP_CODE_COOKIE = "conveyor_setup_code";

/**
 * Headers a reverse proxy adds. A request that carries one came from somewhere else through a
 * proxy on this machine, so its loopback peer address says nothing about who sent it.
 */
const FORWARDING_HEADERS = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"];

/** Whether a socket's peer address is this machine's loopback (127.0.0.0/8, ::1, or mapped). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.toLowerCase().startsWith("::ffff:") ? address.slice(7) : address;
  return plain === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(plain);
}

/**
 * Whether a request comes from this machine: its TCP peer is a loopback address and no proxy
 * forwarded it. Only the socket's own address counts; headers can only make a request less local.
 */
export function isLocalRequest(req: Pick<IncomingMessage, "socket" | "headers">): boolean {
  if (!isLoopbackAddress(req.socket.remoteAddress)) return false;
  return !FORWARDING_HEADERS.some((name) => req.headers[name] !== undefined);
}

/** The setup code a request offers: the header, then the query parameter, then the cookie. */
export function offeredSetupCode(
  req: Pick<IncomingMessage, "headers" | "url">,
): string | undefined {
  const header = req.headers[SETUP_CODE_HEADER];
  if (typeof header === "string" && header) return header.trim();
  const query = new URL(req.url ?? "/", "http://localhost").searchParams.get(SETUP_CODE_PARAMETER);
  if (query) return query.trim();
  return cookieValue(req.headers.cookie, SETUP_CODE_COOKIE);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

export type SetupAccess =
  /** From this machine: no code needed. */
  | "local"
  /** With the valid setup code. */
  | "code"
  /** From elsewhere, with no code. */
  | "no-code"
  /** From elsewhere, with a code that is wrong or already used. */
  | "wrong-code";

export interface SetupGuard {
  /** Printed in the server log at start-up (hex, 128 bits). */
  readonly code: string;
  /** Who may use the routes that write credentials. */
  access(req: Pick<IncomingMessage, "socket" | "headers" | "url">): SetupAccess;
  /** Credentials were written: the code admits nobody any more (requests from this machine still work). */
  consume(): void;
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Guards the setup routes that write the App's credentials to `.env` (`POST /probot/import`, the
 * manifest callback `GET /probot/setup`): a server reachable from the network before it is
 * configured must not let a stranger register their own App into it. Requests from this machine
 * pass; others need the one-time code printed in the server's log, which stops working once
 * credentials were written (and is new after every restart).
 */
export function createSetupGuard(code = randomBytes(16).toString("hex")): SetupGuard {
  let used = false;
  const expected = digest(code);
  return {
    code,
    access(req) {
      if (isLocalRequest(req)) return "local";
      const offered = offeredSetupCode(req);
      if (offered === undefined) return "no-code";
      // Compared as digests, in constant time: the length of a guess tells nothing either.
      return !used && timingSafeEqual(digest(offered), expected) ? "code" : "wrong-code";
    },
    consume() {
      used = true;
    },
  };
}
