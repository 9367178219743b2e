/** `meridian edge --config FILE --edge ID`: runs the edge router of region ID until SIGINT/SIGTERM. */
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../../adapters/config.js';
import { openGeoIp } from '../../adapters/geoip.js';
import { startEdge } from '../../servers/edge/index.js';
import { commandArgs, intOption } from '../args.js';

const USAGE = 'usage: meridian edge --config FILE --edge REGION_ID [--port N]\n';

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
  if (!values) return 0;
  const edgeId = values.edge!;
  const port = intOption(values.port, 'port', 0, 65535, USAGE);
  const logger = pino({ name: `edge/${edgeId}` });
  try {
    const config = loadConfig(values.config!);
    const self = config.regions.find((r) => r.id === edgeId);
    const listen = port !== undefined && self?.edge ? { host: self.edge.listen.host, port } : undefined;
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
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`meridian edge: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`meridian edge: ${(e as Error).message}\n`);
    return 1;
  }
}
