/**
 * `meridian experiment failover|replication|consistency`: runs one lab experiment (against the
 * running lab, or a fresh one it starts), prints its table and writes reports/<name>.svg and .json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { consistency } from '../../lab/experiments/consistency.js';
import { failover } from '../../lab/experiments/failover.js';
import { experimentAgent } from '../../lab/experiments/http.js';
import { replication } from '../../lab/experiments/replication.js';
import { openLab } from '../../lab/experiments/target.js';
import { parseRegionList } from '../../lab/plan.js';

const USAGE = `usage: meridian experiment <failover|replication|consistency> [options]
  failover     [--victim REGION] [--how outage|crash] [--warmup S] [--after S]
               lose a region under load: RTO, client errors, RPO async vs sync
               (outage: its WAN links go dark as its node dies; crash: only the process dies)
  replication  [--seconds S]                                lag per link against the RTT/2 floor
  consistency  [--trials N]                                 read-your-writes with tokens, sticky cookies, neither
common: [--regions a,b,c] (when no lab is running, the one to start) [--dir .meridian] [--out reports]
`;

/** @example await run(['replication', '--seconds', '10']) */
export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || !['failover', 'replication', 'consistency'].includes(name)) {
    process.stderr.write(USAGE);
    return name === '--help' || name === '-h' ? 0 : 2;
  }
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        victim: { type: 'string' },
        how: { type: 'string' },
        warmup: { type: 'string' },
        after: { type: 'string' },
        seconds: { type: 'string' },
        trials: { type: 'string' },
        regions: { type: 'string' },
        dir: { type: 'string' },
        out: { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`meridian experiment: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const dir = resolve(values.dir ?? process.env.MERIDIAN_LAB_DIR ?? '.meridian');
  const out = resolve(values.out ?? 'reports');
  let target: Awaited<ReturnType<typeof openLab>>;
  try {
    target = await openLab(dir, parseRegionList(values.regions), log);
  } catch (e) {
    process.stderr.write(`meridian experiment: ${(e as Error).message}\n`);
    return 1;
  }
  const startedAt = new Date().toISOString();
  try {
    let result: { table: string; svg: string };
    if (name === 'failover') {
      result = await failover(target, {
        victim: values.victim,
        how: values.how === 'crash' ? 'crash' : 'outage',
        warmupS: num(values.warmup, 3),
        afterS: num(values.after, 10),
        log,
      });
    } else if (name === 'replication') {
      result = await replication(target, { seconds: num(values.seconds, 20), log });
    } else {
      result = await consistency(target, { trials: num(values.trials, 40), log });
    }
    mkdirSync(out, { recursive: true });
    const base = name === 'failover' && values.how === 'crash' ? 'failover-crash' : name;
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
