/** Convergence: after healing and quiescence, every live region holds identical state. */
import { holders } from '../../core/collection.js';
import { versionsEqual } from '../../core/version.js';
import type { History, Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER, sameJson, splitDocId, stableJson } from './types.js';

export const convergence: Checker = {
  name: 'convergence',
  guarantee: 'after healing and quiescence, every live region holds identical state',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const at = h.endAtMs;
    if (!h.quiesced) {
      out.push({
        checker: 'convergence',
        message: `live regions did not reach the same version after healing: ${h.final
          .map((f) => `${f.region}=${JSON.stringify(f.applied)}`)
          .join(' ')}`,
        atMs: at,
      });
    }
    const [first, ...rest] = h.final;
    if (!first) return out;
    for (const f of rest) {
      if (!versionsEqual(first.applied, f.applied)) {
        out.push({
          checker: 'convergence',
          message: `${f.region} applied ${JSON.stringify(f.applied)} but ${first.region} applied ${JSON.stringify(first.applied)}`,
          atMs: at,
        });
      }
    }
    for (const spec of h.collections) {
      const regions = h.final.filter((f) => holders(spec, h.regions).includes(f.region));
      if (regions.length < 2) continue;
      const ids = new Set<string>();
      for (const f of regions)
        for (const id of f.docs.keys()) if (id.startsWith(`${spec.name}\u0000`)) ids.add(id);
      for (const id of [...ids].sort()) {
        const docs = regions.map((f) => f.docs.get(id));
        const first = docs[0];
        const same = docs.every(
          (d) =>
            d === first ||
            (d && first && sameJson(d.state, first.state) && sameJson(d.version, first.version)),
        );
        if (!same) {
          const states = docs.map((d) => (d ? stableJson({ state: d.state, version: d.version }) : 'absent'));
          const [collection, key] = splitDocId(id);
          out.push({
            checker: 'convergence',
            message: `${collection}/${key} differs between live regions: ${regions
              .map((f, i) => `${f.region}=${states[i]}`)
              .join(' ; ')}`,
            atMs: at,
            collection,
            key,
          });
          if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
        }
      }
    }
    return out;
  },
};
