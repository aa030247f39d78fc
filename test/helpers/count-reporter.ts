import type { Reporter, TestModule } from "vitest/node";
import type {} from "./test-meta.ts";

/**
 * Ends the run with the plain line `N passed, N failed` that CI reads (vitest's own summary is
 * formatted for people). Skipped tests are counted separately so they cannot pass silently.
 * Before it, the counts fault and security tests recorded in their meta (`faultCounts`,
 * `securityCase`), one line each.
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const faultLines: string[] = [];
    const security = { cases: 0, defended: 0, stored: 0 };
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
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
      // A file that failed to load has no tests but must still fail the run.
      if (module.state() === "failed" && module.children.size === 0) failed++;
    }
    failed += unhandledErrors.length;
    const counts = [
      ...faultLines,
      ...(security.cases
        ? [
            `security: cases=${security.cases} defended=${security.defended} stored=${security.stored}`,
          ]
        : []),
    ];
    process.stdout.write(
      `${counts.length ? `\n${counts.join("\n")}\n` : ""}\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`,
    );
  }
}
