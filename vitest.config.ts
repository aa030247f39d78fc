import { availableParallelism } from "node:os";
import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default", "./test/helpers/count-reporter.ts"],
    testTimeout: 30_000,
    // vitest's default is one worker per core less one: on two cores, one file at a time. The
    // integration files spend much of their time waiting on PostgreSQL, git, child processes and
    // timers, so two files at a time use two cores well without starving timing-sensitive tests.
    maxWorkers: Math.max(2, availableParallelism()),
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: [
            "src/**/*.test.ts",
            "runners/**/*.test.ts",
            "demo/**/*.test.ts",
            "test/architecture/**/*.test.ts",
          ],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts", "db/**/*.test.ts"],
          // Reads source files only: no database needed.
          exclude: [...configDefaults.exclude, "test/architecture/**"],
          // Starts a throwaway PostgreSQL cluster unless TEST_DATABASE_URL is set, and migrates a
          // template database that every test file clones.
          globalSetup: ["test/helpers/global-setup.ts"],
        },
      },
    ],
  },
});
