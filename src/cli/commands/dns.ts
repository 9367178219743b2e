/** `meridian dns --config FILE [--host H] [--port P] [--cache-entries N]`: runs the GeoDNS server until SIGINT/SIGTERM. */
import { loadConfig } from '../../adapters/config.js';
import { startDnsServer } from '../../servers/dns/index.js';
import { commandArgs, EXIT, intOption } from '../args.js';

const USAGE = `usage: meridian dns --config FILE [options]

  -c, --config FILE    the deployment config (YAML or JSON); its \`dns\` section
  --host HOST          listen address (default: dns.listen.host)
  --port PORT          listen port, UDP and TCP (default: dns.listen.port)
  --cache-entries N    answers memoized (0: no cache; default: the server's)
  -h, --help           this help

examples:
  meridian dns --config meridian.yaml
  meridian dns --config meridian.yaml --port 5353   # then: dig @127.0.0.1 -p 5353 app.meridian.test

exit codes: 0 stopped by SIGTERM/SIGINT, 1 failed to start,
            2 bad arguments or a missing or invalid config file
`;

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
  if (!values) return EXIT.ok;
  const port = intOption(values.port, 'port', 0, 65535, USAGE);
  const cacheEntries = intOption(values['cache-entries'], 'cache-entries', 0, Number.MAX_SAFE_INTEGER, USAGE);
  const cfg = loadConfig(values.config!);
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let server: Awaited<ReturnType<typeof startDnsServer>>;
  try {
    server = await startDnsServer(cfg, {
      ...(values.host !== undefined ? { host: values.host } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(cacheEntries !== undefined ? { cacheEntries } : {}),
      log,
    });
  } catch (e) {
    process.stderr.write(`meridian dns: cannot start: ${(e as Error).message}\n`);
    return EXIT.failure;
  }
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
  return EXIT.ok;
}
