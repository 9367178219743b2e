import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MeridianError } from './errors.js';
import {
  IDEMPOTENCY_NS,
  IdempotencyKeys,
  requestFingerprint,
  validateIdempotencyKey,
  withIdempotency,
} from './idempotency.js';
import type { TimerHandle, Timers } from './ports.js';
import { type DocView, RegionCore } from './region.js';
import { MemoryStore } from './store.js';
import type { CollectionSpec, Json, RegionInfo } from './types.js';

const regions: RegionInfo[] = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
];
const collections: CollectionSpec[] = [
  { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
  { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
];
const timers: Timers = { setTimeout: (): TimerHandle => ({ id: 0 }), clearTimeout: () => {} };

async function setup(ttlMs = 1000) {
  let now = 1_700_000_000_000;
  const clock = { nowMs: () => now };
  const open = (region: string) =>
    RegionCore.open({ region, regions, collections, store: new MemoryStore(), clock, timers });
  const us = await open('us-east-1');
  const eu = await open('eu-west-1');
  const keysUs = new IdempotencyKeys({ region: 'us-east-1', kv: us, clock, ttlMs });
  const keysEu = new IdempotencyKeys({ region: 'eu-west-1', kv: eu, clock, ttlMs });
  const replicate = async (from: RegionCore, to: RegionCore) => {
    const res = await from.pull(to.region, to.version);
    if (res.kind === 'changes') await to.applyRemote(from.region, res.changes);
  };
  return { us, eu, keysUs, keysEu, replicate, advance: (ms: number) => (now += ms) };
}

const fp = (body: string, caller = 'alice') =>
  requestFingerprint({ method: 'POST', path: '/v1/likes/p/increment', body, caller });

/** One increment under a key, the way the region node runs it. */
function increment(core: RegionCore, keys: IdempotencyKeys, key: string, f: string) {
  return withIdempotency(keys, key, f, async (claim) => {
    const view = await core.increment('likes', 'p', 1, {
      kvAfter: claim.kvAfter(200, (v: DocView) => ({ key: v.key, value: v.value })),
    });
    return { status: 200, body: { key: view.key, value: view.value } };
  });
}

describe('idempotency keys', () => {
  it('accepts 1 to 255 printable characters, and the structured-field string form', () => {
    assert.equal(validateIdempotencyKey('abc-123'), 'abc-123');
    assert.equal(validateIdempotencyKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"').length, 36);
    assert.equal(validateIdempotencyKey('x'.repeat(255)).length, 255);
    for (const bad of [undefined, '', 'x'.repeat(256), 'tab\there', 'é', '""']) {
      assert.throws(
        () => validateIdempotencyKey(bad),
        (e: MeridianError) => e.status === 400,
      );
    }
  });

  it('fingerprints method, path, body and caller; JSON key order does not matter', () => {
    assert.equal(fp('{"a":1,"b":2}'), fp('{ "b": 2, "a": 1 }'));
    assert.notEqual(fp('{"a":1}'), fp('{"a":2}'));
    assert.notEqual(fp('{"a":1}', 'alice'), fp('{"a":1}', 'bob'));
    const get = requestFingerprint({
      method: 'PUT',
      path: '/v1/likes/p/increment',
      body: '{"a":1}',
      caller: 'alice',
    });
    assert.notEqual(get, fp('{"a":1}'));
  });

  it('runs once, then replays the stored answer (200 replay)', async () => {
    const { us, keysUs } = await setup();
    const a = await increment(us, keysUs, 'k1', fp('{"by":1}'));
    assert.deepEqual(a, { status: 200, body: { key: 'p', value: 1 }, replayed: false });
    const b = await increment(us, keysUs, 'k1', fp('{"by":1}'));
    assert.deepEqual(b, { status: 200, body: { key: 'p', value: 1 }, replayed: true });
    assert.equal((await us.get('likes', 'p'))?.value, 1);
  });

  it('answers 409 while the first request runs, and 422 for a different request', async () => {
    const { keysUs } = await setup();
    const d = await keysUs.begin('k', fp('{"by":1}'));
    assert.equal(d.kind, 'run');
    await assert.rejects(keysUs.begin('k', fp('{"by":1}')), (e: MeridianError) => e.status === 409);
    await assert.rejects(keysUs.begin('k', fp('{"by":2}')), (e: MeridianError) => e.status === 422);
    if (d.kind === 'run') d.claim.release();
    assert.equal((await keysUs.begin('k', fp('{"by":1}'))).kind, 'run');
  });

  it('answers 422 when a completed key is reused for another body or caller', async () => {
    const { us, keysUs } = await setup();
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    await assert.rejects(increment(us, keysUs, 'k', fp('{"by":2}')), (e: MeridianError) => e.status === 422);
    await assert.rejects(
      increment(us, keysUs, 'k', fp('{"by":1}', 'mallory')),
      (e: MeridianError) => e.status === 422,
    );
    assert.equal((await us.get('likes', 'p'))?.value, 1);
  });

  it('stores nothing when the request fails, so a retry runs', async () => {
    const { us, keysUs } = await setup();
    await assert.rejects(
      withIdempotency(keysUs, 'k', 'f', async (claim) => {
        await us.put('settings', 'x', 1, { kvAfter: claim.kvAfter(200, () => null) });
        throw new Error('the connection dropped after the commit');
      }),
    );
    // The put committed with its record, so the retry replays rather than running twice.
    const again = await withIdempotency(keysUs, 'k', 'f', async () => ({ status: 200, body: 'ran' }));
    assert.equal(again.replayed, true);
    const failed = await withIdempotency(keysUs, 'k2', 'f', async () => ({ status: 200, body: 'ran' }));
    assert.equal(failed.replayed, false);
    await assert.rejects(
      withIdempotency(keysUs, 'k3', 'f', async (claim) => {
        await us.increment('settings', 'x', 1, { kvAfter: claim.kvAfter(200, () => null) });
        return { status: 200, body: null };
      }),
      (e: MeridianError) => e.status === 405,
    );
    assert.equal(await keysUs.lookup('k3'), undefined);
  });

  it('replicates the record with the effect: a retry in another region replays', async () => {
    const { us, eu, keysUs, keysEu, replicate } = await setup();
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    await replicate(us, eu);
    const r = await increment(eu, keysEu, 'k', fp('{"by":1}'));
    assert.equal(r.replayed, true);
    assert.equal((await eu.get('likes', 'p'))?.value, 1);
  });

  it('inside the window before replication, the other region runs it again (the async duplicate window)', async () => {
    const { us, eu, keysUs, keysEu, replicate } = await setup();
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    const r = await increment(eu, keysEu, 'k', fp('{"by":1}'));
    assert.equal(r.replayed, false);
    await replicate(us, eu);
    await replicate(eu, us);
    assert.equal((await eu.get('likes', 'p'))?.value, 2);
  });

  it('a record that arrives by replication during the request aborts the write and replays', async () => {
    const { us, eu, keysUs, keysEu, replicate } = await setup();
    const d = await keysEu.begin('k', fp('{"by":1}'));
    assert.equal(d.kind, 'run');
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    await replicate(us, eu);
    if (d.kind !== 'run') return;
    const view = eu.increment('likes', 'p', 1, { kvAfter: d.claim.kvAfter(200, () => null) });
    await assert.rejects(view, (e: Error) => e.name === 'IdempotencyRaced');
    d.claim.release();
    assert.equal((await eu.get('likes', 'p'))?.value, 1);
    assert.equal(keysEu.stats().raced, 1);
  });

  it('expires after the window and is purged', async () => {
    const { us, keysUs, advance } = await setup(1000);
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    advance(999);
    assert.equal((await increment(us, keysUs, 'k', fp('{"by":1}'))).replayed, true);
    advance(1);
    assert.equal(await keysUs.lookup('k'), undefined);
    assert.equal(await us.purgeExpiredKv(), 1);
    assert.equal(await us.getKv(IDEMPOTENCY_NS, 'k'), undefined);
    assert.equal((await increment(us, keysUs, 'k', fp('{"by":1}'))).replayed, false);
  });

  it('fences a key that never ran, and reports the answer of one that did', async () => {
    const { us, keysUs } = await setup();
    await increment(us, keysUs, 'done', fp('{"by":1}'));
    const applied = await keysUs.fence('done');
    assert.equal(applied.state, 'applied');
    assert.deepEqual(await keysUs.fence('never'), { state: 'fenced' });
    const late = await increment(us, keysUs, 'never', fp('{"by":1}'));
    assert.equal(late.status, 409);
    assert.equal(late.replayed, true);
    assert.equal((await us.get('likes', 'p'))?.value, 1);
    const d = await keysUs.begin('busy', 'f');
    await assert.rejects(keysUs.fence('busy'), (e: MeridianError) => e.status === 409);
    if (d.kind === 'run') d.claim.release();
  });

  it('stores the answer with the effect in one change', async () => {
    const { us, keysUs } = await setup();
    await increment(us, keysUs, 'k', fp('{"by":1}'));
    const res = await us.pull('eu-west-1', {});
    assert.equal(res.kind, 'changes');
    if (res.kind !== 'changes') return;
    assert.equal(res.changes.length, 1);
    const p = res.changes[0]!.payload;
    assert.equal(p.kind, 'doc');
    if (p.kind === 'doc')
      assert.deepEqual(
        p.kv?.map((e) => [e.ns, e.key]),
        [[IDEMPOTENCY_NS, 'k']],
      );
    const stored = (await us.getKv(IDEMPOTENCY_NS, 'k'))?.value as { body: Json };
    assert.deepEqual(stored.body, { key: 'p', value: 1 });
  });
});
