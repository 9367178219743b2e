#!/usr/bin/env node
/**
 * The `meridian` command. Each command lives in its own module under src/cli/commands/ and is
 * loaded only when called, so `meridian sim` does not load the servers. Exit codes, for every
 * command: 0 ok, 1 failure, 2 usage (bad arguments, or a missing or invalid config file).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../adapters/config.js';
import { EXIT, UsageError } from './args.js';

type CommandModule = { run(argv: string[]): Promise<number> };

const commands: Record<string, { describe: string; load: () => Promise<CommandModule> }> = {
  region: { describe: 'run a region node', load: () => import('./commands/region.js') },
  edge: { describe: 'run an edge router', load: () => import('./commands/edge.js') },
  dns: { describe: 'run the GeoDNS server', load: () => import('./commands/dns.js') },
  config: { describe: 'check a config file: config check FILE', load: () => import('./commands/config.js') },
  up: { describe: 'start the local multi-region lab (npm start)', load: () => import('./commands/up.js') },
  chaos: {
    describe: 'inject faults into a running lab: kill|restart|partition|heal|delay|skew',
    load: () => import('./commands/chaos.js'),
  },
  experiment: {
    describe: 'run a lab experiment: failover|replication|consistency|health',
    load: () => import('./commands/experiment.js'),
  },
  sim: {
    describe: 'run the deterministic simulator (seeded fault schedules + checkers)',
    load: () => import('./commands/sim.js'),
  },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)}${c.describe}`);
  return `usage: meridian <command> [options]
       meridian <command> --help     the command's options, with examples
       meridian --version

commands:
${rows.join('\n')}

examples:
  meridian config check meridian.yaml
  meridian region --config meridian.yaml --region us-east-1
  meridian up --regions us-east-1,eu-west-1
  meridian sim --seeds 100 --faults random

exit codes: 0 ok, 1 failure, 2 usage (bad arguments, or a missing or invalid config file)
docs: docs/cli.md
`;
}

/** The version in package.json (two folders up from src/cli and from dist/src/cli alike). */
function version(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'meridian' && pkg.version) return pkg.version;
    } catch {
      // not this folder
    }
  }
  return 'unknown';
}

/**
 * Runs one command and returns its exit code; usage and config errors are one line each on stderr.
 * @example process.exitCode = await main(['config', 'check', 'meridian.yaml']);
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`meridian ${version()}\n`);
    return EXIT.ok;
  }
  if (name === 'help' && rest[0] && commands[rest[0]]) return main([rest[0], '--help']);
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? process.stdout : process.stderr).write(usage());
    return name ? EXIT.ok : EXIT.usage;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`meridian: unknown command '${name}' (meridian --help lists them)\n`);
    return EXIT.usage;
  }
  const mod = await cmd.load();
  try {
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`meridian ${name}: ${e.message} (meridian ${name} --help for usage)\n`);
      return EXIT.usage;
    }
    if (e instanceof ConfigError) {
      for (const line of e.message.split('\n')) process.stderr.write(`meridian ${name}: ${line}\n`);
      return EXIT.usage;
    }
    throw e;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`meridian: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = EXIT.failure;
    },
  );
}
