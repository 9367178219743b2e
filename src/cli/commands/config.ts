/**
 * `meridian config check FILE`: validates a deployment config as a node would load it (strict keys,
 * secrets read from where they are) and prints what it found, or every problem (exit 2).
 */
import { dirname, resolve } from 'node:path';
import {
  type MeridianConfig,
  parseConfig,
  readConfigFile,
  type SecretSource,
} from '../../adapters/config.js';
import { EXIT, parseCommand, UsageError } from '../args.js';

const USAGE = `usage: meridian config check FILE

  Validates FILE (YAML or JSON) as \`meridian region\`, \`edge\` and \`dns\` load it: every key is
  known, every value valid, every secret readable (from the environment or a file when the config
  says so). Prints a summary of what it found, never a secret's value.

  -h, --help   this help

examples:
  meridian config check meridian.yaml
  MERIDIAN_CLUSTER_SECRET=... meridian config check /etc/meridian/meridian.yaml

exit codes: 0 valid, 2 missing, unreadable or invalid (one line per problem: FILE: key: problem)
`;

/** Where a secret came from, without its value. */
function secretFrom(src: unknown): string {
  if (src === undefined) return 'not set';
  if (typeof src === 'string') return 'inline in the file';
  const s = src as Exclude<SecretSource, string>;
  return 'env' in s ? `environment variable ${s.env}` : `file ${s.file}`;
}

/** A summary of a valid config: one line per section, defaults included. */
export function describeConfig(cfg: MeridianConfig, rawSecrets: Record<string, unknown> = {}): string[] {
  const store =
    cfg.store.kind === 'sqlite'
      ? `sqlite in ${cfg.store.dir} (synchronous ${cfg.store.synchronous})`
      : cfg.store.kind === 'postgres'
        ? `postgres, schemas ${cfg.store.schemaPrefix}<region>`
        : 'memory (nothing survives a restart)';
  return [
    `regions      ${cfg.regions.length}: ${cfg.regions.map((r) => `${r.id}${r.edge ? ' (node, edge)' : ' (node)'}`).join(', ')}`,
    `collections  ${cfg.collections.length}: ${cfg.collections.map((c) => `${c.name} (${c.policy}, ${c.replication.mode})`).join(', ') || 'none'}`,
    `store        ${store}`,
    `edge         policy ${cfg.edge.policy}, health probe every ${cfg.edge.health.intervalMs} ms, sticky ${cfg.edge.stickyMs} ms`,
    `dns          ${cfg.dns.names.map((n) => `${n}.${cfg.dns.zone}`).join(', ')} on ${cfg.dns.listen.host}:${cfg.dns.listen.port}, ttl ${cfg.dns.ttl} s`,
    `replication  heartbeat ${cfg.replication.heartbeatMs} ms, reconnect ${cfg.replication.reconnectMinMs}-${cfg.replication.reconnectMaxMs} ms`,
    `secrets      clusterSecret: ${secretFrom(rawSecrets.clusterSecret)}; adminToken: ${secretFrom(rawSecrets.adminToken)}`,
  ];
}

/** @example await run(['check', 'meridian.yaml']) */
export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, { options: {}, usage: USAGE, positionals: [0, 2] });
  if (!args) return EXIT.ok;
  const [verb, file] = args.positionals;
  if (verb !== 'check')
    throw new UsageError(verb ? `unknown action '${verb}' (known: check)` : 'missing action: check', USAGE);
  if (file === undefined) throw new UsageError('missing FILE', USAGE);
  const raw = readConfigFile(file);
  const cfg = parseConfig(raw, file, { baseDir: dirname(resolve(file)) });
  const secrets = (raw as { secrets?: Record<string, unknown> }).secrets ?? {};
  process.stdout.write(
    `${file}: valid\n${describeConfig(cfg, secrets)
      .map((l) => `  ${l}\n`)
      .join('')}`,
  );
  return EXIT.ok;
}
