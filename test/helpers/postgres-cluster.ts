import { execFile, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findPostgresBinDir } from "./prerequisites.ts";

const run = promisify(execFile);

export interface PostgresCluster {
  /** Superuser URL of the `postgres` database. */
  url: string;
  /**
   * Crashes the server (`pg_ctl stop -m immediate`: every session cut, no checkpoint), keeps it
   * down for `downMs`, and starts it again on the same port and data: a database restart as
   * clients see it.
   */
  restart(options?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/** Finds `initdb`/`pg_ctl` (see prerequisites.ts), or says how to get them. */
function requirePostgresBinDir(): string {
  const dir = findPostgresBinDir();
  if (dir) return dir;
  throw new Error(
    "PostgreSQL server binaries not found. Install them (Debian: apt-get install -y postgresql) " +
      "or set TEST_DATABASE_URL to a server the tests may create databases on.",
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a throwaway PostgreSQL cluster on a free loopback port (about a second). initdb refuses to
 * run as root, so as root the cluster belongs to the `postgres` system user.
 */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = requirePostgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "conveyor-pg-"));
  const dataDir = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const exec = (cmd: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args])
      : run(join(bin, cmd), args);
  if (asRoot) chownSync(dir, uidOf("postgres"), gidOf("postgres"));
  await exec("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    // Throwaway data: durability buys nothing here and costs seconds.
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=300",
  ].join(" ");
  const start = () =>
    exec("pg_ctl", ["-D", dataDir, "-o", options, "-l", join(dir, "log"), "-w", "start"]);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restart({ downMs = 0 } = {}) {
      await exec("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
    },
    async stop() {
      await exec("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function uidOf(user: string): number {
  return Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
}
function gidOf(user: string): number {
  return Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout.trim());
}
