/**
 * The GitHub simulator (test/github-sim) in a process of its own, seeded the way the tests seed it:
 * installation `acme`, repository `acme/widgets`, `octocat` with write access, the `conveyor`
 * label. Webhooks are not configured: the driver sends them itself, so it knows when each arrives.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGitHubSimulator } from "../../test/github-sim/create-github-simulator.ts";
import { failStart, serveParent } from "./child.ts";
import { startGitHubCache } from "./github-cache.ts";

export interface SimulatorInfo {
  /** What the server uses as GITHUB_API_URL: the cache in front of the simulator, or the simulator. */
  url: string;
  /** Whether repeatable reads are answered from a cache (CONVEYOR_BENCH_GITHUB_CACHE=off: not). */
  cached: boolean;
  appId: number;
  installationId: number;
  repo: string;
  /** The repository as GitHub renders it in webhook payloads. */
  repository: Record<string, unknown>;
  /** `octocat`, who has write access (may queue work). */
  sender: Record<string, unknown>;
  label: Record<string, unknown>;
}

export interface SimulatorStats {
  /** API requests the server made since start (through the cache or to the simulator). */
  requests: number;
  /** Of those, answered from the cache. */
  cachedRequests: number;
  /** Requests GitHub would have refused: Conveyor's mistakes (none expected). */
  violations: string[];
}

try {
  const privateKeyPem = process.env.BENCH_PRIVATE_KEY;
  if (!privateKeyPem) throw new Error("BENCH_PRIVATE_KEY is not set");
  const dataDir = mkdtempSync(join(tmpdir(), "conveyor-bench-sim-"));
  const sim = await createGitHubSimulator({
    dataDir,
    appId: 4242,
    appSlug: "conveyor",
    privateKeyPem,
  });
  const installation = await sim.createInstallation({
    account: "acme",
    accountType: "Organization",
  });
  const repo = "acme/widgets";
  const repository = await sim.createRepository({
    owner: "acme",
    name: "widgets",
    installationId: installation.id,
    files: { "README.md": "# widgets\n" },
  });
  const sender = sim.createUser("octocat");
  sim.setPermission(repo, "octocat", "write");
  const label = sim.createLabel(repo, { name: "conveyor", color: "0e8a16" });
  const cache =
    process.env.CONVEYOR_BENCH_GITHUB_CACHE === "off" ? undefined : await startGitHubCache(sim.url);
  let requests = 0;

  serveParent(
    {
      /** Opens an issue (no webhook goes out) and returns it as GitHub renders it. */
      async openIssue(params: { title: string; body?: string; labels?: string[] }) {
        const { issue } = await sim.openIssue(repo, { ...params, user: "octocat" });
        return issue;
      },
      stats(): SimulatorStats {
        requests += sim.requests.length;
        // The simulator records every request; dropping the records keeps a long run's memory flat.
        sim.requests.splice(0);
        sim.deliveries.splice(0);
        const counts = cache?.counts();
        return {
          requests: counts ? counts.forwarded + counts.cached : requests,
          cachedRequests: counts?.cached ?? 0,
          violations: sim.violations.map((v) => `${v.kind} ${v.method} ${v.path}: ${v.message}`),
        };
      },
      async stop() {
        await cache?.close();
        await sim.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    },
    {
      url: cache?.url ?? sim.url,
      cached: cache !== undefined,
      appId: sim.appId,
      installationId: installation.id,
      repo,
      repository: repository as unknown as Record<string, unknown>,
      sender: sender as unknown as Record<string, unknown>,
      label: label as unknown as Record<string, unknown>,
    } satisfies SimulatorInfo,
  );
} catch (error) {
  failStart(error);
}
