/**
 * The storage interface of a region, and an in-memory implementation. A commit is atomic: the
 * documents, the change-log entries, the applied version and any kv records of one batch become
 * durable together or not at all.
 */
import type { Change } from './change.js';
import type { DocState } from './crdt.js';
import type { Json } from './types.js';
import { seqOf, type VersionVector } from './version.js';

export interface DocRecord {
  collection: string;
  key: string;
  state: DocState;
  /** Per origin, the highest sequence of the changes merged into this document. */
  version: VersionVector;
}

export interface KvRecord {
  ns: string;
  key: string;
  value: Json;
  /** Encoded HLC of the write; a replicated entry replaces an older one only. */
  hlc: string;
  expiresAtMs?: number;
  /** The collection the record is about, when it holds that collection's data (residency). */
  collection?: string;
}

export interface CommitBatch {
  docs: DocRecord[];
  /** Appended to the change log in this order. */
  changes: Change[];
  /** The applied version after this batch. */
  applied: VersionVector;
  kv: KvRecord[];
}

export interface StoredState {
  applied: VersionVector;
  /** Per origin, the log holds only changes with a sequence above this (older ones were truncated). */
  truncated: VersionVector;
  /** The greatest HLC persisted, so that a restarted clock never goes back. */
  maxHlc: string | undefined;
}

export interface Snapshot {
  docs: DocRecord[];
  kv: KvRecord[];
  applied: VersionVector;
}

export interface RegionStore {
  load(): Promise<StoredState>;
  getDoc(collection: string, key: string): Promise<DocRecord | undefined>;
  /**
   * Optional: `getDoc` answered synchronously, for stores whose reads never wait (memory, the
   * simulator's disk, a synchronous SQLite driver). The core then reads on its write path without a
   * promise per document. Must return what `getDoc` would at the same moment.
   */
  getDocSync?(collection: string, key: string): DocRecord | undefined;
  commit(batch: CommitBatch): Promise<void>;
  /** Changes with seq > have[origin], in the order they were appended, at most `limit`. */
  readLog(have: VersionVector, limit: number): Promise<Change[]>;
  /** Drops log entries with seq <= upTo[origin]. */
  truncateLog(upTo: VersionVector): Promise<void>;
  /** A consistent copy of every document, kv record and the applied version. */
  snapshot(): Promise<Snapshot>;
  getKv(ns: string, key: string): Promise<KvRecord | undefined>;
  /** Records of one namespace, by key order. */
  listKv(ns: string): Promise<KvRecord[]>;
  /** Deletes kv records whose expiry is at or before `nowMs`; returns how many. */
  purgeKv(nowMs: number): Promise<number>;
  close(): Promise<void>;
}

const docId = (collection: string, key: string): string => `${collection}\u0000${key}`;
const kvId = (ns: string, key: string): string => `${ns}\u0000${key}`;

/**
 * Keeps everything in memory. `structuredClone` on the way in and out keeps callers from mutating
 * stored state, as a real store would.
 */
export class MemoryStore implements RegionStore {
  protected docs = new Map<string, DocRecord>();
  protected log: Change[] = [];
  protected kv = new Map<string, KvRecord>();
  protected state: StoredState = { applied: {}, truncated: {}, maxHlc: undefined };

  async load(): Promise<StoredState> {
    return structuredClone(this.state);
  }

  async getDoc(collection: string, key: string): Promise<DocRecord | undefined> {
    return this.getDocSync(collection, key);
  }

  getDocSync(collection: string, key: string): DocRecord | undefined {
    const d = this.docs.get(docId(collection, key));
    return d && structuredClone(d);
  }

  async commit(batch: CommitBatch): Promise<void> {
    this.applyBatch(structuredClone(batch));
  }

  protected applyBatch(batch: CommitBatch): void {
    for (const d of batch.docs) this.docs.set(docId(d.collection, d.key), d);
    for (const r of batch.kv) this.kv.set(kvId(r.ns, r.key), r);
    let maxHlc = this.state.maxHlc;
    for (const c of batch.changes) {
      this.log.push(c);
      if (maxHlc === undefined || c.hlc > maxHlc) maxHlc = c.hlc;
    }
    this.state = { ...this.state, applied: batch.applied, maxHlc };
  }

  async readLog(have: VersionVector, limit: number): Promise<Change[]> {
    const out: Change[] = [];
    for (const c of this.log) {
      if (c.seq > seqOf(have, c.origin)) {
        out.push(structuredClone(c));
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  async truncateLog(upTo: VersionVector): Promise<void> {
    this.log = this.log.filter((c) => c.seq > seqOf(upTo, c.origin));
    const truncated: Record<string, number> = { ...this.state.truncated };
    for (const [r, s] of Object.entries(upTo)) truncated[r] = Math.max(truncated[r] ?? 0, s);
    this.state = { ...this.state, truncated };
  }

  async snapshot(): Promise<Snapshot> {
    return structuredClone({
      docs: [...this.docs.values()],
      kv: [...this.kv.values()],
      applied: this.state.applied,
    });
  }

  async getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    const r = this.kv.get(kvId(ns, key));
    return r && structuredClone(r);
  }

  async listKv(ns: string): Promise<KvRecord[]> {
    return [...this.kv.values()]
      .filter((r) => r.ns === ns)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((r) => structuredClone(r));
  }

  async purgeKv(nowMs: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.kv) {
      if (r.expiresAtMs !== undefined && r.expiresAtMs <= nowMs) {
        this.kv.delete(id);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {}
}
