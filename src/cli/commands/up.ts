/**
 * `meridian up`: starts the local multi-region lab (what `npm start` runs) and keeps it running
 * until Ctrl-C or SIGTERM, then stops every process it started.
 */
import { resolve } from 'node:path';
import { ConfigError } from '../../adapters/config.js';
import { Lab } from '../../lab/lab.js';
import type { LabStoreKind } from '../../lab/lab-config.js';
import { parseRegionList } from '../../lab/plan.js';
import { choiceOption, commandArgs, EXIT, numberOption, UsageError } from '../args.js';

const USAGE = `usage: meridian up [options]

  --regions a,b,c  2 to 10 regions of data/aws-regions.json (default us-east-1,eu-west-1,ap-northeast-1)
  --store KIND     sqlite|postgres|memory: where region nodes keep data (default sqlite, under --dir)
  --no-traffic     do not start the traffic generator
  --rate N         traffic generator requests per second, 0 to 500 (default 8)
  --dir DIR        the lab's folder: config, admin token, logs, data (default $MERIDIAN_LAB_DIR or .meridian)
  -h, --help       this help

examples:
  meridian up
  meridian up --regions us-east-1,eu-west-1,ap-southeast-2 --store memory --rate 20
  meridian up --no-traffic --dir /tmp/lab

exit codes: 0 stopped by Ctrl-C/SIGTERM with no process left behind, 1 the lab failed to start or
            left a process behind, 2 bad arguments
`;

/** @example await run(['--regions', 'us-east-1,eu-west-1', '--no-traffic']) */
export async function run(argv: string[]): Promise<number> {
  const values = commandArgs(
    argv,
    {
      regions: { type: 'string' },
      store: { type: 'string' },
      'no-traffic': { type: 'boolean' },
      rate: { type: 'string' },
      dir: { type: 'string' },
    },
    USAGE,
  );
  if (!values) return EXIT.ok;
  const store: LabStoreKind =
    choiceOption(values.store, 'store', ['sqlite', 'postgres', 'memory'], USAGE) ?? 'sqlite';
  const ratePerS = numberOption(values.rate, 'rate', 0, 500, USAGE) ?? 8;
  let regions: string[];
  try {
    regions = parseRegionList(values.regions);
  } catch (e) {
    throw new UsageError(`--regions: ${(e as Error).message}`, USAGE);
  }
  const dir = resolve(values.dir ?? process.env.MERIDIAN_LAB_DIR ?? '.meridian');
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(`meridian lab: ${regions.join(', ')} (store ${store}, folder ${dir})`);

  let lab: Lab | undefined;
  let starting: Promise<Lab> | undefined;
  let stopping: Promise<number> | undefined;
  const stop = (why: string): Promise<number> => {
    stopping ??= (async () => {
      log(`\n${why}: stopping the lab...`);
      // A signal during start-up waits for the start to finish (or fail), then stops what it started.
      const l = lab ?? (await starting?.catch(() => undefined));
      const left = l ? await l.stop() : [];
      if (left.length > 0) {
        process.stderr.write(`processes still alive after stop: ${left.join(', ')}\n`);
        return 1;
      }
      log('stopped: no process left behind');
      return 0;
    })();
    return stopping;
  };
  let signalled: ((code: number) => void) | undefined;
  const done = new Promise<number>((r) => {
    signalled = r;
  });
  const onSignal = (sig: string) => {
    void stop(sig).then((code) => signalled?.(code));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  // If the lab itself crashes, its children must not outlive it.
  process.on('exit', () => lab?.killChildrenNow());

  try {
    starting = Lab.start({
      dir,
      regions,
      store,
      traffic: !values['no-traffic'],
      ratePerS,
      api: true,
      log,
    });
    lab = await starting;
  } catch (e) {
    // A config the lab wrote and cannot load: the same one line per problem and exit 2 as everywhere.
    if (e instanceof ConfigError && !stopping) throw e;
    process.stderr.write(`meridian up: ${(e as Error).message}\n`);
    return stopping ?? EXIT.failure;
  }
  if (stopping) return stopping;
  log(`\nThe lab is up:\n${lab.endpointTable()}\n`);
  log(
    `Try: curl -s -XPUT ${lab.plan.regions[0]?.edgeUrl}/v1/profiles/alice -H 'content-type: application/json' -d '{"name":"Alice"}'`,
  );
  log(`     npm run meridian -- chaos kill ${lab.plan.regions[0]?.id}     (Ctrl-C stops everything)`);
  return done;
}
