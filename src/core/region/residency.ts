/**
 * Residency of replicated data: which regions may hold a change, a snapshot's documents and kv
 * records; a change goes to a region outside them only as a placeholder (`withheld`).
 */
import { type Change, type KvEntry, withheld } from '../change.js';
import type { CollectionSpec, RegionId } from '../types.js';
import type { PlantedBugs } from './types.js';

export class Residency {
  constructor(
    private readonly collections: ReadonlyMap<string, CollectionSpec>,
    private readonly bugs: PlantedBugs,
  ) {}

  /**
   * The regions that may hold a change, when it holds a resident collection's data: its document's
   * collection and every kv entry naming one (all of them must allow the region). Undefined: any.
   */
  of(c: Change): RegionId[] | undefined {
    const p = c.payload;
    if (p.kind === 'withheld') return undefined;
    let allowed: RegionId[] | undefined;
    let kv: KvEntry[] | undefined;
    if (p.kind === 'doc') {
      allowed = this.collections.get(p.collection)?.residency;
      kv = p.kv;
    } else kv = p.entries;
    if (kv === undefined || this.bugs.leakResidentKv) return allowed;
    for (const e of kv) {
      const r = e.collection === undefined ? undefined : this.collections.get(e.collection)?.residency;
      if (r) allowed = allowed ? allowed.filter((x) => r.includes(x)) : r;
    }
    return allowed;
  }

  /**
   * Filters one change for a peer: a change holding a resident collection's data (its document, or
   * a kv record about it) becomes a placeholder outside its regions.
   */
  forPeer(c: Change, peer: RegionId): Change {
    const allowed = this.of(c);
    return allowed && !allowed.includes(peer) && !this.bugs.leakResidentChanges ? withheld(c, allowed) : c;
  }

  /** Whether `region` may hold data about `collection` (undefined: data about no collection). */
  mayHold(collection: string | undefined, region: RegionId): boolean {
    if (collection === undefined || this.bugs.leakResidentKv) return true;
    const r = this.collections.get(collection)?.residency;
    return !r || r.includes(region);
  }

  /** The resident collections `region` may not hold (left out of a snapshot sent to it). */
  omittedFor(region: RegionId): string[] {
    return [...this.collections.values()]
      .filter((c) => c.residency && !c.residency.includes(region))
      .map((c) => c.name);
  }
}
