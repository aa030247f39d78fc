import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { type RunningConveyor, type StartOptions, startConveyor } from "../../src/main.ts";
import { countOwedDeliveries, recordedDeliveryIds } from "../../src/store/webhook-deliveries.ts";
import {
  createGitHubSimulator,
  type GitHubSimulator,
  type GitHubSimulatorOptions,
} from "../github-sim/create-github-simulator.ts";
import { createTestDatabase, type TestDatabase } from "./test-database.ts";
import { waitFor } from "./wait-for.ts";
import { testPrivateKey } from "./webhooks.ts";

export const WEBHOOK_SECRET = "harness-webhook-secret";
export const ADMIN_TOKEN = "harness-admin-token-0123456789";

/** Protocol timings short enough for tests (the real ones are 15 s / 60 s / 30 s / 10 s / 30 s). */
export const FAST_TIMINGS = {
  heartbeatMs: 300,
  leaseMs: 2_000,
  acceptMs: 1_500,
  sweepMs: 200,
  backoffBaseMs: 100,
};

/** The start options every test server uses (JSON, so a server process can get them too). */
export const TEST_START_OPTIONS = {
  notifierIntervalMs: 50,
  intakeIntervalMs: 100,
  intakeRetryMs: 100,
  mergerIntervalMs: 500,
  // The simulator has no secondary rate limit; tests make bursts GitHub would pace.
  githubWritesPerMinute: 100_000,
  // Status comments: a short debounce, so tests see each settled state quickly.
  statusPacing: { debounceMs: 100, maxDelayMs: 1_000 },
  dispatchTimings: FAST_TIMINGS,
} satisfies Partial<StartOptions>;

export interface Harness {
  sim: GitHubSimulator;
  conveyor: RunningConveyor;
  database: TestDatabase;
  installationId: number;
  /** GitHub's id of `repo`. */
  repositoryId: number;
  /** Another app instance on the same database and simulator (stopped by `close`). */
  startAnother(options?: { port?: number }): Promise<RunningConveyor>;
  /** `acme/widgets`, installed, with `octocat` (write), `reader` (read) and `maint` (maintain). */
  repo: string;
  close(): Promise<void>;
}

/** GitHub (the simulator with one installed repository) and a database, without a server. */
export interface World {
  sim: GitHubSimulator;
  database: TestDatabase;
  installationId: number;
  /** GitHub's id of `repo`. */
  repositoryId: number;
  /** `acme/widgets`, installed, with `octocat` (write), `reader` (read) and `maint` (maintain). */
  repo: string;
  /** The environment a Conveyor server for this world runs with (`loadConfig` input). */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * The simulator (with a repository and collaborators) and a fresh test database, or the database
 * `options.database` opens (e.g. on a cluster the test restarts).
 */
export async function createWorld(
  options: {
    files?: Record<string, string>;
    env?: Record<string, string>;
    database?: () => Promise<TestDatabase>;
    /** The App's permissions and events on the simulator (default: all it can send). */
    simulator?: Pick<
      GitHubSimulatorOptions,
      "permissions" | "events" | "clock" | "rateLimit" | "ciProvider"
    >;
  } = {},
): Promise<World> {
  const dataDir = mkdtempSync(join(tmpdir(), "conveyor-sim-"));
  const privateKey = testPrivateKey();
  const sim = await createGitHubSimulator({
    dataDir,
    appId: 4242,
    appSlug: "conveyor",
    privateKeyPem: privateKey,
    ...options.simulator,
  });
  const database = await (options.database ?? createTestDatabase)();
  waitForIntakeOnIdle(sim, database);
  const installation = await sim.createInstallation({
    account: "acme",
    accountType: "Organization",
  });
  const repo = "acme/widgets";
  const created = await sim.createRepository({
    owner: "acme",
    name: "widgets",
    installationId: installation.id,
    files: { "README.md": "# widgets\n", ...options.files },
  });
  sim.setPermission(repo, "octocat", "write");
  sim.setPermission(repo, "maint", "maintain");
  sim.setPermission(repo, "reader", "read");
  return {
    sim,
    database,
    installationId: installation.id,
    repositoryId: created.id,
    repo,
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url,
      APP_ID: String(sim.appId),
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET,
      GITHUB_API_URL: sim.url,
      CONVEYOR_ADMIN_TOKEN: ADMIN_TOKEN,
      // Tests run reconciliation themselves.
      CONVEYOR_RECONCILE_MINUTES: "600",
      ...options.env,
    },
    async close() {
      await sim.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Makes `sim.idle()` also wait until Conveyor has acted on the deliveries it stored: webhook
 * handlers answer once the delivery is stored, and the intake loop carries out its effect soon
 * after. Acting can make GitHub send more webhooks (a label, a comment), so it looks again while
 * new ones came, a few rounds at most (a busy system never goes quiet).
 */
function waitForIntakeOnIdle(sim: GitHubSimulator, database: TestDatabase): void {
  const githubIdle = sim.idle.bind(sim);
  sim.idle = async () => {
    for (let round = 0; round < 3; round++) {
      await githubIdle();
      const sent = sim.deliveries.length;
      // A delivery without an effect is answered (200) before its record is written.
      const answered = sim.deliveries
        .slice(-200)
        .filter((d) => d.status === 200)
        .map((d) => d.id);
      await waitFor(
        async () =>
          (await recordedDeliveryIds(database.db, answered)).size === new Set(answered).size,
        { timeoutMs: 20_000, message: "every answered delivery recorded" },
      );
      await waitFor(async () => (await countOwedDeliveries(database.db)) === 0, {
        timeoutMs: 20_000,
        message: "the intake loop acted on every stored delivery",
      });
      await githubIdle();
      if (sim.deliveries.length === sent) return;
    }
  };
}

/**
 * The app as GitHub sees it: the simulator (with a repository and collaborators), a fresh test
 * database and a real Conveyor server wired to both. Octokit retries and throttling are off.
 */
export async function createHarness(
  options: {
    files?: Record<string, string>;
    env?: Record<string, string>;
    start?: Partial<StartOptions>;
    database?: () => Promise<TestDatabase>;
    simulator?: Pick<
      GitHubSimulatorOptions,
      "permissions" | "events" | "clock" | "rateLimit" | "ciProvider"
    >;
  } = {},
): Promise<Harness> {
  const world = await createWorld(options);
  const { sim, database } = world;
  const config = loadConfig(world.env);
  const startOptions: StartOptions = {
    logger: createLogger({ level: (process.env.TEST_LOG_LEVEL as "info" | undefined) ?? "silent" }),
    octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } },
    ...TEST_START_OPTIONS,
    ...options.start,
    dispatchTimings: { ...FAST_TIMINGS, ...options.start?.dispatchTimings },
  };
  const conveyor = await startConveyor(config, startOptions);
  const others: RunningConveyor[] = [];
  sim.setWebhook({ url: `${conveyor.url}/api/github/webhooks`, secret: WEBHOOK_SECRET });
  return {
    sim,
    conveyor,
    database,
    installationId: world.installationId,
    repositoryId: world.repositoryId,
    repo: world.repo,
    async startAnother(options = {}) {
      const another = await startConveyor({ ...config, port: options.port ?? 0 }, startOptions);
      others.push(another);
      return another;
    },
    async close() {
      await Promise.all(others.map((o) => o.stop()));
      await conveyor.stop();
      await world.close();
    },
  };
}
