import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualTimers } from '../../test/support/manual-timers.js';
import { homeOfNewKey } from './collection.js';
import type { MeridianError } from './errors.js';
import { RegionCore } from './region.js';
import { MemoryStore } from './store.js';
import type { CollectionSpec, RegionInfo } from './types.js';
import { decodeToken, encodeToken } from './version.js';

const regions: RegionInfo[] = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
  { id: 'ap-northeast-1', lat: 35.7, lon: 139.7 },
];
const collections: CollectionSpec[] = [
  { name: 'profiles', policy: 'pinned', replication: { mode: 'async' } },
  { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
  { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
  { name: 'tags', policy: 'set', replication: { mode: 'async' } },
  { name: 'accounts', policy: 'pinned', replication: { mode: 'sync', acks: 'majority', timeoutMs: 50 } },
  { name: 'eu-profiles', policy: 'pinned', replication: { mode: 'async' }, residency: ['eu-west-1'] },
];

/** The first key `${prefix}${i}` of `collection` whose home by the rule (homeOfNewKey) is `region`. */
function keyHomedIn(collection: string, region: string, prefix: string): string {
  const spec = collections.find((c) => c.name === collection)!;
  const ids = regions.map((r) => r.id);
  for (let i = 0; ; i++) {
    if (homeOfNewKey(spec, ids, `${prefix}${i}`) === region) return `${prefix}${i}`;
  }
}

async function cluster() {
  let now = 1_700_000_000_000;
  const clock = { nowMs: () => now++ };
  const timers = new ManualTimers();
  const cores = await Promise.all(
    regions.map((r) =>
      RegionCore.open({ region: r.id, regions, collections, store: new MemoryStore(), clock, timers }),
    ),
  );
  const [us, eu, ap] = cores as [RegionCore, RegionCore, RegionCore];
  /** One round of full-mesh pulls. */
  async function sync(): Promise<void> {
    for (const to of cores) {
      for (const from of cores) {
        if (to === from) continue;
        const res = await from.pull(to.region, to.version);
        if (res.kind === 'changes') await to.applyRemote(from.region, res.changes);
        else await to.applySnapshot(from.region, res.snapshot, res.omittedCollections);
        from.onPeerAck(to.region, to.ackVersion());
      }
    }
  }
  return { us, eu, ap, cores, sync, timers };
}

describe('RegionCore', () => {
  it('replicates lww writes and every region picks the same winner', async () => {
    const { us, eu, ap, cores, sync } = await cluster();
    await us.put('settings', 'theme', 'dark');
    await eu.put('settings', 'theme', 'light');
    await sync();
    await sync();
    const values = await Promise.all(cores.map((c) => c.get('settings', 'theme')));
    assert.deepEqual(new Set(values.map((v) => JSON.stringify(v?.value))).size, 1);
    assert.equal(values[0]?.value, 'light', 'the later HLC wins');
    assert.ok(
      ap.stats().conflicts + us.stats().conflicts + eu.stats().conflicts >= 1,
      'the conflict is counted',
    );
  });

  it('never loses an increment and merges set adds and removes add-wins', async () => {
    const { us, eu, ap, cores, sync } = await cluster();
    await us.increment('likes', 'p1', 2);
    await eu.increment('likes', 'p1', 3);
    await ap.increment('likes', 'p1', -1);
    await us.addMembers('tags', 't', ['a', 'b']);
    await sync();
    await eu.removeMembers('tags', 't', ['a']);
    await ap.addMembers('tags', 't', ['a']); // concurrent with the remove: survives it
    await sync();
    await sync();
    for (const c of cores) {
      assert.equal((await c.get('likes', 'p1'))?.value, 4);
      assert.deepEqual((await c.get('tags', 't'))?.value, ['a', 'b']);
    }
  });

  it('refuses a pinned write outside the home region, naming the home', async () => {
    const { us, eu, sync } = await cluster();
    const alice = keyHomedIn('profiles', 'us-east-1', 'alice');
    await us.put('profiles', alice, { name: 'Alice' });
    await sync();
    await assert.rejects(eu.put('profiles', alice, { name: 'A' }), (e: MeridianError) => {
      assert.equal(e.status, 421);
      assert.equal(e.details.replayRegion, 'us-east-1');
      return true;
    });
    // A key no region has seen: refused outside its home by the rule, whatever home the client names.
    const bob = keyHomedIn('profiles', 'ap-northeast-1', 'bob');
    await assert.rejects(eu.put('profiles', bob, {}), /homed in ap-northeast-1/);
    await assert.rejects(eu.put('profiles', bob, {}, { homeRegion: 'eu-west-1' }), /homed in ap-northeast-1/);
  });

  it('never lets two regions both accept the first write of a new pinned key (double-homing)', async () => {
    const { cores, sync } = await cluster();
    const ids = regions.map((r) => r.id);
    for (const collection of ['profiles', 'eu-profiles']) {
      const spec = collections.find((c) => c.name === collection)!;
      for (let i = 0; i < 12; i++) {
        const key = `new${i}`;
        // Every region takes the key's first write at once, before any of them has seen another's.
        const results = await Promise.allSettled(cores.map((c) => c.put(collection, key, c.region)));
        const accepted = cores.filter((_, j) => results[j]!.status === 'fulfilled').map((c) => c.region);
        assert.deepEqual(accepted, [homeOfNewKey(spec, ids, key)], `${collection}/${key}`);
      }
    }
    await sync();
    for (const c of cores) {
      const doc = await c.get('profiles', 'new0').catch(() => undefined);
      assert.equal(doc?.value, homeOfNewKey(collections[0]!, ids, 'new0'));
    }
  });

  it('keeps resident collections in their regions and sends placeholders elsewhere', async () => {
    const { us, eu, ap, sync } = await cluster();
    await eu.put('eu-profiles', 'hans', { city: 'Dublin' });
    await sync();
    await assert.rejects(us.get('eu-profiles', 'hans'), (e: MeridianError) => e.status === 421);
    const pulled = await eu.pull('us-east-1', {});
    assert.equal(pulled.kind, 'changes');
    if (pulled.kind === 'changes') {
      assert.deepEqual(
        pulled.changes.map((c) => c.payload.kind),
        ['withheld'],
      );
      assert.ok(!JSON.stringify(pulled.changes).includes('Dublin'));
    }
    assert.equal(ap.version['eu-west-1'], 1, 'the placeholder keeps the sequence contiguous');
  });

  it('makes a read wait for its token, then answers 503 naming a region that has it', async () => {
    const { us, eu, sync, timers } = await cluster();
    const w = await us.put('settings', 'k', 1);
    const token = decodeToken(encodeToken(w.version));
    const waiting = eu.get('settings', 'k', { minVersion: token, maxWaitMs: 1000 });
    await sync();
    assert.equal((await waiting)?.value, 1);
    const w2 = await us.put('settings', 'k', 2);
    const late = eu.get('settings', 'k', { minVersion: w2.version, maxWaitMs: 10 });
    timers.fireAll();
    await assert.rejects(
      late,
      (e: MeridianError) => e.status === 503 && e.details.replayRegion === 'us-east-1',
    );
  });

  it('confirms a sync write only after a majority applied it, else 504 indefinite', async () => {
    const { us, eu, timers } = await cluster();
    const a1 = keyHomedIn('accounts', 'us-east-1', 'a');
    const pending = us.put('accounts', a1, { balance: 10 });
    await new Promise((r) => setImmediate(r));
    timers.fireAll();
    await assert.rejects(pending, (e: MeridianError) => e.status === 504 && e.details.indefinite === true);
    // Committed locally all the same, and confirmed once a peer has applied it.
    assert.deepEqual((await us.get('accounts', a1))?.value, { balance: 10 });
    const second = us.put('accounts', a1, { balance: 11 });
    await new Promise((r) => setImmediate(r));
    const res = await us.pull('eu-west-1', eu.version);
    if (res.kind === 'changes') await eu.applyRemote('us-east-1', res.changes);
    us.onPeerAck('eu-west-1', eu.ackVersion());
    assert.deepEqual((await second).value, { balance: 11 });
  });

  it('applies redelivered and reordered changes idempotently', async () => {
    const { us, eu } = await cluster();
    await us.increment('likes', 'x', 1);
    await us.increment('likes', 'x', 1);
    const res = await us.pull('eu-west-1', {});
    assert.equal(res.kind, 'changes');
    if (res.kind !== 'changes') return;
    await eu.applyRemote('us-east-1', [res.changes[1]!]); // gap: ignored
    assert.equal(eu.version['us-east-1'] ?? 0, 0);
    await eu.applyRemote('us-east-1', res.changes);
    await eu.applyRemote('us-east-1', res.changes);
    assert.equal((await eu.get('likes', 'x'))?.value, 2);
  });

  it('sends a snapshot to a peer behind the truncated log', async () => {
    const { us, eu } = await cluster();
    for (let i = 0; i < 5; i++) await us.put('settings', `k${i}`, i);
    await us.compactLog(1, { force: true });
    const res = await us.pull('eu-west-1', eu.version);
    assert.equal(res.kind, 'snapshot');
    if (res.kind === 'snapshot') await eu.applySnapshot('us-east-1', res.snapshot, res.omittedCollections);
    assert.equal((await eu.get('settings', 'k3'))?.value, 3);
    assert.equal(eu.version['us-east-1'], 5);
  });

  it('restores its version and clock floor from the store after a restart', async () => {
    const store = new MemoryStore();
    let now = 1000;
    const clock = { nowMs: () => now };
    const open = () =>
      RegionCore.open({
        region: 'us-east-1',
        regions,
        collections,
        store,
        clock,
        timers: new ManualTimers(),
      });
    const a = await open();
    await a.put('settings', 'k', 1);
    const hlcBefore = a.hlc.peek();
    now = 500; // the physical clock went back across the restart
    const b = await open();
    assert.equal(b.version['us-east-1'], 1);
    await b.put('settings', 'k', 2);
    assert.ok(b.hlc.peek().wallMs >= hlcBefore.wallMs);
    assert.equal((await b.get('settings', 'k'))?.value, 2);
  });
});
