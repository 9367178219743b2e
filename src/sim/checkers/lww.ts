/** LWW: every region picks the same winner for a register, the write with the greatest HLC (ties by region id). */
import { holders } from '../../core/collection.js';
import { seqOf } from '../../core/version.js';
import { docId, type History, type LocalChange, survivingVersion, type Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER, regOrder, splitDocId } from './types.js';

export const lww: Checker = {
  name: 'lww',
  guarantee:
    'every live region holds, for each register, the surviving write with the greatest (HLC, region id)',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const regCollections = new Map(
      h.collections.filter((c) => c.policy === 'lww' || c.policy === 'pinned').map((c) => [c.name, c]),
    );
    const surviving = survivingVersion(h);
    const best = new Map<string, LocalChange>();
    for (const [origin, list] of h.changes) {
      const upTo = seqOf(surviving, origin);
      for (const c of list) {
        if (!c || c.seq > upTo || !regCollections.has(c.collection)) continue;
        const id = docId(c.collection, c.key);
        const cur = best.get(id);
        if (!cur || regOrder(c, cur) > 0) best.set(id, c);
      }
    }
    for (const [id, want] of [...best].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [collection, key] = splitDocId(id);
      const spec = regCollections.get(collection)!;
      for (const f of h.final) {
        if (!holders(spec, h.regions).includes(f.region)) continue;
        const d = f.docs.get(id);
        const st = d?.state;
        if (st?.t !== 'reg' || st.hlc !== want.hlc || st.origin !== want.origin) {
          out.push({
            checker: 'lww',
            message: `${collection}/${key} in ${f.region} holds ${st?.t === 'reg' ? `${st.hlc}@${st.origin}` : 'nothing'}; the greatest write is ${want.hlc}@${want.origin} (seq ${want.seq})`,
            atMs: h.endAtMs,
            collection,
            key,
            ...(want.op !== undefined ? { ops: [want.op] } : {}),
          });
          if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
        }
      }
    }
    return out;
  },
};
