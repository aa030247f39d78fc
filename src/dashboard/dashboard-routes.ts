import type { HttpBindings } from "@hono/node-server";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { streamSSE } from "hono/streaming";
import type { Logger } from "pino";
import type { Db } from "../../db/client.ts";
import { type ApiAuth, type ApiEnv, type Principal, SESSION_COOKIE } from "../http/admin-auth.ts";
import { type ApiRateLimiter, createApiRateLimiter } from "../http/api-rate-limiter.ts";
import {
  createDashboardSession,
  DASHBOARD_SESSION_TTL_MS,
  deleteDashboardSession,
  findDashboardSession,
} from "../store/dashboard-sessions.ts";
import type { Asset } from "./dashboard-assets.ts";
import type { DashboardClient, DashboardHub } from "./dashboard-hub.ts";
import { isTaskId, mountTaskPageRoutes, type TaskPageTimings } from "./task-page.ts";

export interface DashboardRoutesDeps {
  db: Db;
  auth: ApiAuth;
  hub: DashboardHub;
  logger: Logger;
  assets: Map<string, Asset>;
  pages: { dashboard: string; signIn: string; task: string };
  /** The task page's stream timings; tests shorten them. */
  taskPageTimings?: Partial<TaskPageTimings> | undefined;
  /** Receives the function that ends every open task page stream (called at shutdown). */
  onTaskStreams?: (close: () => void) => void;
  /** `CONVEYOR_PUBLIC_URL`: an https URL makes the cookie `Secure`, and its host is trusted. */
  publicUrl?: string | undefined;
  sessionTtlMs?: number;
  /** Whether anybody can sign in at all (an admin token is set, or an API token exists). */
  hasCredentials: () => Promise<boolean>;
  /** Called when somebody signs in with `CONVEYOR_ADMIN_TOKEN` (its sessions can be ended later). */
  onAdminTokenSignIn?: () => Promise<void>;
  /** Failed sign-ins per minute per address (default 30). */
  signInAttemptsPerMinute?: number;
}

// The pages load only this server's own files and talk only to it.
const PAGE_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
};

const MAX_TOKEN_LENGTH = 512;

/**
 * `/dashboard`: the sign-in page and form, sign-out, the page itself, its assets, and the live
 * stream (`/dashboard/events`, server-sent events). Signing in with an API token or
 * `CONVEYOR_ADMIN_TOKEN` starts a session: a random id in an HttpOnly, SameSite=Strict cookie
 * (Secure behind https), its hash in `dashboard_sessions`. The JSON API accepts the same cookie
 * (see `createApiAuth`), so the page's Retry and Acknowledge buttons call `/api/…` directly, and
 * the API decides what a read token may do.
 */
