/**
 * One suite, three stores: the in-memory, SQLite and PostgreSQL stores must behave identically
 * behind the RegionStore interface (PostgreSQL skips on a laptop without it and fails in CI).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { systemClock, systemTimers } from '../src/adapters/system.js';
import type { Change, ChangePayload } from '../src/core/change.js';
import { homeOfNewKey } from '../src/core/collection.js';
import type { DocState } from '../src/core/crdt.js';
import { encodeHlc } from '../src/core/hlc.js';
import { RegionCore } from '../src/core/region.js';
import {
  type CommitBatch,
  type DocRecord,
  type KvRecord,
  MemoryStore,
  type RegionStore,
} from '../src/core/store.js';
import type { CollectionSpec, Json, RegionInfo } from '../src/core/types.js';
import type { VersionVector } from '../src/core/version.js';
import {
  memoryFixture,
  postgresFixture,
  type StoreFixture,
  sqliteFixture,
} from './support/store-fixtures.js';

const T0 = 1_700_000_000_000;
const hlc = (ms: number, logical = 0): string => encodeHlc({ wallMs: T0 + ms, logical });

const reg = (value: Json, at: number, origin = 'us-east-1'): DocState => ({
  t: 'reg',
  value,
  deleted: false,
  hlc: hlc(at),
  origin,
  prevHlc: hlc(0),
});

const doc = (collection: string, key: string, value: Json, version: VersionVector, at = 1): DocRecord => ({
  collection,
  key,
  state: reg(value, at),
  version,
});

const change = (origin: string, seq: number, at = seq, payload?: ChangePayload): Change => ({
  origin,
  seq,
  hlc: hlc(at),
  payload: payload ?? {
    kind: 'doc',
    collection: 'settings',
    key: `${origin}-${seq}`,
    delta: reg(seq, at, origin),
  },
});

const batch = (b: Partial<CommitBatch> & Pick<CommitBatch, 'applied'>): CommitBatch => ({
  docs: [],
  changes: [],
  kv: [],
  ...b,
});

/** Commits `changes` one batch each, with the applied version advancing per origin. */
async function appendAll(
  store: RegionStore,
  changes: Change[],
  from: VersionVector = {},
): Promise<VersionVector> {
  let applied = from;
  for (const c of changes) {
    applied = { ...applied, [c.origin]: c.seq };
    await store.commit(batch({ changes: [c], applied }));
  }
  return applied;
}

const ids = (cs: Change[]): string[] => cs.map((c) => `${c.origin}:${c.seq}`);

const fixtures: (() => StoreFixture)[] = [memoryFixture, sqliteFixture, postgresFixture];

/** Runs `body` with a fresh fixture, cleaning up whatever happens. */
async function withFixture(
  t: TestContext,
  make: () => StoreFixture,
  body: (fx: StoreFixture, store: RegionStore) => Promise<void>,
): Promise<void> {
  const fx = make();
  try {
    if (!(await fx.available(t))) return;
    await body(fx, await fx.open());
  } finally {
    await fx.cleanup();
  }
}

