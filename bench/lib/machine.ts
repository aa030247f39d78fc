import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";
import { ROOT } from "./child.ts";

const require = createRequire(import.meta.url);

/** What the numbers came from: they mean little without it. */
export function describeMachine() {
  const cores = cpus();
  return {
    platform: platform(),
    kernel: release(),
    arch: arch(),
    cpuModel: cores[0]?.model.trim() ?? "unknown",
    logicalCpus: cores.length,
    cpuMhz: cores[0]?.speed || cpuinfoMhz(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    /** 1, 5 and 15 minute load averages when the benchmark started (other work on the machine). */
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    container: existsSync("/.dockerenv") ? "docker" : undefined,
  };
}

/** Some virtual machines report no clock speed to os.cpus(); /proc/cpuinfo usually has it. */
function cpuinfoMhz(): number | undefined {
  try {
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
    return mhz ? Math.round(Number(mhz)) : undefined;
  } catch {
    return undefined;
  }
}

function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    // Packages whose `exports` hide package.json: read it from node_modules.
    try {
      const json = readFileSync(`${ROOT}/node_modules/${name}/package.json`, "utf8");
      return (JSON.parse(json) as { version: string }).version;
    } catch {
      return "unknown";
    }
  }
}

function gitCommit(): string {
  const head = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (head.status !== 0) return "unknown";
  // Results written by this very run do not make the code dirty.
  const dirty = spawnSync(
    "git",
    ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  return `${head.stdout.trim()}${dirty.stdout.trim() ? "-dirty" : ""}`;
}

/** Versions of everything a number depends on. */
export function describeVersions(postgresVersion?: string) {
  const own = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { version: string };
  return {
    conveyor: own.version,
    commit: gitCommit(),
    node: process.version,
    v8: process.versions.v8,
    postgres: postgresVersion,
    packages: Object.fromEntries(
      [
        "probot",
        "hono",
        "@hono/node-server",
        "ws",
        "postgres",
        "drizzle-orm",
        "zod",
        "graphile-worker",
        "pg",
        "autocannon",
        "@octokit/webhooks-examples",
      ].map((name) => [name, packageVersion(name)]),
    ),
  };
}
