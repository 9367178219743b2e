/**
 * Sync durability: a write confirmed under sync replication survives the loss of any one region.
 * When it is confirmed, at least acks + 1 regions (the origin and the acknowledging peers) must hold
 * it durably; and when a region was lost for good, every confirmed sync write is still there.
 */
import { requiredAcks } from '../../core/collection.js';
import { seqOf } from '../../core/version.js';
import { type History, survivingVersion, type Violation } from '../history.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER } from './types.js';

export const syncDurability: Checker = {
  name: 'sync-durability',
  guarantee: 'a confirmed sync write is durable in enough regions to survive the loss of any one region',
  check(h: History): Violation[] {
    const out: Violation[] = [];
    const specs = new Map(h.collections.filter((c) => c.replication.mode === 'sync').map((c) => [c.name, c]));
    const surviving = survivingVersion(h);
    for (const op of h.ops) {
      const spec = specs.get(op.collection);
      if (!spec || op.kind === 'get' || op.result !== 'ok') continue;
      const need = requiredAcks(spec, h.regions) + 1;
      if (!op.change) {
        out.push({
          checker: 'sync-durability',
          message: `op #${op.id} (${op.collection}/${op.key}) was confirmed but no region committed it`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      } else if ((op.holdersAtAck?.length ?? 0) < need) {
        out.push({
          checker: 'sync-durability',
          message: `op #${op.id} (${op.collection}/${op.key}, ${op.change.origin} seq ${op.change.seq}) was confirmed when only [${(op.holdersAtAck ?? []).join(', ')}] held it durably; ${need} regions must`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      } else if (
        h.lost.size > 0 &&
        h.final.length > 0 &&
        op.change.seq > seqOf(surviving, op.change.origin)
      ) {
        out.push({
          checker: 'sync-durability',
          message: `op #${op.id} (${op.collection}/${op.key}) was confirmed, yet no live region has ${op.change.origin} seq ${op.change.seq} after losing ${[...h.lost.keys()].join(', ')}`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      }
      if (out.length >= MAX_VIOLATIONS_PER_CHECKER) return out;
    }
    return out;
  },
};