for (const make of fixtures) {
  const { name: kind, durable, sql } = make();

  describe(`RegionStore conformance: ${kind}`, () => {
    it('starts empty', (t) =>
      withFixture(t, make, async (_fx, store) => {
        assert.deepEqual(await store.load(), { applied: {}, truncated: {}, maxHlc: undefined });
        assert.equal(await store.getDoc('settings', 'x'), undefined);
        assert.deepEqual(await store.readLog({}, 10), []);
        assert.deepEqual(await store.snapshot(), { docs: [], kv: [], applied: {} });
        assert.deepEqual(await store.listKv('idem'), []);
        assert.equal(await store.getKv('idem', 'x'), undefined);
      }));

    it('commits documents, log entries, kv records and the applied version together', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const a = doc(
          'settings',
          'theme',
          { color: 'dark', nested: [1, 'two', null, { z: true }] },
          { 'us-east-1': 1 },
        );
        const b = doc('likes', 'post/1 ünïcødé 🚀', 'x', { 'us-east-1': 2 });
        const kv: KvRecord = {
          ns: 'idem',
          key: 'k1',
          value: { status: 200 },
          hlc: hlc(2),
          expiresAtMs: T0 + 5000,
        };
        await store.commit(
          batch({
            docs: [a, b],
            changes: [change('us-east-1', 1), change('us-east-1', 2)],
            applied: { 'us-east-1': 2 },
            kv: [kv],
          }),
        );
        assert.deepEqual(await store.getDoc('settings', 'theme'), a);
        assert.deepEqual(await store.getDoc('likes', 'post/1 ünïcødé 🚀'), b);
        assert.equal(await store.getDoc('likes', 'theme'), undefined, 'documents are per collection');
        assert.deepEqual(await store.getKv('idem', 'k1'), kv);
        assert.deepEqual(await store.load(), { applied: { 'us-east-1': 2 }, truncated: {}, maxHlc: hlc(2) });
        assert.deepEqual(ids(await store.readLog({}, 10)), ['us-east-1:1', 'us-east-1:2']);
        assert.deepEqual((await store.readLog({}, 10))[0], change('us-east-1', 1));

        // A later commit replaces a document whole.
        const a2 = doc('settings', 'theme', 'light', { 'us-east-1': 3, 'eu-west-1': 1 }, 3);
        await store.commit(
          batch({ docs: [a2], changes: [change('us-east-1', 3)], applied: { 'us-east-1': 3 } }),
        );
        assert.deepEqual(await store.getDoc('settings', 'theme'), a2);
      }));

    it('hands out copies: mutating a result does not change what is stored', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const a = doc('settings', 'k', { n: 1 }, { 'us-east-1': 1 });
        await store.commit(
          batch({ docs: [a], changes: [change('us-east-1', 1)], applied: { 'us-east-1': 1 } }),
        );
        const got = (await store.getDoc('settings', 'k'))!;
        (got.state as { value: Json }).value = 'mutated';
        const log = await store.readLog({}, 1);
        log[0]!.seq = 99;
        assert.deepEqual(await store.getDoc('settings', 'k'), a);
        assert.deepEqual(ids(await store.readLog({}, 1)), ['us-east-1:1']);
      }));

    it('a commit that fails part-way leaves nothing behind, and the store keeps working', (t) =>
      withFixture(t, make, async (_fx, store) => {
        await store.commit(
          batch({
            docs: [doc('settings', 'a', 1, { 'us-east-1': 1 })],
            changes: [change('us-east-1', 1)],
            applied: { 'us-east-1': 1 },
          }),
        );
        const before = await store.load();
        // The last kv record cannot even be read: everything before it in the batch must vanish.
        const poisoned = { ns: 'idem', key: 'p', hlc: hlc(9) } as KvRecord;
        Object.defineProperty(poisoned, 'value', {
          enumerable: true,
          get() {
            throw new Error('poisoned value');
          },
        });
        await assert.rejects(
          store.commit(
            batch({
              docs: [
                doc('settings', 'a', 2, { 'us-east-1': 2 }),
                doc('settings', 'b', 2, { 'us-east-1': 2 }),
              ],
              changes: [change('us-east-1', 2, 50)],
              kv: [{ ns: 'idem', key: 'ok', value: 1, hlc: hlc(9) }, poisoned],
              applied: { 'us-east-1': 2 },
            }),
          ),
        );
        assert.deepEqual(await store.load(), before);
        assert.deepEqual((await store.getDoc('settings', 'a'))?.state, reg(1, 1));
        assert.equal(await store.getDoc('settings', 'b'), undefined);
        assert.equal(await store.getKv('idem', 'ok'), undefined);
        assert.deepEqual(ids(await store.readLog({}, 10)), ['us-east-1:1']);

        await store.commit(batch({ changes: [change('us-east-1', 2)], applied: { 'us-east-1': 2 } }));
        assert.deepEqual(ids(await store.readLog({}, 10)), ['us-east-1:1', 'us-east-1:2']);
      }));

    it('a commit the database itself rejects part-way is rolled back whole', async (t) => {
      if (!sql) return t.skip('only SQL stores have constraints to violate');
      await withFixture(t, make, async (_fx, store) => {
        // ns = null passes serialisation but violates NOT NULL after the doc and log rows went in.
        const bad = { ns: null, key: 'x', value: 1, hlc: hlc(1) } as unknown as KvRecord;
        await assert.rejects(
          store.commit(
            batch({
              docs: [doc('settings', 'a', 1, { 'us-east-1': 1 })],
              changes: [change('us-east-1', 1)],
              kv: [bad],
              applied: { 'us-east-1': 1 },
            }),
          ),
        );
        assert.deepEqual(await store.load(), { applied: {}, truncated: {}, maxHlc: undefined });
        assert.equal(await store.getDoc('settings', 'a'), undefined);
        assert.deepEqual(await store.readLog({}, 10), []);
        await store.commit(batch({ changes: [change('us-east-1', 1)], applied: { 'us-east-1': 1 } }));
        assert.deepEqual(ids(await store.readLog({}, 10)), ['us-east-1:1']);
      });
    });

    it('readLog returns what a peer lacks, in append order, up to the limit', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const order = [
          change('eu-west-1', 1),
          change('us-east-1', 1),
          change('us-east-1', 2),
          change('ap-northeast-1', 1),
          change('eu-west-1', 2),
          change('us-east-1', 3),
        ];
        // Two changes in one batch keep their batch order too.
        await appendAll(store, order.slice(0, 4));
        await store.commit(
          batch({
            changes: order.slice(4),
            applied: { 'eu-west-1': 2, 'us-east-1': 3, 'ap-northeast-1': 1 },
          }),
        );
        const all = ids(order);
        assert.deepEqual(ids(await store.readLog({}, 100)), all);
        assert.deepEqual(await store.readLog({}, 100), order);
        assert.deepEqual(ids(await store.readLog({}, 2)), all.slice(0, 2));
        assert.deepEqual(ids(await store.readLog({ 'us-east-1': 2 }, 100)), [
          'eu-west-1:1',
          'ap-northeast-1:1',
          'eu-west-1:2',
          'us-east-1:3',
        ]);
        assert.deepEqual(ids(await store.readLog({ 'us-east-1': 2, 'eu-west-1': 1 }, 2)), [
          'ap-northeast-1:1',
          'eu-west-1:2',
        ]);
        assert.deepEqual(
          await store.readLog({ 'us-east-1': 3, 'eu-west-1': 2, 'ap-northeast-1': 1 }, 100),
          [],
        );
        assert.deepEqual(
          ids(
            await store.readLog(
              { 'us-east-1': 99, 'eu-west-1': 99, 'ap-northeast-1': 0, 'sa-east-1': 5 },
              100,
            ),
          ),
          ['ap-northeast-1:1'],
          'cursors past the end and unknown origins are harmless',
        );
      }));

    it('paging through a long log with cursors reproduces it exactly', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const origins = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];
        const seqs: Record<string, number> = {};
        const appended: Change[] = [];
        let applied: VersionVector = {};
        for (let b = 0; b < 30; b++) {
          const cs: Change[] = [];
          for (let i = 0; i < 10; i++) {
            const o = origins[(b * 7 + i * 3 + ((i * i) % 5)) % 3]!;
            seqs[o] = (seqs[o] ?? 0) + 1;
            cs.push(change(o, seqs[o]!, b * 10 + i));
          }
          applied = { ...applied, ...Object.fromEntries(cs.map((c) => [c.origin, c.seq])) };
          await store.commit(batch({ changes: cs, applied }));
          appended.push(...cs);
        }
        const have: Record<string, number> = {};
        const got: Change[] = [];
        for (let round = 0; round < 100; round++) {
          const page = await store.readLog(have, 37);
          if (page.length === 0) break;
          assert.ok(page.length <= 37);
          for (const c of page) have[c.origin] = c.seq;
          got.push(...page);
        }
        assert.deepEqual(ids(got), ids(appended));
      }));

    it('matches the memory store on random logs, truncations and cursors (property)', async (t) => {
      if (kind === 'memory') return t.skip('the memory store is the model');
      const fx = make();
      try {
        if (!(await fx.available(t))) return;
        const origins = ['us-east-1', 'eu-west-1', 'ap-northeast-1', 'sa-east-1'];
        let run = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                origins: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
                truncate: fc.option(fc.record({ origin: fc.integer({ min: 0, max: 3 }), back: fc.nat(6) }), {
                  nil: undefined,
                }),
              }),
              { minLength: 1, maxLength: 25 },
            ),
            fc.array(
              fc.tuple(fc.array(fc.nat(40), { minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 50 })),
              { minLength: 1, maxLength: 10 },
            ),
            async (batches, queries) => {
              const store = await fx.open(`prop-${run++}`);
              const model = new MemoryStore();
              const seqs = [0, 0, 0, 0];
              let applied: VersionVector = {};
              let at = 0;
              for (const b of batches) {
                const cs = b.origins.map((o) => change(origins[o]!, ++seqs[o]!, at++));
                applied = { ...applied, ...Object.fromEntries(cs.map((c) => [c.origin, c.seq])) };
                await store.commit(batch({ changes: cs, applied }));
                await model.commit(batch({ changes: cs, applied }));
                if (b.truncate) {
                  const upTo = {
                    [origins[b.truncate.origin]!]: Math.max(0, seqs[b.truncate.origin]! - b.truncate.back),
                  };
                  await store.truncateLog(upTo);
                  await model.truncateLog(upTo);
                }
              }
              assert.deepEqual(await store.load(), await model.load());
              for (const [h, limit] of queries) {
                const have = Object.fromEntries(origins.map((o, i) => [o, h[i]!]));
                assert.deepEqual(await store.readLog(have, limit), await model.readLog(have, limit));
              }
              await store.close();
            },
          ),
          { numRuns: kind === 'postgres' ? 15 : 50 },
        );
      } finally {
        await fx.cleanup();
      }
    });

    it('truncateLog drops entries per origin and load() reports what was truncated', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const applied = await appendAll(store, [
          change('us-east-1', 1),
          change('eu-west-1', 1),
          change('us-east-1', 2),
          change('us-east-1', 3),
          change('eu-west-1', 2),
        ]);
        await store.truncateLog({ 'us-east-1': 2 });
        assert.deepEqual(ids(await store.readLog({}, 100)), ['eu-west-1:1', 'us-east-1:3', 'eu-west-1:2']);
        assert.deepEqual(await store.load(), { applied, truncated: { 'us-east-1': 2 }, maxHlc: hlc(3) });
        await store.truncateLog({ 'us-east-1': 1, 'eu-west-1': 5 });
        assert.deepEqual(ids(await store.readLog({}, 100)), ['us-east-1:3']);
        assert.deepEqual(
          (await store.load()).truncated,
          { 'us-east-1': 2, 'eu-west-1': 5 },
          'truncation never goes back',
        );
        assert.deepEqual(
          (await store.load()).applied,
          applied,
          'truncation does not touch the applied version',
        );
        await appendAll(store, [change('us-east-1', 4)], applied);
        assert.deepEqual(ids(await store.readLog({}, 100)), ['us-east-1:3', 'us-east-1:4']);
      }));

    it('keeps the greatest HLC ever committed, also across batches without changes and truncation', (t) =>
      withFixture(t, make, async (_fx, store) => {
        await store.commit(
          batch({
            changes: [change('us-east-1', 1, 10), change('eu-west-1', 1, 30), change('us-east-1', 2, 20)],
            applied: { 'us-east-1': 2, 'eu-west-1': 1 },
          }),
        );
        assert.equal((await store.load()).maxHlc, hlc(30));
        await store.commit(
          batch({
            changes: [change('ap-northeast-1', 1, 5)],
            applied: { 'us-east-1': 2, 'eu-west-1': 1, 'ap-northeast-1': 1 },
          }),
        );
        assert.equal((await store.load()).maxHlc, hlc(30), 'an older HLC does not lower it');
        await store.commit(
          batch({
            docs: [doc('settings', 's', 1, { 'eu-west-1': 3 })],
            applied: { 'us-east-1': 2, 'eu-west-1': 3, 'ap-northeast-1': 1 },
          }),
        );
        assert.deepEqual(await store.load(), {
          applied: { 'us-east-1': 2, 'eu-west-1': 3, 'ap-northeast-1': 1 },
          truncated: {},
          maxHlc: hlc(30),
        });
        await store.truncateLog({ 'eu-west-1': 1 });
        assert.equal((await store.load()).maxHlc, hlc(30));
        await store.commit(
          batch({
            changes: [change('us-east-1', 3, 30, undefined)].map((c) => ({ ...c, hlc: hlc(30, 1) })),
            applied: { 'us-east-1': 3 },
          }),
        );
        assert.equal((await store.load()).maxHlc, hlc(30, 1), 'the logical part counts');
      }));

    it('snapshot is a consistent copy of documents, kv records and the applied version', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const d1 = doc('settings', 'a', 1, { 'us-east-1': 1 });
        const d2 = doc('tags', 'b', ['x'], { 'eu-west-1': 1 });
        const k1: KvRecord = { ns: 'saga', key: 's1', value: { step: 2 }, hlc: hlc(2) };
        await store.commit(
          batch({
            docs: [d1, d2],
            kv: [k1],
            changes: [change('us-east-1', 1), change('eu-west-1', 1)],
            applied: { 'us-east-1': 1, 'eu-west-1': 1 },
          }),
        );
        const snap = await store.snapshot();
        const byKey = (a: DocRecord, b: DocRecord) => (a.key < b.key ? -1 : 1);
        assert.deepEqual(snap.docs.sort(byKey), [d1, d2]);
        assert.deepEqual(snap.kv, [k1]);
        assert.deepEqual(snap.applied, { 'us-east-1': 1, 'eu-west-1': 1 });
        // A commit after the snapshot is not in it, and the snapshot is not a live view.
        await store.commit(
          batch({
            docs: [doc('settings', 'a', 2, { 'us-east-1': 2 })],
            changes: [change('us-east-1', 2)],
            applied: { 'us-east-1': 2, 'eu-west-1': 1 },
          }),
        );
        assert.deepEqual(snap.docs.sort(byKey), [d1, d2]);
        snap.docs.length = 0;
        assert.equal((await store.snapshot()).docs.length, 2);
        assert.deepEqual((await store.snapshot()).applied, { 'us-east-1': 2, 'eu-west-1': 1 });
      }));

    it('kv records keep value, hlc and expiry; list by key order; purge what expired', (t) =>
      withFixture(t, make, async (_fx, store) => {
        const rec = (key: string, value: Json, at: number, expiresAtMs?: number, ns = 'idem'): KvRecord =>
          expiresAtMs === undefined
            ? { ns, key, value, hlc: hlc(at) }
            : { ns, key, value, hlc: hlc(at), expiresAtMs };
        await store.commit(
          batch({
            kv: [
              rec('b', 1, 1, T0 + 100),
              rec('a', { r: 'x' }, 1),
              rec('c', null, 1, T0 + 300),
              rec('a', 'other-ns', 1, undefined, 'saga'),
            ],
            applied: {},
          }),
        );
        assert.deepEqual(await store.listKv('idem'), [
          rec('a', { r: 'x' }, 1),
          rec('b', 1, 1, T0 + 100),
          rec('c', null, 1, T0 + 300),
        ]);
        assert.deepEqual(await store.listKv('saga'), [rec('a', 'other-ns', 1, undefined, 'saga')]);
        assert.deepEqual(
          await store.getKv('idem', 'c'),
          rec('c', null, 1, T0 + 300),
          'a null value (deleted entry) is kept',
        );
        // A newer record replaces the row whole: value, hlc and (dropped) expiry.
        await store.commit(batch({ kv: [rec('b', 2, 5)], applied: {} }));
        assert.deepEqual(await store.getKv('idem', 'b'), rec('b', 2, 5));
        // Last record of a key in one batch wins.
        await store.commit(batch({ kv: [rec('d', 1, 6, T0 + 200), rec('d', 2, 7, T0 + 200)], applied: {} }));
        assert.deepEqual(await store.getKv('idem', 'd'), rec('d', 2, 7, T0 + 200));

        assert.equal(await store.purgeKv(T0 + 199), 0);
        assert.equal(await store.purgeKv(T0 + 200), 1, 'expiry at exactly now is purged');
        assert.equal(await store.getKv('idem', 'd'), undefined);
        assert.equal(await store.purgeKv(T0 + 10_000), 1);
        assert.deepEqual(
          (await store.listKv('idem')).map((r) => r.key),
          ['a', 'b'],
        );
        assert.equal(await store.purgeKv(T0 + 10_000), 0);
      }));

    it('closing and reopening keeps everything', async (t) => {
      if (!durable) return t.skip('the memory store keeps nothing across processes');
      await withFixture(t, make, async (fx, store) => {
        const applied = await appendAll(store, [
          change('us-east-1', 1),
          change('eu-west-1', 1),
          change('us-east-1', 2),
        ]);
        const d = doc('settings', 'k', { deep: { v: [1, 2, 3] } }, applied);
        const k: KvRecord = { ns: 'idem', key: 'i', value: 'v', hlc: hlc(4), expiresAtMs: T0 + 1 };
        await store.commit(
          batch({
            docs: [d],
            kv: [k],
            changes: [change('us-east-1', 3, 40)],
            applied: { ...applied, 'us-east-1': 3 },
          }),
        );
        await store.truncateLog({ 'us-east-1': 1 });
        const before = {
          state: await store.load(),
          log: await store.readLog({}, 100),
          snap: await store.snapshot(),
        };
        await store.close();
        const again = await fx.open();
        assert.deepEqual(await again.load(), before.state);
        assert.deepEqual(before.state, {
          applied: { 'us-east-1': 3, 'eu-west-1': 1 },
          truncated: { 'us-east-1': 1 },
          maxHlc: hlc(40),
        });
        assert.deepEqual(await again.readLog({}, 100), before.log);
        assert.deepEqual(await again.snapshot(), before.snap);
        assert.deepEqual(await again.getDoc('settings', 'k'), d);
        assert.deepEqual(await again.getKv('idem', 'i'), k);
        // The log keeps its order after reopening: new entries go after the old ones.
        await again.commit(
          batch({
            changes: [change('ap-northeast-1', 1)],
            applied: { ...before.state.applied, 'ap-northeast-1': 1 },
          }),
        );
        assert.deepEqual(ids(await again.readLog({}, 100)), [
          'eu-west-1:1',
          'us-east-1:2',
          'us-east-1:3',
          'ap-northeast-1:1',
        ]);
      });
    });

    it('loses nothing it acknowledged when the writing process is killed with SIGKILL', async (t) => {
      if (!durable) return t.skip('the memory store keeps nothing across processes');
      await withFixture(t, make, async (fx, store) => {
        await store.close();
        const writer = fileURLToPath(new URL('./support/store-crash-writer.ts', import.meta.url));
        const child = spawn(process.execPath, ['--import', 'tsx', writer, JSON.stringify(fx.config())], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let acked = 0;
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const l of lines) if (l.startsWith('acked ')) acked = Number(l.slice(6));
        });
        const exited = new Promise((r) => child.once('exit', r));
        const until = Date.now() + 60_000;
        while (acked < 100 && Date.now() < until && child.exitCode === null)
          await new Promise((r) => setTimeout(r, 5));
        assert.ok(acked >= 100, `the writer acknowledged ${acked} commits`);
        // Mid-stream: commits are in flight when the process dies.
        child.kill('SIGKILL');
        await exited;
        const ackedAtKill = acked;
        const again = await fx.open();
        const st = await again.load();
        const have = st.applied['us-east-1'] ?? 0;
        assert.ok(have >= ackedAtKill, `applied ${have} >= acknowledged ${ackedAtKill}`);
        const log = await again.readLog({}, have + 10);
        assert.deepEqual(
          log.map((c) => c.seq),
          Array.from({ length: have }, (_, i) => i + 1),
          'the log holds exactly the committed sequence, without gaps or torn batches',
        );
        assert.equal((await again.getDoc('c', `k${have}`))?.version['us-east-1'], have);
        assert.equal(await again.getDoc('c', `k${have + 1}`), undefined);
      });
    });

    it('keeps regions apart', (t) =>
      withFixture(t, make, async (fx, store) => {
        const other = await fx.open('eu-west-1');
        await store.commit(
          batch({
            docs: [doc('settings', 'k', 'us', { 'us-east-1': 1 })],
            changes: [change('us-east-1', 1)],
            applied: { 'us-east-1': 1 },
          }),
        );
        assert.equal(await other.getDoc('settings', 'k'), undefined);
        assert.deepEqual(await other.load(), { applied: {}, truncated: {}, maxHlc: undefined });
      }));

    it('runs a RegionCore: writes, reopen, read back, version and clock restored', (t) =>
      withFixture(t, make, async (fx, store) => {
        const regions: RegionInfo[] = [
          { id: 'us-east-1', lat: 38.9, lon: -77.4 },
          { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
        ];
        const collections: CollectionSpec[] = [
          { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
          { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
          { name: 'tags', policy: 'set', replication: { mode: 'async' } },
          { name: 'profiles', policy: 'pinned', replication: { mode: 'async' } },
        ];
        const open = (region: string, s: RegionStore) =>
          RegionCore.open({
            region,
            regions,
            collections,
            store: s,
            clock: systemClock,
            timers: systemTimers,
          });

        // A pinned key homed in us-east-1, the region that writes it (a new key's home is homeOfNewKey).
        let alice = 'alice';
        for (let i = 1; homeOfNewKey(collections[3]!, ['us-east-1', 'eu-west-1'], alice) !== 'us-east-1'; i++)
          alice = `alice${i}`;
        const us = await open('us-east-1', store);
        // Concurrent writes exercise group commit: many mutations, few transactions.
        await Promise.all([
          ...Array.from({ length: 50 }, (_, i) => us.put('settings', `k${i}`, { i })),
          ...Array.from({ length: 20 }, () => us.increment('likes', 'post', 1)),
          us.addMembers('tags', 't', ['a', 'b']),
          us.put('profiles', alice, { name: 'Alice' }),
        ]);
        await us.removeMembers('tags', 't', ['a']);
        await us.delete('settings', 'k0');
        await us.writeKv([{ ns: 'idem', key: 'req-1', value: { status: 200 } }]);
        const version = us.version;
        assert.equal(version['us-east-1'], 75);
        const clockBefore = us.hlc.peek();

        // A peer applies our log through its own store.
        const eu = await open('eu-west-1', await fx.open('eu-west-1'));
        const pulled = await us.pull('eu-west-1', eu.version, 1000);
        assert.equal(pulled.kind, 'changes');
        if (pulled.kind === 'changes') {
          assert.equal(pulled.changes.length, 75);
          await eu.applyRemote('us-east-1', pulled.changes);
        }
        assert.deepEqual(eu.version, version);
        assert.equal((await eu.get('likes', 'post'))?.value, 20);
        await eu.put('settings', 'from-eu', true);

        // Reopen the same data: a durable store restores everything; memory reuses the live object.
        us.close();
        let store2 = store;
        if (fx.durable) {
          await store.close();
          store2 = await fx.open('us-east-1');
        }
        const us2 = await open('us-east-1', store2);
        assert.deepEqual(us2.version, version);
        assert.ok(
          us2.hlc.peek().wallMs > clockBefore.wallMs ||
            (us2.hlc.peek().wallMs === clockBefore.wallMs && us2.hlc.peek().logical >= clockBefore.logical),
          'the clock does not go back',
        );
        assert.deepEqual((await us2.get('settings', 'k7'))?.value, { i: 7 });
        assert.equal(await us2.get('settings', 'k0'), undefined, 'the tombstone survives');
        assert.equal((await us2.get('likes', 'post'))?.value, 20);
        assert.deepEqual((await us2.get('tags', 't'))?.value, ['b']);
        assert.deepEqual((await us2.get('profiles', alice))?.value, { name: 'Alice' });
        assert.deepEqual((await us2.getKv('idem', 'req-1'))?.value, { status: 200 });

        // Writing after the reopen continues the sequence; pulling the peer's change applies it.
        const w = await us2.put('settings', 'after', 1);
        assert.equal(w.version['us-east-1'], 76);
        const fromEu = await eu.pull('us-east-1', us2.version, 1000);
        if (fromEu.kind === 'changes') await us2.applyRemote('eu-west-1', fromEu.changes);
        assert.equal((await us2.get('settings', 'from-eu'))?.value, true);
        assert.deepEqual(us2.version, { 'us-east-1': 76, 'eu-west-1': 1 });
        us2.close();
        eu.close();
      }));
  });
}
