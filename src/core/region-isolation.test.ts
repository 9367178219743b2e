/**
 * Batch isolation, quarantine and own-sequence recovery in the core: one mutation that cannot be
 * stored fails alone, a peer's change that cannot be applied is kept aside while replication goes
 * on, and a region opened on a wiped disk does not reuse sequence numbers its peers hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualTimers } from '../../test/support/manual-timers.js';
import type { Change } from './change.js';
import type { MeridianError } from './errors.js';
import { QUARANTINE_NS, RegionCore, type RegionEvent } from './region.js';
import { type CommitBatch, MemoryStore } from './store.js';
import type { CollectionSpec, Json, RegionInfo } from './types.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';
const regions: RegionInfo[] = [
  { id: US, lat: 38.9, lon: -77.4 },
  { id: EU, lat: 53.3, lon: -6.3 },
  { id: AP, lat: 35.7, lon: 139.7 },
];
const collections: CollectionSpec[] = [
  { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
  { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
];

/** Serialises every commit as the SQL stores do (JSON.stringify), so what cannot be serialised fails there. */
class SerializingStore extends MemoryStore {
  override async commit(batch: CommitBatch): Promise<void> {
    this.applyBatch(JSON.parse(JSON.stringify(batch)) as CommitBatch);
  }
}

