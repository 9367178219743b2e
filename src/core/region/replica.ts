/**
 * The replica side of a region: applying peers' changes inside a batch (in order, idempotently,
 * quarantining what cannot be applied), merging a peer's snapshot, what a peer behind our
 * truncated log gets instead of changes, and how far the log may be compacted.
 */
import { type Change, type ChangePayload, withheld } from '../change.js';
import { mergeDoc } from '../crdt.js';
import { decodeHlc, encodeHlc, type HybridClock } from '../hlc.js';
import type { DocRecord, KvRecord, RegionStore, Snapshot } from '../store.js';
import { checkPayload, type StoredValueLimits } from '../stored-value.js';
import type { CollectionSpec, Json, RegionId } from '../types.js';
import { mergeVersions, seqOf, type VersionVector } from '../version.js';
import { type BatchTx, stageChange } from './batch-tx.js';
import type { Residency } from './residency.js';
import {
  type PlantedBugs,
  type PullResult,
  QUARANTINE_NS,
  type QuarantineRecord,
  type RegionEvent,
} from './types.js';

/** What applying peers' changes reads and counts: fixed when the region opens. */
export interface ReplicaContext {
  region: RegionId;
  collections: ReadonlyMap<string, CollectionSpec>;
  residency: Residency;
  limits: StoredValueLimits;
  hlc: HybridClock;
  bugs: PlantedBugs;
  /** The region's counters (shared with its stats). */
  counts: { remoteApplied: number; conflicts: number };
  /** Where a merge reports a conflict (one object per region, not one per merge). */
  mergeOut: { conflict: boolean };
  onEvent: ((e: RegionEvent) => void) | undefined;
}

/** The documents a batch of changes will touch, for an asynchronous store to read together. */
export function docsToRead(tx: BatchTx, changes: readonly Change[]): [string, string][] {
  const docs: [string, string][] = [];
  for (const c of changes) {
    const p = c.payload as ChangePayload | null;
    if (
      p?.kind === 'doc' &&
      typeof p.collection === 'string' &&
      typeof p.key === 'string' &&
      c.seq > tx.seqOf(c.origin)
    ) {
      docs.push([p.collection, p.key]);
    }
  }
  return docs;
}

/**
 * Applies changes from `from` inside a batch; every document they stage must be readable now
 * (`docsToRead`). A change already applied is skipped; a gap stops that origin for this batch.
 * Changes that cannot be applied are quarantined and listed in `quarantined`.
 */
export function applyInTx(
  ctx: ReplicaContext,
  tx: BatchTx,
  from: RegionId,
  changes: readonly Change[],
  now: number,
  quarantined: QuarantineRecord[],
): { applied: number } {
  const blocked = new Set<RegionId>();
  const lags = new Map<RegionId, { count: number; lagMs: number }>();
  let applied = 0;
  for (const c of changes) {
    // An envelope without an origin and a sequence cannot be placed in any log: dropped.
    if (typeof c?.origin !== 'string' || !Number.isSafeInteger(c.seq) || c.seq < 1) continue;
    // Our own changes come back only when our disk lost them (after a wipe or an older copy):
    // they apply like any other, in order, so no sequence number is issued twice.
    if (blocked.has(c.origin)) continue;
    const have = tx.seqOf(c.origin);
    if (c.seq <= have) continue;
    if (c.seq !== have + 1) {
      blocked.add(c.origin);
      continue;
    }
    const why = refusal(ctx, c);
    if (why) {
      quarantineInTx(ctx, tx, from, c, why, now, quarantined);
      continue;
    }
    if (c.payload.kind === 'withheld' && c.payload.allowed.includes(ctx.region)) {
      // We must hold the real change; wait for it from a region that may send it.
      blocked.add(c.origin);
      continue;
    }
    let change = admit(ctx, from, c);
    if (ctx.bugs.dropIncrement && c.payload.kind === 'doc' && c.payload.delta.t === 'counter') {
      change = { ...c, payload: { ...c.payload, delta: { t: 'counter', p: {}, n: {} } } };
    }
    const p = change.payload;
    if (p.kind === 'doc' && !tx.loadNow(p.collection, p.key)) {
      throw new Error(`${p.collection}/${p.key} was not read before applying its change`);
    }
    const t = decodeHlc(c.hlc);
    try {
      ctx.hlc.receive(t);
    } catch (e) {
      // The change is still applied (refusing it would break convergence); only the clock refuses to jump.
      ctx.onEvent?.({ type: 'clock-skew', from: change.origin, message: (e as Error).message });
    }
    const replace = ctx.bugs.lastArrivalWins === true && p.kind === 'doc' && p.delta.t === 'reg';
    if (stageChange(tx, change, ctx.mergeOut, replace) && change.payload.kind === 'doc') {
      ctx.counts.conflicts++;
      ctx.onEvent?.({
        type: 'conflict',
        collection: change.payload.collection,
        key: change.payload.key,
      });
    }
    applied++;
    const l = lags.get(c.origin) ?? { count: 0, lagMs: 0 };
    l.count++;
    l.lagMs = Math.max(0, now - t.wallMs);
    lags.set(c.origin, l);
  }
  ctx.counts.remoteApplied += applied;
  const onEvent = ctx.onEvent;
  if (onEvent) {
    for (const [origin, l] of lags) {
      onEvent({ type: 'applied', from, origin, count: l.count, lagMs: l.lagMs });
    }
  }
  return { applied };
}

