/**
 * Simulated storage with a durability model and disk faults. A commit becomes visible and durable
 * together, after a simulated fsync delay; a crash before then loses it, as a power cut would. A
 * commit can also fail (the store throws, nothing is written: a failing disk, or one commit in a
 * hundred) or be torn (the store throws after the write, which may or may not have reached the
 * disk: an fsync error). Records are treated as immutable (the core never mutates what it stored),
 * so nothing is copied on the hot path; tests can switch on `freeze` to prove that assumption.
 */
import type { Change } from '../core/change.js';
import type { CommitBatch, DocRecord, KvRecord, RegionStore, Snapshot, StoredState } from '../core/store.js';
import type { RegionId } from '../core/types.js';
import { seqOf, type VersionVector } from '../core/version.js';
import type { Prng } from './random.js';
import type { Owner, VirtualTime } from './time.js';

const docId = (collection: string, key: string): string => `${collection}\u0000${key}`;
const kvId = (ns: string, key: string): string => `${ns}\u0000${key}`;

/** One origin's part of the change log: parallel arrays, oldest first, from index `head`. */
interface OriginLog {
  seqs: number[];
  /** Global append position of each entry, to return changes in append order. */
  pos: number[];
  changes: Change[];
  head: number;
}

export type DurableCommitHook = (batch: CommitBatch, appliedBefore: VersionVector) => void;

/** The durable contents of one region's disk. It outlives region processes; a lost region drops it. */
export class DurableState {
  /** Documents by collection, then key: reads and commits use no composite id string. */
  private readonly byCollection = new Map<string, Map<string, DocRecord>>();
  readonly kv = new Map<string, KvRecord>();
  readonly logs = new Map<RegionId, OriginLog>();
  state: StoredState = { applied: {}, truncated: {}, maxHlc: undefined };
  private appendPos = 0;

  apply(batch: CommitBatch): void {
    for (const d of batch.docs) {
      let byKey = this.byCollection.get(d.collection);
      if (!byKey) {
        byKey = new Map();
        this.byCollection.set(d.collection, byKey);
      }
      byKey.set(d.key, d);
    }
    for (const r of batch.kv) this.kv.set(kvId(r.ns, r.key), r);
    let maxHlc = this.state.maxHlc;
    // A batch's changes mostly come from one origin: look its log up when the origin changes.
    let origin: RegionId | undefined;
    let log: OriginLog | undefined;
    for (const c of batch.changes) {
      if (c.origin !== origin || !log) {
        origin = c.origin;
        log = this.logs.get(origin);
        if (!log) {
          log = { seqs: [], pos: [], changes: [], head: 0 };
          this.logs.set(origin, log);
        }
      }
      log.seqs.push(c.seq);
      log.pos.push(this.appendPos++);
      log.changes.push(c);
      if (maxHlc === undefined || c.hlc > maxHlc) maxHlc = c.hlc;
    }
    this.state = { applied: batch.applied, truncated: this.state.truncated, maxHlc };
  }

  /** Every document by `collection\u0000key`, built on demand (the end-of-run checkers read it). */
  get docs(): Map<string, DocRecord> {
    const out = new Map<string, DocRecord>();
    for (const [collection, byKey] of this.byCollection) {
      for (const [key, d] of byKey) out.set(docId(collection, key), d);
    }
    return out;
  }

  allDocs(): DocRecord[] {
    const out: DocRecord[] = [];
    for (const byKey of this.byCollection.values()) for (const d of byKey.values()) out.push(d);
    return out;
  }

  getDoc(collection: string, key: string): DocRecord | undefined {
    return this.byCollection.get(collection)?.get(key);
  }

