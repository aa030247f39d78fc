import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * What the test suite needs beyond npm, where each is looked for, and which distribution package
 * provides it. `npm test` checks these first (scripts/test-prerequisites.ts) so that a missing one
 * stops the run in its first seconds, not after minutes of other tests; the tests that use them
 * look them up with the same functions.
 */
export interface Prerequisite {
  name: string;
  /** Which tests need it, for the message. */
  neededBy: string;
  /** The Debian/Ubuntu package that provides it. */
  debianPackage: string;
  /** The variable that points at it (or replaces it) when it is not where we look. */
  override: string;
  find(env: NodeJS.ProcessEnv): Found;
}

export type Found =
  | { kind: "found"; where: string }
  | { kind: "missing" }
  /** The override variable names something that is not there: the user must fix the variable. */
  | { kind: "broken"; reason: string };

/** The first executable called one of `names` in the directories of `PATH`. */
export function findOnPath(names: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  const dirs = (env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    for (const name of names) {
      const candidate = join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** An executable named by `variable`, or the first of `names` on PATH. */
function findExecutable(variable: string, names: readonly string[], env: NodeJS.ProcessEnv): Found {
  const named = env[variable];
  if (named) {
    return isExecutable(named)
      ? { kind: "found", where: named }
      : { kind: "broken", reason: `${variable}=${named} is not an executable file` };
  }
  const where = findOnPath(names, env);
  return where ? { kind: "found", where } : { kind: "missing" };
}

/**
 * The directory holding `initdb` and `pg_ctl`: Debian's /usr/lib/postgresql/<version>/bin (newest
 * first; those are not on PATH), else wherever `initdb` is on PATH.
 */
export function findPostgresBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const root = env.CONVEYOR_TEST_POSTGRES_ROOT ?? "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const dir = join(root, version, "bin");
      if (isExecutable(join(dir, "initdb"))) return dir;
    }
  }
  const initdb = findOnPath(["initdb"], env);
  return initdb ? join(initdb, "..") : undefined;
}

export const PREREQUISITES: readonly Prerequisite[] = [
  {
    name: "PostgreSQL server (initdb, pg_ctl)",
    neededBy: "every integration test (a throwaway cluster per run)",
    debianPackage: "postgresql",
    override: "TEST_DATABASE_URL",
    find(env) {
      if (env.TEST_DATABASE_URL) return { kind: "found", where: "TEST_DATABASE_URL" };
      const dir = findPostgresBinDir(env);
      return dir ? { kind: "found", where: dir } : { kind: "missing" };
    },
  },
  {
    name: "git",
    neededBy: "the GitHub simulator's repositories and the runners' checkouts",
    debianPackage: "git",
    override: "PATH",
    find: (env) => {
      const where = findOnPath(["git"], env);
      return where ? { kind: "found", where } : { kind: "missing" };
    },
  },
  {
    name: "bubblewrap (bwrap)",
    neededBy:
      "every test that starts conveyor-runner (agents run in its sandbox) and test/runner-sandbox.test.ts",
    debianPackage: "bubblewrap",
    override: "BWRAP_PATH",
    find: (env) => findExecutable("BWRAP_PATH", ["bwrap"], env),
  },
  {
    name: "Chromium",
    neededBy: "test/dashboard.test.ts (the dashboard in a headless browser)",
    debianPackage: "chromium",
    override: "CHROMIUM_PATH",
    find: (env) =>
      findExecutable(
        "CHROMIUM_PATH",
        ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"],
        env,
      ),
  },
  {
    name: "promtool",
    neededBy: "test/metrics.test.ts (lints a live /metrics scrape)",
    debianPackage: "prometheus",
    override: "PROMTOOL_PATH",
    find: (env) => findExecutable("PROMTOOL_PATH", ["promtool"], env),
  },
  {
    name: "kubectl",
    neededBy: "test/deploy.test.ts (renders deploy/kubernetes with kubectl kustomize)",
    debianPackage: "kubernetes-client",
    override: "KUBECTL_PATH",
    find: (env) => findExecutable("KUBECTL_PATH", ["kubectl"], env),
  },
];

/** Looks up one prerequisite by name and returns its path, or throws the message `npm test` gives. */
export function requirePrerequisite(
  name: "Chromium" | "promtool" | "kubectl",
  env: NodeJS.ProcessEnv = process.env,
): string {
  const prerequisite = PREREQUISITES.find((p) => p.name === name)!;
  const found = prerequisite.find(env);
  if (found.kind === "found") return found.where;
  // Failing, not skipping: what the test checks is part of what Conveyor promises.
  throw new Error(
    found.kind === "broken"
      ? found.reason
      : `${name} not found on PATH: install it (Debian/Ubuntu: apt-get install -y ${prerequisite.debianPackage}) or set ${prerequisite.override}; \`npm test\` installs it when run as root`,
  );
}

export interface Host {
  isRoot: boolean;
  hasApt: boolean;
  /** `CONVEYOR_TEST_INSTALL`: `auto` (default) installs what is missing when it can, `never` only reports. */
  install: "auto" | "never";
}

export type Plan =
  | { kind: "ready"; found: { name: string; where: string }[] }
  | { kind: "install"; packages: string[]; command: string[]; missing: Prerequisite[] }
  | { kind: "stop"; message: string };

/**
 * What `npm test` does about its prerequisites: nothing when everything is there, install the
 * missing Debian packages when it may (root with apt-get, not told otherwise), else stop with the
 * exact command to run. A broken override always stops: installing would not fix it.
 */
export function planPrerequisites(
  results: readonly { prerequisite: Prerequisite; found: Found }[],
  host: Host,
): Plan {
  const broken = results.flatMap((r) => (r.found.kind === "broken" ? [r.found.reason] : []));
  if (broken.length > 0) {
    return {
      kind: "stop",
      message: `npm test cannot start:\n${broken.map((b) => `  ${b}`).join("\n")}`,
    };
  }
  const missing = results.filter((r) => r.found.kind === "missing").map((r) => r.prerequisite);
  if (missing.length === 0) {
    return {
      kind: "ready",
      found: results.map((r) => ({
        name: r.prerequisite.name,
        where: r.found.kind === "found" ? r.found.where : "",
      })),
    };
  }
  const packages = [...new Set(missing.map((p) => p.debianPackage))];
  const install = ["apt-get", "install", "-y", "--no-install-recommends", ...packages];
  if (host.isRoot && host.hasApt && host.install === "auto") {
    return { kind: "install", packages, command: install, missing };
  }
  const lines = [
    "npm test needs what this machine does not have:",
    ...missing.map((p) => `  - ${p.name}, for ${p.neededBy}`),
    "",
    host.hasApt
      ? `Install it with:\n\n  ${host.isRoot ? "" : "sudo "}apt-get update && ${host.isRoot ? "" : "sudo "}${install.join(" ")}\n`
      : `Install ${packages.length > 1 ? "them" : "it"} with your system's package manager (Debian/Ubuntu packages: ${packages.join(", ")}).\n`,
    `Or point the tests at your own: ${missing.map((p) => p.override).join(", ")}.`,
    host.isRoot && host.hasApt
      ? "(CONVEYOR_TEST_INSTALL=never kept npm test from installing it.)"
      : "As root on Debian or Ubuntu, npm test installs these itself.",
  ];
  return { kind: "stop", message: lines.join("\n") };
}
