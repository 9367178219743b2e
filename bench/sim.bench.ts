/**
 * Simulator speed: 3 regions, 60 simulated seconds, 1,000 client operations per second, under the
 * light and heavy presets and under random fault mixes (one per seed), against two peers in the
 * same run: real time (60 s of a real deployment take 60 s) and the previous release's simulator,
 * when a checkout of it is named (`MERIDIAN_BENCH_PREV=/path/to/checkout`, e.g. a `git worktree add`
 * of the release commit with node_modules linked in), on the same seeds and presets.
 * Target: at least 100x faster than real time with a random fault mix, and no slower per simulated
 * second than the previous release. Prints wall and CPU time, since a shared machine's wall time
 * includes other processes' work.
 *
 * @example
 * git worktree add --detach /tmp/prev <release commit> && ln -s "$PWD/node_modules" /tmp/prev/
 * MERIDIAN_BENCH_PREV=/tmp/prev nice -n 19 npm run bench -- sim
 */
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { table } from '../src/sim/report.js';
import type { RunResult, SimOptions } from '../src/sim/simulator.js';
import * as current from '../src/sim/simulator.js';

const SIMULATED_MS = 60_000;
const TARGET_SPEEDUP = 100;
/** Seeds of the random-mix rows: each draws its own mix, so one seed is one sample of the mixes. */
const RANDOM_SEEDS = [1, 2, 3, 4, 5];

type Simulate = (o: SimOptions) => Promise<Pick<RunResult, 'figures' | 'violations'>>;
interface Sim {
  label: string;
  simulate: Simulate;
  defaults: Omit<SimOptions, 'seed'>;
}

interface Sample {
  wallMs: number;
  cpuMs: number;
  ops: number;
  violations: number;
}

async function once(sim: Sim, seed: number, faults: string): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await sim.simulate({ ...sim.defaults, seed, durationMs: SIMULATED_MS, opsPerSec: 1000, faults });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    ops: r.figures.ops.total,
    violations: r.violations.length,
  };
}

type Row = (string | number)[];

function row(label: string, samples: Sample[], baseline?: Sample[]): Row {
  const sum = (k: keyof Sample, s: Sample[]) => s.reduce((a, x) => a + x[k], 0);
  const simulatedMs = SIMULATED_MS * samples.length;
  const wallMs = sum('wallMs', samples);
  const cpuMs = sum('cpuMs', samples);
  const violations = sum('violations', samples);
  const vsPrev = baseline ? `${(sum('cpuMs', baseline) / cpuMs).toFixed(2)}x` : '-';
  return [
    label,
    (simulatedMs / 1000).toFixed(0),
    sum('ops', samples),
    Math.round(wallMs),
    Math.round(cpuMs),
    `${(simulatedMs / wallMs).toFixed(1)}x`,
    `${(simulatedMs / cpuMs).toFixed(1)}x`,
    vsPrev,
    violations,
  ];
}

async function previous(): Promise<Sim | undefined> {
  const dir = process.env.MERIDIAN_BENCH_PREV;
  if (!dir) return undefined;
  const mod = (await import(pathToFileURL(join(dir, 'src/sim/simulator.ts')).href)) as typeof current;
  return { label: `previous release (${dir})`, simulate: mod.simulate, defaults: mod.DEFAULT_SIM };
}

export async function run(): Promise<void> {
  const now: Sim = { label: 'this tree', simulate: current.simulate, defaults: current.DEFAULT_SIM };
  const prev = await previous();
  const sims = prev ? [prev, now] : [now];
  // The first long run in a fresh process pays for JIT compilation and heap growth; a sweep pays it
  // once, so every simulator is warmed on another seed first and then measured warm.
  for (const sim of sims) {
    process.stdout.write(`sim bench: warming ${sim.label} ...\n`);
    await sim.simulate({ ...sim.defaults, seed: 99, durationMs: 10_000, opsPerSec: 1000, faults: 'heavy' });
  }
  const rows: Row[] = [['real time (peer)', '60', '-', SIMULATED_MS, '-', '1.0x', '-', '-', '-']];
  for (const faults of ['light', 'heavy']) {
    // Interleaved, so both see the same machine load.
    const byPrev: Sample[] = [];
    const byNow: Sample[] = [];
    for (const seed of [1, 2]) {
      process.stdout.write(`sim bench: ${faults} faults, seed ${seed}, 60 s simulated at 1,000 ops/s ...\n`);
      if (prev) byPrev.push(await once(prev, seed, faults));
      byNow.push(await once(now, seed, faults));
    }
    if (prev) rows.push(row(`previous release, ${faults} faults`, byPrev));
    rows.push(row(`meridian sim, ${faults} faults`, byNow, prev ? byPrev : undefined));
  }
  const random: Sample[] = [];
  for (const seed of RANDOM_SEEDS) {
    process.stdout.write(`sim bench: random fault mix of seed ${seed} ...\n`);
    random.push(await once(now, seed, 'random'));
  }
  rows.push(row(`meridian sim, random mixes (seeds ${RANDOM_SEEDS.join(',')})`, random));
  process.stdout.write(
    `\n${table(['run', 'simulated s', 'client ops', 'wall ms', 'cpu ms', 'vs real time', 'by cpu time', 'vs previous (cpu)', 'violations'], rows)}\n`,
  );
  process.stdout.write(
    `target: >= ${TARGET_SPEEDUP}x real time with random fault mixes, and no slower than the previous release (3 regions, 60 s, 1,000 ops/s, warm); 'vs previous' > 1 is faster; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores${prev ? '' : '; set MERIDIAN_BENCH_PREV to a checkout of the previous release to compare'}\n`,
  );
}
