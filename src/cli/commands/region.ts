/** `meridian region --config FILE --region ID`: runs one region node until SIGTERM/SIGINT, then drains. */
import { ConfigError, loadConfig } from '../../adapters/config.js';
import type { LogLevel } from '../../adapters/logger.js';
import { RegionNode } from '../../servers/region/node.js';
import { choiceOption, commandArgs, EXIT, intOption, numberOption, UsageError } from '../args.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const USAGE = `usage: meridian region --config FILE --region ID [options]

  -c, --config FILE  the deployment config (YAML or JSON)
  --region ID        which of its regions this node serves
  --host HOST        listen address (default: the region's node.listen.host)
  --port PORT        listen port (default: the region's node.listen.port)
  --log-level LEVEL  fatal|error|warn|info|debug|trace|silent (default: $MERIDIAN_LOG_LEVEL or info)
  --drain-ms N       on SIGTERM, answer /healthz 503 for N ms before closing (default 0)
  --clock-skew-ms N  offset this node's wall clock by N ms (lab chaos; default $MERIDIAN_CLOCK_SKEW_MS or 0)
  -h, --help         this help

examples:
  meridian region --config meridian.yaml --region us-east-1
  meridian region --config meridian.yaml --region eu-west-1 --port 7071 --drain-ms 5000

exit codes: 0 stopped by SIGTERM/SIGINT after draining, 1 failed to start or to drain,
            2 bad arguments or a missing or invalid config file
`;

export async function run(argv: string[]): Promise<number> {
  const v = commandArgs(
    argv,
    {
      config: { type: 'string', short: 'c' },
      region: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      'drain-ms': { type: 'string' },
      'clock-skew-ms': { type: 'string' },
    },
    USAGE,
    ['config', 'region'],
  );
  if (!v) return EXIT.ok;
  const port = intOption(v.port, 'port', 0, 65535, USAGE);
  const graceMs = intOption(v['drain-ms'], 'drain-ms', 0, 3_600_000, USAGE) ?? 0;
  const logLevel: LogLevel | undefined = choiceOption(v['log-level'], 'log-level', LOG_LEVELS, USAGE);
  const skewMs =
    numberOption(v['clock-skew-ms'], 'clock-skew-ms', -86_400_000, 86_400_000, USAGE) ??
    Number(process.env.MERIDIAN_CLOCK_SKEW_MS ?? 0);
  if (!Number.isFinite(skewMs))
    throw new UsageError('MERIDIAN_CLOCK_SKEW_MS must be a number of milliseconds', USAGE);
  const cfg = loadConfig(v.config!);
  const rc = cfg.regions.find((r) => r.id === v.region);
  if (!rc) {
    throw new UsageError(
      `--region: '${v.region}' is not a region of ${v.config} (${cfg.regions.map((r) => r.id).join(', ')})`,
      USAGE,
    );
  }
  const listen =
    v.host !== undefined || port !== undefined
      ? { host: v.host ?? rc.node.listen.host, port: port ?? rc.node.listen.port }
      : undefined;
  let node: RegionNode;
  try {
    node = await RegionNode.start({
      cfg,
      region: rc.id,
      listen,
      logLevel,
      // A skewed clock for chaos experiments: HLCs and conflict resolution see this offset.
      ...(skewMs !== 0 ? { clock: { nowMs: () => Date.now() + skewMs } } : {}),
    });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    process.stderr.write(`meridian region: cannot start ${rc.id}: ${(e as Error).message}\n`);
    return EXIT.failure;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      node.log.info({ signal }, 'signal received');
      node.drain({ graceMs }).then(
        () => resolve(0),
        (e: unknown) => {
          node.log.error({ err: e }, 'drain failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  }).then((code) => {
    // Nothing should be left running; if something is, do not hang the supervisor.
    setTimeout(() => process.exit(code), 2000).unref();
    return code;
  });
}
