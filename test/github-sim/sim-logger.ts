type LogMethod = (bindings: object, message?: string) => void;

/** The subset of a pino logger the simulator uses; pass a pino child or nothing. */
export interface SimLogger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

const noop: LogMethod = () => {};

export const silentLogger: SimLogger = { debug: noop, info: noop, warn: noop, error: noop };
