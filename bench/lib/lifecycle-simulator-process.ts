/**
 * The GitHub simulator for `lifecycle-cost`, in a process of its own: installation `acme`,
 * repository `acme/widgets` with one small file per issue to come (`notes/issue-<n>.md`, so each
 * task's change is a one-line edit of an existing file: tier 1), `octocat` with write access, the
 * `conveyor` label, a CI that passes every pushed commit, webhooks to the server under test, and
 * GitHub's primary rate limit as BENCH_RATE_LIMIT (JSON) sets it. No cache in front: every
 * request is counted as GitHub would count it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGitHubSimulator } from "../../test/github-sim/create-github-simulator.ts";
import type { SecondaryLimit, SimRateLimitOptions } from "../../test/github-sim/rate-limits.ts";
import { failStart, serveParent } from "./child.ts";

export interface LifecycleSimulatorInfo {
  url: string;
  appId: number;
  installationId: number;
  repo: string;
}

/** REST requests by `METHOD /route/template` and by answer status. */
export interface RequestCounts {
  total: number;
  byRoute: Record<string, number>;
  byStatus: Record<string, number>;
  /** Error answers (4xx, 5xx) by `STATUS METHOD /route/template`. */
  errorsByRoute: Record<string, number>;
  /** Requests refused for a rate limit, by kind, since the simulator started. */
  rateLimited: { primary: number; secondary: number };
  violations: string[];
}

try {
  const privateKeyPem = process.env.BENCH_PRIVATE_KEY;
  if (!privateKeyPem) throw new Error("BENCH_PRIVATE_KEY is not set");
  const issues = Number(process.env.BENCH_ISSUES ?? "0");
  const rateLimit = JSON.parse(process.env.BENCH_RATE_LIMIT ?? "{}") as SimRateLimitOptions;
  const dataDir = mkdtempSync(join(tmpdir(), "conveyor-bench-lifecycle-sim-"));
  const sim = await createGitHubSimulator({
    dataDir,
    appId: 4242,
    appSlug: "conveyor",
    privateKeyPem,
    rateLimit,
    ciProvider: { name: "ci / test", conclude: () => "success" },
  });
  const installation = await sim.createInstallation({
    account: "acme",
    accountType: "Organization",
  });
  const repo = "acme/widgets";
  const files: Record<string, string> = { "README.md": "# widgets\n" };
  for (let n = 1; n <= issues; n++) files[`notes/issue-${n}.md`] = `# Note ${n}\n\ntodo\n`;
  await sim.createRepository({
    owner: "acme",
    name: "widgets",
    installationId: installation.id,
    files,
  });
  sim.setPermission(repo, "octocat", "write");
  sim.createLabel(repo, { name: "conveyor", color: "0e8a16" });
  // Counted from the first label on: setting up is not the life cycle.
  let from = Number.POSITIVE_INFINITY;

  serveParent(
    {
      setWebhook(params: { url: string; secret: string }) {
        sim.setWebhook(params);
      },
      /** Opens the issues (numbers 1…n, matching the seeded notes), without the label. */
      async openIssues() {
        const numbers: number[] = [];
        for (let n = 1; n <= issues; n++) {
          const { issue } = await sim.openIssue(repo, {
            title: `Update note ${n}`,
            body: `Replace "todo" in notes/issue-${n}.md with "done".`,
            user: "octocat",
          });
          numbers.push(issue.number);
        }
        return numbers;
      },
      /** Labels each issue as octocat would (the webhook goes to the server), one at a time. */
      async labelIssues(numbers: number[]) {
        from = Math.min(from, Date.now());
        for (const n of numbers) await sim.addLabel(repo, n, "conveyor", { sender: "octocat" });
      },
      injectSecondaryLimit(limit: SecondaryLimit) {
        sim.injectSecondaryLimit(limit);
      },
      counts(): RequestCounts {
        const byRoute: Record<string, number> = {};
        const byStatus: Record<string, number> = {};
        const errorsByRoute: Record<string, number> = {};
        let total = 0;
        for (const r of sim.requests) {
          // The REST API only: git over HTTP is not rate-limited like it.
          if (r.at < from || !r.route || r.route.includes(".git/")) continue;
          total++;
          const key = `${r.method} ${r.route}`;
          byRoute[key] = (byRoute[key] ?? 0) + 1;
          byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
          if (r.status >= 400) {
            const error = `${r.status} ${key}`;
            errorsByRoute[error] = (errorsByRoute[error] ?? 0) + 1;
          }
        }
        return {
          total,
          byRoute,
          byStatus,
          errorsByRoute,
          rateLimited: { ...sim.rateLimited },
          violations: sim.violations.map((v) => `${v.kind} ${v.method} ${v.path}: ${v.message}`),
        };
      },
      async idle() {
        await sim.idle();
      },
      async stop() {
        await sim.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    },
    {
      url: sim.url,
      appId: sim.appId,
      installationId: installation.id,
      repo,
    } satisfies LifecycleSimulatorInfo,
  );
} catch (error) {
  failStart(error);
}
