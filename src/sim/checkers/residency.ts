/**
 * Residency: nothing about a resident collection (a document, a change, a kv record about it such
 * as a stored answer) is ever stored in, or sent to, a region outside its set, under any fault.
 * Messages and commits are inspected as they happen; the final documents, logs and kv records of
 * every region and every answered request are checked at the end.
 */
import type { Change, KvEntry } from '../../core/change.js';
import type { CommitBatch, KvRecord } from '../../core/store.js';
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

/**
 * The resident collection a kv record is about, when `region` may not hold it: the one the record
 * names, or the one its value names (the simulator's records carry their document's collection in
 * the value, so a record that lost its `collection` is still recognised).
 */
function kvOutside(
  res: Map<string, RegionId[]>,
  r: KvRecord | KvEntry,
  region: RegionId,
): { collection: string; allowed: RegionId[] } | undefined {
  const v = r.value;
  const named = [r.collection];
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.collection === 'string') {
    named.push(v.collection);
  }
  for (const c of named) {
    if (c === undefined) continue;
    const allowed = outsideOf(res, c, region);
    if (allowed) return { collection: c, allowed };
  }
  return undefined;
}

/** The kv entries a change carries (with its document's, or on their own). */
function kvOf(c: Change): readonly KvEntry[] {
  const p = c.payload;
  return p.kind === 'doc' ? (p.kv ?? []) : p.kind === 'kv' ? p.entries : [];
}

function kvBreach(
  h: History,
  what: string,
  r: KvRecord | KvEntry,
  hit: { collection: string; allowed: RegionId[] },
  atMs: number,
): void {
  breach(h, {
    checker: 'residency',
    message: `${what} kv record ${r.ns}/${r.key} about ${hit.collection}; it may live only in ${hit.allowed.join(', ')}`,
    atMs,
    collection: hit.collection,
  });
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
      for (const e of kvOf(c)) {
        const hit = kvOutside(res, e, env.to);
        if (hit) kvBreach(h, `${env.from} sent ${env.to} (${c.origin} seq ${c.seq}) the`, e, hit, nowMs);
      }
    }
  } else if (m.type === 'snapshot') {
    for (const r of m.snapshot.kv) {
      const hit = kvOutside(res, r, env.to);
      if (hit) kvBreach(h, `${env.from} sent ${env.to} a snapshot holding the`, r, hit, nowMs);
    }
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
  for (const r of batch.kv) {
    const hit = kvOutside(res, r, region);
    if (hit) kvBreach(h, `${region} stored the`, r, hit, nowMs);
  }
  for (const c of batch.changes) {
    for (const e of kvOf(c)) {
      const hit = kvOutside(res, e, region);
      if (hit) kvBreach(h, `${region} logged (${c.origin} seq ${c.seq}) the`, e, hit, nowMs);
    }
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
      for (const r of f.kv()) {
        const hit = kvOutside(res, r, f.region);
        if (hit && out.length < MAX_VIOLATIONS_PER_CHECKER) {
          out.push({
            checker: 'residency',
            message: `${f.region} holds kv record ${r.ns}/${r.key} about ${hit.collection} at the end; it may live only in ${hit.allowed.join(', ')}`,
            atMs: h.endAtMs,
            collection: hit.collection,
          });
        }
      }
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
