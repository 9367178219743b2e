/**
 * Fault mixes and the seeded fault schedule of a run: crashes and restarts, a region lost for
 * good, partitions (symmetric and one-way), delay spikes, clock skew and jumps, slow disks,
 * failing disks, torn fsync windows, failed commits, forced log compaction, plus the per-message
 * link faults (loss, duplication, reordering, jitter). A mix is either a named preset or, for
 * `random`, drawn from the seed, so every seed runs a different mix and replays it exactly.
 */
import type { RegionId } from '../core/types.js';
import type { TimedFault } from './history.js';
import type { LinkFaults } from './network.js';
import { Prng } from './random.js';

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
  /** A clock jump sets the region's clock to uniform in +/- this. */
  clockJumpMs: number;
  slowDiskEveryMs: number;
  slowDiskFsyncMs: number;
  forceCompactEveryMs: number;
  /** Probability that one region is lost for good during the run (needs 3 or more regions). */
  loseRegionChance: number;
  /** Mean time between delay spikes: every message to or from one region waits this much longer. */
  delaySpikeEveryMs: number;
  delaySpikeMs: [number, number];
  delaySpikeForMs: [number, number];
  /** Mean time between failing-disk episodes: each commit of one region fails with `diskFailRate`. */
  diskFailEveryMs: number;
  diskFailForMs: [number, number];
  diskFailRate: number;
  /**
   * Mean time between torn fsync windows: a commit in the window is told its fsync failed, yet the
   * batch may have reached the disk (half of them do), as with an fsync error after the write.
   */
  tornFsyncEveryMs: number;
  tornFsyncForMs: [number, number];
  /** Probability that any one commit fails (the store throws; nothing is written), all run long. */
  commitFailRate: number;
}

const quiet = {
  crashEveryMs: 0,
  downMs: [0, 0] as [number, number],
  partitionEveryMs: 0,
  partitionMs: [0, 0] as [number, number],
  oneWayShare: 0,
  skewMs: 0,
  clockJumpEveryMs: 0,
  clockJumpMs: 0,
  slowDiskEveryMs: 0,
  slowDiskFsyncMs: 0,
  forceCompactEveryMs: 0,
  loseRegionChance: 0,
};

/** The faults the first presets never had (all off), spread into each of them. */
const noNewFaults = {
  delaySpikeEveryMs: 0,
  delaySpikeMs: [0, 0] as [number, number],
  delaySpikeForMs: [0, 0] as [number, number],
  diskFailEveryMs: 0,
  diskFailForMs: [0, 0] as [number, number],
  diskFailRate: 0,
  tornFsyncEveryMs: 0,
  tornFsyncForMs: [0, 0] as [number, number],
  commitFailRate: 0,
};

export const FAULT_PROFILES: Record<string, FaultProfile> = {
  none: {
    name: 'none',
    describe: 'no faults: WAN delays only',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0 },
    ...quiet,
    ...noNewFaults,
  },
  light: {
    name: 'light',
    describe: 'jitter, 0.5% loss and duplication, rare crashes and short partitions, small skew',
    link: { lossRate: 0.005, dupRate: 0.005, reorderRate: 0.01, reorderMaxMs: 50, jitterFrac: 0.1 },
    ...quiet,
    ...noNewFaults,
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
    clockJumpMs: 1600,
    slowDiskEveryMs: 8000,
    slowDiskFsyncMs: 60,
    forceCompactEveryMs: 20_000,
    loseRegionChance: 0.5,
    ...noNewFaults,
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
    clockJumpMs: 1600,
    slowDiskEveryMs: 1500,
    slowDiskFsyncMs: 60,
    forceCompactEveryMs: 1500,
    loseRegionChance: 0.5,
    ...noNewFaults,
  },
  partitions: {
    name: 'partitions',
    describe: 'partitions only (symmetric and one-way), every 3 s on average',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    ...noNewFaults,
    partitionEveryMs: 3000,
    partitionMs: [300, 6000],
    oneWayShare: 0.5,
  },
  crashes: {
    name: 'crashes',
    describe: 'crashes and restarts every 3 s on average, slow disks (long windows of non-durable state)',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    ...noNewFaults,
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
    ...noNewFaults,
  },
  disk: {
    name: 'disk',
    describe:
      'failing disks (episodes where most commits fail), 1% of commits failing, slow disks and crashes: the commit-failure path',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    ...noNewFaults,
    crashEveryMs: 4000,
    downMs: [100, 2000],
    slowDiskEveryMs: 3000,
    slowDiskFsyncMs: 60,
    diskFailEveryMs: 2000,
    diskFailForMs: [100, 1500],
    diskFailRate: 0.7,
    commitFailRate: 0.01,
  },
  'torn-fsync': {
    name: 'torn-fsync',
    describe:
      'torn fsync windows: a commit is told its fsync failed, yet half of them reached the disk (what an fsync error after the write leaves)',
    link: { lossRate: 0, dupRate: 0, reorderRate: 0, reorderMaxMs: 0, jitterFrac: 0.1 },
    ...quiet,
    ...noNewFaults,
    tornFsyncEveryMs: 2000,
    tornFsyncForMs: [50, 500],
  },
};

