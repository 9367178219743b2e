/**
 * Argument parsing shared by the `meridian` subcommands: one place that turns bad arguments into a
 * `UsageError` (exit 2 with the command's usage) and `--help` into the usage (exit 0).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Bad command-line arguments: main.ts prints the message and the usage, and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true }>
>['values'];

/**
 * Parses `argv` against `options` (plus `-h/--help`). Returns undefined after printing the usage for
 * `--help`; throws UsageError for unknown options or a missing required one.
 * @example const v = commandArgs(argv, { config: { type: 'string' } }, USAGE, ['config']); if (!v) return 0;
 */
export function commandArgs<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  required: readonly (keyof O & string)[] = [],
): Values<O> | undefined {
  let parsed: { values: Record<string, unknown> };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message, usage);
  }
  if (parsed.values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  const missing = required.filter((k) => parsed.values[k] === undefined);
  if (missing.length > 0) {
    throw new UsageError(
      `${missing.map((k) => `--${k}`).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required`,
      usage,
    );
  }
  return parsed.values as Values<O>;
}

/** A whole-number option within [min, max], or undefined when absent. */
export function intOption(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  usage: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`, usage);
  return n;
}
