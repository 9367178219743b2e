/**
 * Argument parsing shared by the `meridian` commands (node:util parseArgs, strict): one place that
 * turns bad arguments into a `UsageError` (exit 2) and `--help` into the command's usage (exit 0).
 * Both `--seed 5` and `--seed=5` are accepted; an unknown option is a usage error.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Exit codes of every command: docs/cli.md. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Bad command-line arguments: main.ts prints the message and where the usage is, and exits 2. */
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

export interface CommandSpec<O extends Options> {
  options: O;
  usage: string;
  /** Options that must be given. */
  required?: readonly (keyof O & string)[];
  /** Words that are not options: [fewest, most] (default none). */
  positionals?: readonly [number, number];
}

/**
 * Parses `argv` against a command's options (plus `-h/--help`). Returns undefined after printing the
 * usage for `--help`; throws UsageError for an unknown option, a missing value or required option,
 * or the wrong number of positional words.
 * @example const a = parseCommand(argv, { options: { config: { type: 'string' } }, usage: USAGE, positionals: [1, 1] });
 */
export function parseCommand<const O extends Options>(
  argv: string[],
  spec: CommandSpec<O>,
): { values: Values<O>; positionals: string[] } | undefined {
  const [fewest, most] = spec.positionals ?? [0, 0];
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: most > 0,
    });
  } catch (e) {
    // parseArgs' messages end with advice about '--' that does not apply here.
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/s, ''), spec.usage);
  }
  if (parsed.values.help) {
    process.stdout.write(spec.usage);
    return undefined;
  }
  const missing = (spec.required ?? []).filter((k) => parsed.values[k] === undefined);
  if (missing.length > 0) {
    throw new UsageError(
      `${missing.map((k) => `--${k}`).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required`,
      spec.usage,
    );
  }
  if (parsed.positionals.length < fewest) throw new UsageError('missing arguments', spec.usage);
  if (parsed.positionals.length > most)
    throw new UsageError(`unexpected argument '${parsed.positionals[most]}'`, spec.usage);
  return { values: parsed.values as Values<O>, positionals: parsed.positionals };
}

/**
 * `parseCommand` for a command without positional words: its option values.
 * @example const v = commandArgs(argv, { config: { type: 'string' } }, USAGE, ['config']); if (!v) return 0;
 */
export function commandArgs<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  required: readonly (keyof O & string)[] = [],
): Values<O> | undefined {
  return parseCommand(argv, { options, usage, required })?.values;
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
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`, usage);
  return n;
}

/** A number option within [min, max], or undefined when absent. */
export function numberOption(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  usage: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a number from ${min} to ${max}`, usage);
  return n;
}

/** An option that must be one of `choices`, or undefined when absent. */
export function choiceOption<const C extends string>(
  value: string | undefined,
  name: string,
  choices: readonly C[],
  usage: string,
): C | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not '${value}'`, usage);
  return value as C;
}
