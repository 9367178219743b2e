/** `meridian dns --config FILE [--host H] [--port P] [--cache-entries N]`: runs the GeoDNS server until SIGINT/SIGTERM. */
import { ConfigError, loadConfig } from '../../adapters/config.js';
import { startDnsServer } from '../../servers/dns/index.js';
import { commandArgs, intOption } from '../args.js';

const USAGE = 'usage: meridian dns --config FILE [--host HOST] [--port PORT] [--cache-entries N (0: off)]\n';

/**
 * @example meridian dns --config lab.yaml   # then: dig @127.0.0.1 -p 5353 app.meridian.test
 */
export async function run(argv: string[]): Promise<number> {
  const values = commandArgs(
    argv,
    {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string' },
      'cache-entries': { type: 'string' },
    },
    USAGE,
    ['config'],
  );
  if (!values) return 0;
  const port = intOption(values.port, 'port', 0, 65535, USAGE);
  const cacheEntries = intOption(values['cache-entries'], 'cache-entries', 0, Number.MAX_SAFE_INTEGER, USAGE);
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(values.config!);
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
