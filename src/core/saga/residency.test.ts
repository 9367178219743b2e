import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALWAYS, VirtualTime } from '../../sim/time.js';
import { Prng } from '../random.js';
import { RegionCore } from '../region.js';
import { MemoryStore } from '../store.js';
import type { CollectionSpec } from '../types.js';
import { ACCOUNTS_COLLECTION } from './accounts.js';
import { SAGA_NS, SagaEngine } from './engine.js';
import { transferSaga } from './transfer.js';

const regions = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
];
const accounts: CollectionSpec = {
  name: ACCOUNTS_COLLECTION,
  policy: 'pinned',
  replication: { mode: 'async' },
  residency: ['eu-west-1'],
};

async function region(id: string) {
  const vt = new VirtualTime();
  const clock = vt.clock({ ms: 0 });
  const timers = vt.timers(ALWAYS);
  const store = new MemoryStore();
  const core = await RegionCore.open({
    region: id,
    regions,
    collections: [accounts],
    store,
    clock,
    timers,
  });
  const never = { apply: () => new Promise<never>(() => {}), fence: () => new Promise<never>(() => {}) };
  const engine = new SagaEngine({
    region: id,
    kv: core,
    clock,
    timers,
    random: new Prng(1),
    definitions: [transferSaga(never as never)],
    retry: { maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 100, stepTimeoutMs: 100 },
  });
  return { core, store, engine };
}

describe('saga records and residency', () => {
  it('a saga over a resident collection keeps its record in that collection (withheld from other regions)', async () => {
    const eu = await region('eu-west-1');
    await eu.engine.start('transfer', { from: 'a', to: 'b', amount: 5 }, { id: 's1' });
    const rec = await eu.store.getKv(SAGA_NS, 's1');
    assert.equal(rec?.collection, ACCOUNTS_COLLECTION, 'the record names the collection it is about');
    eu.engine.stop();
  });

  it('a region outside the residency refuses to start it (421 to a resident region) and stores nothing', async () => {
    const us = await region('us-east-1');
    await assert.rejects(
      us.engine.start('transfer', { from: 'a', to: 'b', amount: 5 }, { id: 's2' }),
      (e: Error & { code?: string; details?: { replayRegion?: string } }) =>
        e.code === 'misdirected' && e.details?.replayRegion === 'eu-west-1',
    );
    assert.equal(await us.store.getKv(SAGA_NS, 's2'), undefined);
    assert.deepEqual(us.core.version, {}, 'no change was logged');
    us.engine.stop();
  });
});