  readLog(have: VersionVector, limit: number): Change[] {
    const cursors: { log: OriginLog; i: number }[] = [];
    for (const [origin, log] of this.logs) {
      const after = seqOf(have, origin);
      // Binary search: the first entry with seq > after (per-origin sequences only increase).
      let lo = log.head;
      let hi = log.seqs.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (log.seqs[mid]! <= after) lo = mid + 1;
        else hi = mid;
      }
      if (lo < log.seqs.length) cursors.push({ log, i: lo });
    }
    const out: Change[] = [];
    while (out.length < limit && cursors.length > 0) {
      let best = 0;
      for (let k = 1; k < cursors.length; k++) {
        const c = cursors[k]!;
        const b = cursors[best]!;
        if (c.log.pos[c.i]! < b.log.pos[b.i]!) best = k;
      }
      const cur = cursors[best]!;
      out.push(cur.log.changes[cur.i]!);
      cur.i++;
      if (cur.i >= cur.log.seqs.length) cursors.splice(best, 1);
    }
    return out;
  }

  truncateLog(upTo: VersionVector): void {
    for (const [origin, s] of Object.entries(upTo)) {
      const log = this.logs.get(origin);
      if (!log) continue;
      while (log.head < log.seqs.length && log.seqs[log.head]! <= s) log.head++;
      if (log.head > 4096 && log.head * 2 > log.seqs.length) {
        log.seqs = log.seqs.slice(log.head);
        log.pos = log.pos.slice(log.head);
        log.changes = log.changes.slice(log.head);
        log.head = 0;
      }
    }
    const truncated: Record<string, number> = { ...this.state.truncated };
    for (const [r, s] of Object.entries(upTo)) truncated[r] = Math.max(truncated[r] ?? 0, s);
    this.state = { ...this.state, truncated };
  }

  /** Every change still in the log, any origin (the residency checker scans them). */
  *allChanges(): Iterable<Change> {
    for (const log of this.logs.values()) {
      for (let i = log.head; i < log.changes.length; i++) yield log.changes[i]!;
    }
  }
}

/** What the simulated disk throws when a commit fails: an I/O error, as a real store's driver would. */
export class DiskError extends Error {
  constructor(
    message: string,
    /** Whether the batch reached the disk all the same (an fsync error after the write). */
    readonly landed: boolean,
  ) {
    super(message);
    this.name = 'DiskError';
  }
}

export function isDiskError(e: unknown): e is DiskError {
  return e instanceof DiskError;
}

export type CommitFate = 'ok' | 'fail' | 'torn';

/**
 * The fault state of one region's disk, set by the fault schedule: failing-disk episodes, torn
 * fsync windows and a steady rate of failed commits. It draws from its own stream, and only while
 * a fault is on, so a run without disk faults draws exactly what it drew before they existed.
 */
export class DiskFaults {
  failRate = 0;
  failUntilMs = 0;
  tornUntilMs = 0;
  /** Probability that any commit fails, outside episodes too. */
  commitFailRate = 0;
  readonly stats = { failed: 0, torn: 0, tornLanded: 0 };

  constructor(private readonly rng: Prng) {}

  /** What happens to a commit submitted at `nowMs`. */
  fate(nowMs: number): CommitFate {
    if (nowMs < this.tornUntilMs) return 'torn';
    if (nowMs < this.failUntilMs && this.rng.chance(this.failRate)) return 'fail';
    if (this.rng.chance(this.commitFailRate)) return 'fail';
    return 'ok';
  }

  /** A torn commit's batch reached the disk (half of them do). */
  landed(): boolean {
    return this.rng.chance(0.5);
  }

  /** Ends every episode and the steady rate (the end of the run's faults). */
  clear(): void {
    this.failRate = 0;
    this.failUntilMs = 0;
    this.tornUntilMs = 0;
    this.commitFailRate = 0;
  }
}

export interface DiskOptions {
  /** Drawn for each commit: how long until it is durable. */
  fsyncMs(): number;
  /** The disk's faults; none when absent. */
  faults?: DiskFaults;
  /** Deep-freeze every committed record (tests): a mutation by the core then throws. */
  freeze?: boolean;
  /** Called when a commit becomes durable, before the committer is told. */
  onDurable?: DurableCommitHook;
  /** Called when a commit is submitted (the residency checker inspects what is written). */
  onSubmit?: (batch: CommitBatch) => void;
}