/** The name that draws a mix per seed instead of a preset. */
export const RANDOM_FAULTS = 'random';

/** Every name `--faults` accepts: the presets and `random`. */
export const FAULT_NAMES: readonly string[] = [...Object.keys(FAULT_PROFILES), RANDOM_FAULTS];

export function faultProfile(name: string): FaultProfile {
  const p = FAULT_PROFILES[name];
  if (!p) throw new Error(`unknown fault profile '${name}'; known: ${FAULT_NAMES.join(', ')}`);
  return p;
}

/**
 * The fault mix a run uses: the named preset, or for `random` the mix drawn from the seed (its own
 * stream, so the mix does not depend on anything else the run draws).
 *
 * @example
 * faultMixFor('random', 7).describe; // 'loss 2.1%, crashes every 1.4 s (down 0.05-3.2 s), ...'
 */
export function faultMixFor(name: string, seed: number): FaultProfile {
  if (name === RANDOM_FAULTS) return randomFaultMix(new Prng(seed >>> 0).fork('fault-mix'));
  return faultProfile(name);
}

/** Log-uniform in [lo, hi]: mean intervals from very often to rare, each decade as likely. */
function logUniform(rng: Prng, lo: number, hi: number): number {
  return Math.round(Math.exp(rng.range(Math.log(lo), Math.log(hi))));
}

function span(rng: Prng, lo: number, hiMin: number, hiMax: number): [number, number] {
  return [lo, Math.round(rng.range(hiMin, hiMax))];
}

/**
 * Draws a fault mix: each kind of fault is on with its own probability, and when on, its rate and
 * size are drawn too, so a sweep covers quiet runs, single faults and every combination of them.
 * Mean intervals are log-uniform between a few hundred milliseconds and tens of seconds.
 */
export function randomFaultMix(rng: Prng): FaultProfile {
  const p: FaultProfile = {
    name: RANDOM_FAULTS,
    describe: '',
    link: {
      lossRate: rng.chance(0.5) ? rng.range(0.001, 0.08) : 0,
      dupRate: rng.chance(0.5) ? rng.range(0.001, 0.05) : 0,
      reorderRate: 0,
      reorderMaxMs: 0,
      jitterFrac: rng.range(0, 0.3),
    },
    ...quiet,
    ...noNewFaults,
  };
  if (rng.chance(0.5)) {
    p.link.reorderRate = rng.range(0.005, 0.1);
    p.link.reorderMaxMs = Math.round(rng.range(10, 500));
  }
  if (rng.chance(0.5)) {
    p.crashEveryMs = logUniform(rng, 300, 20_000);
    p.downMs = span(rng, 50, 300, 5000);
  }
  if (rng.chance(0.5)) {
    p.partitionEveryMs = logUniform(rng, 300, 20_000);
    p.partitionMs = span(rng, 100, 500, 8000);
    p.oneWayShare = rng.next();
  }
  if (rng.chance(0.5)) p.skewMs = Math.round(rng.range(1, 1000));
  if (rng.chance(0.3)) {
    p.clockJumpEveryMs = logUniform(rng, 1000, 30_000);
    p.clockJumpMs = Math.round(rng.range(50, 2000));
  }
  if (rng.chance(0.4)) {
    p.slowDiskEveryMs = logUniform(rng, 500, 20_000);
    p.slowDiskFsyncMs = Math.round(rng.range(10, 150));
  }
  if (rng.chance(0.4)) p.forceCompactEveryMs = logUniform(rng, 500, 20_000);
  if (rng.chance(0.25)) p.loseRegionChance = 1;
  if (rng.chance(0.4)) {
    p.delaySpikeEveryMs = logUniform(rng, 500, 20_000);
    p.delaySpikeMs = span(rng, 50, 200, 3000);
    p.delaySpikeForMs = span(rng, 100, 300, 4000);
  }
  if (rng.chance(0.3)) {
    p.diskFailEveryMs = logUniform(rng, 500, 20_000);
    p.diskFailForMs = span(rng, 50, 200, 3000);
    p.diskFailRate = rng.range(0.1, 1);
  }
  if (rng.chance(0.2)) {
    p.tornFsyncEveryMs = logUniform(rng, 1000, 20_000);
    p.tornFsyncForMs = span(rng, 20, 100, 1000);
  }
  if (rng.chance(0.3)) p.commitFailRate = rng.range(0.001, 0.03);
  p.describe = describeMix(p);
  return p;
}