/**
 * Defence in depth on apply: a change this region may not hold (a peer that failed to withhold
 * it) is stored as the placeholder it should have been, so the sequence stays contiguous.
 */
function admit(ctx: ReplicaContext, from: RegionId, c: Change): Change {
  const allowed = ctx.residency.of(c);
  if (!allowed || allowed.includes(ctx.region)) return c;
  const p = c.payload;
  const records = p.kind === 'doc' ? 1 + (p.kv?.length ?? 0) : p.kind === 'kv' ? p.entries.length : 0;
  ctx.onEvent?.({ type: 'residency-refused', from, origin: c.origin, seq: c.seq, records });
  return withheld(c, allowed);
}

/**
 * Why this region cannot apply a peer's change, or undefined. `storable`: the change itself can
 * be kept (in the log and the quarantine record); false for one malformed or unbounded.
 */
function refusal(ctx: ReplicaContext, c: Change): { reason: string; storable: boolean } | undefined {
  if (!isHlc(c.hlc)) return { reason: 'malformed HLC', storable: false };
  try {
    checkPayload(c.payload, ctx.limits);
  } catch (e) {
    return { reason: (e as Error).message, storable: false };
  }
  const p = c.payload;
  if (p.kind !== 'doc') return undefined;
  const spec = ctx.collections.get(p.collection);
  if (!spec) return { reason: `unknown collection '${p.collection}'`, storable: true };
  const t = spec.policy === 'counter' ? 'counter' : spec.policy === 'set' ? 'set' : 'reg';
  if (p.delta.t !== t) {
    return {
      reason: `a '${p.delta.t}' change to '${p.collection}', a ${spec.policy} collection`,
      storable: true,
    };
  }
  return undefined;
}

/**
 * Skips over a change that cannot be applied: the applied version moves past it (replication
 * goes on), the log keeps it (or, unstorable or not ours to hold, a placeholder) so the sequence
 * stays contiguous for peers relaying through us, and QUARANTINE_NS keeps it for an operator.
 */
function quarantineInTx(
  ctx: ReplicaContext,
  tx: BatchTx,
  from: RegionId,
  c: Change,
  refusal: { reason: string; storable: boolean },
  now: number,
  out: QuarantineRecord[],
): void {
  const hlc = refusal.storable ? c.hlc : encodeHlc(ctx.hlc.now());
  const rec: QuarantineRecord = {
    from,
    origin: c.origin,
    seq: c.seq,
    hlc,
    reason: refusal.reason,
    atMs: now,
  };
  let logged: Change = { origin: c.origin, seq: c.seq, hlc, payload: { kind: 'withheld', allowed: [] } };
  let collection: string | undefined;
  if (refusal.storable) {
    const allowed = ctx.residency.of(c);
    if (allowed && !allowed.includes(ctx.region)) logged = withheld(c, allowed);
    else {
      logged = c;
      rec.payload = c.payload as unknown as Json;
      if (c.payload.kind === 'doc') {
        rec.collection = c.payload.collection;
        rec.key = c.payload.key;
        if (ctx.collections.has(rec.collection)) collection = rec.collection;
      }
    }
  }
  tx.changes.push(logged);
  tx.dirty = true;
  tx.advance(c.origin, c.seq);
  const kv: KvRecord = {
    ns: QUARANTINE_NS,
    key: `${c.origin}/${String(c.seq).padStart(16, '0')}`,
    value: rec as unknown as Json,
    hlc,
  };
  if (collection !== undefined) kv.collection = collection;
  tx.kv.push(kv);
  out.push(rec);
}

