/**
 * Fault profiles and the seeded fault schedule of a run: crashes and restarts, a region lost for
 * good, partitions (symmetric and one-way), clock skew and jumps, slow disks, forced log
 * compaction, plus the per-message link faults (loss, duplication, reordering, jitter).
 */
import type { RegionId } from '../core/types.js';
import type { TimedFault } from './history.js';
import type { LinkFaults } from './network.js';
import type { Prng } from './random.js';

export interface FaultProfile {
  name: string;
  describe: string;
  link: LinkFaults;
  /** Mean time between crashes across the cluster (0 = none), and the downtime range. */
  crashEveryMs: number;
  downMs: [number, number];
  partitionEveryMs: number;
  partitionMs: [number, number];
  /** Share of partitions that cut one direction only. */
  oneWayShare: number;
  /** Initial clock skew per region: uniform in +/- this. */
  skewMs: number;
  /** Mean time between clock jumps (forwards or backwards) of one region. */
  clockJumpEveryMs: number;
  slowDiskEveryMs: number;
  slowDiskFsyncMs: number;
  forceCompactEveryMs: number;
  /** Probability that one region is lost for good during the run (needs 3 or more regions). */
  loseRegionChance: number;
}

const quiet = {
  crashEveryMs: 0,
  downMs: [0, 0] as [number, number],
  partitionEveryMs: 0,
  partitionMs: [0, 0] as [number, number],
  oneWayShare: 0,
  skewMs: 0,
  clockJumpEveryMs: 0,
  slowDiskEveryMs: 0,
  slowDiskFsyncMs: 0,
  forceCompactEveryMs: 0,
  loseRegionChance: 0,
};

export const FAULT_PROFILES: Record<string, FaultProfile> = {
  none: {
    name: 'none',
    describe: 'no faults: WAN delays only',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0 },
    ...quiet,
  },
  light: {
    name: 'light',
    describe: 'jitter, 0.5% loss and duplication, rare crashes and short partitions, small skew',
    link: { lossRate: 0.005, dupRate: 0.005, reorderRate: 0.01, reorderMaxMs: 50, jitterFrac: 0.1 },
    ...quiet,
    crashEveryMs: 20_000,
    downMs: [200, 2000],
    partitionEveryMs: 20_000,
    partitionMs: [500, 3000],
    oneWayShare: 0.3,
    skewMs: 50,
  },
  heavy: {
    name: 'heavy',
    describe:
      'loss, duplication, reordering, frequent crashes, symmetric and one-way partitions, skew beyond the HLC bound, clock jumps, slow disks, forced compaction, a region lost for good in half the runs',
    link: { lossRate: 0.03, dupRate: 0.02, reorderRate: 0.05, reorderMaxMs: 300, jitterFrac: 0.25 },
    crashEveryMs: 5000,
    downMs: [100, 5000],
    partitionEveryMs: 5000,
    partitionMs: [300, 8000],
    oneWayShare: 0.4,
    skewMs: 800,
    clockJumpEveryMs: 15_000,
    slowDiskEveryMs: 8000,
    slowDiskFsyncMs: 60,
    forceCompactEveryMs: 20_000,
    loseRegionChance: 0.5,
  },
  chaos: {
    name: 'chaos',
    describe: 'heavy, with faults five times as often: for short runs and seed sweeps',
    link: { lossRate: 0.05, dupRate: 0.03, reorderRate: 0.08, reorderMaxMs: 300, jitterFrac: 0.3 },
    crashEveryMs: 800,
    downMs: [50, 1500],
    partitionEveryMs: 800,
    partitionMs: [100, 1500],
    oneWayShare: 0.4,
    skewMs: 800,
    clockJumpEveryMs: 3000,
    slowDiskEveryMs: 1500,
    slowDiskFsyncMs: 60,
    forceCompactEveryMs: 1500,
    loseRegionChance: 0.5,
  },
  partitions: {
    name: 'partitions',
    describe: 'partitions only (symmetric and one-way), every 3 s on average',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    partitionEveryMs: 3000,
    partitionMs: [300, 6000],
    oneWayShare: 0.5,
  },
  crashes: {
    name: 'crashes',
    describe: 'crashes and restarts every 3 s on average, slow disks (long windows of non-durable state)',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    crashEveryMs: 3000,
    downMs: [100, 3000],
    slowDiskEveryMs: 2000,
    slowDiskFsyncMs: 80,
  },
  'slow-disk': {
    name: 'slow-disk',
    describe: 'fsync of 40-120 ms all run long (durability lags far behind receipt), no other fault',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
  },
};