/**
 * The store one region process sees: reads go to the durable state; commits wait for the disk.
 * When the process crashes its owner dies and every commit still in flight is lost, unanswered.
 *
 * @example
 * const disk = new DurableState();
 * const store = new SimStore(disk, time, owner, { fsyncMs: () => 2 });
 */
export class SimStore implements RegionStore {
  private lastDurableAtMs = 0;

  constructor(
    readonly durable: DurableState,
    private readonly time: VirtualTime,
    private readonly owner: Owner,
    private readonly options: DiskOptions,
  ) {}

  async load(): Promise<StoredState> {
    this.time.activity++;
    return this.durable.state;
  }

  async getDoc(collection: string, key: string): Promise<DocRecord | undefined> {
    this.time.activity++;
    return this.durable.getDoc(collection, key);
  }

  /** Reads need no simulated wait (the disk model delays commits only), so they may be synchronous. */
  getDocSync(collection: string, key: string): DocRecord | undefined {
    return this.durable.getDoc(collection, key);
  }

  commit(batch: CommitBatch): Promise<void> {
    this.time.activity++;
    if (!this.owner.alive) return new Promise<void>(() => {});
    if (this.options.freeze) deepFreeze(batch);
    const faults = this.options.faults;
    const fate = faults ? faults.fate(this.time.nowMs) : 'ok';
    // Submitted even when it will fail: the residency checker judges what the core tries to write.
    this.options.onSubmit?.(batch);
    return new Promise<void>((resolve, reject) => {
      // Commits reach the disk in order: one never becomes durable before an earlier one.
      const at = Math.max(this.time.nowMs + this.options.fsyncMs(), this.lastDurableAtMs);
      this.lastDurableAtMs = at;
      this.time.at(
        at,
        () => {
          if (fate === 'fail') {
            faults!.stats.failed++;
            reject(new DiskError('disk I/O error: commit failed, nothing written', false));
            return;
          }
          const landed = fate === 'ok' || faults!.landed();
          if (landed) {
            const before = this.durable.state.applied;
            this.durable.apply(batch);
            this.options.onDurable?.(batch, before);
          }
          if (fate === 'ok') {
            resolve();
            return;
          }
          faults!.stats.torn++;
          if (landed) faults!.stats.tornLanded++;
          reject(
            new DiskError(
              `disk I/O error: fsync failed (the batch ${landed ? 'did' : 'did not'} reach the disk)`,
              landed,
            ),
          );
        },
        this.owner,
      );
    });
  }

  async readLog(have: VersionVector, limit: number): Promise<Change[]> {
    this.time.activity++;
    return this.durable.readLog(have, limit);
  }

  async truncateLog(upTo: VersionVector): Promise<void> {
    if (this.owner.alive) this.durable.truncateLog(upTo);
  }

  async snapshot(): Promise<Snapshot> {
    this.time.activity++;
    return {
      docs: this.durable.allDocs(),
      kv: [...this.durable.kv.values()],
      applied: this.durable.state.applied,
    };
  }

  async getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    this.time.activity++;
    return this.durable.kv.get(kvId(ns, key));
  }

  async listKv(ns: string): Promise<KvRecord[]> {
    return [...this.durable.kv.values()]
      .filter((r) => r.ns === ns)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async purgeKv(nowMs: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.durable.kv) {
      if (r.expiresAtMs !== undefined && r.expiresAtMs <= nowMs) {
        this.durable.kv.delete(id);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {}
}

function deepFreeze(o: unknown): void {
  if (typeof o !== 'object' || o === null || Object.isFrozen(o)) return;
  Object.freeze(o);
  for (const v of Object.values(o)) deepFreeze(v);
}
