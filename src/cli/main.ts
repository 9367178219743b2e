#!/usr/bin/env node
/**
 * The `meridian` command. Each subcommand lives in its own module under src/cli/commands/ and is
 * loaded only when called, so `meridian sim` does not load the servers.
 */
import { pathToFileURL } from 'node:url';
import { UsageError } from './args.js';

type CommandModule = { run(argv: string[]): Promise<number> };

const commands: Record<string, { describe: string; load: () => Promise<CommandModule> }> = {
  sim: {
    describe: 'run the deterministic simulator (seeded fault schedules + checkers)',
    load: () => import('./commands/sim.js'),
  },
  region: {
    describe: 'run a region node: --config FILE --region ID',
    load: () => import('./commands/region.js'),
  },
  edge: { describe: 'run an edge router: --config FILE --edge ID', load: () => import('./commands/edge.js') },
  dns: { describe: 'run the GeoDNS server: --config FILE', load: () => import('./commands/dns.js') },
  up: { describe: 'start the local multi-region lab (npm start)', load: () => import('./commands/up.js') },
  chaos: {
    describe: 'inject faults into a running lab: kill|restart|partition|heal|delay|skew',
    load: () => import('./commands/chaos.js'),
  },
  experiment: {
    describe: 'run a lab experiment: failover|replication|consistency',
    load: () => import('./commands/experiment.js'),
  },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)}${c.describe}`);
  return `usage: meridian <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`meridian: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  let mod: CommandModule;
  try {
    mod = await cmd.load();
  } catch (e) {
    process.stderr.write(`meridian: command '${name}' is not available: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    return await mod.run(rest);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`meridian ${name}: ${e.message}\n${e.usage}`);
    return 2;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`meridian: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
