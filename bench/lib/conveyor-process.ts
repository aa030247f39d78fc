/**
 * One Conveyor server, started with `startConveyor` exactly as `conveyor start` does (config from
 * the environment), plus the StartOptions in BENCH_START_OPTIONS (JSON). Runs in its own process
 * so its memory and CPU are its own.
 */
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { type StartOptions, startConveyor } from "../../src/main.ts";
import { failStart, processStats, serveParent } from "./child.ts";

export interface ConveyorInfo {
  url: string;
  pid: number;
}

try {
  const config = loadConfig(process.env);
  const options = JSON.parse(process.env.BENCH_START_OPTIONS ?? "{}") as StartOptions;
  const conveyor = await startConveyor(config, {
    ...options,
    logger: createLogger({ level: config.logLevel }),
  });
  serveParent(
    {
      stats: () => ({ ...processStats(), connections: conveyor.dispatcher?.connections().length }),
      /** Runs reconciliation now (the benchmarks that seed tasks directly never call it). */
      reconcile: () => conveyor.reconcile(),
      stop: () => conveyor.stop(),
    },
    { url: conveyor.url, pid: process.pid } satisfies ConveyorInfo,
  );
} catch (error) {
  failStart(error);
}
