/**
 * Residency: no document or change of a resident collection is ever stored in, or sent to, a
 * region outside its set, under any fault. Messages and commits are inspected as they happen;
 * the final stores and every answered request are checked at the end.
 */
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

/**
 * The regions a collection is resident in, when `region` is not one of them. The caller looks the
 * residencies up once: the hooks below see every message and every commit.
 */
function outsideOf(
  res: Map<string, RegionId[]>,
  collection: string,
  region: RegionId,
): RegionId[] | undefined {
  const allowed = res.get(collection);
  return allowed && !allowed.includes(region) ? allowed : undefined;
}

/** Every message leaving a region passes here. */
export function inspectMessage(h: History, env: Envelope, nowMs: number): void {
  const m = env.msg;
  const res = residencies(h);
  if (res.size === 0) return;
  if (m.type === 'changes') {
    for (const c of m.changes) {
      const allowed = c.payload.kind === 'doc' ? outsideOf(res, c.payload.collection, env.to) : undefined;
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
      const allowed = outsideOf(res, d.collection, env.to);
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
  const res = residencies(h);
  if (res.size === 0) return;
  for (const d of batch.docs) {
    const allowed = outsideOf(res, d.collection, region);
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
    const allowed = c.payload.kind === 'doc' ? outsideOf(res, c.payload.collection, region) : undefined;
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
    const res = residencies(h);
    if (res.size === 0) return out;
    for (const f of h.final) {
      for (const d of f.docs.values()) {
        const allowed = outsideOf(res, d.collection, f.region);
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
          c.payload.kind === 'doc' &&
          outsideOf(res, c.payload.collection, f.region) &&
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
        outsideOf(res, op.collection, op.region) &&
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
