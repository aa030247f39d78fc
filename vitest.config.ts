import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default", "./test/helpers/count-reporter.ts"],
    testTimeout: 30_000,
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
