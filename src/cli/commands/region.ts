/** `meridian region --config FILE --region ID`: runs one region node until SIGTERM/SIGINT, then drains. */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../adapters/config.js';
import type { LogLevel } from '../../adapters/logger.js';
import { RegionNode } from '../../servers/region/node.js';

const USAGE = `usage: meridian region --config FILE --region ID [options]

  --config FILE      the deployment config (YAML or JSON)
  --region ID        which of its regions this node serves
  --host HOST        listen address (default: the region's node.listen.host)
  --port PORT        listen port (default: the region's node.listen.port)
  --log-level LEVEL  fatal|error|warn|info|debug|trace|silent (default: $MERIDIAN_LOG_LEVEL or info)
  --drain-ms N       on SIGTERM, answer /healthz 503 for N ms before closing (default 0)
  --clock-skew-ms N  offset this node's wall clock by N ms (lab chaos; default $MERIDIAN_CLOCK_SKEW_MS or 0)
`;

export async function run(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`meridian region: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!v.config || !v.region) {
    process.stderr.write(`meridian region: --config and --region are required\n\n${USAGE}`);
    return 2;
  }
  let node: RegionNode;
  try {
    const cfg = loadConfig(v.config);
    const rc = cfg.regions.find((r) => r.id === v.region);
    const listen =
      rc && (v.host || v.port)
        ? { host: v.host ?? rc.node.listen.host, port: v.port ? Number(v.port) : rc.node.listen.port }
        : undefined;
    const skewMs = Number(v['clock-skew-ms'] ?? process.env.MERIDIAN_CLOCK_SKEW_MS ?? 0);
    if (!Number.isFinite(skewMs))
      throw new ConfigError(['--clock-skew-ms: must be a number of milliseconds'], 'arguments');
    node = await RegionNode.start({
      cfg,
      region: v.region,
      listen,
      logLevel: v['log-level'] as LogLevel | undefined,
      // A skewed clock for chaos experiments: HLCs and conflict resolution see this offset.
      ...(skewMs !== 0 ? { clock: { nowMs: () => Date.now() + skewMs } } : {}),
    });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`meridian region: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const graceMs = v['drain-ms'] ? Number(v['drain-ms']) : 0;
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

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      region: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      'drain-ms': { type: 'string' },
      'clock-skew-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
}