export function faultProfile(name: string): FaultProfile {
  const p = FAULT_PROFILES[name];
  if (!p)
    throw new Error(`unknown fault profile '${name}'; known: ${Object.keys(FAULT_PROFILES).join(', ')}`);
  return p;
}

function poisson(rng: Prng, everyMs: number, durationMs: number, from = 0): number[] {
  if (everyMs <= 0) return [];
  const out: number[] = [];
  let t = from + rng.exp(everyMs);
  while (t < durationMs) {
    out.push(Math.floor(t));
    t += rng.exp(everyMs);
  }
  return out;
}

/** The initial clock skew of each region. */
export function initialSkews(
  p: FaultProfile,
  regions: readonly RegionId[],
  rng: Prng,
): Map<RegionId, number> {
  return new Map(regions.map((r) => [r, p.skewMs > 0 ? Math.round(rng.range(-p.skewMs, p.skewMs)) : 0]));
}

/** Draws the run's fault schedule up front, so it can be printed and replayed. */
export function faultSchedule(
  p: FaultProfile,
  regions: readonly RegionId[],
  durationMs: number,
  rng: Prng,
): TimedFault[] {
  const out: TimedFault[] = [];
  for (const at of poisson(rng, p.crashEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: { kind: 'crash', region: rng.pick(regions), downMs: Math.round(rng.range(...p.downMs)) },
    });
  }
  if (regions.length >= 2) {
    for (const at of poisson(rng, p.partitionEveryMs, durationMs)) {
      const shuffled = shuffle(regions, rng);
      const cut = rng.int(1, regions.length - 1);
      const oneWay = rng.chance(p.oneWayShare);
      out.push({
        atMs: at,
        fault: {
          kind: 'partition',
          from: shuffled.slice(0, cut),
          to: shuffled.slice(cut),
          oneWay,
          durationMs: Math.round(rng.range(...p.partitionMs)),
        },
      });
    }
  }
  for (const r of regions) {
    for (const at of poisson(rng, p.clockJumpEveryMs, durationMs)) {
      out.push({
        atMs: at,
        fault: { kind: 'skew', region: r, skewMs: Math.round(rng.range(-p.skewMs * 2, p.skewMs * 2)) },
      });
    }
  }
  for (const at of poisson(rng, p.slowDiskEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: {
        kind: 'slow-disk',
        region: rng.pick(regions),
        fsyncMs: p.slowDiskFsyncMs,
        durationMs: rng.int(500, 3000),
      },
    });
  }
  if (p.name === 'slow-disk') {
    for (const r of regions)
      out.push({ atMs: 0, fault: { kind: 'slow-disk', region: r, fsyncMs: 80, durationMs } });
  }
  for (const at of poisson(rng, p.forceCompactEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: { kind: 'compact', region: rng.pick(regions), keep: rng.int(0, 200), force: true },
    });
  }
  if (regions.length >= 3 && rng.chance(p.loseRegionChance)) {
    out.push({
      atMs: Math.floor(rng.range(0.3, 0.8) * durationMs),
      fault: { kind: 'lose', region: rng.pick(regions) },
    });
  }
  out.push({ atMs: durationMs, fault: { kind: 'heal-all' } });
  // Stable order: by time, then by the order drawn (sort is stable).
  return out.sort((a, b) => a.atMs - b.atMs);
}

function shuffle<T>(items: readonly T[], rng: Prng): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function describeFault(f: TimedFault['fault']): string {
  switch (f.kind) {
    case 'crash':
      return `crash ${f.region} (down ${f.downMs} ms)`;
    case 'restart':
      return `restart ${f.region}`;
    case 'lose':
      return `lose ${f.region} for good`;
    case 'partition':
      return `partition ${f.from.join('+')} ${f.oneWay ? '->' : '<->'} ${f.to.join('+')} for ${f.durationMs} ms`;
    case 'heal-partition':
      return `heal ${f.from.join('+')} ${f.oneWay ? '->' : '<->'} ${f.to.join('+')}`;
    case 'skew':
      return `clock of ${f.region} set to ${f.skewMs >= 0 ? '+' : ''}${f.skewMs} ms`;
    case 'slow-disk':
      return `slow disk on ${f.region}: fsync ~${f.fsyncMs} ms for ${f.durationMs} ms`;
    case 'compact':
      return `compact log of ${f.region} to ${f.keep} entries${f.force ? ' (forced)' : ''}`;
    case 'heal-all':
      return 'heal everything (end of faults)';
  }
}
