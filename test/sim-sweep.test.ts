/**
 * The bounded seed sweep of the test suite: a few hundred short seeded runs under random fault
 * mixes (each seed draws its own) and every preset (and five-region clusters), each checked by
 * every checker. A failure names the seed, its mix and the exact command that replays it.
 * `meridian sim --seeds 10000 --faults random` runs the long sweep by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SIM, replayCommand, type SimOptions, simulate } from '../src/sim/index.js';
import { mixLine } from '../src/sim/report.js';

const FIVE = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-northeast-1'];

const groups: { name: string; seeds: number; first: number; options: Partial<SimOptions> }[] = [
  { name: 'random fault mixes, 3 regions', seeds: 150, first: 6000, options: { faults: 'random' } },
  {
    name: 'random fault mixes, 5 regions',
    seeds: 30,
    first: 7000,
    options: { faults: 'random', regions: FIVE },
  },
  {
    name: 'failing disks and failed commits, 3 regions',
    seeds: 20,
    first: 8000,
    options: { faults: 'disk' },
  },
  { name: 'chaos, 3 regions', seeds: 120, first: 1000, options: { faults: 'chaos' } },
  {
    name: 'heavy faults, 3 regions, 4 s',
    seeds: 30,
    first: 1500,
    options: { faults: 'heavy', durationMs: 4000 },
  },
  { name: 'partitions, 3 regions', seeds: 30, first: 2000, options: { faults: 'partitions' } },
  { name: 'crashes and slow disks, 3 regions', seeds: 30, first: 3000, options: { faults: 'crashes' } },
  { name: 'chaos, 5 regions', seeds: 30, first: 4000, options: { faults: 'chaos', regions: FIVE } },
  {
    name: 'light faults, 2 regions',
    seeds: 20,
    first: 5000,
    options: { faults: 'light', regions: ['us-east-1', 'eu-west-1'] },
  },
];

describe('seed sweep', () => {
  for (const g of groups) {
    it(`${g.seeds} seeds: ${g.name}`, async () => {
      const failures: string[] = [];
      for (let seed = g.first; seed < g.first + g.seeds; seed++) {
        const o: SimOptions = { ...DEFAULT_SIM, durationMs: 2000, opsPerSec: 200, ...g.options, seed };
        const r = await simulate(o).catch((e: unknown) => e as Error);
        if (r instanceof Error) {
          failures.push(`simulator error: ${r.message}\n    ${mixLine(o)}\n    replay: ${replayCommand(o)}`);
          continue;
        }
        if (r.violations.length > 0) {
          failures.push(
            `${r.violations[0]!.checker}: ${r.violations[0]!.message}\n    ${mixLine(o)}\n    replay: ${replayCommand(o)}`,
          );
        }
      }
      assert.deepEqual(failures, [], `violations:\n${failures.join('\n')}`);
    });
  }
});
