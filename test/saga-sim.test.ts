import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRow, HEADER, main } from '../src/sim/saga/cli.js';
import { DEFAULT_SAGA_SIM, simulateSagas } from '../src/sim/saga/saga-sim.js';

/** Seeds of the saga and idempotency workloads swept by `npm test` (about 1 s of wall time each). */
const SWEEP_SEEDS = Number(process.env.MERIDIAN_SAGA_SEEDS ?? 8);

describe('saga and idempotency simulation', () => {
  it(`keeps every guarantee under crashes, partitions, duplicates and failover retries (${SWEEP_SEEDS} seeds)`, async () => {
    const rows = [HEADER];
    const failures: string[] = [];
    for (let seed = 1; seed <= SWEEP_SEEDS; seed++) {
      const r = await simulateSagas({ ...DEFAULT_SAGA_SIM, seed });
      rows.push(formatRow(r));
      assert.ok(
        r.stats.sagas > 20 && r.stats.crashes + r.stats.partitions > 0,
        'the run did real work under faults',
      );
      for (const v of r.violations)
        failures.push(`seed ${seed} ${v.checker}: ${v.message}\n  replay: ${r.replay}`);
    }
    console.log(rows.join('\n'));
    assert.deepEqual(failures, []);
  });

  it('is deterministic: the same seed gives the same run', async () => {
    const a = await simulateSagas({ ...DEFAULT_SAGA_SIM, seed: 42, durationMs: 3000 });
    const b = await simulateSagas({ ...DEFAULT_SAGA_SIM, seed: 42, durationMs: 3000 });
    assert.deepEqual(a.stats, b.stats);
    assert.deepEqual(a.violations, b.violations);
  });

  it('replays a run with other regions from the flags its replay command prints', async () => {
    const r = await simulateSagas({
      ...DEFAULT_SAGA_SIM,
      seed: 5,
      durationMs: 3000,
      regions: ['us-east-1', 'eu-west-1'],
    });
    const flags = r.replay.split(' -- --workload saga ')[1]!.split(' ');
    assert.ok(flags.includes('--regions') && flags.includes('us-east-1,eu-west-1'), r.replay);
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      out.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      assert.equal(await main(flags), 0);
    } finally {
      process.stdout.write = write;
    }
    assert.ok(out.includes(`${formatRow(r)}\n`), `the CLI's row matches the run:\n${out.join('')}`);
  });
});
