/**
 * A checker that cannot fail is worth nothing: each test takes a clean run, breaks the one
 * guarantee its checker watches (by editing the recorded history or final state as a bug would
 * have left it), and shows that checker reports it. test/sim-bugs.test.ts shows the same checkers
 * catching bugs planted in the product code.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { CounterState, RegState, SetState } from '../src/core/crdt.js';
import { encodeHlc, HLC_ZERO } from '../src/core/hlc.js';
import { convergence } from '../src/sim/checkers/convergence.js';
import { counters } from '../src/sim/checkers/counters.js';
import { lww } from '../src/sim/checkers/lww.js';
import { monotonicReads } from '../src/sim/checkers/monotonic-reads.js';
import { pinned } from '../src/sim/checkers/pinned.js';
import { readValidity } from '../src/sim/checkers/read-validity.js';
import { readYourWrites } from '../src/sim/checkers/read-your-writes.js';
import { residency } from '../src/sim/checkers/residency.js';
import { sets } from '../src/sim/checkers/sets.js';
import { syncDurability } from '../src/sim/checkers/sync-durability.js';
import type { History, OpRecord } from '../src/sim/history.js';
import { ALL_CHECKERS, DEFAULT_SIM, simulate } from '../src/sim/index.js';

async function cleanRun(seed: number): Promise<History> {
  const r = await simulate({ ...DEFAULT_SIM, seed, faults: 'light', durationMs: 3000, opsPerSec: 300 });
  assert.deepEqual(
    r.violations.map((v) => v.message),
    [],
    'the run starts clean',
  );
  return r.history;
}

/** Every final region gets the same edit, so only the checker under test (not convergence) can see it. */
function editEverywhere(
  h: History,
  id: string,
  edit: (s: RegState | CounterState | SetState) => RegState | CounterState | SetState,
): void {
  for (const f of h.final) {
    const d = f.docs.get(id);
    if (d) f.docs.set(id, { ...d, state: edit(d.state) });
  }
}

function firstDoc(h: History, collection: string, t: string): string {
  const f = h.final[0]!;
  const id = [...f.docs.keys()]
    .sort()
    .find((k) => k.startsWith(`${collection}\u0000`) && f.docs.get(k)!.state.t === t);
  assert.ok(id, `a ${collection} document exists`);
  return id;
}

function fakeOp(h: History, like: OpRecord, patch: Partial<OpRecord>): OpRecord {
  const op: OpRecord = { ...like, id: h.ops.length, startAtMs: h.endAtMs, endAtMs: h.endAtMs, ...patch };
  h.ops.push(op);
  return op;
}

