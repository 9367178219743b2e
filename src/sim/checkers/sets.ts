/**
 * Sets: add-wins semantics against a sequential specification. A member is in the final set iff
 * some surviving add of it was not observed by any surviving remove of it (a remove observes the
 * adds in its causal past: what its region had applied when it ran). Concurrent add and remove:
 * the add wins.
 */
import { setMembers } from '../../core/crdt.js';
import { seqOf } from '../../core/version.js';
import { docId, type History, type LocalChange, survivingVersion, type Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER, splitDocId } from './types.js';

interface SetOp {
  change: LocalChange;
  kind: 'add' | 'remove' | 'clear';
  members: string[];
}

/**
 * The members a sequence of set operations must leave, by the add-wins specification. `bound`
 * picks each remove's causal past: the exact one, or its upper bound where a snapshot merged in the
 * same commit leaves it uncertain (a larger past observes more adds, so it leaves fewer members).
 */
export function expectedMembers(ops: readonly SetOp[], bound: 'exact' | 'max' = 'exact'): string[] {
  const adds = ops.filter((o) => o.kind === 'add');
  const removes = ops.filter((o) => o.kind !== 'add');
  const out = new Set<string>();
  for (const a of adds) {
    for (const m of a.members) {
      if (out.has(m)) continue;
      const killed = removes.some((r) => {
        const past = (bound === 'max' ? r.change.causalPastMax : undefined) ?? r.change.causalPast ?? {};
        return (r.kind === 'clear' || r.members.includes(m)) && a.change.seq <= seqOf(past, a.change.origin);
      });
      if (!killed) out.add(m);
    }
  }
  return [...out].sort();
}

export const sets: Checker = {
  name: 'sets',
  guarantee:
    'a set holds exactly the members with an add that no remove observed (add wins over a concurrent remove)',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const setColls = new Set(h.collections.filter((c) => c.policy === 'set').map((c) => c.name));
    const surviving = survivingVersion(h);
    const byKey = new Map<string, SetOp[]>();
    for (const [origin, list] of h.changes) {
      const upTo = seqOf(surviving, origin);
      for (const c of list) {
        if (!c || c.seq > upTo || !setColls.has(c.collection) || c.delta.t !== 'set') continue;
        const op = c.op !== undefined ? h.ops[c.op] : undefined;
        let setOp: SetOp;
        if (op && (op.kind === 'add' || op.kind === 'remove'))
          setOp = { change: c, kind: op.kind, members: op.members ?? [] };
        else if (op && op.kind === 'clear') setOp = { change: c, kind: 'clear', members: [] };
        else setOp = { change: c, kind: 'add', members: Object.keys(c.delta.adds) }; // unmatched: read the intent from the delta
        const id = docId(c.collection, c.key);
        let a = byKey.get(id);
        if (!a) {
          a = [];
          byKey.set(id, a);
        }
        a.push(setOp);
      }
    }
    const ids = new Set(byKey.keys());
    for (const f of h.final) for (const id of f.docs.keys()) if (setColls.has(splitDocId(id)[0])) ids.add(id);
    for (const id of [...ids].sort()) {
      const ops = byKey.get(id) ?? [];
      const want = expectedMembers(ops);
      // Uncertain causal pasts (rare): any outcome between the two bounds is allowed.
      const atLeast = ops.some((o) => o.change.causalPastMax) ? expectedMembers(ops, 'max') : want;
      const [collection, key] = splitDocId(id);
      for (const f of h.final) {
        const st = f.docs.get(id)?.state;
        const got = st?.t === 'set' ? setMembers(st) : [];
        const ok =
          atLeast === want
            ? got.join(',') === want.join(',')
            : atLeast.every((m) => got.includes(m)) && got.every((m) => want.includes(m));
        if (!ok) {
          out.push({
            checker: 'sets',
            message: `${collection}/${key} in ${f.region} holds [${got.join(', ')}]; add-wins over its ${ops.length} operations gives [${want.join(', ')}]`,
            atMs: h.endAtMs,
            collection,
            key,
            ops: ops
              .map((o) => o.change.op)
              .filter((x): x is number => x !== undefined)
              .slice(-6),
          });
          if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
        }
      }
    }
    return out;
  },
};
