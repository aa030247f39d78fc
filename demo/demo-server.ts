import { runStartCommand } from "../src/cli/start-command.ts";

/**
 * `conveyor start` as the demo and the end-to-end test run it: the same composition root, the
 * same environment variables, the same logs, with one difference: GitHub writes are not paced.
 * Against github.com Conveyor spaces its writes (80 a minute, and Octokit's throttling one a
 * second) to stay under GitHub's secondary rate limit; the simulator has no such limit, and pacing
 * would stretch the two-minute demo to several.
 */
await runStartCommand(process.env, {
  octokitOptions: { throttle: { enabled: false } },
  githubWritesPerMinute: 100_000,
  // The demo's agents work for seconds, not minutes: runners beat every 2 s (not 15) and the
  // status comment may show an attempt's progress every 3 s (not 30), so the progress is seen.
  dispatchTimings: { heartbeatMs: 2_000, progressEditMs: 3_000 },
  // Its CI takes a second and a half: a best-of round waiting for its candidates' checks looks
  // again after 1 s (not 15).
  bestOfChecksRecheckMs: 1_000,
});
