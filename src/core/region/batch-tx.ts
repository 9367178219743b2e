/**
 * The batch transaction of a group commit: the documents, changes and kv records of one store
 * commit, read through a cache so the mutations of a batch see each other, with a savepoint so a
 * failed mutation leaves nothing behind. Staging a change (local or from a peer) merges it here.
 */
import type { Change, KvEntry } from '../change.js';
import { type DocState, mergeDocInto } from '../crdt.js';
import type { CommitBatch, DocRecord, KvRecord, RegionStore } from '../store.js';
import { checkPayload, checkStoredDoc, checkStoredKv, type StoredValueLimits } from '../stored-value.js';
import type { RegionId } from '../types.js';
import type { VersionVector } from '../version.js';

/** One document as a batch sees it: what the store held (or the batch staged), and whether to write it. */
interface TxDoc {
  doc: DocRecord | undefined;
  touched: boolean;
  /** Already in the batch's list of documents to write (it stays there if a rollback untouches it). */
  listed: boolean;
}

/** The documents and changes of one group commit, read through a cache so ops in a batch see each other. */
export class BatchTx {
  /**
   * The first document the batch touches is held inline (most batches of local writes touch one);
   * further ones go to collection -> key maps (two levels: a lookup builds no composite key string).
   */
  private firstCollection: string | undefined;
  private firstKey: string | undefined;
  private first: TxDoc | undefined;
  private docs: Map<string, Map<string, TxDoc>> | undefined;
  /** Documents to write, in the order they were first staged. */
  private written: TxDoc[] | undefined;
  readonly changes: Change[] = [];
  readonly kv: KvRecord[] = [];
  /** Previous cache states as (entry, doc, touched) triples, so a failed op can be rolled back. */
  private undo: (TxDoc | DocRecord | boolean | undefined)[] | undefined;
  /** Set when the batch has anything to commit (a snapshot merge has no change-log entries). */
  dirty = false;
  private readonly mark: TxMark;
  /**
   * The applied version, copied on write: staging a change advances a batch-private copy in place,
   * and only a version handed out (`applied`) is frozen from further in-place updates. A remote
   * batch of hundreds of changes then copies the vector once, not once per change.
   */
  private appliedNow: Record<RegionId, number>;
  private appliedShared = true;
  constructor(
    private readonly store: RegionStore,
    applied: VersionVector,
  ) {
    this.appliedNow = applied as Record<RegionId, number>;
    this.mark = { undo: 0, changes: 0, kv: 0, applied, dirty: false };
  }

  /** The applied version as an immutable value (later changes in the batch do not alter it). */
  get applied(): VersionVector {
    this.appliedShared = true;
    return this.appliedNow;
  }

  set applied(v: VersionVector) {
    this.appliedNow = v as Record<RegionId, number>;
    this.appliedShared = true;
  }

  /** The batch's applied sequence of one origin, without handing the vector out. */
  seqOf(origin: RegionId): number {
    return this.appliedNow[origin] ?? 0;
  }

  advance(origin: RegionId, seq: number): void {
    if (this.appliedShared) {
      this.appliedNow = { ...this.appliedNow };
      this.appliedShared = false;
    }
    this.appliedNow[origin] = seq;
  }

  private entry(collection: string, key: string): TxDoc | undefined {
    if (this.firstKey === key && this.firstCollection === collection) return this.first;
    return this.docs?.get(collection)?.get(key);
  }

  private setEntry(collection: string, key: string, e: TxDoc): void {
    if (this.first === undefined) {
      this.firstCollection = collection;
      this.firstKey = key;
      this.first = e;
      return;
    }
    if (this.firstKey === key && this.firstCollection === collection) {
      this.first = e;
      return;
    }
    this.docs ??= new Map();
    let byKey = this.docs.get(collection);
    if (!byKey) {
      byKey = new Map();
      this.docs.set(collection, byKey);
    }
    byKey.set(key, e);
  }

  private dropEntry(collection: string, key: string, e: TxDoc): void {
    if (this.first === e) {
      this.first = undefined;
      this.firstCollection = undefined;
      this.firstKey = undefined;
    } else if (this.docs?.get(collection)?.get(key) === e) this.docs.get(collection)!.delete(key);
  }

  /** Caches the document now when the store can read synchronously; false when `getDoc` must be awaited. */
  loadNow(collection: string, key: string): boolean {
    if (this.entry(collection, key)) return true;
    if (!this.store.getDocSync) return false;
    this.setEntry(collection, key, {
      doc: this.store.getDocSync(collection, key),
      touched: false,
      listed: false,
    });
    return true;
  }

  async getDoc(collection: string, key: string): Promise<DocRecord | undefined> {
    const e = this.entry(collection, key);
    if (e) return e.doc;
    if (this.loadNow(collection, key)) return this.entry(collection, key)!.doc;
    const d = await this.store.getDoc(collection, key);
    const again = this.entry(collection, key);
    if (again) return again.doc;
    this.setEntry(collection, key, { doc: d, touched: false, listed: false });
    return d;
  }

