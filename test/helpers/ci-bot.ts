import type { GitHubSimulator } from "../github-sim/create-github-simulator.ts";

/**
 * A CI system for fault tests: every head a `pull_request` webhook announces (opened,
 * synchronize) gets one green `ci` check run, as a real CI app would. It reads what GitHub sent,
 * not what Conveyor received, so a dropped delivery still gets its CI.
 */
export function startCiBot(sim: GitHubSimulator, repo: string): { stop(): Promise<void> } {
  const checked = new Set<string>();
  let cursor = 0;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();

  async function pass(): Promise<void> {
    const heads: string[] = [];
    for (; cursor < sim.deliveries.length; cursor++) {
      const delivery = sim.deliveries[cursor]!;
      if (delivery.event !== "pull_request" || delivery.redelivery) continue;
      if (delivery.action !== "opened" && delivery.action !== "synchronize") continue;
      const pull = delivery.payload.pull_request as { head: { sha: string } };
      if (!checked.has(pull.head.sha)) {
        checked.add(pull.head.sha);
        heads.push(pull.head.sha);
      }
    }
    for (const headSha of heads) {
      await sim.createCheckRun(repo, {
        name: "ci",
        headSha,
        status: "completed",
        conclusion: "success",
      });
    }
  }

  const timer = setInterval(() => {
    if (stopped) return;
    running = running.then(pass).catch(() => {});
  }, 100);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