/** An array nested `depth` deep, built without recursion. */
function nested(depth: number): Json {
  let v: Json = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

let now = 1_700_000_000_000;
const clock = { nowMs: () => now++ };

function open(region: string, o: { recoverOwnOriginFrom?: string[]; events?: RegionEvent[] } = {}) {
  const timers = new ManualTimers();
  return RegionCore.open({
    region,
    regions,
    collections,
    store: new SerializingStore(),
    clock,
    timers,
    // Requests that arrive together share one group commit, as in a node.
    beforeBatch: () => new Promise((r) => setImmediate(r)),
    recoverOwnOriginFrom: o.recoverOwnOriginFrom,
    onEvent: (e) => o.events?.push(e),
  }).then((core) => ({ core, timers }));
}

async function replicate(from: RegionCore, to: RegionCore): Promise<void> {
  const res = await from.pull(to.region, to.version);
  assert.equal(res.kind, 'changes');
  if (res.kind === 'changes') await to.applyRemote(from.region, res.changes);
}

describe('RegionCore batch isolation', () => {
  it('fails only the mutations that cannot be stored; the rest of their batch commits and replicates', async () => {
    const { core: us } = await open(US);
    const { core: eu } = await open(EU);
    const commits: number[] = [];
    us.subscribe((changes) => commits.push(changes.length));
    // 5 values too deep to serialise among 95 good writes, all queued before the batch forms.
    const writes = Array.from({ length: 100 }, (_, i) =>
      i % 20 === 7 ? us.put('settings', `bad-${i}`, nested(10_000)) : us.put('settings', `good-${i}`, { i }),
    );
    const results = await Promise.allSettled(writes);
    assert.equal(commits.length, 1, 'the 100 writes shared one group commit');
    results.forEach((r, i) => {
      if (i % 20 === 7) {
        assert.equal(r.status, 'rejected', `bad-${i} must fail`);
        if (r.status === 'rejected') assert.equal((r.reason as MeridianError).code, 'too_deep');
      } else assert.equal(r.status, 'fulfilled', `good-${i}: ${r.status === 'rejected' ? r.reason : ''}`);
    });
    // The good ones hold contiguous sequences 1..95 and replicate; the bad ones left nothing.
    assert.equal(us.version[US], 95);
    await replicate(us, eu);
    assert.equal(eu.version[US], 95);
    for (let i = 0; i < 100; i++) {
      const v = await eu.get('settings', i % 20 === 7 ? `bad-${i}` : `good-${i}`);
      assert.deepEqual(v?.value, i % 20 === 7 ? undefined : { i });
    }
    // And the region goes on writing and replicating.
    await us.put('settings', 'after', 1);
    await replicate(us, eu);
    assert.equal((await eu.get('settings', 'after'))?.value, 1);
  });

  it('refuses values JSON cannot carry, each alone, with the contract error codes', async () => {
    const { core: us } = await open(US);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [unknown, string][] = [
      [nested(2000), 'too_deep'],
      [Number.NaN, 'bad_request'],
      [{ a: undefined }, 'bad_request'],
      [cyclic, 'too_deep'],
      [new Date(0), 'bad_request'],
    ];
    const results = await Promise.allSettled([
      ...bad.map(([v], i) => us.put('settings', `bad-${i}`, v as Json)),
      us.put('settings', 'good', nested(500)),
    ]);
    bad.forEach(([, code], i) => {
      const r = results[i]!;
      assert.equal(r.status, 'rejected');
      if (r.status === 'rejected') assert.equal((r.reason as MeridianError).code, code, `value ${i}`);
    });
    assert.equal(results.at(-1)!.status, 'fulfilled');
    assert.equal(us.version[US], 1);
  });
});

describe('RegionCore commit failures', () => {
  it('a batch whose commit fails reaches no stream listener, stops the core, and its sequences are issued again after a restart', async () => {
    let failNext = true;
    class FlakyStore extends MemoryStore {
      override async commit(batch: CommitBatch): Promise<void> {
        if (failNext) {
          failNext = false;
          throw new Error('disk full');
        }
        await super.commit(batch);
      }
    }
    const store = new FlakyStore();
    const openUs = () =>
      RegionCore.open({ region: US, regions, collections, store, clock, timers: new ManualTimers() });
    const failed = await openUs();
    failed.subscribe(() => assert.fail('peers never hear of a change that was not committed'));
    await assert.rejects(failed.put('settings', 'lost', 1), /disk full/);
    // The store cannot say whether a failed commit reached the disk (group-commit.test.ts): the core stops.
    await assert.rejects(failed.put('settings', 'kept', 2), /shutting down|restarts from its disk/);
    const us = await openUs();
    const heard: number[] = [];
    us.subscribe((changes) => heard.push(...changes.map((c) => c.seq)));
    const w = await us.put('settings', 'kept', 2);
    assert.equal(w.version[US], 1, 'the failed batch used no sequence number');
    assert.deepEqual(heard, [1]);
  });
});

describe('RegionCore quarantine', () => {
  it('keeps aside what a peer cannot apply, reports it, and applies the rest past it', async () => {
    const events: RegionEvent[] = [];
    const { core: eu } = await open(EU, { events });
    const hlc = (n: number) => `0180000000${n.toString(16).padStart(2, '0')}-000000`;
    const reg = (value: Json, n: number) => ({
      t: 'reg' as const,
      value,
      deleted: false,
      hlc: hlc(n),
      origin: US,
      prevHlc: '000000000000-000000',
    });
    const changes: Change[] = [
      {
        origin: US,
        seq: 1,
        hlc: hlc(1),
        payload: { kind: 'doc', collection: 'settings', key: 'a', delta: reg(1, 1) },
      },
      // A collection this region's config does not have (a peer on newer config).
      {
        origin: US,
        seq: 2,
        hlc: hlc(2),
        payload: { kind: 'doc', collection: 'new', key: 'n', delta: reg(2, 2) },
      },
      // A value too deep to store or serialise.
      {
        origin: US,
        seq: 3,
        hlc: hlc(3),
        payload: { kind: 'doc', collection: 'settings', key: 'deep', delta: reg(nested(10_000), 3) },
      },
      // A register change to a counter collection: merging it would throw.
      {
        origin: US,
        seq: 4,
        hlc: hlc(4),
        payload: { kind: 'doc', collection: 'likes', key: 'x', delta: reg(4, 4) },
      },
      // Malformed: no delta at all.
      {
        origin: US,
        seq: 5,
        hlc: hlc(5),
        payload: { kind: 'doc', collection: 'settings', key: 'm' } as unknown as Change['payload'],
      },
      {
        origin: US,
        seq: 6,
        hlc: hlc(6),
        payload: { kind: 'doc', collection: 'settings', key: 'b', delta: reg(6, 6) },
      },
    ];
    const res = await eu.applyRemote(US, changes);
    assert.equal(res.applied, 2);
    assert.equal(eu.version[US], 6, 'the applied version moves past what was quarantined');
    assert.equal((await eu.get('settings', 'a'))?.value, 1);
    assert.equal((await eu.get('settings', 'b'))?.value, 6);
    assert.equal(await eu.get('settings', 'deep'), undefined);
    assert.equal(eu.stats().quarantined, 4);
    const kept = await eu.listKv(QUARANTINE_NS);
    assert.deepEqual(
      kept.map((r) => (r.value as { seq: number }).seq),
      [2, 3, 4, 5],
    );
    assert.match((kept[0]!.value as { reason: string }).reason, /unknown collection 'new'/);
    assert.ok((kept[0]!.value as { payload?: unknown }).payload, 'a storable change is kept whole');
    assert.equal((kept[1]!.value as { payload?: unknown }).payload, undefined, 'an unstorable one is not');
    const reported = events.filter((e) => e.type === 'quarantined');
    assert.deepEqual(
      reported.map((e) => e.type === 'quarantined' && [e.origin, e.seq, e.collection]),
      [
        [US, 2, 'new'],
        [US, 3, undefined],
        [US, 4, 'likes'],
        [US, 5, undefined],
      ],
    );
    // The log stays contiguous for peers that relay through this region.
    const { core: ap } = await open(AP);
    const relayed = await eu.pull(AP, {});
    assert.equal(relayed.kind, 'changes');
    if (relayed.kind === 'changes') {
      assert.deepEqual(
        relayed.changes.map((c) => c.seq),
        [1, 2, 3, 4, 5, 6],
      );
      await ap.applyRemote(EU, relayed.changes);
    }
    assert.equal(ap.version[US], 6);
    assert.equal((await ap.get('settings', 'b'))?.value, 6);
  });
});

describe('RegionCore own-sequence recovery', () => {
  it('a region on a wiped disk recovers its own changes from its peers before issuing new sequences', async () => {
    const { core: us } = await open(US);
    const { core: eu } = await open(EU);
    for (let i = 1; i <= 3; i++) await us.put('settings', `k${i}`, i);
    await replicate(us, eu);
    assert.equal(eu.version[US], 3);

    // us-east-1 again, on an empty store: it must not issue sequence 1 again.
    const { core: fresh, timers } = await open(US, { recoverOwnOriginFrom: [EU, AP] });
    const early = fresh.put('settings', 'too-early', 0);
    await new Promise((r) => setImmediate(r));
    timers.fireAll(); // its bounded wait for the peers' views ends
    await assert.rejects(early, (e: MeridianError) => e.status === 503 && e.code === 'unavailable');
    fresh.onPeerAck(EU, eu.ackVersion());
    fresh.onPeerAck(AP, {});
    const stillEarly = fresh.put('settings', 'still-early', 0);
    await new Promise((r) => setImmediate(r));
    timers.fireAll();
    await assert.rejects(stillEarly, (e: MeridianError) => {
      assert.equal(e.details.replayRegion, EU);
      return /holds 0, peers hold 3/.test(e.message);
    });
    assert.ok(fresh.stats().recoveringOwnOrigin);

    // The peer sends our own changes back; then writes continue from sequence 4.
    await replicate(eu, fresh);
    assert.equal(fresh.version[US], 3);
    assert.equal((await fresh.get('settings', 'k2'))?.value, 2);
    assert.equal(fresh.stats().recoveringOwnOrigin, undefined);
    const w = await fresh.put('settings', 'after-wipe', 'new');
    assert.equal(w.version[US], 4);
    await replicate(fresh, eu);
    assert.equal((await eu.get('settings', 'after-wipe'))?.value, 'new', 'the peer applies the new write');
  });

  it('recovered from a snapshot, it serves a peer behind that snapshot a snapshot, not a gap', async () => {
    const { core: us } = await open(US);
    const { core: eu } = await open(EU);
    const { core: ap } = await open(AP);
    for (let i = 1; i <= 5; i++) await us.put('settings', `k${i}`, i);
    await replicate(us, eu);
    await eu.compactLog(0, { force: true });
    const { core: fresh } = await open(US, { recoverOwnOriginFrom: [EU, AP] });
    fresh.onPeerAck(EU, eu.ackVersion());
    fresh.onPeerAck(AP, ap.ackVersion());
    const snap = await eu.pull(US, fresh.version);
    assert.equal(snap.kind, 'snapshot');
    if (snap.kind === 'snapshot') await fresh.applySnapshot(EU, snap.snapshot, snap.omittedCollections);
    assert.equal(fresh.version[US], 5);
    await fresh.put('settings', 'k6', 6);
    // ap-northeast-1 never got us-east-1's first five: the log that would hold them is gone.
    const res = await fresh.pull(AP, ap.version);
    if (res.kind === 'snapshot') await ap.applySnapshot(US, res.snapshot, res.omittedCollections);
    else await ap.applyRemote(US, res.changes);
    await replicate(fresh, ap);
    assert.equal(ap.version[US], 6);
    assert.equal((await ap.get('settings', 'k6'))?.value, 6);
  });
});