  /** Loads documents into the cache in one step (a remote batch touches many). */
  async preload(ids: readonly [collection: string, key: string][]): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (const [collection, key] of ids) {
      if (this.loadNow(collection, key)) continue;
      // A placeholder marks the read as asked for, so a repeated id is read once; the batch's
      // mutation awaits this before it reads or writes any of these documents.
      const e: TxDoc = { doc: undefined, touched: false, listed: false };
      this.setEntry(collection, key, e);
      pending.push(
        this.store.getDoc(collection, key).then(
          (d) => {
            if (!e.touched) e.doc = d;
          },
          (error: unknown) => {
            // A failed read must not leave the placeholder behind as "absent".
            if (!e.touched) this.dropEntry(collection, key, e);
            throw error;
          },
        ),
      );
    }
    if (pending.length > 0) await Promise.all(pending);
  }

  /** The cached document; getDoc must have loaded it first. */
  cached(collection: string, key: string): DocRecord | undefined {
    return this.entry(collection, key)?.doc;
  }

  putDoc(d: DocRecord): void {
    let e = this.entry(d.collection, d.key);
    if (!e) {
      e = { doc: undefined, touched: false, listed: false };
      this.setEntry(d.collection, d.key, e);
    }
    // Both lists start as literals of their first entries: most batches stage one document, and a
    // first push would allocate room for sixteen.
    if (this.undo) this.undo.push(e, e.doc, e.touched);
    else this.undo = [e, e.doc, e.touched];
    e.doc = d;
    e.touched = true;
    if (!e.listed) {
      e.listed = true;
      if (this.written) this.written.push(e);
      else this.written = [e];
    }
    this.dirty = true;
  }

  /** Savepoint (one at a time: mutations run one after another): a failed op leaves nothing behind. */
  savepoint(): void {
    const m = this.mark;
    m.undo = this.undo?.length ?? 0;
    m.changes = this.changes.length;
    m.kv = this.kv.length;
    m.applied = this.applied;
    m.dirty = this.dirty;
  }

  rollbackToSavepoint(): void {
    const m = this.mark;
    const undo = this.undo;
    while (undo && undo.length > m.undo) {
      const wasTouched = undo.pop() as boolean;
      const prev = undo.pop() as DocRecord | undefined;
      const e = undo.pop() as TxDoc;
      e.doc = prev;
      e.touched = wasTouched;
    }
    this.changes.length = m.changes;
    this.kv.length = m.kv;
    this.applied = m.applied;
    this.dirty = m.dirty;
  }

  /**
   * Checks that what was staged since the savepoint can be stored: a value the store could not
   * serialise fails its own mutation here, instead of the store's commit failing the whole batch.
   */
  checkSinceSavepoint(limits: StoredValueLimits): void {
    const m = this.mark;
    if (this.changes.length > m.changes) {
      // A change's payload holds every value it writes: the delta and its kv entries.
      for (let i = m.changes; i < this.changes.length; i++) checkPayload(this.changes[i]!.payload, limits);
      return;
    }
    // No change (a snapshot merge): the documents and kv records as they will be written.
    const undo = this.undo;
    if (undo) {
      for (let i = m.undo; i < undo.length; i += 3) {
        const d = (undo[i] as TxDoc).doc;
        if (d) checkStoredDoc(d.state, limits);
      }
    }
    checkStoredKv(this.kv, m.kv, limits);
  }

  toBatch(): CommitBatch {
    const w = this.written;
    let docs: DocRecord[];
    if (w?.length === 1) docs = w[0]!.touched && w[0]!.doc ? [w[0]!.doc] : [];
    else {
      docs = [];
      if (w) for (const e of w) if (e.touched && e.doc) docs.push(e.doc);
    }
    return { docs, changes: this.changes, applied: this.applied, kv: this.kv };
  }
}

interface TxMark {
  undo: number;
  changes: number;
  kv: number;
  applied: VersionVector;
  dirty: boolean;
}

/**
 * Merges one change into the batch: document delta, kv entries, log and applied version.
 * Returns whether the merge resolved a conflict. `mergeOut` is where the merge reports it (one
 * object per region, not one per merge).
 */
export function stageChange(
  tx: BatchTx,
  change: Change,
  mergeOut: { conflict: boolean },
  /** The planted bug lastArrivalWins: the change's state replaces the document's. */
  replace = false,
): boolean {
  let conflict = false;
  const p = change.payload;
  tx.changes.push(change);
  tx.dirty = true;
  tx.advance(change.origin, change.seq);
  if (p.kind === 'doc') {
    const cur = tx.cached(p.collection, p.key);
    let state: DocState = p.delta;
    if (cur && !replace) {
      state = mergeDocInto(cur.state, p.delta, mergeOut);
      conflict = mergeOut.conflict;
    }
    // Clone, then set: cheaper than a literal with a spread and a computed key.
    const version: Record<RegionId, number> = cur ? { ...cur.version } : {};
    version[change.origin] = change.seq;
    tx.putDoc({ collection: p.collection, key: p.key, state, version });
  }
  const kv = p.kind === 'doc' ? p.kv : p.kind === 'kv' ? p.entries : undefined;
  if (kv !== undefined && kv.length > 0)
    stageKv(tx, kv, change.hlc, p.kind === 'doc' ? p.collection : undefined);
  return conflict;
}

/** Stages kv records; those of a document change concern its collection unless they name one. */
export function stageKv(tx: BatchTx, entries: readonly KvEntry[], hlc: string, collection?: string): void {
  for (const e of entries) {
    const rec: KvRecord = { ns: e.ns, key: e.key, value: e.value, hlc };
    if (e.expiresAtMs !== undefined) rec.expiresAtMs = e.expiresAtMs;
    const about = e.collection ?? collection;
    if (about !== undefined) rec.collection = about;
    tx.kv.push(rec);
  }
}

/** A live kv record as the batch sees it: staged entries first, then the store. */
export async function readKvInTx(
  tx: BatchTx,
  store: RegionStore,
  ns: string,
  key: string,
): Promise<KvRecord | undefined> {
  for (let i = tx.kv.length - 1; i >= 0; i--) {
    const r = tx.kv[i]!;
    if (r.ns === ns && r.key === key) return r.value === null ? undefined : r;
  }
  const r = await store.getKv(ns, key);
  return r && r.value !== null ? r : undefined;
}
