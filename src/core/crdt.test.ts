import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CounterState,
  counterValue,
  type DocState,
  mergeDoc,
  type RegState,
  type SetState,
  setMembers,
} from './crdt.js';
import { encodeHlc } from './hlc.js';

const region = fc.constantFrom('us-east-1', 'eu-west-1', 'ap-northeast-1');
const hlc = fc
  .record({ wallMs: fc.integer({ min: 0, max: 1000 }), logical: fc.nat(3) })
  .map((t) => encodeHlc(t));

const regArb: fc.Arbitrary<RegState> = fc
  .record({
    value: fc.oneof(fc.string(), fc.integer()),
    deleted: fc.boolean(),
    hlc,
    origin: region,
    prevHlc: hlc,
  })
  .map((r) => ({ t: 'reg', ...r }));

// A given (hlc, origin) is one write: generated registers with the same pair must carry the same
// content, as in the system, where an HLC is issued once per origin.
function canonicalReg(r: RegState): RegState {
  return {
    ...r,
    value: `${r.hlc}@${r.origin}`,
    deleted: r.hlc.endsWith('0'),
    prevHlc: encodeHlc({ wallMs: 0, logical: 0 }),
  };
}

const counterArb: fc.Arbitrary<CounterState> = fc
  .record({ p: fc.dictionary(region, fc.nat(100)), n: fc.dictionary(region, fc.nat(100)) })
  .map((c) => ({ t: 'counter', p: { ...c.p }, n: { ...c.n } }));

/** Set states as the system makes them: tags are unique per add, and a removed tag is never live. */
const setArb: fc.Arbitrary<SetState> = fc
  .record({
    adds: fc.array(fc.record({ m: fc.constantFrom('a', 'b', 'c', 'd'), tag: fc.nat(30) }), { maxLength: 12 }),
    removed: fc.array(fc.nat(30), { maxLength: 8 }),
  })
  .map(({ adds, removed }) => {
    const gone = new Set(removed.map((t) => `r:${t}`));
    const out: Record<string, string[]> = {};
    for (const { m, tag } of adds) {
      const t = `r:${tag}`;
      // A tag belongs to one member only.
      if (gone.has(t) || Object.values(out).some((ts) => ts.includes(t))) continue;
      out[m] = [...new Set([...(out[m] ?? []), t])].sort();
    }
    return { t: 'set', adds: out, removed: [...gone].sort() };
  });

function laws<S extends DocState>(name: string, arb: fc.Arbitrary<S>, sameTagOwners = false): void {
  describe(`${name} merge`, () => {
    const eq = (a: DocState, b: DocState) => assert.deepEqual(a, b);
    it('is commutative', () => {
      fc.assert(
        fc.property(arb, arb, (a, b) => {
          if (sameTagOwners && conflictingTags(a, b)) return;
          eq(mergeDoc(a, b).state, mergeDoc(b, a).state);
        }),
      );
    });
    it('is associative', () => {
      fc.assert(
        fc.property(arb, arb, arb, (a, b, c) => {
          if (sameTagOwners && (conflictingTags(a, b) || conflictingTags(b, c) || conflictingTags(a, c)))
            return;
          eq(mergeDoc(mergeDoc(a, b).state, c).state, mergeDoc(a, mergeDoc(b, c).state).state);
        }),
      );
    });
    it('is idempotent', () => {
      fc.assert(
        fc.property(arb, arb, (a, b) => {
          eq(mergeDoc(a, a).state, a);
          const ab = mergeDoc(a, b).state;
          eq(mergeDoc(ab, b).state, ab);
        }),
      );
    });
  });
}

/** Two generated set states that give one tag to different members cannot both come from the system. */
function conflictingTags(a: DocState, b: DocState): boolean {
  if (a.t !== 'set' || b.t !== 'set') return false;
  const owner = new Map<string, string>();
  for (const s of [a, b]) {
    for (const [m, tags] of Object.entries(s.adds)) {
      for (const t of tags) {
        if (owner.has(t) && owner.get(t) !== m) return true;
        owner.set(t, m);
      }
    }
  }
  return false;
}

laws('LWW register', regArb.map(canonicalReg));
laws('PN-counter', counterArb);
laws('observed-remove set', setArb, true);

describe('CRDT semantics', () => {
  it('LWW: the greatest HLC wins, ties broken by region id', () => {
    fc.assert(
      fc.property(regArb.map(canonicalReg), regArb.map(canonicalReg), (a, b) => {
        const w = mergeDoc(a, b).state as RegState;
        const expected = a.hlc !== b.hlc ? (a.hlc > b.hlc ? a : b) : a.origin >= b.origin ? a : b;
        assert.equal(w.hlc, expected.hlc);
        assert.equal(w.origin, expected.origin);
      }),
    );
  });

  it('counter: merging never loses an increment (value is at least each side per region)', () => {
    fc.assert(
      fc.property(counterArb, counterArb, (a, b) => {
        const m = mergeDoc(a, b).state as CounterState;
        for (const r of Object.keys({ ...a.p, ...b.p }))
          assert.equal(m.p[r], Math.max(a.p[r] ?? 0, b.p[r] ?? 0));
        assert.equal(counterValue(m), counterValue(mergeDoc(b, a).state as CounterState));
      }),
    );
  });

  it('set: an add concurrent with a remove survives it (add wins)', () => {
    const base: SetState = { t: 'set', adds: { x: ['us:1'] }, removed: [] };
    const removeObserved: SetState = { t: 'set', adds: {}, removed: ['us:1'] };
    const concurrentAdd: SetState = { t: 'set', adds: { x: ['eu:1'] }, removed: [] };
    const merged = mergeDoc(mergeDoc(base, removeObserved).state, concurrentAdd).state as SetState;
    assert.deepEqual(setMembers(merged), ['x']);
    const late = mergeDoc(merged, base).state as SetState;
    assert.deepEqual(late.adds.x, ['eu:1'], 'a late duplicate of the removed add does not resurrect its tag');
  });
});