describe('each checker catches the breach it exists for', () => {
  let seed = 60;
  let h: History;
  before(async () => {
    h = await cleanRun(seed);
  });
  const fresh = async () => {
    h = await cleanRun(++seed);
    return h;
  };

  it('every checker passes on the clean run', () => {
    for (const c of ALL_CHECKERS) assert.deepEqual(c.check(h), [], c.name);
  });

  it('convergence: one region holds a different state', async () => {
    const h = await fresh();
    const id = firstDoc(h, 'settings', 'reg');
    const f = h.final[1]!;
    const d = f.docs.get(id)!;
    f.docs.set(id, { ...d, state: { ...(d.state as RegState), value: 'diverged' } });
    assert.ok(convergence.check(h).length > 0);
  });

  it('counters: an increment went missing everywhere', async () => {
    const h = await fresh();
    const id = firstDoc(h, 'likes', 'counter');
    editEverywhere(h, id, (s) => {
      const c = s as CounterState;
      const [r, v] = Object.entries(c.p)[0]!;
      return { ...c, p: { ...c.p, [r]: v - 1 } };
    });
    assert.deepEqual(convergence.check(h), []);
    assert.ok(counters.check(h).some((v) => v.checker === 'counters'));
  });

  it('sets: a removed member came back', async () => {
    const h = await fresh();
    const id = firstDoc(h, 'tags', 'set');
    editEverywhere(h, id, (s) => ({
      ...(s as SetState),
      adds: { ...(s as SetState).adds, zombie: ['nowhere:1.0'] },
    }));
    assert.ok(sets.check(h).length > 0);
  });

  it('lww: every region kept a write that is not the greatest', async () => {
    const h = await fresh();
    const id = firstDoc(h, 'settings', 'reg');
    editEverywhere(h, id, (s) => ({ ...(s as RegState), hlc: encodeHlc(HLC_ZERO) }));
    assert.ok(lww.check(h).length > 0);
  });

  it('read-your-writes: a token session reads nothing after its own write', async () => {
    const h = await fresh();
    const w = h.ops.find(
      (o) => o.token && o.collection === 'profiles' && o.kind === 'put' && o.result === 'ok',
    );
    assert.ok(w);
    fakeOp(h, w, { kind: 'get', answer: undefined, change: undefined, region: 'ap-northeast-1' });
    assert.ok(readYourWrites.check(h).length > 0, 'read-your-writes fires');
  });

  it('read validity: a read returns a value no write produced, or the value of another key', async () => {
    const h = await fresh();
    const r = h.ops.find((o) => o.kind === 'get' && o.result === 'ok' && typeof o.answer === 'string');
    assert.ok(r);
    assert.deepEqual(readValidity.check(h), [], 'every read of the clean run is valid');
    fakeOp(h, r, { answer: 'never-written' });
    assert.match(readValidity.check(h)[0]?.message ?? '', /no committed write produced/);
    const other = h.ops.find(
      (o) => o.kind === 'put' && o.result === 'ok' && o.collection === r.collection && o.key !== r.key,
    );
    assert.ok(other?.change);
    fakeOp(h, r, { answer: other.value });
    assert.ok(
      readValidity.check(h).some((v) => v.message.includes(`written to ${other.collection}/${other.key}`)),
      'a value written to another key is not valid for this one',
    );
  });

  it('read validity: a counter read that no combination of committed increments makes', async () => {
    const h = await fresh();
    const r = h.ops.find(
      (o) => o.kind === 'get' && o.result === 'ok' && o.collection === 'likes' && Number(o.answer) > 0,
    );
    assert.ok(r);
    // Every increment of the key adds 1 to 5: the sum of all of them plus one is out of reach.
    const all = h.ops
      .filter((o) => o.kind === 'increment' && o.collection === 'likes' && o.key === r.key)
      .reduce((n, o) => n + (o.by ?? 0), 0);
    fakeOp(h, r, { answer: all + 1 });
    assert.ok(readValidity.check(h).length > 0, 'read-validity fires');
  });

  it('read validity: a counter read in range that no choice of committed totals makes', async () => {
    const h = await fresh();
    const likes = h.collections.find((c) => c.policy === 'counter')!.name;
    const [a, b] = h.regions as [string, string];
    const change = (origin: string, seq: number, total: number) => ({
      origin,
      seq,
      hlc: `00000000000${seq}-000000`,
      collection: likes,
      key: 'exact',
      delta: { t: 'counter' as const, p: { [origin]: total }, n: {} },
      committedAtMs: 0,
    });
    // One region committed a running total of 3, the other of 5: reads can be 0, 3, 5 or 8, not 4.
    h.changes.get(a)!.push(change(a, h.changes.get(a)!.length + 1, 3));
    h.changes.get(b)!.push(change(b, h.changes.get(b)!.length + 1, 5));
    const like = h.ops.find((o) => o.kind === 'get' && o.result === 'ok')!;
    for (const answer of [0, 3, 5, 8]) fakeOp(h, like, { collection: likes, key: 'exact', answer });
    assert.deepEqual(readValidity.check(h), [], 'every sum of committed totals is valid');
    fakeOp(h, like, { collection: likes, key: 'exact', answer: 4 });
    assert.match(readValidity.check(h)[0]?.message ?? '', /likes\/exact.*returned 4/);
  });

  it('read-your-writes: a token session reads a value no write produced after its own write', async () => {
    const h = await fresh();
    const w = h.ops.find(
      (o) => o.token && o.collection === 'settings' && o.kind === 'put' && o.result === 'ok' && o.change,
    );
    assert.ok(w);
    fakeOp(h, w, { kind: 'get', answer: 'never-written', change: undefined });
    assert.ok(
      readYourWrites.check(h).some((v) => v.message.includes('no committed write of this key produced')),
      'the session checker does not skip the read',
    );
  });

  it('monotonic reads: a token session reads an older value than it read before', async () => {
    const h = await fresh();
    // The session's last operation on the key is this read (an increment after it would make the
    // older value a read-your-writes breach instead).
    const last = new Map<string, OpRecord>();
    for (const o of h.ops) if (o.result === 'ok') last.set(`${o.session}/${o.collection}/${o.key}`, o);
    const r = [...last.values()].find(
      (o) =>
        o.token && o.collection === 'likes' && o.kind === 'get' && o.result === 'ok' && Number(o.answer) > 0,
    );
    assert.ok(r);
    fakeOp(h, r, { answer: Number(r.answer) - 1 });
    assert.ok(monotonicReads.check(h).length > 0, 'monotonic-reads fires');
  });

  it('pinned: a second region wrote a pinned key', async () => {
    const h = await fresh();
    const [origin, list] = [...h.changes].find(([, l]) => l.some((c) => c?.collection === 'profiles'))!;
    const c = list.find((x) => x?.collection === 'profiles')!;
    const other = h.regions.find((r) => r !== origin)!;
    h.changes
      .get(other)!
      .push({ ...c, origin: other, seq: h.changes.get(other)!.length + 1, hlc: `${c.hlc}z` });
    assert.ok(pinned.check(h).length > 0);
  });

  it('sync durability: a write was confirmed while only its origin held it', async () => {
    const h = await fresh();
    const op = h.ops.find((o) => o.collection === 'accounts' && o.kind === 'put' && o.result === 'ok');
    assert.ok(op?.change);
    op.holdersAtAck = [op.change.origin];
    assert.ok(syncDurability.check(h).length > 0);
  });

  it('residency: a resident document is stored outside its region', async () => {
    const h = await fresh();
    const id = firstDoc(h, 'settings', 'reg');
    const outside = h.final.find((f) => f.region !== 'eu-west-1')!;
    const d = outside.docs.get(id)!;
    outside.docs.set(`eu-profiles\u0000leak`, { ...d, collection: 'eu-profiles', key: 'leak' });
    assert.ok(residency.check(h).length > 0);
  });
});