/** The quarantine record of a change of our log that could not be serialised for `peer`. */
export function unsendableRecord(
  ctx: ReplicaContext,
  peer: RegionId,
  c: Change,
  reason: string,
  nowMs: number,
): { rec: QuarantineRecord; kv: KvRecord } {
  const rec: QuarantineRecord = {
    from: ctx.region,
    origin: c.origin,
    seq: c.seq,
    hlc: c.hlc,
    reason: `not sent to ${peer}: ${reason}`,
    atMs: nowMs,
  };
  if (c.payload.kind === 'doc') {
    rec.collection = c.payload.collection;
    rec.key = c.payload.key;
  }
  const kv: KvRecord = {
    ns: QUARANTINE_NS,
    key: `${c.origin}/${String(c.seq).padStart(16, '0')}/${peer}`,
    value: rec as unknown as Json,
    hlc: c.hlc,
  };
  if (rec.collection !== undefined && ctx.collections.has(rec.collection)) kv.collection = rec.collection;
  return { rec, kv };
}

/**
 * Whether a peer that has applied `have` is behind our truncated log (it needs a snapshot). Per
 * origin the log is cut no further than we applied: a snapshot's truncation is written before its
 * commit, and when that commit fails the mark stays ahead of what we hold. A peer at or past our
 * applied version needs nothing of that origin from us; asking it to take a snapshot that cannot
 * reach the mark sent snapshot after snapshot (seed 20017 of --faults random, 5 regions, sets).
 */
export function needsSnapshot(
  have: VersionVector,
  truncated: VersionVector,
  applied: VersionVector,
): boolean {
  for (const origin in truncated) {
    if (!Object.hasOwn(truncated, origin)) continue;
    const cut = Math.min(truncated[origin]!, seqOf(applied, origin));
    if (seqOf(have, origin) < cut) return true;
  }
  return false;
}

/** Our snapshot as `peer` may receive it: resident collections outside its regions left out. */
export function snapshotForPeer(residency: Residency, snap: Snapshot, peer: RegionId): PullResult {
  const omitted = residency.omittedFor(peer);
  const docs = snap.docs.filter((d) => !omitted.includes(d.collection));
  // Stored idempotency answers hold the documents they answered with: they stay home too.
  const kv = snap.kv.filter((r) => residency.mayHold(r.collection, peer));
  return { kind: 'snapshot', snapshot: { ...snap, docs, kv }, omittedCollections: omitted };
}

/**
 * Merges a peer's snapshot (already filtered to what this region may hold) into a batch: every
 * document state merges as a CRDT, and the applied version advances. The log range the snapshot
 * covers, which our log will never hold, is truncated in the store before the commit (so no crash
 * leaves a silent hole) and handed to `truncated` for the region's truncated version.
 */
export async function mergeSnapshotInTx(
  tx: BatchTx,
  store: RegionStore,
  docs: readonly DocRecord[],
  kv: readonly KvRecord[],
  snapApplied: VersionVector,
  truncated: (holes: Record<RegionId, number>) => void,
): Promise<undefined> {
  for (const d of docs) {
    const cur = await tx.getDoc(d.collection, d.key);
    const state = cur ? mergeDoc(cur.state, d.state).state : d.state;
    tx.putDoc({ ...d, state, version: mergeVersions(cur?.version ?? {}, d.version) });
  }
  tx.kv.push(...kv);
  // A peer behind that range then gets a snapshot from us instead of a log with a gap it would
  // wait on forever.
  const holes: Record<RegionId, number> = {};
  // Our own origin too: a region recovering its own changes from a snapshot (its disk was
  // wiped) holds none of them in its log either.
  for (const [origin, seq] of Object.entries(snapApplied)) {
    if (seq > seqOf(tx.applied, origin)) holes[origin] = seq;
  }
  if (Object.keys(holes).length > 0) {
    await store.truncateLog(holes);
    truncated(holes);
  }
  tx.applied = mergeVersions(tx.applied, snapApplied);
  tx.dirty = true;
  return undefined;
}

/**
 * Where to cut the log: per origin, `keep` entries before what we applied, and (unless `force`)
 * no further than every peer acknowledged; only origins cut further than `truncated` are listed.
 */
export function compactionCut(
  applied: VersionVector,
  truncated: VersionVector,
  peers: readonly RegionId[],
  ackedBy: (peer: RegionId) => VersionVector | undefined,
  keep: number,
  force: boolean,
): Record<RegionId, number> {
  const upTo: Record<RegionId, number> = {};
  for (const [origin, seq] of Object.entries(applied)) {
    let cut = seq - keep;
    if (!force) {
      for (const peer of peers) cut = Math.min(cut, seqOf(ackedBy(peer) ?? {}, origin));
    }
    if (cut > seqOf(truncated, origin)) upTo[origin] = cut;
  }
  return upTo;
}

function isHlc(s: unknown): boolean {
  try {
    decodeHlc(s as string);
    return true;
  } catch {
    return false;
  }
}
