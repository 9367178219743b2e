/**
 * Read validity: every value a read returns was written by someone. A register read returns the
 * value of a committed write of that very key; a counter read returns a sum the committed
 * increments can make (each origin's share is one of the running totals it committed: exactly
 * while a counter has few, else within the range they span); a set read
 * lists only members some committed change added to that set. A value nobody committed (a dirty
 * read of a write that was then lost, or another key's value) is a violation, whoever reads it.
 */
import type { History, LocalChange, OpRecord, Violation } from '../history.js';
import { registerWrites } from './sessions.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER, stableJson } from './types.js';

/** Per counter document and origin: every running total (p and n) the origin committed. */
interface CounterShares {
  p: Map<string, Set<number>>;
  n: Map<string, Set<number>>;
  /** How reads of the document are judged, worked out at its first read: the range, and the exact sums of each side when few. */
  judged?: { min: number; max: number; p?: bigint; n?: bigint };
}

/**
 * Sums reachable by picking one committed total (or none) per origin, as a bit mask over 0..max
 * (bit s set: s is reachable). Shifting a BigInt keeps this linear in the totals, not quadratic.
 */
function reachable(shares: Map<string, Set<number>>): bigint {
  let reach = 1n;
  for (const o of [...shares.keys()].sort()) {
    let next = reach;
    for (const v of shares.get(o)!) if (v > 0 && Number.isSafeInteger(v)) next |= reach << BigInt(v);
    reach = next;
  }
  return reach;
}

/** Above this many committed totals for one counter, the exact sums cost more than they find. */
const EXACT_TOTALS_MAX = 256;

/**
 * Whether some p sum minus some n sum equals `value`. Exact while the counter has few committed
 * totals; beyond that, within the range they span (running totals grow by small steps, so their
 * sums leave few gaps, and the range is where a read of an unwritten increment shows).
 */
function canSum(s: CounterShares, value: number): boolean {
  if (!s.judged) {
    let count = 0;
    let maxP = 0;
    let maxN = 0;
    for (const vs of s.p.values()) {
      count += vs.size;
      maxP += Math.max(0, ...vs);
    }
    for (const vs of s.n.values()) {
      count += vs.size;
      maxN += Math.max(0, ...vs);
    }
    s.judged =
      count > EXACT_TOTALS_MAX
        ? { min: -maxN, max: maxP }
        : { min: -maxN, max: maxP, p: reachable(s.p), n: reachable(s.n) };
  }
  const j = s.judged;
  if (value < j.min || value > j.max) return false;
  if (j.p === undefined || j.n === undefined) return true;
  for (let m = 0, rest = j.n; rest !== 0n; m++, rest >>= 1n) {
    if ((rest & 1n) === 1n && value + m >= 0 && ((j.p >> BigInt(value + m)) & 1n) === 1n) return true;
  }
  return false;
}

function violation(op: OpRecord, detail: string): Violation {
  return {
    checker: 'read-validity',
    message: `op #${op.id} (session ${op.session}) read ${op.collection}/${op.key} at ${op.region}: ${detail}`,
    atMs: op.endAtMs,
    collection: op.collection,
    key: op.key,
    ops: [op.id],
  };
}

export const readValidity: Checker = {
  name: 'read-validity',
  guarantee: 'every value a read returns was written to that key by a committed write',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const policy = new Map(h.collections.map((c) => [c.name, c.policy]));
    const reads = h.ops.filter((op) => op.kind === 'get' && op.result === 'ok' && op.answer !== undefined);
    if (reads.length === 0) return out;
    const regValues = registerWrites(h);
    // Counters and sets: indexed per document from the committed changes, only when read.
    const counters = new Map<string, CounterShares>();
    const setAdds = new Map<string, Set<string>>();
    for (const list of h.changes.values()) {
      for (const c of list as (LocalChange | undefined)[]) {
        if (!c) continue;
        const d = c.delta;
        if (d.t === 'counter') {
          const id = `${c.collection}\u0000${c.key}`;
          let s = counters.get(id);
          if (!s) {
            s = { p: new Map(), n: new Map() };
            counters.set(id, s);
          }
          for (const [side, totals] of [
            [s.p, d.p],
            [s.n, d.n],
          ] as const) {
            for (const [origin, v] of Object.entries(totals)) {
              let vs = side.get(origin);
              if (!vs) {
                vs = new Set();
                side.set(origin, vs);
              }
              vs.add(v);
            }
          }
        } else if (d.t === 'set') {
          const id = `${c.collection}\u0000${c.key}`;
          let s = setAdds.get(id);
          if (!s) {
            s = new Set();
            setAdds.set(id, s);
          }
          for (const m of Object.keys(d.adds)) s.add(m);
        }
      }
    }
    for (const op of reads) {
      const p = policy.get(op.collection);
      const a = op.answer;
      let problem: string | undefined;
      if (p === 'lww' || p === 'pinned') {
        const w = typeof a === 'string' ? regValues.get(a) : undefined;
        if (!w) problem = `it returned ${stableJson(a)}, which no committed write produced`;
        else if (w.collection !== op.collection || w.key !== op.key)
          problem = `it returned ${JSON.stringify(a)}, written to ${w.collection}/${w.key} (${w.hlc}@${w.origin}), not to this key`;
      } else if (p === 'counter') {
        const s = counters.get(`${op.collection}\u0000${op.key}`) ?? { p: new Map(), n: new Map() };
        if (typeof a !== 'number' || !Number.isSafeInteger(a) || !canSum(s, a))
          problem = `it returned ${stableJson(a)}, a value no combination of committed increments makes`;
      } else if (p === 'set') {
        const added = setAdds.get(`${op.collection}\u0000${op.key}`);
        const strange = Array.isArray(a) ? a.filter((m) => typeof m !== 'string' || !added?.has(m)) : [a];
        if (strange.length > 0)
          problem = `it returned ${stableJson(a)}; no committed change added ${stableJson(strange)} to this set`;
      }
      if (problem) {
        out.push(violation(op, problem));
        if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
      }
    }
    return out;
  },
};
