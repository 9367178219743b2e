/**
 * Group commit: mutations queue up, and every mutation queued when a batch forms runs against one
 * batch transaction and commits in one store transaction; then all are answered. A mutation that
 * fails rolls back to its savepoint and fails alone; a failed commit fails the batch and stops the
 * group commit: whether the batch reached the disk is unknown (an fsync error can follow the
 * write), so the next batch could reuse its sequence numbers. The owner restarts from the store.
 */
import { MeridianError } from '../errors.js';
import type { KvRecord, RegionStore } from '../store.js';
import type { StoredValueLimits } from '../stored-value.js';
import type { VersionVector } from '../version.js';
import { BatchTx } from './batch-tx.js';

interface Mutation<T> {
  /** Runs inside the batch; a mutation that needs no I/O may answer synchronously. */
  run(tx: BatchTx): T | Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
  /** Checks what it stages itself (a remote batch quarantines change by change). */
  selfChecked: boolean;
  /** The outcome once run: kept on the mutation itself (no result object per operation). */
  ok: boolean;
  value: T | undefined;
  error: unknown;
}

export interface GroupCommitOptions {
  store: RegionStore;
  /** Mutations committed in one store transaction at most. */
  maxBatch: number;
  /** Awaited before each batch is formed (see RegionCoreOptions.beforeBatch). */
  beforeBatch: (() => Promise<void>) | undefined;
  limits: StoredValueLimits;
  /** The applied version a new batch starts from. */
  applied(): VersionVector;
  /** A batch is durable: called before its mutations are answered. */
  committed(tx: BatchTx): void;
  /** A commit failed (after its mutations were answered with the error); nothing runs after it. */
  failed(error: unknown): void;
}

export class GroupCommit {
  private queue: Mutation<unknown>[] = [];
  private draining = false;
  /** Set when a commit failed: every later mutation is refused. */
  private stopped = false;

  constructor(private readonly o: GroupCommitOptions) {}

  /** Queues a mutation; it runs in the next batch, and resolves once that batch is durable. */
  enqueue<T>(run: (tx: BatchTx) => T | Promise<T>, selfChecked = false): Promise<T> {
    if (this.stopped) return Promise.reject(storeFailed());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        run,
        resolve,
        reject,
        selfChecked,
        ok: false,
        value: undefined,
        error: undefined,
      } as Mutation<unknown>);
      if (!this.draining) void this.drain();
    });
  }

  /** Runs every queued mutation against one transaction, commits once, then answers all. */
  private async drain(): Promise<void> {
    const o = this.o;
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        if (o.beforeBatch) await o.beforeBatch();
        let batch: Mutation<unknown>[];
        if (this.queue.length <= o.maxBatch) {
          // The whole queue is the batch (the usual case): take the array rather than copy it.
          batch = this.queue;
          this.queue = [];
        } else batch = this.queue.splice(0, o.maxBatch);
        const tx = new BatchTx(o.store, o.applied());
        for (const m of batch) {
          tx.savepoint();
          try {
            const r = m.run(tx);
            m.value = r instanceof Promise ? await r : r;
            // Found now, a value the store cannot serialise fails this mutation alone; found by the
            // store's commit, it would fail every mutation of the batch.
            if (!m.selfChecked) tx.checkSinceSavepoint(o.limits);
            m.ok = true;
          } catch (error) {
            tx.rollbackToSavepoint();
            m.error = error;
          }
        }
        let committed = false;
        let commitError: unknown;
        if (tx.dirty) {
          try {
            // Kv entries already present with a newer HLC must not be overwritten by older replicated ones.
            if (tx.kv.length > 0) tx.kv.splice(0, tx.kv.length, ...(await newerKvOnly(o.store, tx.kv)));
            await o.store.commit(tx.toBatch());
            committed = true;
          } catch (error) {
            commitError = error ?? new Error('commit failed');
            for (const m of batch) {
              if (m.ok) {
                m.ok = false;
                m.error = error;
              }
            }
          }
        }
        if (committed) o.committed(tx);
        for (const m of batch) {
          if (m.ok) m.resolve(m.value);
          else m.reject(m.error);
        }
        if (commitError !== undefined) {
          this.stopped = true;
          const queued = this.queue;
          this.queue = [];
          for (const m of queued) m.reject(storeFailed());
          o.failed(commitError);
          return;
        }
      }
    } finally {
      this.draining = false;
    }
  }
}

function storeFailed(): MeridianError {
  return new MeridianError('unavailable', 'the store failed a commit: this region restarts from its disk');
}

/** The latest of each kv record in `records` that is newer than what the store holds. */
async function newerKvOnly(store: RegionStore, records: KvRecord[]): Promise<KvRecord[]> {
  const latest = new Map<string, KvRecord>();
  for (const r of records) {
    const id = `${r.ns}\u0000${r.key}`;
    const prev = latest.get(id);
    if (!prev || r.hlc > prev.hlc) latest.set(id, r);
  }
  const out: KvRecord[] = [];
  for (const r of latest.values()) {
    const stored = await store.getKv(r.ns, r.key);
    if (!stored || stored.hlc < r.hlc) out.push(r);
  }
  return out;
}
