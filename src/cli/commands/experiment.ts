/**
 * `meridian experiment failover|replication|consistency|health`: runs one lab experiment (against the
 * running lab, or a fresh one it starts), prints its table and writes reports/<name>.svg and .json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../adapters/config.js';
import { consistency } from '../../lab/experiments/consistency.js';
import { failover } from '../../lab/experiments/failover.js';
import { health } from '../../lab/experiments/health.js';
import { experimentAgent } from '../../lab/experiments/http.js';
import { replication } from '../../lab/experiments/replication.js';
import { openLab } from '../../lab/experiments/target.js';
import { labPaths } from '../../lab/lab-config.js';
import { parseRegionList } from '../../lab/plan.js';
import { choiceOption, EXIT, intOption, numberOption, parseCommand, UsageError } from '../args.js';

/** The issue 18 lab: ten regions, the farthest pairs 330 ms apart. */
const HEALTH_REGIONS =
  'us-east-1,us-west-1,us-west-2,eu-west-1,eu-central-1,ap-northeast-1,ap-northeast-2,ap-southeast-1,ap-southeast-2,sa-east-1';

const USAGE = `usage: meridian experiment <failover|replication|consistency|health> [options]
  failover     [--victim REGION] [--how outage|crash] [--warmup S] [--after S]
               lose a region under load: RTO, client errors, RPO async vs sync
               (outage: its WAN links go dark as its node dies; crash: only the process dies)
  replication  [--seconds S]                                lag per link against the RTT/2 floor
  consistency  [--trials N]                                 read-your-writes with tokens, sticky cookies, neither
  health       [--seconds S] [--traffic] [--kill REGION] [--how crash|blackhole] [--after S]
               ejections of live regions per edge and GeoDNS withdrawals over S s (default 600),
               then optionally a region lost (crash: its node killed, then restarted; blackhole:
               its WAN links cut, then healed): detection and recovery at every edge and GeoDNS
               (default regions: the ten of issue 18)
common: [--regions a,b,c] (when no lab is running, the one to start) [--dir .meridian] [--out reports]
        -h, --help   this help

examples:
  meridian experiment replication --seconds 10
  meridian experiment failover --victim eu-west-1 --how crash
  meridian experiment health --seconds 120 --kill ap-northeast-1 --after 30

exit codes: 0 done (reports/<name>.svg and .json written), 1 the experiment or the lab failed,
            2 bad arguments
`;

const EXPERIMENTS = ['failover', 'replication', 'consistency', 'health'] as const;

/** @example await run(['replication', '--seconds', '10']) */
export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, {
    options: {
      victim: { type: 'string' },
      how: { type: 'string' },
      warmup: { type: 'string' },
      after: { type: 'string' },
      seconds: { type: 'string' },
      trials: { type: 'string' },
      traffic: { type: 'boolean' },
      kill: { type: 'string' },
      regions: { type: 'string' },
      dir: { type: 'string' },
      out: { type: 'string' },
    },
    usage: USAGE,
    positionals: [1, 1],
  });
  if (!args) return EXIT.ok;
  const { values } = args;
  const name = args.positionals[0]!;
  if (!(EXPERIMENTS as readonly string[]).includes(name))
    throw new UsageError(`unknown experiment '${name}' (known: ${EXPERIMENTS.join(', ')})`, USAGE);
  const how =
    name === 'health' ? 'outage' : (choiceOption(values.how, 'how', ['outage', 'crash'], USAGE) ?? 'outage');
  const healthHow =
    name === 'health' ? (choiceOption(values.how, 'how', ['crash', 'blackhole'], USAGE) ?? 'crash') : 'crash';
  const seconds = numberOption(values.seconds, 'seconds', 0.1, 86_400, USAGE);
  const warmupS = numberOption(values.warmup, 'warmup', 0, 3600, USAGE) ?? 3;
  const afterS = numberOption(values.after, 'after', 0, 86_400, USAGE) ?? 10;
  const trials = intOption(values.trials, 'trials', 1, 100_000, USAGE) ?? 40;
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const dir = resolve(values.dir ?? process.env.MERIDIAN_LAB_DIR ?? '.meridian');
  const out = resolve(values.out ?? 'reports');
  let target: Awaited<ReturnType<typeof openLab>>;
  try {
    const regions = values.regions ?? (name === 'health' ? HEALTH_REGIONS : undefined);
    target = await openLab(dir, parseRegionList(regions), log, {
      traffic: name === 'health' && values.traffic === true,
    });
  } catch (e) {
    process.stderr.write(`meridian experiment: ${(e as Error).message}\n`);
    return EXIT.failure;
  }
  const startedAt = new Date().toISOString();
  try {
    let result: { table: string; svg: string };
    if (name === 'failover') {
      result = await failover(target, {
        victim: values.victim,
        how,
        warmupS,
        afterS,
        log,
      });
    } else if (name === 'replication') {
      result = await replication(target, { seconds: seconds ?? 20, log });
    } else if (name === 'health') {
      result = await health(target, {
        cfg: loadConfig(labPaths(dir).config),
        durationS: seconds ?? 600,
        traffic: values.traffic === true,
        kill: values.kill,
        how: healthHow,
        afterS,
        log,
      });
    } else {
      result = await consistency(target, { trials, log });
    }
    mkdirSync(out, { recursive: true });
    const base = name === 'failover' && how === 'crash' ? 'failover-crash' : name;
    const svgPath = join(out, `${base}.svg`);
    const jsonPath = join(out, `${base}.json`);
    writeFileSync(svgPath, result.svg);
    const { svg: _svg, ...data } = result as { svg: string } & Record<string, unknown>;
    writeFileSync(
      jsonPath,
      `${JSON.stringify({ experiment: name, startedAt, regions: target.plan.regions.map((r) => r.id), command: `meridian experiment ${argv.join(' ')}`, ...data }, null, 2)}\n`,
    );
    log(`\n${result.table}\n`);
    log(`plot: ${svgPath}\ndata: ${jsonPath}`);
    return 0;
  } catch (e) {
    process.stderr.write(`meridian experiment ${name}: ${(e as Error).stack ?? e}\n`);
    return 1;
  } finally {
    await target.close();
    await experimentAgent.close();
  }
}
