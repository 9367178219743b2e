/**
 * Makes group commit work over a synchronous store. better-sqlite3 (and the memory store) finish a
 * commit without yielding, so the core's commit loop would run to completion inside the request
 * that started it and every write would commit alone. Yielding to the event loop once before each
 * commit lets the requests that arrived meanwhile queue up and share the next transaction.
 */
import type { Change } from '../../core/change.js';
import type {
  CommitBatch,
  DocRecord,
  KvRecord,
  RegionStore,
  Snapshot,
  StoredState,
} from '../../core/store.js';
import type { VersionVector } from '../../core/version.js';

const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * @example
 *   const store = new GroupCommitStore(await openStore(cfg, region));
 */
export class GroupCommitStore implements RegionStore {
  constructor(readonly inner: RegionStore) {}

  async commit(batch: CommitBatch): Promise<void> {
    await yieldToIo();
    return this.inner.commit(batch);
  }

  load(): Promise<StoredState> {
    return this.inner.load();
  }
  getDoc(collection: string, key: string): Promise<DocRecord | undefined> {
    return this.inner.getDoc(collection, key);
  }
  readLog(have: VersionVector, limit: number): Promise<Change[]> {
    return this.inner.readLog(have, limit);
  }
  truncateLog(upTo: VersionVector): Promise<void> {
    return this.inner.truncateLog(upTo);
  }
  snapshot(): Promise<Snapshot> {
    return this.inner.snapshot();
  }
  getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    return this.inner.getKv(ns, key);
  }
  listKv(ns: string): Promise<KvRecord[]> {
    return this.inner.listKv(ns);
  }
  purgeKv(nowMs: number): Promise<number> {
    return this.inner.purgeKv(nowMs);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
