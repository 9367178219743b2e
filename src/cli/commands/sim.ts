/**
 * `meridian sim`: runs the deterministic simulator for one seed or a sweep of seeds, prints a
 * summary table, and on a violation the checker, a history excerpt and the replay command (exit 1).
 *
 * @example
 * meridian sim --seed 7 --faults heavy
 * meridian sim --seeds 10000 --faults random
 */
import { loadRegionTable } from '../../adapters/region-table.js';
import type { PlantedBugs } from '../../core/region.js';
import { FALSE_EJECTION, MISSED_EJECTION } from '../../sim/checkers/health.js';
import { ALL_CHECKERS } from '../../sim/checkers/index.js';
import { FAULT_NAMES } from '../../sim/faults.js';
import { mixLine, replayCommand, runReport, table, violationReport } from '../../sim/report.js';
import { SAGA_BUGS } from '../../sim/saga/saga-sim.js';
import { DEFAULT_SIM, type RunResult, type SimOptions, simulate } from '../../sim/simulator.js';
import { WORKLOADS } from '../../sim/workload.js';
import { EXIT, intOption, parseCommand, UsageError } from '../args.js';

/** Planted defects of the region core (core/region/types.ts PlantedBugs); docs/simulator.md lists what catches each. */
const BUGS = [
  'dropIncrement',
  'skipTokenWait',
  'ackBeforeApply',
  'leakResidentKv',
  'leakResidentChanges',
  'lastArrivalWins',
  'reuseSetTags',
  'ignoreHome',
  'serveTombstones',
] as const satisfies readonly (keyof PlantedBugs)[];
/** Planted defects of the health state machine (core/health.ts); each turns on --health. */
const HEALTH_BUGS = ['staticTimeout', 'timeoutNotEvidence'] as const;
/** Planted defects of the saga workload (sim/saga/saga-sim.ts). */
const SAGA_BUG_NAMES: readonly string[] = SAGA_BUGS;

const OPTIONS = {
  seed: { type: 'string' },
  seeds: { type: 'string' },
  regions: { type: 'string' },
  duration: { type: 'string' },
  faults: { type: 'string' },
  workload: { type: 'string' },
  rate: { type: 'string' },
  bug: { type: 'string', multiple: true },
  health: { type: 'boolean' },
  notes: { type: 'boolean' },
  'no-faults': { type: 'boolean' },
} as const;
/** The options the saga workload's runner (sim/saga/cli.ts) takes besides --workload. */
const SAGA_OPTIONS: readonly string[] = ['seed', 'seeds', 'regions', 'duration', 'bug', 'no-faults'];

function usage(): string {
  return `usage: meridian sim [options]

  --seed N          first seed (default 1)
  --seeds N         how many seeds to run, from --seed on (default 1)
  --regions a,b,c   region ids from data/aws-regions.json (default ${DEFAULT_SIM.regions.join(',')})
  --duration T      simulated time with workload and faults, e.g. 60s, 500ms, 2m (default ${DEFAULT_SIM.durationMs / 1000}s)
  --faults NAME     ${FAULT_NAMES.join('|')} (default ${DEFAULT_SIM.faults});
                    random draws a mix of every kind of fault per seed, printed with the run
  --workload NAME   ${[...Object.keys(WORKLOADS), 'saga'].join('|')} (default ${DEFAULT_SIM.workload});
                    saga: sagas and idempotent retries, with their own runner and checkers; it
                    takes --seed, --seeds, --regions, --duration, --bug and --no-faults
  --rate N          client operations per second, offered (default ${DEFAULT_SIM.opsPerSec})
  --bug NAME        plant a bug to see a checker catch it: ${[...BUGS, ...HEALTH_BUGS].join('|')} (repeatable);
                    with --workload saga: ${SAGA_BUG_NAMES.join('|')}
  --health          also run every edge's health checks and the health checker (docs/simulator.md)
  --notes           also print the region processes' diagnostic notes
  --no-faults       --workload saga only: no crashes or partitions
  -h, --help        this help

Options take their value as --seed 5 or --seed=5.

examples:
  meridian sim --seed 7 --faults heavy
  meridian sim --seeds 200 --faults random --duration 30s
  meridian sim --seed 3 --bug lastArrivalWins
  meridian sim --workload saga --seeds 20

Exit code: 0 when every checker passes for every seed, 1 on any violation or a seed the simulator
gave up on, 2 on bad usage.
`;
}

