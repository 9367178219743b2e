/**
 * A failed commit stops the group commit: the store cannot say whether the batch reached the disk
 * (an fsync error may follow the write), so going on would give the next batch the same sequence
 * numbers. The core answers the batch with the error, refuses everything after it, reports
 * `store-failed`, and a core reopened on the store goes on from what the disk holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualTimers } from '../../../test/support/manual-timers.js';
import { isMeridianError } from '../errors.js';
import { RegionCore, type RegionEvent } from '../region.js';
import { type CommitBatch, MemoryStore } from '../store.js';
import type { CollectionSpec, RegionInfo } from '../types.js';

const US = 'us-east-1';
const regions: RegionInfo[] = [
  { id: US, lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
];
const collections: CollectionSpec[] = [{ name: 'settings', policy: 'lww', replication: { mode: 'async' } }];

/** A store whose next commit is torn: the batch is written, then the commit throws (an fsync error). */
class TearingStore extends MemoryStore {
  tearNext = false;
  override async commit(batch: CommitBatch): Promise<void> {
    await super.commit(batch);
    if (this.tearNext) {
      this.tearNext = false;
      throw new Error('EIO: fsync failed');
    }
  }
}

let now = 1_700_000_000_000;
const clock = { nowMs: () => now++ };

function open(store: TearingStore, events: RegionEvent[]): Promise<RegionCore> {
  return RegionCore.open({
    region: US,
    regions,
    collections,
    store,
    clock,
    timers: new ManualTimers(),
    onEvent: (e) => events.push(e),
  });
}

describe('a failed commit', () => {
  it('stops the core, and the reopened core never reuses the sequence numbers the disk may hold', async () => {
    const store = new TearingStore();
    const events: RegionEvent[] = [];
    const core = await open(store, events);
    await core.put('settings', 'a', 1);
    store.tearNext = true;
    await assert.rejects(core.put('settings', 'b', 2), /EIO: fsync failed/);
    assert.deepEqual(
      events.filter((e) => e.type === 'store-failed'),
      [{ type: 'store-failed', message: 'EIO: fsync failed' }],
    );
    await assert.rejects(
      core.put('settings', 'c', 3),
      (e: unknown) => isMeridianError(e) && e.code === 'unavailable',
    );

    const again = await open(store, []);
    assert.equal(again.version[US], 2, 'the torn batch is on disk');
    await again.put('settings', 'c', 3);
    const seqs = (await store.readLog({}, 100)).filter((c) => c.origin === US).map((c) => c.seq);
    assert.deepEqual(seqs, [1, 2, 3], 'each sequence number names one change');
  });

  it('fails the mutations queued behind it with unavailable, not with a commit of their own', async () => {
    const store = new TearingStore();
    const core = await open(store, []);
    store.tearNext = true;
    const first = core.put('settings', 'a', 1);
    const queued = core.put('settings', 'b', 2);
    await assert.rejects(first, /EIO/);
    await assert.rejects(queued, (e: unknown) => isMeridianError(e) && e.code === 'unavailable');
    assert.equal((await store.readLog({}, 100)).length, 1, 'only the torn batch was written');
  });
});

describe('a snapshot whose commit fails', () => {
  it('leaves its truncation mark ahead of what the region holds, and peers are not sent snapshots that cannot reach it', async () => {
    let failNext = false;
    class FailingStore extends MemoryStore {
      override async commit(batch: CommitBatch): Promise<void> {
        if (failNext) {
          failNext = false;
          throw new Error('EIO: disk failing');
        }
        await super.commit(batch);
      }
    }
    const store = new FailingStore();
    const openUs = () =>
      RegionCore.open({ region: US, regions, collections, store, clock, timers: new ManualTimers() });
    const us = await openUs();
    const eu = 'eu-west-1';
    failNext = true;
    const snapshot = { docs: [], kv: [], applied: { [eu]: 5 } };
    await assert.rejects(us.applySnapshot(eu, snapshot, []), /EIO/);
    assert.deepEqual((await store.load()).truncated, { [eu]: 5 }, 'the mark was written before the commit');
    const again = await openUs();
    assert.deepEqual(again.version, {});
    // We hold none of eu-west-1's changes: a peer that has none needs nothing of it from us.
    const res = await again.pull('eu-west-1', {});
    assert.equal(res.kind, 'changes');
  });
});
