/** `meridian dns --config FILE [--host H] [--port P] [--cache-entries N]`: runs the GeoDNS server until SIGINT/SIGTERM. */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../adapters/config.js';
import { startDnsServer } from '../../servers/dns/index.js';

const USAGE = 'usage: meridian dns --config FILE [--host HOST] [--port PORT] [--cache-entries N (0: off)]\n';

/**
 * @example meridian dns --config lab.yaml   # then: dig @127.0.0.1 -p 5353 app.meridian.test
 */
export async function run(argv: string[]): Promise<number> {
  let values: { config?: string; host?: string; port?: string; 'cache-entries'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string' },
        'cache-entries': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`meridian dns: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.config) {
    process.stderr.write(`meridian dns: --config is required\n${USAGE}`);
    return 2;
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    process.stderr.write(`meridian dns: --port must be 0..65535\n${USAGE}`);
    return 2;
  }
  const cacheEntries = values['cache-entries'] === undefined ? undefined : Number(values['cache-entries']);
  if (cacheEntries !== undefined && !(Number.isInteger(cacheEntries) && cacheEntries >= 0)) {
    process.stderr.write(`meridian dns: --cache-entries must be a whole number\n${USAGE}`);
    return 2;
  }
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(values.config);
  } catch (e) {
    process.stderr.write(`meridian dns: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    return 2;
  }
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const server = await startDnsServer(cfg, {
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(cacheEntries !== undefined ? { cacheEntries } : {}),
    log,
  });
  const zone = cfg.dns.zone;
  log(
    `meridian dns: authoritative for ${zone} on ${server.host}:${server.port} (udp+tcp); names: ${cfg.dns.names
      .map((n) => `${n}.${zone}`)
      .join(', ')}`,
  );
  for (const v of server.health.view()) {
    log(
      `  ${v.region.padEnd(16)} ${v.status.padEnd(5)} ${v.probeUrl ?? '(no edge: always answered)'} ${v.reason}`,
    );
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const s = server.stats();
  log(`meridian dns: stopping after ${s.udpQueries} udp + ${s.tcpQueries} tcp queries`);
  await server.close();
  return 0;
}