export function parseDurationMs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`bad duration '${s}' (use e.g. 60s, 500ms, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(unit === 'ms' ? n : unit === 'm' ? n * 60_000 : n * 1000);
}

interface CliOptions {
  sim: Omit<SimOptions, 'seed'>;
  seed: number;
  seeds: number;
  notes: boolean;
}

function regionList(v: string): string[] {
  return v
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
}

/**
 * Parses the options of every workload but saga; throws UsageError naming the bad option.
 * @example parseSimArgs(['--seed=7', '--faults', 'heavy'])
 */
export function parseSimArgs(argv: string[]): CliOptions | undefined {
  const args = parseCommand(argv, { options: OPTIONS, usage: usage() });
  if (!args) return undefined;
  const v = args.values;
  const u = usage();
  if (v['no-faults']) throw new UsageError('--no-faults is for --workload saga (others: --faults none)', u);
  const sim: Omit<SimOptions, 'seed'> = { ...DEFAULT_SIM };
  const seed = intOption(v.seed, 'seed', 0, Number.MAX_SAFE_INTEGER, u) ?? 1;
  const seeds = intOption(v.seeds, 'seeds', 1, 1_000_000_000, u) ?? 1;
  if (v.regions !== undefined) sim.regions = regionList(v.regions);
  if (v.duration !== undefined) {
    try {
      sim.durationMs = parseDurationMs(v.duration);
    } catch (e) {
      throw new UsageError(`--duration: ${(e as Error).message}`, u);
    }
  }
  if (v.faults !== undefined) {
    if (!FAULT_NAMES.includes(v.faults))
      throw new UsageError(`unknown --faults '${v.faults}'; known: ${FAULT_NAMES.join(', ')}`, u);
    sim.faults = v.faults;
  }
  if (v.workload !== undefined) {
    if (!WORKLOADS[v.workload])
      throw new UsageError(
        `unknown --workload '${v.workload}'; known: ${[...Object.keys(WORKLOADS), 'saga'].join(', ')}`,
        u,
      );
    sim.workload = v.workload;
  }
  sim.opsPerSec = intOption(v.rate, 'rate', 1, 1_000_000, u) ?? sim.opsPerSec;
  const bugs: PlantedBugs = {};
  for (const b of v.bug ?? []) {
    if ((HEALTH_BUGS as readonly string[]).includes(b)) sim.healthBugs = { ...sim.healthBugs, [b]: true };
    else if ((BUGS as readonly string[]).includes(b)) bugs[b as (typeof BUGS)[number]] = true;
    else throw new UsageError(`unknown --bug '${b}'; known: ${[...BUGS, ...HEALTH_BUGS].join(', ')}`, u);
  }
  if (v.health) sim.health = true;
  if (Object.keys(bugs).length > 0) sim.bugs = bugs;
  if (sim.regions.length === 0) throw new UsageError('--regions needs at least one region', u);
  if (new Set(sim.regions).size !== sim.regions.length)
    throw new UsageError('--regions lists a region twice', u);
  const table = loadRegionTable();
  try {
    for (const r of sim.regions) table.get(r); // throws, naming the known regions
  } catch (e) {
    throw new UsageError(`--regions: ${(e as Error).message}`, u);
  }
  return { sim, seed, seeds, notes: v.notes === true };
}

/**
 * The saga workload's own runner takes --seed N, --seeds N, --duration T, --regions, --bug and
 * --no-faults as separate words: the options are checked here and handed on in that form.
 */
async function runSaga(argv: string[]): Promise<number> {
  const u = usage();
  const args = parseCommand(argv, { options: OPTIONS, usage: u });
  if (!args) return EXIT.ok;
  const v = args.values;
  const other = Object.keys(v).filter((k) => k !== 'workload' && !SAGA_OPTIONS.includes(k));
  if (other.length > 0)
    throw new UsageError(
      `--${other[0]} is not an option of --workload saga (it takes ${SAGA_OPTIONS.map((k) => `--${k}`).join(', ')})`,
      u,
    );
  const words: string[] = [];
  const seed = intOption(v.seed, 'seed', 0, Number.MAX_SAFE_INTEGER, u);
  if (seed !== undefined) words.push('--seed', String(seed));
  const seeds = intOption(v.seeds, 'seeds', 1, 1_000_000_000, u);
  if (seeds !== undefined) words.push('--seeds', String(seeds));
  if (v.duration !== undefined) {
    try {
      words.push('--duration', `${parseDurationMs(v.duration)}ms`);
    } catch (e) {
      throw new UsageError(`--duration: ${(e as Error).message}`, u);
    }
  }
  if (v.regions !== undefined) {
    const regions = regionList(v.regions);
    if (regions.length === 0) throw new UsageError('--regions needs at least one region', u);
    words.push('--regions', regions.join(','));
  }
  for (const b of v.bug ?? []) {
    if (!SAGA_BUG_NAMES.includes(b))
      throw new UsageError(
        `unknown --bug '${b}' for --workload saga; known: ${SAGA_BUG_NAMES.join(', ')}`,
        u,
      );
    words.push('--bug', b);
  }
  if (v['no-faults']) words.push('--no-faults');
  return (await import('../../sim/saga/cli.js')).main(words);
}

/** @example await run(['--seeds', '10', '--faults', 'random']) */
export async function run(argv: string[]): Promise<number> {
  // The saga and idempotency workloads have their own runner and checkers (src/sim/saga).
  const w = argv.findIndex(
    (a, i) => (a === '--workload' && argv[i + 1] === 'saga') || a === '--workload=saga',
  );
  if (w >= 0) return runSaga(argv);
  const o = parseSimArgs(argv);
  if (!o) return EXIT.ok;
  const names = ALL_CHECKERS.map((c) => c.name);
  if (o.seeds === 1) {
    let r: RunResult;
    try {
      r = await simulate({ ...o.sim, seed: o.seed });
    } catch (e) {
      // The simulator gave up on this seed (as a sweep counts it): a failure, not a usage error.
      process.stderr.write(
        `meridian sim: SIMULATOR ERROR (seed ${o.seed}): ${(e as Error).message}\n  replay: ${replayCommand({ ...o.sim, seed: o.seed })}\n`,
      );
      return EXIT.failure;
    }
    process.stdout.write(runReport(r, names));
    if (o.notes) for (const n of r.notes) process.stdout.write(`note ${n}\n`);
    return r.violations.length === 0 ? EXIT.ok : EXIT.failure;
  }
  return sweep(o, names);
}

async function sweep(o: CliOptions, names: string[]): Promise<number> {
  const failing: RunResult[] = [];
  const perChecker = new Map<string, number>(names.map((n) => [n, 0]));
  const totals = { ops: 0, conflicts: 0, snapshots: 0, lostWrites: 0, regionsLost: 0, maxP99: 0 };
  const health = { samples: 0, ejections: 0, falseEjections: 0, missedEjections: 0, runs: 0 };
  /** Per kind of fault, how many seeds it happened in (a sweep shows what it exercised). */
  const kinds = new Map<string, number>();
  const seen = (kind: string): void => {
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  };
  const t0 = performance.now();
  const crashed: { options: SimOptions; message: string }[] = [];
  process.stdout.write(
    `meridian sim: seeds ${o.seed}..${o.seed + o.seeds - 1}, regions ${o.sim.regions.join(',')}, ${o.sim.durationMs / 1000}s each, faults ${o.sim.faults}, workload ${o.sim.workload}, ${o.sim.opsPerSec} ops/s\n`,
  );
  for (let i = 0; i < o.seeds; i++) {
    const seed = o.seed + i;
    let r: RunResult;
    try {
      r = await simulate({ ...o.sim, seed });
    } catch (e) {
      // The simulator itself gave up (an invariant of the harness broke): the seed fails, the sweep goes on.
      const message = (e as Error).message;
      crashed.push({ options: { ...o.sim, seed }, message });
      process.stdout.write(
        `[${String(i + 1).padStart(String(o.seeds).length)}/${o.seeds}] seed ${seed}: SIMULATOR ERROR ${message}\n`,
      );
      continue;
    }
    const f = r.figures;
    totals.ops += f.ops.total;
    totals.conflicts += f.conflicts;
    totals.snapshots += f.snapshots;
    if (f.rpo) {
      totals.regionsLost++;
      totals.lostWrites += f.rpo.lostWrites;
    }
    for (const l of f.lag) totals.maxP99 = Math.max(totals.maxP99, l.p99Ms);
    if (r.health) {
      health.runs++;
      health.samples += r.health.samples;
      health.ejections += r.health.ejections;
      health.falseEjections += r.health.falseEjections;
      health.missedEjections += r.health.missedEjections;
      for (const n of [FALSE_EJECTION, MISSED_EJECTION]) if (!perChecker.has(n)) perChecker.set(n, 0);
    }
    const hit = new Set(r.violations.map((v) => v.checker));
    for (const c of hit) perChecker.set(c, (perChecker.get(c) ?? 0) + 1);
    if (r.violations.length > 0) failing.push(r);
    for (const k of Object.keys(f.faults)) if (k !== 'heal-all') seen(k);
    if (f.network.lost > 0) seen('message loss');
    if (f.network.duplicated > 0) seen('message duplication');
    if (f.network.reordered > 0) seen('message reordering');
    if (r.disk.failed > 0) seen('failed commits');
    if (r.disk.torn > 0) seen('torn commits');
    const elapsedS = (performance.now() - t0) / 1000;
    const etaS = (elapsedS / (i + 1)) * (o.seeds - i - 1);
    process.stdout.write(
      `[${String(i + 1).padStart(String(o.seeds).length)}/${o.seeds}] seed ${seed}: ${r.violations.length === 0 ? 'ok' : `VIOLATED ${[...hit].join(', ')}`} (${f.ops.total} ops, ${f.conflicts} conflicts${f.rpo ? `, lost ${f.rpo.region}` : ''}${r.disk.failed + r.disk.torn > 0 ? `, commits failed: ${r.disk.failed + r.disk.torn}` : ''}) ${elapsedS.toFixed(0)} s, eta ${etaS.toFixed(0)} s\n`,
    );
  }
  const wallS = (performance.now() - t0) / 1000;
  process.stdout.write('\n');
  process.stdout.write(
    `${table(
      ['figure', 'value'],
      [
        ['seeds', o.seeds],
        ['seeds with a violation', failing.length],
        ['seeds the simulator gave up on (error)', crashed.length],
        ['wall time (s)', wallS.toFixed(1)],
        ['operations', totals.ops],
        ['conflicts resolved', totals.conflicts],
        ['snapshots applied', totals.snapshots],
        ['runs that lost a region for good', totals.regionsLost],
        ['async writes lost with it (RPO, total)', totals.lostWrites],
        ['worst replication lag p99 (ms)', totals.maxP99],
        ...(health.runs > 0
          ? [
              ['health: edge/region verdicts sampled', health.samples],
              ['health: ejections (edge held a region down)', health.ejections],
              ['health: false ejections (live, reachable region held down)', health.falseEjections],
              ['health: missed ejections (dead region held up past the bound)', health.missedEjections],
            ]
          : []),
      ],
    )}\n\n`,
  );
  if (kinds.size > 0) {
    process.stdout.write(
      `${table(
        ['fault', 'seeds it happened in'],
        [...kinds].sort(([a], [b]) => (a < b ? -1 : 1)),
      )}\n\n`,
    );
  }
  process.stdout.write(
    `${table(
      ['checker', 'seeds violated'],
      [...perChecker].map(([n, c]) => [n, c]),
    )}\n\n`,
  );
  for (const r of failing.slice(0, 3)) {
    for (const line of violationReport(r, r.violations[0]!)) process.stdout.write(`${line}\n`);
    process.stdout.write('\n');
  }
  for (const c of crashed) {
    process.stdout.write(`SIMULATOR ERROR (seed ${c.options.seed}): ${c.message}\n  ${mixLine(c.options)}\n`);
    process.stdout.write(`  replay: ${replayCommand(c.options)}\n\n`);
  }
  if (failing.length > 0) {
    process.stdout.write('replay the failing seeds:\n');
    for (const r of failing) {
      const checkers = [...new Set(r.violations.map((v) => v.checker))].join(', ');
      process.stdout.write(`  ${replayCommand(r.options)}   # ${checkers}\n`);
      if (r.options.faults === 'random') process.stdout.write(`    ${mixLine(r.options)}\n`);
    }
  }
  process.stdout.write(
    failing.length + crashed.length === 0
      ? 'result: ok\n'
      : `result: ${failing.length} seed(s) violated, ${crashed.length} seed(s) stopped the simulator\n`,
  );
  return failing.length + crashed.length === 0 ? 0 : 1;
}
