import type { Reporter, TestModule, TestRunEndReason } from "vitest/node";
import type {} from "./test-meta.ts";

export interface RunCounts {
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * The run's counts as CI reads them. A failure is anything that makes vitest exit non-zero: a
 * failed test, an error outside any test (a file that does not load, a failing `beforeAll` or
 * `afterAll`, which vitest reports on the suite while its tests show as skipped), an unhandled
 * error, or a run that ended failed for a reason none of those name (then it counts once). So the
 * line and the exit code never disagree.
 */
export function countRun(
  testModules: ReadonlyArray<TestModule>,
  unhandledErrors: ReadonlyArray<unknown>,
  reason: TestRunEndReason,
): RunCounts {
  const counts: RunCounts = { passed: 0, failed: 0, skipped: 0 };
  for (const module of testModules) {
    const failedBefore = counts.failed;
    for (const test of module.children.allTests()) {
      const state = test.result().state;
      if (state === "passed") counts.passed++;
      else if (state === "failed") counts.failed++;
      else counts.skipped++;
    }
    for (const suite of [module, ...module.children.allSuites()]) {
      counts.failed += suite.errors().length;
    }
    // Failed with no failed test and no error of its own (vitest gives one; belt and braces).
    if (module.state() === "failed" && counts.failed === failedBefore) counts.failed++;
  }
  counts.failed += unhandledErrors.length;
  if (reason !== "passed" && counts.failed === 0) counts.failed = 1;
  return counts;
}

/** `file  12.3 s` for the `n` test files that took longest, slowest first. */
export function slowestFiles(testModules: ReadonlyArray<TestModule>, n = 10): string[] {
  const timed = testModules.map((module) => {
    const d = module.diagnostic();
    return {
      file: module.relativeModuleId,
      ms:
        d.environmentSetupDuration +
        d.prepareDuration +
        d.collectDuration +
        d.setupDuration +
        d.duration,
    };
  });
  timed.sort((a, b) => b.ms - a.ms);
  const width = Math.max(0, ...timed.slice(0, n).map((t) => t.file.length));
  return timed
    .slice(0, n)
    .map((t) => `  ${t.file.padEnd(width)}  ${(t.ms / 1000).toFixed(1).padStart(6)} s`);
}

/**
 * Ends the run with the plain line `N passed, N failed` that CI reads (vitest's own summary is
 * formatted for people). Skipped tests are counted separately so they cannot pass silently.
 * Before it: the slowest ten files, and the counts fault and security tests recorded in their meta
 * (`faultCounts`, `securityCase`), one line each.
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
    reason: TestRunEndReason,
  ) {
    const faultLines: string[] = [];
    const security = { cases: 0, defended: 0, stored: 0 };
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const { faultCounts: c, securityCase: s } = test.meta();
        if (c) {
          const file = module.relativeModuleId.replace(/^.*\//, "").replace(/\.test\.ts$/, "");
          faultLines.push(
            `faults: ${file}: tasks=${c.tasks} faults=${c.faults} lost=${c.lost} duplicated=${c.duplicated}`,
          );
        }
        if (s) {
          security.cases++;
          if (s.defended) security.defended++;
          security.stored += s.stored;
        }
      }
    }
    const { passed, failed, skipped } = countRun(testModules, unhandledErrors, reason);
    const lines = [
      ...(testModules.length > 1 ? ["slowest files:", ...slowestFiles(testModules)] : []),
      ...faultLines,
      ...(security.cases
        ? [
            `security: cases=${security.cases} defended=${security.defended} stored=${security.stored}`,
          ]
        : []),
    ];
    process.stdout.write(
      `${lines.length ? `\n${lines.join("\n")}\n` : ""}\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`,
    );
  }
}
