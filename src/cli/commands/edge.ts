/** `meridian edge --config FILE --edge ID`: runs the edge router of region ID until SIGINT/SIGTERM. */
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../../adapters/config.js';
import { openGeoIp } from '../../adapters/geoip.js';
import { startEdge } from '../../servers/edge/index.js';
import { commandArgs, EXIT, intOption, UsageError } from '../args.js';

const USAGE = `usage: meridian edge --config FILE --edge REGION_ID [options]

  -c, --config FILE  the deployment config (YAML or JSON)
  --edge ID          the region whose edge this is (it needs an \`edge\` entry in the config)
  --port PORT        listen port (default: the region's edge.listen.port)
  -h, --help         this help

examples:
  meridian edge --config meridian.yaml --edge eu-west-1
  meridian edge --config meridian.yaml --edge us-east-1 --port 8081

exit codes: 0 stopped by SIGTERM/SIGINT, 1 failed to start,
            2 bad arguments or a missing or invalid config file
`;

/**
 * @example
 * meridian edge --config lab.yaml --edge eu-west-1
 */
export async function run(argv: string[]): Promise<number> {
  const values = commandArgs(
    argv,
    { config: { type: 'string', short: 'c' }, edge: { type: 'string' }, port: { type: 'string' } },
    USAGE,
    ['config', 'edge'],
  );
  if (!values) return EXIT.ok;
  const edgeId = values.edge!;
  const port = intOption(values.port, 'port', 0, 65535, USAGE);
  const config = loadConfig(values.config!);
  const self = config.regions.find((r) => r.id === edgeId);
  const withEdge = config.regions.filter((r) => r.edge).map((r) => r.id);
  if (!self?.edge) {
    throw new UsageError(
      `--edge: '${edgeId}' ${self ? 'has no edge entry' : 'is not a region'} in ${values.config} (regions with an edge: ${withEdge.join(', ') || 'none'})`,
      USAGE,
    );
  }
  const listen = port !== undefined ? { host: self.edge.listen.host, port } : undefined;
  const logger = pino({ name: `edge/${edgeId}` });
  try {
    const geoIp = await openGeoIp(config.geoip);
    const edge = await startEdge({
      config,
      edgeId,
      geoIp,
      logger,
      ...(listen ? { listen } : {}),
    });
    process.stdout.write(
      `meridian edge ${edge.id} listening on ${edge.url} (policy ${config.edge.policy})\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await edge.close();
    return EXIT.ok;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    process.stderr.write(`meridian edge: ${(e as Error).message}\n`);
    return EXIT.failure;
  }
}
