import { generateKeyPairSync } from "node:crypto";
import postgres from "postgres";
import type { StartOptions } from "../../src/main.ts";
import type { BenchContext } from "./benchmark.ts";
import { type BenchChild, startChild } from "./child.ts";
import type { ConveyorInfo } from "./conveyor-process.ts";
import type { SimulatorInfo, SimulatorStats } from "./simulator-process.ts";
import { WEBHOOK_SECRET } from "./webhooks.ts";

let privateKey: string | undefined;
/** The benchmark GitHub App's key (RSA 2048 like GitHub's), made once per run. */
export function appPrivateKey(): string {
  privateKey ??= generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;
  return privateKey;
}

export type Simulator = BenchChild<SimulatorInfo> & {
  stats(): Promise<SimulatorStats>;
  /** Throws if the server made a request GitHub would have refused. */
  assertNoViolations(): Promise<SimulatorStats>;
};

/** The GitHub simulator in its own process, seeded with one installed repository. */
export async function startSimulator(ctx: BenchContext, name: string): Promise<Simulator> {
  const child = await startChild<SimulatorInfo>({
    name: `${name}-github-sim`,
    script: new URL("./simulator-process.ts", import.meta.url),
    logDir: ctx.logDir,
    env: { BENCH_PRIVATE_KEY: appPrivateKey() },
  });
  const stats = () => child.call<SimulatorStats>("stats");
  return Object.assign(child, {
    stats,
    async assertNoViolations() {
      const current = await stats();
      if (current.violations.length) {
        throw new Error(`GitHub would have refused requests: ${current.violations.join("; ")}`);
      }
      return current;
    },
  });
}

/**
 * A Conveyor server in its own process, configured through the environment as `conveyor start`
 * is, pointed at the simulator as its GitHub. Logs at `warn` to `<logDir>/<name>.log`.
 */
export async function startConveyorServer(
  ctx: BenchContext,
  options: {
    name: string;
    databaseUrl: string;
    sim: Pick<SimulatorInfo, "url" | "appId">;
    start?: StartOptions;
    env?: Record<string, string>;
    nofile?: number;
  },
): Promise<BenchChild<ConveyorInfo>> {
  return startChild<ConveyorInfo>({
    name: options.name,
    script: new URL("./conveyor-process.ts", import.meta.url),
    logDir: ctx.logDir,
    nofile: options.nofile,
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: options.databaseUrl,
      APP_ID: String(options.sim.appId),
      PRIVATE_KEY: appPrivateKey(),
      WEBHOOK_SECRET,
      GITHUB_API_URL: options.sim.url,
      LOG_LEVEL: "warn",
      ...options.env,
      BENCH_START_OPTIONS: JSON.stringify(options.start ?? {}),
    },
  });
}

/**
 * Frame limits for simulated runners that finish a task the moment they get it: the production
 * limits (60 results a minute per runner) exist to stop runaway clients, and would measure the
 * limiter instead of the queue.
 */
export const UNLIMITED_FRAMES = { light: 1_000_000, normal: 1_000_000, heavy: 1_000_000 };

/** The simulator's repository as intake would have recorded it (for tasks seeded directly). */
export async function seedRepository(databaseUrl: string, sim: SimulatorInfo): Promise<number> {
  const repository = sim.repository as { id: number; full_name: string; default_branch: string };
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`
      insert into repositories (repository_id, installation_id, full_name, default_branch)
      values (${repository.id}, ${sim.installationId}, ${repository.full_name},
              ${repository.default_branch})`;
  } finally {
    await sql.end();
  }
  return repository.id;
}
