/** `meridian region --config FILE --region ID`: runs one region node until SIGTERM/SIGINT, then drains. */
import { ConfigError, loadConfig } from '../../adapters/config.js';
import type { LogLevel } from '../../adapters/logger.js';
import { RegionNode } from '../../servers/region/node.js';
import { commandArgs, intOption } from '../args.js';

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
  const v = commandArgs(
    argv,
    {
      config: { type: 'string' },
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
  if (!v) return 0;
  const port = intOption(v.port, 'port', 0, 65535, USAGE);
  const graceMs = intOption(v['drain-ms'], 'drain-ms', 0, 3_600_000, USAGE) ?? 0;
  let node: RegionNode;
  try {
    const cfg = loadConfig(v.config!);
    const rc = cfg.regions.find((r) => r.id === v.region);
    const listen =
      rc && (v.host !== undefined || port !== undefined)
        ? { host: v.host ?? rc.node.listen.host, port: port ?? rc.node.listen.port }
        : undefined;
    const skewMs = Number(v['clock-skew-ms'] ?? process.env.MERIDIAN_CLOCK_SKEW_MS ?? 0);
    if (!Number.isFinite(skewMs))
      throw new ConfigError(['--clock-skew-ms: must be a number of milliseconds'], 'arguments');
    node = await RegionNode.start({
      cfg,
      region: v.region!,
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
