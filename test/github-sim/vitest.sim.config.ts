import { defineConfig } from "vitest/config";

/**
 * Runs the simulator's own tests without the shared integration set-up (which starts PostgreSQL):
 * `npx vitest run --config test/github-sim/vitest.sim.config.ts`.
 */
export default defineConfig({
  test: {
    include: ["test/github-sim/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
