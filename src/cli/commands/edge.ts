/** `meridian edge --config FILE --edge ID`: runs the edge router of region ID until SIGINT/SIGTERM. */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../../adapters/config.js';
import { openGeoIp } from '../../adapters/geoip.js';
import { startEdge } from '../../servers/edge/index.js';

const USAGE = 'usage: meridian edge --config FILE --edge REGION_ID [--port N]\n';

/**
 * @example
 * meridian edge --config lab.yaml --edge eu-west-1
 */
export async function run(argv: string[]): Promise<number> {
  let values: { config?: string; edge?: string; port?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        edge: { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`meridian edge: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.config || !values.edge) {
    process.stderr.write(`meridian edge: --config and --edge are required\n${USAGE}`);
    return 2;
  }
  const logger = pino({ name: `edge/${values.edge}` });
  try {
    const config = loadConfig(values.config);
    const self = config.regions.find((r) => r.id === values.edge);
    const listen =
      values.port !== undefined && self?.edge
        ? { host: self.edge.listen.host, port: Number(values.port) }
        : undefined;
    const geoIp = await openGeoIp(config.geoip);
    const edge = await startEdge({
      config,
      edgeId: values.edge,
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
