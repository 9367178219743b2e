/**
 * The residency checker looks at every kind of record a region holds or is sent: documents, log
 * entries and kv records (the simulator stores a record beside each resident document, as a stored
 * idempotency answer is). A region that treats kv records as unrestricted (the planted bug
 * `leakResidentKv`) is caught when a snapshot carries them out of their residency.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KvRecord } from '../src/core/store.js';
import { residency } from '../src/sim/checkers/residency.js';
import { DEFAULT_SIM, type SimOptions, simulate } from '../src/sim/index.js';

// A heavy schedule in which eu-west-1 sends a snapshot to a region outside eu-profiles' residency.
const RUN = {
  ...DEFAULT_SIM,
  seed: 25,
  faults: 'heavy',
  workload: 'mixed',
  durationMs: 6000,
  opsPerSec: 200,
} as SimOptions;

describe('residency checker: kv records', () => {
  it('catches resident kv records leaking through a snapshot (leakResidentKv)', async () => {
    const bad = await simulate({ ...RUN, bugs: { leakResidentKv: true } });
    const hits = bad.violations.filter((v) => v.checker === 'residency');
    assert.ok(
      hits.length > 0,
      `residency should fire; got ${bad.violations.map((v) => v.checker).join(', ')}`,
    );
    assert.ok(
      hits.some((v) => /snapshot holding the kv record sim\.answers\//.test(v.message)),
      hits.map((v) => v.message).join('\n'),
    );
    const clean = await simulate(RUN);
    assert.deepEqual(
      clean.violations.map((v) => `${v.checker}: ${v.message}`),
      [],
      'the same run without the bug is clean',
    );
  });

  it('reports a resident kv record a region outside the residency holds at the end', async () => {
    const h = (await simulate({ ...DEFAULT_SIM, seed: 3, faults: 'none', durationMs: 1000 } as SimOptions))
      .history;
    assert.deepEqual(residency.check(h), []);
    const outside = h.final.find((f) => f.region !== 'eu-west-1')!;
    const held = [...outside.kv()];
    // Named by the record, or only by its value (a record that lost its collection).
    const leaks: KvRecord[] = [
      { ns: 'idem', key: 'k1', value: { body: 1 }, hlc: '0', collection: 'eu-profiles' },
      { ns: 'idem', key: 'k2', value: { collection: 'eu-profiles', key: 'x', value: 'v' }, hlc: '0' },
    ];
    for (const leaked of leaks) {
      outside.kv = () => [...held, leaked];
      const found = residency.check(h);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.match(found[0]!.message, new RegExp(`${outside.region} holds kv record idem/${leaked.key}`));
    }
  });
});