const pct = (x: number): string => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)}%`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1).replace(/\.?0+$/, '')} s`;
const every = (ms: number): string => `every ${sec(ms)}`;
const range = ([lo, hi]: [number, number]): string => `${sec(lo).slice(0, -2)}-${sec(hi)}`;

/** One line naming every fault of a mix with its rate and size (what a seed prints and replays). */
export function describeMix(p: FaultProfile): string {
  const parts: string[] = [];
  const l = p.link;
  if (l.lossRate > 0) parts.push(`loss ${pct(l.lossRate)}`);
  if (l.dupRate > 0) parts.push(`duplication ${pct(l.dupRate)}`);
  if (l.reorderRate > 0) parts.push(`reordering ${pct(l.reorderRate)} by <= ${l.reorderMaxMs} ms`);
  if (l.jitterFrac > 0) parts.push(`jitter ${pct(l.jitterFrac)}`);
  if (p.delaySpikeEveryMs > 0)
    parts.push(
      `delay spikes ${every(p.delaySpikeEveryMs)} (+${range(p.delaySpikeMs)} for ${range(p.delaySpikeForMs)})`,
    );
  if (p.partitionEveryMs > 0)
    parts.push(
      `partitions ${every(p.partitionEveryMs)} (${range(p.partitionMs)}, ${pct(p.oneWayShare)} one-way)`,
    );
  if (p.crashEveryMs > 0) parts.push(`crashes ${every(p.crashEveryMs)} (down ${range(p.downMs)})`);
  if (p.loseRegionChance > 0) parts.push(`a region lost for good (chance ${pct(p.loseRegionChance)})`);
  if (p.skewMs > 0) parts.push(`clock skew +/-${p.skewMs} ms`);
  if (p.clockJumpEveryMs > 0) parts.push(`clock jumps ${every(p.clockJumpEveryMs)} (+/-${p.clockJumpMs} ms)`);
  if (p.slowDiskEveryMs > 0)
    parts.push(`slow disks ${every(p.slowDiskEveryMs)} (fsync ~${p.slowDiskFsyncMs} ms)`);
  if (p.name === 'slow-disk') parts.push('every fsync 40-120 ms');
  if (p.diskFailEveryMs > 0)
    parts.push(
      `failing disks ${every(p.diskFailEveryMs)} (${pct(p.diskFailRate)} of commits fail for ${range(p.diskFailForMs)})`,
    );
  if (p.tornFsyncEveryMs > 0)
    parts.push(`torn fsync windows ${every(p.tornFsyncEveryMs)} (${range(p.tornFsyncForMs)})`);
  if (p.commitFailRate > 0) parts.push(`failed commits ${pct(p.commitFailRate)}`);
  if (p.forceCompactEveryMs > 0) parts.push(`forced compaction ${every(p.forceCompactEveryMs)}`);
  return parts.length > 0 ? parts.join(', ') : 'no faults';
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
        fault: { kind: 'skew', region: r, skewMs: Math.round(rng.range(-p.clockJumpMs, p.clockJumpMs)) },
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
  // The kinds added with random mixes draw after the first ones, so a preset's schedule is unchanged.
  for (const at of poisson(rng, p.delaySpikeEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: {
        kind: 'delay-spike',
        region: rng.pick(regions),
        extraMs: Math.round(rng.range(...p.delaySpikeMs)),
        durationMs: Math.round(rng.range(...p.delaySpikeForMs)),
      },
    });
  }
  for (const at of poisson(rng, p.diskFailEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: {
        kind: 'disk-fail',
        region: rng.pick(regions),
        failRate: p.diskFailRate,
        durationMs: Math.round(rng.range(...p.diskFailForMs)),
      },
    });
  }
  for (const at of poisson(rng, p.tornFsyncEveryMs, durationMs)) {
    out.push({
      atMs: at,
      fault: {
        kind: 'torn-fsync',
        region: rng.pick(regions),
        durationMs: Math.round(rng.range(...p.tornFsyncForMs)),
      },
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
    case 'delay-spike':
      return `delay spike at ${f.region}: +${f.extraMs} ms on its links for ${f.durationMs} ms`;
    case 'disk-fail':
      return `failing disk on ${f.region}: ${Math.round(f.failRate * 100)}% of commits fail for ${f.durationMs} ms`;
    case 'torn-fsync':
      return `torn fsync window on ${f.region} for ${f.durationMs} ms`;
    case 'heal-all':
      return 'heal everything (end of faults)';
  }
}
