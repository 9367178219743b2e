/**
 * Residency: no document or change of a resident collection is ever stored in, or sent to, a
 * region outside its set, under any fault. Messages and commits are inspected as they happen;
 * the final stores and every answered request are checked at the end.
 */
import type { Change } from '../../core/change.js';
import type { CommitBatch } from '../../core/store.js';
import type { RegionId } from '../../core/types.js';
import type { History, Violation } from '../history.js';
import type { Envelope } from '../network.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER } from './types.js';

const cache = new WeakMap<History, Map<string, RegionId[]>>();

function residencies(h: History): Map<string, RegionId[]> {
  let m = cache.get(h);
  if (!m) {
    m = new Map(h.collections.filter((c) => c.residency).map((c) => [c.name, c.residency!]));
    cache.set(h, m);
  }
  return m;
}

function breach(h: History, v: Violation): void {
  if (h.residencyBreaches.length < MAX_VIOLATIONS_PER_CHECKER) h.residencyBreaches.push(v);
}

function outside(h: History, collection: string, region: RegionId): RegionId[] | undefined {
  const allowed = residencies(h).get(collection);
  return allowed && !allowed.includes(region) ? allowed : undefined;
}

function changeBreach(h: History, c: Change, region: RegionId): RegionId[] | undefined {
  return c.payload.kind === 'doc' ? outside(h, c.payload.collection, region) : undefined;
}

/** Every message leaving a region passes here. */
export function inspectMessage(h: History, env: Envelope, nowMs: number): void {
  const m = env.msg;
  if (residencies(h).size === 0) return;
  if (m.type === 'changes') {
    for (const c of m.changes) {
      const allowed = changeBreach(h, c, env.to);
      if (allowed && c.payload.kind === 'doc') {
        breach(h, {
          checker: 'residency',
          message: `${env.from} sent ${env.to} a change of ${c.payload.collection}/${c.payload.key} (${c.origin} seq ${c.seq}); it may live only in ${allowed.join(', ')}`,
          atMs: nowMs,
          collection: c.payload.collection,
          key: c.payload.key,
        });
      }
    }
  } else if (m.type === 'snapshot') {
    for (const d of m.snapshot.docs) {
      const allowed = outside(h, d.collection, env.to);
      if (allowed) {
        breach(h, {
          checker: 'residency',
          message: `${env.from} sent ${env.to} a snapshot holding ${d.collection}/${d.key}; it may live only in ${allowed.join(', ')}`,
          atMs: nowMs,
          collection: d.collection,
          key: d.key,
        });
      }
    }
  }
}

/** Every batch a region writes to its disk passes here. */
export function inspectCommit(h: History, region: RegionId, batch: CommitBatch, nowMs: number): void {
  if (residencies(h).size === 0) return;
  for (const d of batch.docs) {
    const allowed = outside(h, d.collection, region);
    if (allowed) {
      breach(h, {
        checker: 'residency',
        message: `${region} stored ${d.collection}/${d.key}; it may live only in ${allowed.join(', ')}`,
        atMs: nowMs,
        collection: d.collection,
        key: d.key,
      });
    }
  }
  for (const c of batch.changes) {
    const allowed = changeBreach(h, c, region);
    if (allowed && c.payload.kind === 'doc') {
      breach(h, {
        checker: 'residency',
        message: `${region} logged a change of ${c.payload.collection}/${c.payload.key}; it may live only in ${allowed.join(', ')}`,
        atMs: nowMs,
        collection: c.payload.collection,
        key: c.payload.key,
      });
    }
  }
}

export const residency: Checker = {
  name: 'residency',
  guarantee: 'a resident collection is stored in, sent to and served by its regions only',
  check(h: History): Violation[] {
    const out: Violation[] = [...h.residencyBreaches];
    if (residencies(h).size === 0) return out;
    for (const f of h.final) {
      for (const d of f.docs.values()) {
        const allowed = outside(h, d.collection, f.region);
        if (allowed && out.length < MAX_VIOLATIONS_PER_CHECKER) {
          out.push({
            checker: 'residency',
            message: `${f.region} holds ${d.collection}/${d.key} at the end; it may live only in ${allowed.join(', ')}`,
            atMs: h.endAtMs,
            collection: d.collection,
            key: d.key,
          });
        }
      }
      for (const c of f.log()) {
        if (
          changeBreach(h, c, f.region) &&
          out.length < MAX_VIOLATIONS_PER_CHECKER &&
          c.payload.kind === 'doc'
        ) {
          out.push({
            checker: 'residency',
            message: `${f.region} has a change of ${c.payload.collection}/${c.payload.key} in its log at the end`,
            atMs: h.endAtMs,
            collection: c.payload.collection,
            key: c.payload.key,
          });
        }
      }
    }
    for (const op of h.ops) {
      if (
        op.result === 'ok' &&
        outside(h, op.collection, op.region) &&
        out.length < MAX_VIOLATIONS_PER_CHECKER
      ) {
        out.push({
          checker: 'residency',
          message: `op #${op.id} (${op.kind} ${op.collection}/${op.key}) was served by ${op.region}, outside the residency`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      }
    }
    return out;
  },
};
