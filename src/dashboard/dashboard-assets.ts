import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** A file the dashboard serves, read once at start-up (gzipped too, for browsers that take it). */
export interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
};

const require = createRequire(import.meta.url);
const here = (name: string) => fileURLToPath(new URL(`./assets/${name}`, import.meta.url));

/**
 * Where each public asset comes from: the dashboard's own files, and uPlot from its package (served
 * by the app itself, so the dashboard works without reaching any CDN).
 */
const SOURCES: Record<string, string> = {
  "dashboard.js": here("dashboard.js"),
  "dashboard.css": here("dashboard.css"),
  "task.js": here("task.js"),
  "uPlot.iife.min.js": require.resolve("uplot/dist/uPlot.iife.min.js"),
  "uPlot.min.css": require.resolve("uplot/dist/uPlot.min.css"),
};

/** The pages, filled in by the routes. */
export const PAGES = {
  dashboard: here("index.html"),
  signIn: here("sign-in.html"),
  task: here("task.html"),
};

function load(path: string, name: string): Asset {
  const body = readFileSync(path);
  const ext = name.slice(name.lastIndexOf(".") + 1);
  return {
    body,
    gzip: gzipSync(body),
    type: TYPES[ext] ?? "application/octet-stream",
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
  };
}

/** Reads every asset; a missing file fails start-up with its path rather than a 404 later. */
export function loadDashboardAssets(): {
  assets: Map<string, Asset>;
  pages: { dashboard: string; signIn: string; task: string };
} {
  const assets = new Map<string, Asset>();
  for (const [name, path] of Object.entries(SOURCES)) assets.set(name, load(path, name));
  return {
    assets,
    pages: {
      dashboard: readFileSync(PAGES.dashboard, "utf8"),
      signIn: readFileSync(PAGES.signIn, "utf8"),
      task: readFileSync(PAGES.task, "utf8"),
    },
  };
}
