/**
 * Counters: the final value is the sum of the acknowledged increments plus some subset of the
 * indefinite ones (504, or no answer). Checked per origin region, which is stricter than the total:
 * each region's share must be explained by the increments made there. Acknowledged increments of
 * a region lost for good that never left it are the async RPO (figures), not a violation.
 */
import { seqOf } from '../../core/version.js';
import { type History, survivingVersion, type Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER } from './types.js';

/** Whether some subset of `items` sums to exactly `target`. */
export function subsetSums(items: readonly number[], target: number): boolean {
  let reach = new Set<number>([0]);
  for (const x of items) {
    const next = new Set(reach);
    for (const s of reach) next.add(s + x);
    reach = next;
    if (reach.size > 100_000) return true; // too many to decide; accept rather than guess
  }
  return reach.has(target);
}

export const counters: Checker = {
  name: 'counters',
  guarantee:
    'a counter equals its acknowledged increments plus some subset of the indefinite ones; none is lost',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const counterColls = new Set(h.collections.filter((c) => c.policy === 'counter').map((c) => c.name));
    const surviving = survivingVersion(h);
    // key -> origin -> { acked sum, indefinite amounts, evidence ops }
    const byKey = new Map<string, Map<string, { acked: number; maybe: number[]; ops: number[] }>>();
    for (const op of h.ops) {
      if (op.kind !== 'increment' || !counterColls.has(op.collection)) continue;
      if (op.result !== 'ok' && op.result !== 'indefinite') continue;
      const origin = op.change?.origin ?? op.region;
      if (op.result === 'ok' && op.change && h.lost.has(origin) && op.change.seq > seqOf(surviving, origin)) {
        continue; // lost with its region: RPO
      }
      const id = `${op.collection}\u0000${op.key}`;
      let m = byKey.get(id);
      if (!m) {
        m = new Map();
        byKey.set(id, m);
      }
      let e = m.get(origin);
      if (!e) {
        e = { acked: 0, maybe: [], ops: [] };
        m.set(origin, e);
      }
      if (op.result === 'ok') e.acked += op.by ?? 0;
      else e.maybe.push(op.by ?? 0);
      e.ops.push(op.id);
    }
    const ids = new Set<string>(byKey.keys());
    for (const f of h.final)
      for (const id of f.docs.keys()) if (counterColls.has(id.split('\u0000')[0]!)) ids.add(id);
    for (const id of [...ids].sort()) {
      const [collection, key] = id.split('\u0000') as [string, string];
      const expected = byKey.get(id) ?? new Map();
      for (const f of h.final) {
        const st = f.docs.get(id)?.state;
        const p = st?.t === 'counter' ? st.p : {};
        const n = st?.t === 'counter' ? st.n : {};
        const origins = new Set([...Object.keys(p), ...Object.keys(n), ...expected.keys()]);
        for (const origin of [...origins].sort()) {
          const got = (p[origin] ?? 0) - (n[origin] ?? 0);
          const e = expected.get(origin) ?? { acked: 0, maybe: [], ops: [] };
          const extra = got - e.acked;
          if (extra < 0 || !subsetSums(e.maybe, extra)) {
            out.push({
              checker: 'counters',
              message: `${collection}/${key} in ${f.region}: the share of ${origin} is ${got}, but its acknowledged increments sum to ${e.acked} and the ${e.maybe.length} indefinite ones (${e.maybe.join('+') || 'none'}) cannot make up ${extra}`,
              atMs: h.endAtMs,
              collection,
              key,
              ops: e.ops.slice(-5),
            });
            if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
          }
        }
      }
    }
    return out;
  },
};
