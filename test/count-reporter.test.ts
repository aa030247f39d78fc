import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/*
 * The last line of `npm test` is what CI reads, so it must say "failed" whenever vitest exits
 * non-zero. Each row runs real vitest on fixture files (test/fixtures/reporter) with the suite's
 * own reporter and checks the line and the exit code together.
 */

const CONFIG = fileURLToPath(new URL("./fixtures/reporter/vitest.config.ts", import.meta.url));
const VITEST = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));

function runFixtures(files: string[]): Promise<{ code: number; lastLine: string; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [VITEST, "run", "--config", CONFIG, ...files],
      { env: { ...process.env, CI: "1", NO_COLOR: "1" }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const lines = stdout.trim().split("\n");
        resolve({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          lastLine: lines.at(-1) ?? "",
          output: `${stdout}${stderr}`,
        });
      },
    );
  });
}

describe("the count line", () => {
  it.concurrent.each([
    { files: ["passing"], line: "2 passed, 0 failed", code: 0 },
    // A failing beforeAll leaves its tests "skipped"; the hook's error is the failure.
    { files: ["passing", "failing-before-all"], line: "2 passed, 1 failed, 3 skipped", code: 1 },
    { files: ["failing-after-all"], line: "1 passed, 1 failed", code: 1 },
    { files: ["failing-load"], line: "0 passed, 1 failed", code: 1 },
    { files: ["unhandled-error"], line: "1 passed, 1 failed", code: 1 },
    { files: ["failing-test"], line: "1 passed, 1 failed", code: 1 },
  ])("$files → $line, exit $code", async ({ files, line, code }) => {
    const run = await runFixtures(files);
    expect(run.lastLine, run.output).toBe(line);
    expect(run.code, run.output).toBe(code);
    // The rule itself: the line says failed exactly when the exit code does.
    expect(/ 0 failed/.test(run.lastLine)).toBe(run.code === 0);
  });
});
