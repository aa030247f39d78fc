/**
 * `conveyor start` for fault tests, as a process of its own that a test can `kill -9`: the same
 * composition root (`startConveyor`) with the environment as configuration, plus what only tests
 * may set (protocol timings, loop intervals) from `CONVEYOR_TEST_START_OPTIONS` (JSON), since
 * waiting out the real 60 s leases would make the suites take many minutes. Run it with
 * `spawnConveyorServer` from `spawn-conveyor.ts`.
 */
import { stopOnSignals } from "../../src/cli/start-command.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { type StartOptions, startConveyor } from "../../src/main.ts";

const config = loadConfig(process.env);
const options = JSON.parse(process.env.CONVEYOR_TEST_START_OPTIONS ?? "{}") as StartOptions;
const running = await startConveyor(config, {
  ...options,
  logger: createLogger({ level: config.logLevel }),
  octokitOptions: { retry: { enabled: false }, throttle: { enabled: false } },
});
// Stopped as `conveyor start` stops: exit 0 within its 10 s, else 1.
stopOnSignals(running, running.logger);
