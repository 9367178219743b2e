/**
 * Pinned: a pinned key never has two concurrent writers. Every write of a key comes from its home
 * region and overwrites the one before it (its prevHlc is the previous write's HLC), so the writes
 * form one chain; a write accepted outside the home, or a refusal naming another region, is a breach.
 */
import { encodeHlc, HLC_ZERO } from '../../core/hlc.js';
import { docId, type History, type LocalChange, type Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER, regOrder, splitDocId } from './types.js';

const ZERO = encodeHlc(HLC_ZERO);

export const pinned: Checker = {
  name: 'pinned',
  guarantee:
    'a pinned key is written only in its home region, one write after another (never two concurrent writers)',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const pinnedColls = new Set(h.collections.filter((c) => c.policy === 'pinned').map((c) => c.name));
    for (const op of h.ops) {
      if (!pinnedColls.has(op.collection) || op.kind === 'get' || !op.home) continue;
      if (op.result === 'ok' && op.region !== op.home) {
        out.push({
          checker: 'pinned',
          message: `op #${op.id} wrote ${op.collection}/${op.key} in ${op.region}, but its home is ${op.home}`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      }
      if (op.result === 'refused' && op.errorCode === 'misdirected' && op.replayRegion !== op.home) {
        out.push({
          checker: 'pinned',
          message: `op #${op.id} was refused in ${op.region} with replay to ${op.replayRegion}, but the home of ${op.collection}/${op.key} is ${op.home}`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      }
      if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
    }
    const byKey = new Map<string, LocalChange[]>();
    for (const list of h.changes.values()) {
      for (const c of list) {
        if (!c || !pinnedColls.has(c.collection) || c.delta.t !== 'reg') continue;
        const id = docId(c.collection, c.key);
        const a = byKey.get(id) ?? [];
        a.push(c);
        byKey.set(id, a);
      }
    }
    for (const [id, writes] of [...byKey].sort(([a], [b]) => (a < b ? -1 : 1))) {
      writes.sort(regOrder);
      const [collection, key] = splitDocId(id);
      let prev = ZERO;
      let writer: string | undefined;
      for (const w of writes) {
        if (w.delta.t !== 'reg') continue;
        const problem =
          writer !== undefined && w.origin !== writer
            ? `written by both ${writer} and ${w.origin}`
            : w.delta.prevHlc !== prev
              ? `write ${w.hlc}@${w.origin} (seq ${w.seq}) replaced ${w.delta.prevHlc}, not the previous write ${prev}: a concurrent writer`
              : w.delta.home !== undefined && w.delta.home !== w.origin
                ? `write ${w.hlc} came from ${w.origin} but names home ${w.delta.home}`
                : undefined;
        if (problem) {
          out.push({
            checker: 'pinned',
            message: `${collection}/${key}: ${problem}`,
            atMs: w.committedAtMs,
            collection,
            key,
            ...(w.op !== undefined ? { ops: [w.op] } : {}),
          });
          if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
          break;
        }
        writer = w.origin;
        prev = w.hlc;
      }
    }
    return out;
  },
};
