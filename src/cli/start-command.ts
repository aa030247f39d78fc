import { type Config, ConfigError, loadConfig } from "../config.ts";
import { createLogger, type Logger } from "../logger.ts";
import { startConveyor } from "../main.ts";
import type { RunningConveyor, StartOptions } from "../start-options.ts";

/**
 * `conveyor start`: load config, start, stop cleanly on SIGTERM/SIGINT. `options` are for entry
 * points that run the same server differently (the demo's, against the simulator, unpaced).
 */
export async function runStartCommand(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: Omit<StartOptions, "logger"> = {},
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`conveyor: ${error.message}\nSee .env.example for every setting.\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  let running: RunningConveyor;
  try {
    running = await startConveyor(config, { ...options, logger });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`conveyor: ${error.message}\n`);
    } else {
      logger.fatal({ err: error }, "conveyor failed to start");
    }
    process.exit(1);
  }
  stopOnSignals(running, logger);
}

/**
 * SIGTERM or SIGINT stops the server gracefully: exit 0 once every stage stopped, 1 if that failed
 * or took more than 10 s (a supervisor's grace period should be longer).
 */
export function stopOnSignals(running: Pick<RunningConveyor, "stop">, logger: Logger): void {
  const shutdown = (signal: string) => {
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      logger.error("shutdown took longer than 10 s; exiting");
      process.exit(1);
    }, 10_000);
    force.unref();
    running.stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}
