import { execFile, spawnSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { createDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { processCpuSeconds } from "./child.ts";
import { round } from "./stats.ts";

const run = promisify(execFile);

const MISSING_BINARIES =
  "PostgreSQL server binaries (initdb, pg_ctl, pgbench) were not found. Install them " +
  "(Debian/Ubuntu: apt-get install -y postgresql; Fedora: dnf install postgresql-server " +
  "postgresql-contrib; macOS: brew install postgresql@15), or pass --database-url with a server " +
  "where the benchmarks may create databases.";

/** Where `initdb`, `pg_ctl` and `pgbench` live: Debian's /usr/lib/postgresql/<v>/bin, else PATH. */
export function findPostgresBinaries(): string | undefined {
  if (existsSync("/usr/lib/postgresql")) {
    for (const version of readdirSync("/usr/lib/postgresql").sort().reverse()) {
      const dir = join("/usr/lib/postgresql", version, "bin");
      if (existsSync(join(dir, "initdb"))) return dir;
    }
  }
  const which = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" });
  const found = which.stdout?.trim();
  return which.status === 0 && found ? join(found, "..") : undefined;
}

/** The commit rate this server sustains for one-row inserts, measured with pgbench. */
export interface CommitCeiling {
  tool: string;
  script: string;
  seconds: number;
  /** Committed transactions per second by number of client connections. */
  tpsByClients: Record<string, number>;
}

export interface BenchPostgres {
  /** Superuser URL of the `postgres` maintenance database. */
  adminUrl: string;
  /** `select version()`. */
  version: string;
  /** The settings that decide the commit rate. */
  settings: Record<string, string>;
  /** "started for this run" or "given with --database-url". */
  origin: string;
  /** A new database, migrated (cloned from a template) unless `migrated: false`. Returns its URL. */
  createDatabase(name: string, options?: { migrated?: boolean }): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /**
   * Committed transactions of one database from pg_stat_database. Backends publish their counts
   * at most once a second and when they exit, so read it after the clients disconnected
   * (`waitForNoBackends`) or after a pause.
   */
  commits(database: string): Promise<number>;
  /** Waits until no backend is connected to the database, so every backend flushed its stats. */
  waitForNoBackends(database: string, timeoutMs?: number): Promise<void>;
  /** pgbench one-row insert transactions; undefined when pgbench is not available. */
  measureCommitCeiling(seconds: number): Promise<CommitCeiling | undefined>;
  /** CPU seconds used by the server's processes so far; NaN when the server is not ours. */
  cpuSeconds(): number;
  stop(): Promise<void>;
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

/** Databases of this run carry the process id, so two runs can share a --database-url server. */
const RUN = `cb${process.pid}`;
const TEMPLATE = `${RUN}_template`;
const named = (database: string) => `${RUN}_${database}`;

/**
 * The run's PostgreSQL: `url` if given, else a throwaway cluster with PostgreSQL's default
 * durability (fsync and synchronous commit on: the commit rate is part of what is measured).
 */
export async function startBenchPostgres(options: {
  url?: string | undefined;
  progress: (message: string) => void;
}): Promise<BenchPostgres> {
  const binDir = findPostgresBinaries();
  let stopCluster: () => Promise<void> = async () => {};
  let adminUrl: string;
  let postmasterPid: number | undefined;
  let origin: string;
  if (options.url) {
    adminUrl = options.url;
    origin = "given with --database-url";
  } else {
    if (!binDir) throw new Error(MISSING_BINARIES);
    options.progress(`starting PostgreSQL from ${binDir}`);
    const cluster = await startCluster(binDir);
    adminUrl = cluster.url;
    postmasterPid = cluster.postmasterPid;
    stopCluster = cluster.stop;
    origin = "started for this run (initdb, default durability)";
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin`select 1`;
  } catch (error) {
    await admin.end().catch(() => {});
    await stopCluster();
    throw new Error(
      `cannot connect to PostgreSQL at ${redact(adminUrl)}: ${(error as Error).message}`,
    );
  }
  const [{ version }] = (await admin`select version()`) as unknown as [{ version: string }];
  const settingRows = (await admin`
    select name, setting, unit from pg_settings
    where name in ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
                   'shared_buffers', 'max_connections', 'commit_delay')`) as unknown as {
    name: string;
    setting: string;
    unit: string | null;
  }[];
  const settings = Object.fromEntries(
    settingRows.map((r) => [r.name, r.unit ? `${r.setting} (${r.unit})` : r.setting]),
  );
  const urlOf = (database: string) => {
    const url = new URL(adminUrl);
    url.pathname = `/${database}`;
    return url.toString();
  };

  options.progress("migrating a template database");
  await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`);
  await admin.unsafe(`create database ${TEMPLATE}`);
  const template = await createDatabase({ url: urlOf(TEMPLATE), max: 1 });
  await migrate(template.db);
  await template.close();

  const created = new Set<string>();
  const bench: BenchPostgres = {
    adminUrl,
    version,
    settings,
    origin,
    async createDatabase(name, createOptions = {}) {
      await admin.unsafe(`drop database if exists ${named(name)} with (force)`);
      const from = createOptions.migrated === false ? "template0" : TEMPLATE;
      await admin.unsafe(`create database ${named(name)} template ${from}`);
      created.add(name);
      return urlOf(named(name));
    },
    async dropDatabase(name) {
      await admin.unsafe(`drop database if exists ${named(name)} with (force)`);
      created.delete(name);
    },
    async commits(database) {
      const rows = (await admin`
        select xact_commit::bigint::text as commits from pg_stat_database
        where datname = ${named(database)}`) as unknown as { commits: string }[];
      return Number(rows[0]?.commits ?? Number.NaN);
    },
    async waitForNoBackends(database, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = (await admin`
          select count(*)::int as n from pg_stat_activity where datname = ${named(database)}`) as unknown as {
          n: number;
        }[];
        if (rows[0]?.n === 0) return;
        if (Date.now() > deadline) {
          throw new Error(`${rows[0]?.n} connections to ${database} stayed open`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async measureCommitCeiling(seconds) {
      const pgbench = binDir && join(binDir, "pgbench");
      if (!pgbench || !existsSync(pgbench)) return undefined;
      const url = await bench.createDatabase("pgbench", { migrated: false });
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      await sql`create table commits (id bigserial primary key, v int not null)`;
      await sql.end();
      const script = join(mkdtempSync(join(tmpdir(), "conveyor-pgbench-")), "insert.sql");
      const text = "\\set v random(1, 1000000)\nINSERT INTO commits (v) VALUES (:v);\n";
      writeFileSync(script, text);
      const parsed = new URL(url);
      const tpsByClients: Record<string, number> = {};
      for (const clients of [1, 8]) {
        const { stdout } = await run(
          pgbench,
          [
            "-n",
            "-h",
            parsed.hostname,
            "-p",
            parsed.port || "5432",
            "-U",
            decodeURIComponent(parsed.username || "postgres"),
            "-c",
            String(clients),
            "-j",
            String(Math.min(clients, 2)),
            "-T",
            String(seconds),
            "-f",
            script,
            named("pgbench"),
          ],
          { env: { ...process.env, PGPASSWORD: decodeURIComponent(parsed.password) } },
        );
        const tps = /tps = ([\d.]+)/.exec(stdout)?.[1];
        tpsByClients[String(clients)] = round(Number(tps), 1);
      }
      rmSync(join(script, ".."), { recursive: true, force: true });
      await bench.dropDatabase("pgbench");
      return { tool: "pgbench", script: text.trim(), seconds, tpsByClients };
    },
    cpuSeconds() {
      if (!postmasterPid) return Number.NaN;
      return postgresProcesses(postmasterPid).reduce((sum, pid) => {
        const seconds = processCpuSeconds(pid);
        return Number.isFinite(seconds) ? sum + seconds : sum;
      }, 0);
    },
    async stop() {
      for (const name of [...created]) await bench.dropDatabase(name).catch(() => {});
      await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`).catch(() => {});
      await admin.end().catch(() => {});
      await stopCluster();
    },
  };
  return bench;
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

/** The postmaster and its children (backends, checkpointer, walwriter, …), from /proc. */
function postgresProcesses(postmasterPid: number): number[] {
  const pids = [postmasterPid];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmasterPid) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

async function startCluster(
  binDir: string,
): Promise<{ url: string; postmasterPid: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "conveyor-bench-pg-"));
  const dataDir = join(dir, "data");
  // initdb refuses to run as root: then the cluster belongs to the `postgres` system user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot && spawnSync("id", ["-u", "postgres"]).status !== 0) {
    throw new Error(
      "running as root, and there is no `postgres` system user to own the cluster: install the " +
        "PostgreSQL server package (it creates the user), run as another user, or pass --database-url",
    );
  }
  const exec = (cmd: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(binDir, cmd), ...args])
      : run(join(binDir, cmd), args);
  if (asRoot) {
    const id = (flag: string) =>
      Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
    chownSync(dir, id("-u"), id("-g"));
  }
  await exec("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8"]);
  const port = await freePort();
  const serverOptions = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    // Room for 64 graphile-worker connections next to the server's pools.
    "-c max_connections=400",
  ].join(" ");
  await exec("pg_ctl", ["-D", dataDir, "-o", serverOptions, "-l", join(dir, "log"), "-w", "start"]);
  const postmasterPid = Number(
    readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0],
  );
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    postmasterPid,
    async stop() {
      await exec("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