export function createDashboardRoutes(deps: DashboardRoutesDeps): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  const logger = deps.logger.child({ component: "dashboard" });
  const ttlMs = deps.sessionTtlMs ?? DASHBOARD_SESSION_TTL_MS;
  const secure = deps.publicUrl?.startsWith("https:") ?? false;
  const trustedHost = deps.publicUrl ? new URL(deps.publicUrl).host : undefined;
  const attempts: ApiRateLimiter = createApiRateLimiter({
    read: 600,
    write: 120,
    heavy: 10,
    unauthenticated: deps.signInAttemptsPerMinute ?? 30,
  });

  const page = (c: Context, html: string, status: 200 | 401 | 403 | 429 = 200) => {
    for (const [name, value] of Object.entries(PAGE_HEADERS)) c.header(name, value);
    return c.html(html, status);
  };

  function signInPage(
    c: Context,
    message?: { text: string; kind: "error" | "info" },
    status?: 401 | 403 | 429,
  ) {
    const html = message
      ? deps.pages.signIn.replace(
          "<!--message-->",
          `<p class="message" data-kind="${message.kind}" role="alert">${escapeHtml(message.text)}</p>`,
        )
      : deps.pages.signIn;
    return page(c, html, status);
  }

  async function currentSession(c: Context) {
    const id = getCookie(c, SESSION_COOKIE);
    return id ? findDashboardSession(deps.db, id) : undefined;
  }

  /**
   * Forms that change the session come from our own page. Browsers say where a request comes from
   * (Sec-Fetch-Site, Origin); a request without either is not from a browser, so not a forgery.
   */
  function isFromOurPage(c: Context): boolean {
    const site = c.req.header("sec-fetch-site");
    if (site) return site === "same-origin" || site === "none";
    const origin = c.req.header("origin");
    if (!origin || origin === "null") return origin === undefined;
    try {
      const host = new URL(origin).host;
      return host === c.req.header("host") || host === trustedHost;
    } catch {
      return false;
    }
  }

  routes.get("/dashboard/", (c) => c.redirect("/dashboard", 301));

  routes.get("/dashboard", async (c) => {
    if (!(await currentSession(c))) return c.redirect("/dashboard/sign-in", 303);
    return page(c, deps.pages.dashboard);
  });

  /** A task's page: the same static page for every task; its script reads the id from the URL. */
  routes.get("/dashboard/tasks/:id", async (c) => {
    if (!(await currentSession(c))) return c.redirect("/dashboard/sign-in", 303);
    if (!isTaskId(c.req.param("id"))) {
      for (const [name, value] of Object.entries(PAGE_HEADERS)) c.header(name, value);
      return c.text("There is no task with that id.", 404);
    }
    return page(c, deps.pages.task);
  });

  routes.get("/dashboard/sign-in", async (c) => {
    if (await currentSession(c)) return c.redirect("/dashboard", 303);
    if (!(await deps.hasCredentials())) {
      return signInPage(c, {
        text: "Nobody can sign in yet: set CONVEYOR_ADMIN_TOKEN (16 characters or more) and restart, or create a token with `conveyor tokens add <name> --role admin`.",
        kind: "error",
      });
    }
    const ended = c.req.query("ended") !== undefined;
    return signInPage(
      c,
      ended ? { text: "Your session ended. Sign in again.", kind: "info" } : undefined,
    );
  });

  routes.post(
    "/dashboard/sign-in",
    bodyLimit({
      maxSize: 8 * 1024,
      onError: (c) => c.text("sign-in form over 8 KiB", 413),
    }),
    async (c) => {
      if (!isFromOurPage(c)) {
        return signInPage(
          c,
          { text: "Sign in from this server's own sign-in page.", kind: "error" },
          403,
        );
      }
      const address = clientAddress(c);
      if (attempts.exhausted(`ip:${address}`, "write")) {
        c.header("Retry-After", "60");
        return signInPage(
          c,
          { text: "Too many failed sign-ins from your address; wait a minute.", kind: "error" },
          429,
        );
      }
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      const token = typeof form.token === "string" ? form.token.trim() : "";
      if (!token || token.length > MAX_TOKEN_LENGTH) {
        attempts.take(`ip:${address}`, "write");
        return signInPage(c, { text: "Paste a token to sign in.", kind: "error" }, 401);
      }
      const principal = await deps.auth.authenticate(token);
      if (!principal) {
        attempts.take(`ip:${address}`, "write");
        logger.warn({ address }, "dashboard: refused a sign-in with an unknown or revoked token");
        return signInPage(
          c,
          {
            text: "That token is unknown or was revoked. Ask an admin for one (conveyor tokens add <name> --role read).",
            kind: "error",
          },
          401,
        );
      }
      if (principal.kind === "admin-token") await deps.onAdminTokenSignIn?.();
      const session = await createDashboardSession(
        deps.db,
        { role: principal.role, tokenId: principal.tokenId },
        ttlMs,
      );
      setCookie(c, SESSION_COOKIE, session.sessionId, {
        httpOnly: true,
        sameSite: "Strict",
        secure,
        path: "/",
        maxAge: Math.floor(ttlMs / 1000),
      });
      logger.info({ token: principal.name, role: principal.role }, "dashboard: signed in");
      return c.redirect("/dashboard", 303);
    },
  );

  routes.post("/dashboard/sign-out", async (c) => {
    if (!isFromOurPage(c)) return c.text("sign out from the dashboard itself", 403);
    const id = getCookie(c, SESSION_COOKIE);
    if (id) await deleteDashboardSession(deps.db, id);
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure, httpOnly: true, sameSite: "Strict" });
    return c.redirect("/dashboard/sign-in", 303);
  });

  /** Who is signed in: the page asks when its stream fails (401 means: sign in again). */
  routes.get("/dashboard/session", deps.auth.read, (c) => {
    c.header("Cache-Control", "no-store");
    return c.json({ viewer: viewerOf(c.get("principal")) });
  });

  /** The state the page shows, as JSON (for scripts, and for a look with curl). */
  routes.get("/dashboard/state", deps.auth.read, async (c) => {
    c.header("Cache-Control", "no-store");
    return c.json({ viewer: viewerOf(c.get("principal")), ...(await deps.hub.snapshot()) });
  });

  /** Whether the session or token a stream was opened with still stands. */
  function stillAllowedFor(c: Context<ApiEnv>): () => Promise<boolean> {
    const principal = c.get("principal");
    const sessionId = getCookie(c, SESSION_COOKIE);
    const bearer = /^Bearer +(\S+) *$/i.exec(c.req.header("authorization") ?? "")?.[1];
    return async () => {
      if (principal.kind === "session") {
        return (
          sessionId !== undefined && (await findDashboardSession(deps.db, sessionId)) !== undefined
        );
      }
      if (principal.kind === "api-token" && bearer) {
        return (await deps.auth.authenticate(bearer)) !== null;
      }
      return true;
    };
  }

  const taskStreams = mountTaskPageRoutes(routes, {
    db: deps.db,
    auth: deps.auth,
    timings: deps.taskPageTimings,
    stillAllowed: stillAllowedFor,
  });
  deps.onTaskStreams?.(() => taskStreams.close());

  routes.get("/dashboard/events", deps.auth.read, (c) => {
    const principal = c.get("principal");
    const stillAllowed = stillAllowedFor(c);
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const client: DashboardClient = {
        async send(event, data) {
          if (stream.aborted || stream.closed) return false;
          await stream.writeSSE({ event, data: JSON.stringify(data) });
          return !stream.aborted;
        },
        close: () => finish(),
        stillAllowed,
      };
      stream.onAbort(() => finish());
      await stream.writeSSE({
        event: "hello",
        data: JSON.stringify({ viewer: viewerOf(principal) }),
        retry: 2_000,
      });
      const unsubscribe = deps.hub.subscribe(client);
      await finished;
      unsubscribe();
    });
  });

  routes.get("/dashboard/assets/:name", (c) => {
    const asset = deps.assets.get(c.req.param("name"));
    if (!asset) return c.json({ error: `no dashboard asset ${c.req.param("name")}` }, 404);
    c.header("ETag", asset.etag);
    // Revalidated on every load (a 304 is cheap), so an upgrade never leaves a stale script behind.
    c.header("Cache-Control", "no-cache");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Vary", "Accept-Encoding");
    if (c.req.header("if-none-match") === asset.etag) return c.body(null, 304);
    c.header("Content-Type", asset.type);
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
      c.header("Content-Encoding", "gzip");
      return c.body(new Uint8Array(asset.gzip));
    }
    return c.body(new Uint8Array(asset.body));
  });

  return routes;
}

/** What the page needs to know about who is looking (`actor`: how history names them). */
function viewerOf(principal: Principal): { name: string; role: string; actor: string } {
  return { name: principal.name, role: principal.role, actor: principal.actor };
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );
}

/** The peer's address (no proxy headers are trusted), or "unknown" outside a Node server. */
function clientAddress(c: Context): string {
  const env = c.env as Partial<HttpBindings> | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "unknown";
}
