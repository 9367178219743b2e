/** Structured JSON logs (pino): one line per event, with the region and component on every line. */
import { pino } from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LoggerOptions {
  /** Default: $MERIDIAN_LOG_LEVEL, else `info` (`silent` under the test runner unless set). */
  level?: LogLevel;
  /** Bound to every line, e.g. `{ region: 'us-east-1', component: 'region-node' }`. */
  bindings?: Record<string, string>;
  /** Where lines go (default stdout); tests pass a stream to assert on them. */
  destination?: NodeJS.WritableStream;
}

const LEVELS = new Set<string>(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The level when none is given: quiet under `node --test`, so test output stays readable. */
export function defaultLogLevel(): LogLevel {
  const env = process.env.MERIDIAN_LOG_LEVEL;
  if (env && LEVELS.has(env)) return env as LogLevel;
  return process.env.NODE_TEST_CONTEXT ? 'silent' : 'info';
}

/**
 * @example
 *   const log = createLogger({ bindings: { region: 'us-east-1' } });
 *   log.info({ peer: 'eu-west-1' }, 'stream connected');
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? defaultLogLevel();
  const base = { pid: process.pid, ...(options.bindings ?? {}) };
  const opts = { level, base, timestamp: pino.stdTimeFunctions.isoTime };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}
