/**
 * The region state machine: local mutations become changes in the region's log; remote changes
 * are applied idempotently; peers' acknowledgements confirm sync writes; reads can wait for a
 * version. All I/O goes through the store, and all time through the clock and timers it is given,
 * so the same code runs in a region node and in the simulator.
 */
import type { Change, ChangePayload, KvEntry } from './change.js';
import { withheld } from './change.js';
import { ClockOffsets, type ClockVerdict, nextClockVerdict, type PeerOffset } from './clock-offset.js';
import { holders, requiredAcks, requireOperation, validateKey } from './collection.js';
import {
  type CounterState,
  type DocState,
  docValue,
  emptyCounter,
  emptySet,
  isAbsent,
  mergeDoc,
  mergeDocInto,
  type RegState,
  type SetState,
} from './crdt.js';
import { MeridianError } from './errors.js';
import { nearestRegion } from './geo.js';
import { decodeHlc, encodeHlc, HLC_ZERO, type Hlc, HybridClock } from './hlc.js';
import type { Clock, TimerHandle, Timers } from './ports.js';
import type { CommitBatch, DocRecord, KvRecord, RegionStore, Snapshot } from './store.js';
import {
  checkPayload,
  checkStoredDoc,
  checkStoredKv,
  DEFAULT_STORED_VALUE_LIMITS,
  type StoredValueLimits,
} from './stored-value.js';
import type { CollectionSpec, Json, Operation, RegionId, RegionInfo } from './types.js';
import { dominates, joinVersions, mergeVersions, missing, seqOf, type VersionVector } from './version.js';

/** Deliberate defects, switched on only by tests that prove the checkers catch them. */
export interface PlantedBugs {
  /** applyRemote silently drops counter increments. */
  dropIncrement?: boolean;
  /** reads ignore Meridian-Min-Version. */
  skipTokenWait?: boolean;
  /** acknowledgements report changes received but not yet durably applied. */
  ackBeforeApply?: boolean;
  /** kv records about a resident collection are treated as unrestricted (sent, snapshotted, applied anywhere). */
  leakResidentKv?: boolean;
}

export interface RegionCoreOptions {
  region: RegionId;
  regions: readonly RegionInfo[];
  collections: readonly CollectionSpec[];
  store: RegionStore;
  clock: Clock;
  timers: Timers;
  /**
   * Remote HLCs further ahead than this do not move our clock; and a region whose own clock is
   * further than this from a majority of its peers refuses writes (default 500).
   */
  maxOffsetMs?: number;
  /** A peer's clock readings older than this no longer count (default 5000; the node: 3 heartbeats). */
  peerClockStaleAfterMs?: number;
  /**
   * Local writes wait, after opening, until every peer's clock has been read in a round trip
   * (`observePeerClockRoundTrip`) or the peer was found unreachable (`notePeerUnreachable`): at
   * most `maxWaitMs` after the first such news, or `peerClockStaleAfterMs` after opening if none
   * comes. A node restarted with a skewed clock must not issue timestamps before it can tell.
   * Absent: no wait (simulator, tests of the core).
   */
  awaitPeerClocks?: boolean;
  /** How long a sync write waits for acknowledgements before 504 (default 2000). */
  syncTimeoutMs?: number;
  /** Default bound on a read's wait for Meridian-Min-Version (default 1000). */
  maxWaitMs?: number;
  /** Mutations committed in one store transaction at most (group commit). */
  maxBatch?: number;
  /**
   * Awaited before each group-commit batch is formed. A real node yields to I/O here, so that the
   * requests that arrived together (and, with a synchronous store, would otherwise each commit
   * alone) share one transaction. Absent in the simulator: batches form from what is queued.
   */
  beforeBatch?: () => Promise<void>;
  /** Bounds on what is staged (default DEFAULT_STORED_VALUE_LIMITS). */
  storedValueLimits?: Partial<StoredValueLimits>;
  /**
   * Peers whose view of this region's own changes must be heard (from an acknowledgement or a
   * stream cursor) before local writes are accepted: a node opened on a wiped or older disk must
   * not issue sequence numbers its peers already hold. Absent: the disk is trusted (simulator, tests).
   */
  recoverOwnOriginFrom?: readonly RegionId[];
  /** How long a local write waits for that before 503 (default 5000: a start under load). */
  recoverOwnOriginWaitMs?: number;
  bugs?: PlantedBugs;
  onEvent?: (e: RegionEvent) => void;
}

/** The kv namespace of quarantined changes (local to this region, never replicated). */
export const QUARANTINE_NS = 'meridian.quarantine';

/** A change from a peer that this region could not apply, kept for an operator. */
export interface QuarantineRecord {
  from: RegionId;
  origin: RegionId;
  seq: number;
  hlc: string;
  collection?: string;
  key?: string;
  reason: string;
  atMs: number;
  /** The change's payload, when it passed the storable-value check. */
  payload?: Json;
}

export type RegionEvent =
  | { type: 'committed'; changes: readonly Change[]; local: boolean }
  | { type: 'applied'; from: RegionId; origin: RegionId; count: number; lagMs: number }
  | { type: 'conflict'; collection: string; key: string }
  | { type: 'clock-skew'; from: RegionId; message: string }
  /** This region's clock went beyond `maxOffsetMs` from a majority of its peers (or came back). */
  | { type: 'clock-unsafe'; refusing: boolean; aheadMs: number; peers: RegionId[] }
  | { type: 'sync-timeout'; collection: string; key: string; seq: number }
  | { type: 'snapshot-applied'; from: RegionId; docs: number }
  /**
   * A peer sent data of a resident collection this region may not hold; it was not stored (the
   * change counts as a placeholder). Names no collection or key: this region may not know them.
   */
  | { type: 'residency-refused'; from: RegionId; origin: RegionId; seq: number; records: number }
  /** A change from a peer that this region cannot apply: kept in QUARANTINE_NS, skipped over. */
  | ({ type: 'quarantined' } & Omit<QuarantineRecord, 'payload' | 'hlc' | 'atMs'>);

export interface DocView {
  key: string;
  value: Json;
  /** The version token content this answer reflects. */
  version: VersionVector;
}

export interface ReadOptions {
  minVersion?: VersionVector;
  maxWaitMs?: number;
}

export interface WriteOptions {
  /** Pinned collections: the home region to give a key on its first write. */
  homeRegion?: RegionId;
  /** Replicated metadata committed in the same transaction as the write (idempotency records). */
  kv?: KvEntry[];
  /**
   * More metadata computed from the write's own result inside its transaction (an idempotency
   * record that stores the answer). It may throw to abort the write; `read` sees the batch.
   */
  kvAfter?: (view: DocView, read: KvRead) => KvEntry[] | Promise<KvEntry[]>;
}

/** Reads a live kv record as the current transaction sees it (staged entries first, then the store). */
export type KvRead = (ns: string, key: string) => Promise<KvRecord | undefined>;

export type PullResult =
  | { kind: 'changes'; changes: Change[] }
  | { kind: 'snapshot'; snapshot: Snapshot; omittedCollections: string[] };

export interface RegionStats {
  region: RegionId;
  version: VersionVector;
  localWrites: number;
  remoteApplied: number;
  conflicts: number;
  clockSkewRejections: number;
  syncTimeouts: number;
  /** Per peer: its acknowledged version, and how many of our own changes it has not acknowledged. */
  peers: Record<RegionId, { acked: VersionVector; behindChanges: number }>;
  /** Changes from peers quarantined since this process opened the store. */
  quarantined: number;
  /** Set while local writes are refused until this region holds its own changes that peers hold. */
  recoveringOwnOrigin?: { waitingFor: RegionId[]; peersHold: number };
}

/** The options of a call that passes none: one shared object (options are only read). */
const NO_OPTIONS: Readonly<ReadOptions & WriteOptions & { ack?: boolean }> = Object.freeze({});
/** How often the clock rule is re-derived without a new reading (peers' readings go stale). */
const CLOCK_RECHECK_MS = 250;
/** The previous HLC of a register's first write. */
const HLC_ZERO_ENCODED = encodeHlc(HLC_ZERO);

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

/** One document as a batch sees it: what the store held (or the batch staged), and whether to write it. */
interface TxDoc {
  doc: DocRecord | undefined;
  touched: boolean;
  /** Already in the batch's list of documents to write (it stays there if a rollback untouches it). */
  listed: boolean;
}

/** The documents and changes of one group commit, read through a cache so ops in a batch see each other. */
class BatchTx {
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

interface VersionWaiter {
  want: VersionVector;
  done(ok: boolean): void;
}

interface AckWaiter {
  seq: number;
  needed: number;
  peers: readonly RegionId[];
  done(ok: boolean): void;
}

export class RegionCore {
  readonly region: RegionId;
  readonly hlc: HybridClock;
  private readonly opts: Required<
    Omit<
      RegionCoreOptions,
      | 'bugs'
      | 'onEvent'
      | 'beforeBatch'
      | 'storedValueLimits'
      | 'recoverOwnOriginFrom'
      | 'recoverOwnOriginWaitMs'
    >
  > &
    Pick<RegionCoreOptions, 'onEvent' | 'beforeBatch'>;
  private readonly bugs: PlantedBugs;
  private readonly collections = new Map<string, CollectionSpec>();
  private readonly regionIds: RegionId[];
  private applied: VersionVector = {};
  private received: VersionVector = {};
  private truncated: VersionVector = {};
  private readonly peerAcks = new Map<RegionId, VersionVector>();
  private queue: Mutation<unknown>[] = [];
  private draining = false;
  private versionWaiters: VersionWaiter[] = [];
  private ackWaiters: AckWaiter[] = [];
  private readonly listeners = new Set<(changes: readonly Change[]) => void>();
  private closed = false;
  private counts = { localWrites: 0, remoteApplied: 0, conflicts: 0, syncTimeouts: 0 };
  /** Where `stage` reads whether a merge resolved a conflict (one object per core, not per merge). */
  private readonly mergeOut = { conflict: false };
  private readonly clockOffsets: ClockOffsets;
  /** Whether writes are refused because our clock is beyond `maxOffsetMs` from our peers. */
  private clockRefusing = false;
  /** The clock verdict, re-derived when a reading arrives or after CLOCK_RECHECK_MS (peers going stale). */
  private clockVerdictNow: ClockVerdict = { state: 'ok' };
  private clockCheckedAtMs = Number.NEGATIVE_INFINITY;
  /** Peers whose clock has not been read yet since opening (undefined: not waiting for any). */
  private clockUnheard: Set<RegionId> | undefined;
  private clockWaitUntilMs = 0;
  private readonly clockWaiters = new Set<() => void>();
  private clockGateTimer: TimerHandle | undefined;
  private readonly limits: StoredValueLimits;
  /** Peers whose view of our own origin is still unknown; local writes wait for them (see open). */
  private ownOriginUnheard: Set<RegionId> | undefined;
  /** The highest sequence of our own origin that a peer reported holding, and which peer. */
  private ownOriginPeersHold = 0;
  private ownOriginHolder: RegionId | undefined;
  private ownOriginReady = true;
  /** Local writes that arrived while ownOriginReady was false, waiting (bounded) for it. */
  private readonly ownOriginWaiters = new Set<() => void>();
  private readonly ownOriginWaitMs: number;
  private quarantinedCount = 0;

  private constructor(options: RegionCoreOptions) {
    this.opts = {
      maxOffsetMs: 500,
      peerClockStaleAfterMs: 5000,
      awaitPeerClocks: false,
      syncTimeoutMs: 2000,
      maxWaitMs: 1000,
      maxBatch: 256,
      ...options,
    };
    this.bugs = options.bugs ?? {};
    this.region = options.region;
    this.regionIds = options.regions.map((r) => r.id);
    if (!this.regionIds.includes(this.region))
      throw new Error(`region ${this.region} is not in the region list`);
    for (const c of options.collections) this.collections.set(c.name, c);
    this.hlc = new HybridClock(options.clock, { maxOffsetMs: this.opts.maxOffsetMs });
    this.clockOffsets = new ClockOffsets(options.clock, {
      maxOffsetMs: this.opts.maxOffsetMs,
      staleAfterMs: this.opts.peerClockStaleAfterMs,
    });
    const clockPeers = this.regionIds.filter((r) => r !== this.region);
    if (options.awaitPeerClocks && clockPeers.length > 0) {
      this.clockUnheard = new Set(clockPeers);
      this.clockWaitUntilMs = options.clock.nowMs() + this.opts.peerClockStaleAfterMs;
    }
    this.limits = { ...DEFAULT_STORED_VALUE_LIMITS, ...options.storedValueLimits };
    this.ownOriginWaitMs = options.recoverOwnOriginWaitMs ?? 5000;
    const peers = options.recoverOwnOriginFrom?.filter((r) => r !== this.region) ?? [];
    if (peers.length > 0) {
      this.ownOriginUnheard = new Set(peers);
      this.ownOriginReady = false;
    }
  }

  /** Opens a region over its store, restoring the applied version and the clock floor. */
  static async open(options: RegionCoreOptions): Promise<RegionCore> {
    const core = new RegionCore(options);
    const st = await options.store.load();
    core.applied = st.applied;
    core.received = st.applied;
    core.truncated = st.truncated;
    if (st.maxHlc) core.hlc.restore(decodeHlc(st.maxHlc));
    return core;
  }

  get version(): VersionVector {
    return this.applied;
  }

  /** What acknowledgements report: durably applied (unless the ackBeforeApply bug is planted). */
  ackVersion(): VersionVector {
    return this.bugs.ackBeforeApply ? mergeVersions(this.applied, this.received) : this.applied;
  }

  collection(name: string): CollectionSpec {
    const c = this.collections.get(name);
    if (!c) throw new MeridianError('unknown_collection', `unknown collection '${name}'`);
    return c;
  }

  collectionNames(): string[] {
    return [...this.collections.keys()];
  }

  /** Refuses requests for a resident collection outside its regions, naming the nearest allowed one. */
  checkResidency(spec: CollectionSpec): void {
    if (!spec.residency || spec.residency.includes(this.region)) return;
    const here = this.opts.regions.find((r) => r.id === this.region)!;
    const allowed = this.opts.regions.filter((r) => spec.residency!.includes(r.id));
    const to = nearestRegion(here, allowed)?.id ?? spec.residency[0]!;
    throw new MeridianError(
      'misdirected',
      `collection '${spec.name}' is resident in ${spec.residency.join(', ')}; this is ${this.region}`,
      { replayRegion: to },
    );
  }

  private prepare(collection: string, key: string, op: Operation): CollectionSpec {
    const spec = this.collection(collection);
    validateKey(key);
    requireOperation(spec, op);
    this.checkResidency(spec);
    return spec;
  }

  // ---------------------------------------------------------------- reads

  async get(
    collection: string,
    key: string,
    options: ReadOptions = NO_OPTIONS,
  ): Promise<DocView | undefined> {
    this.prepare(collection, key, 'get');
    if (options.minVersion && !this.bugs.skipTokenWait) {
      await this.waitForVersion(options.minVersion, options.maxWaitMs ?? this.opts.maxWaitMs);
    }
    const store = this.opts.store;
    const doc = store.getDocSync ? store.getDocSync(collection, key) : await store.getDoc(collection, key);
    if (!doc || isAbsent(doc.state)) return undefined;
    const seen = joinVersions(this.applied, doc.version);
    const version = options.minVersion ? joinVersions(seen, options.minVersion) : seen;
    return { key, value: docValue(doc.state), version };
  }

  /** The home region of a pinned document as this region knows it (undefined: not seen here). */
  async homeOf(collection: string, key: string): Promise<RegionId | undefined> {
    const doc = await this.opts.store.getDoc(collection, key);
    return doc?.state.t === 'reg' ? doc.state.home : undefined;
  }

  /** The version an answer reflects: ours merged with the caller's token. */
  answerVersion(sent?: VersionVector): VersionVector {
    return sent ? joinVersions(this.applied, sent) : this.applied;
  }

  /** Resolves once `want` is applied; after `maxWaitMs` throws 503 naming a region that can serve it. */
  async waitForVersion(want: VersionVector, maxWaitMs: number): Promise<void> {
    if (dominates(this.applied, want)) return;
    const ok = await new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined;
      const w: VersionWaiter = {
        want,
        done: (v) => {
          if (timer) this.opts.timers.clearTimeout(timer);
          this.versionWaiters = this.versionWaiters.filter((x) => x !== w);
          resolve(v);
        },
      };
      this.versionWaiters.push(w);
      timer = this.opts.timers.setTimeout(() => w.done(false), Math.max(0, maxWaitMs));
    });
    if (!ok) {
      throw new MeridianError(
        'not_caught_up',
        `${this.region} has not applied the requested version in time`,
        { ...this.replayTo(want), missing: missing(this.applied, want) },
      );
    }
  }

  /**
   * A region known (from its acknowledgements) to have `want`, else the origin we miss most from.
   * None when that origin is this region: a change of ours we never issued is nowhere to be had.
   */
  private regionThatHas(want: VersionVector): RegionId | undefined {
    for (const [peer, acked] of [...this.peerAcks.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (dominates(acked, want)) return peer;
    }
    const gaps = Object.entries(missing(this.applied, want)).sort(
      (a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1),
    );
    const origin = gaps[0]?.[0];
    return origin === this.region ? undefined : origin;
  }

  private replayTo(want: VersionVector): { replayRegion?: RegionId } {
    const region = this.regionThatHas(want);
    return region === undefined ? {} : { replayRegion: region };
  }

  // ---------------------------------------------------------------- local mutations

  async put(
    collection: string,
    key: string,
    value: Json,
    options: WriteOptions = NO_OPTIONS,
  ): Promise<DocView> {
    const spec = this.prepare(collection, key, 'put');
    return this.writeReg(spec, key, value, false, options);
  }

  async delete(collection: string, key: string, options: WriteOptions = NO_OPTIONS): Promise<DocView> {
    const spec = this.prepare(collection, key, 'delete');
    if (spec.policy === 'set') {
      return this.mutateSet(spec, key, undefined, options);
    }
    return this.writeReg(spec, key, null, true, options);
  }

  async increment(
    collection: string,
    key: string,
    by: number,
    options: WriteOptions = NO_OPTIONS,
  ): Promise<DocView> {
    const spec = this.prepare(collection, key, 'increment');
    if (!Number.isSafeInteger(by)) throw new MeridianError('bad_request', '"by" must be an integer');
    return this.localWrite(spec, key, options, (tx) => {
      const cur = (tx.cached(spec.name, key)?.state as CounterState | undefined) ?? emptyCounter();
      const delta: CounterState = { t: 'counter', p: {}, n: {} };
      if (by >= 0) delta.p[this.region] = (cur.p[this.region] ?? 0) + by;
      else delta.n[this.region] = (cur.n[this.region] ?? 0) - by;
      return delta;
    });
  }

  async addMembers(
    collection: string,
    key: string,
    members: string[],
    options: WriteOptions = NO_OPTIONS,
  ): Promise<DocView> {
    const spec = this.prepare(collection, key, 'add');
    validateMembers(members);
    return this.localWrite(spec, key, options, (_tx, seq) => {
      // One tag per member and change: a remove of one member must not cover another's add.
      const adds: Record<string, string[]> = {};
      members.forEach((m, i) => {
        adds[m] = [`${this.region}:${seq}.${i}`];
      });
      return { t: 'set', adds, removed: [] } satisfies SetState;
    });
  }

  async removeMembers(
    collection: string,
    key: string,
    members: string[],
    options: WriteOptions = NO_OPTIONS,
  ): Promise<DocView> {
    const spec = this.prepare(collection, key, 'remove');
    validateMembers(members);
    return this.mutateSet(spec, key, members, options);
  }

  /** Removes the observed tags of `members` (all members when undefined). */
  private mutateSet(
    spec: CollectionSpec,
    key: string,
    members: string[] | undefined,
    options: WriteOptions,
  ): Promise<DocView> {
    return this.localWrite(spec, key, options, (tx) => {
      const cur = (tx.cached(spec.name, key)?.state as SetState | undefined) ?? emptySet();
      const removed: string[] = [];
      for (const m of members ?? Object.keys(cur.adds)) removed.push(...(cur.adds[m] ?? []));
      return { t: 'set', adds: {}, removed: removed.sort() } satisfies SetState;
    });
  }

  private writeReg(
    spec: CollectionSpec,
    key: string,
    value: Json,
    deleted: boolean,
    options: WriteOptions,
  ): Promise<DocView> {
    if (options.homeRegion !== undefined && spec.policy === 'pinned') {
      if (!this.regionIds.includes(options.homeRegion)) {
        throw new MeridianError('bad_request', `unknown home region '${options.homeRegion}'`);
      }
      if (spec.residency && !spec.residency.includes(options.homeRegion)) {
        throw new MeridianError(
          'bad_request',
          `home region '${options.homeRegion}' is outside the residency`,
        );
      }
    }
    return this.localWrite(spec, key, options, (tx, _seq, hlc) => {
      const cur = tx.cached(spec.name, key)?.state as RegState | undefined;
      let home: RegionId | undefined;
      if (spec.policy === 'pinned') {
        home = cur?.home ?? options.homeRegion ?? this.region;
        if (home !== this.region) {
          throw new MeridianError('misdirected', `key '${key}' of '${spec.name}' is homed in ${home}`, {
            replayRegion: home,
          });
        }
      }
      const reg: RegState = {
        t: 'reg',
        value,
        deleted,
        hlc,
        origin: this.region,
        prevHlc: cur?.hlc ?? HLC_ZERO_ENCODED,
      };
      if (home) reg.home = home;
      return reg;
    });
  }

  /**
   * Queues one local mutation: `makeDelta` turns the current state into the change's delta. The
   * mutation commits with the others queued at the time (group commit); a sync collection then
   * waits for its acknowledgements.
   */
  private async localWrite(
    spec: CollectionSpec,
    key: string,
    options: WriteOptions,
    /** Reads the document with `tx.cached` (loaded before it is called). */
    makeDelta: (tx: BatchTx, seq: number, hlc: string) => DocState,
  ): Promise<DocView> {
    if (this.clockUnheard) await this.waitPeerClocks();
    if (!this.ownOriginReady) await this.waitOwnOrigin();
    // Set when the mutation runs (no result object per write to carry it out).
    let seq = 0;
    const view = await this.enqueue((tx) => {
      seq = tx.seqOf(this.region) + 1;
      this.checkOwnSeq(seq);
      // Checked where the timestamp is taken (after start-up waits), with the latest readings.
      this.refuseIfClockUnsafe(spec);
      const hlc = encodeHlc(this.hlc.now());
      // Synchronous when the store reads synchronously and there is no kvAfter: no promise per write.
      if (tx.loadNow(spec.name, key)) return this.writeInTx(tx, spec, key, options, makeDelta, seq, hlc);
      return tx
        .getDoc(spec.name, key)
        .then(() => this.writeInTx(tx, spec, key, options, makeDelta, seq, hlc));
    });
    if (spec.replication.mode === 'sync') {
      const ok = await this.waitForAcks(spec, seq);
      if (!ok) {
        this.counts.syncTimeouts++;
        this.opts.onEvent?.({ type: 'sync-timeout', collection: spec.name, key, seq });
        throw new MeridianError(
          'sync_timeout',
          `write to '${spec.name}/${key}' committed in ${this.region} but not confirmed by enough regions in time; it will replicate`,
          { indefinite: true, seq },
        );
      }
    }
    return { key: view.key, value: view.value, version: joinVersions(view.version, this.applied) };
  }

  /** The body of a local write inside its transaction, once the document is cached. */
  private writeInTx(
    tx: BatchTx,
    spec: CollectionSpec,
    key: string,
    options: WriteOptions,
    makeDelta: (tx: BatchTx, seq: number, hlc: string) => DocState,
    seq: number,
    hlc: string,
  ): DocView | Promise<DocView> {
    const delta = makeDelta(tx, seq, hlc);
    const change: Change = {
      origin: this.region,
      seq,
      hlc,
      payload: options.kv?.length
        ? { kind: 'doc', collection: spec.name, key, delta, kv: options.kv }
        : { kind: 'doc', collection: spec.name, key, delta },
    };
    this.stage(tx, change);
    this.counts.localWrites++;
    const doc = tx.cached(spec.name, key)!;
    const view: DocView = { key, value: docValue(doc.state), version: tx.applied };
    const kvAfter = options.kvAfter;
    if (!kvAfter) return view;
    return (async () => {
      const more = await kvAfter(view, (ns, k) => this.readInTx(tx, ns, k));
      if (more.length > 0 && change.payload.kind === 'doc') {
        change.payload.kv = [...(change.payload.kv ?? []), ...more];
        this.stageKv(tx, more, hlc, spec.name);
      }
      return view;
    })();
  }

  /**
   * Writes only replicated metadata (saga state, idempotency records without a document). Given a
   * function, computes the entries inside the transaction (a compare-and-set: it may throw to
   * abort, and nothing is written when it returns none).
   */
  async writeKv(entries: KvEntry[] | ((read: KvRead) => Promise<KvEntry[]>)): Promise<VersionVector> {
    if (this.clockUnheard) await this.waitPeerClocks();
    if (!this.ownOriginReady) await this.waitOwnOrigin();
    this.refuseIfClockUnsafe(undefined);
    return this.enqueue(async (tx) => {
      const list =
        typeof entries === 'function' ? await entries((ns, k) => this.readInTx(tx, ns, k)) : entries;
      if (list.length === 0) return tx.applied;
      // Records about a resident collection are that collection's data: never held outside it.
      for (const e of list) {
        const spec = e.collection === undefined ? undefined : this.collections.get(e.collection);
        if (spec) this.checkResidency(spec);
      }
      const seq = tx.seqOf(this.region) + 1;
      this.checkOwnSeq(seq);
      const hlc = encodeHlc(this.hlc.now());
      this.stage(tx, { origin: this.region, seq, hlc, payload: { kind: 'kv', entries: list } });
      return tx.applied;
    });
  }

  /** Deletes kv records whose expiry has passed (idempotency records after their window). */
  async purgeExpiredKv(): Promise<number> {
    return this.opts.store.purgeKv(this.opts.clock.nowMs());
  }

  private async readInTx(tx: BatchTx, ns: string, key: string): Promise<KvRecord | undefined> {
    for (let i = tx.kv.length - 1; i >= 0; i--) {
      const r = tx.kv[i]!;
      if (r.ns === ns && r.key === key) return r.value === null ? undefined : r;
    }
    const r = await this.opts.store.getKv(ns, key);
    return r && r.value !== null ? r : undefined;
  }

  async getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    const r = await this.opts.store.getKv(ns, key);
    return r && r.value !== null ? r : undefined;
  }

  async listKv(ns: string): Promise<KvRecord[]> {
    return (await this.opts.store.listKv(ns)).filter((r) => r.value !== null);
  }

  /**
   * Merges one change into the batch: document delta, kv entries, log and applied version.
   * Returns whether the merge resolved a conflict.
   */
  private stage(tx: BatchTx, change: Change): boolean {
    let conflict = false;
    const p = change.payload;
    tx.changes.push(change);
    tx.dirty = true;
    tx.advance(change.origin, change.seq);
    if (p.kind === 'doc') {
      const cur = tx.cached(p.collection, p.key);
      let state: DocState = p.delta;
      if (cur) {
        state = mergeDocInto(cur.state, p.delta, this.mergeOut);
        conflict = this.mergeOut.conflict;
      }
      // Clone, then set: cheaper than a literal with a spread and a computed key.
      const version: Record<RegionId, number> = cur ? { ...cur.version } : {};
      version[change.origin] = change.seq;
      tx.putDoc({ collection: p.collection, key: p.key, state, version });
    }
    const kv = p.kind === 'doc' ? p.kv : p.kind === 'kv' ? p.entries : undefined;
    if (kv !== undefined && kv.length > 0)
      this.stageKv(tx, kv, change.hlc, p.kind === 'doc' ? p.collection : undefined);
    return conflict;
  }

  /** Stages kv records; those of a document change concern its collection unless they name one. */
  private stageKv(tx: BatchTx, entries: readonly KvEntry[], hlc: string, collection?: string): void {
    for (const e of entries) {
      const rec: KvRecord = { ns: e.ns, key: e.key, value: e.value, hlc };
      if (e.expiresAtMs !== undefined) rec.expiresAtMs = e.expiresAtMs;
      const about = e.collection ?? collection;
      if (about !== undefined) rec.collection = about;
      tx.kv.push(rec);
    }
  }

  private enqueue<T>(run: (tx: BatchTx) => T | Promise<T>, selfChecked = false): Promise<T> {
    if (this.closed)
      return Promise.reject(new MeridianError('unavailable', `${this.region} is shutting down`));
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

  /** Group commit: runs every queued mutation against one transaction, commits once, then answers all. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        if (this.opts.beforeBatch) await this.opts.beforeBatch();
        let batch: Mutation<unknown>[];
        if (this.queue.length <= this.opts.maxBatch) {
          // The whole queue is the batch (the usual case): take the array rather than copy it.
          batch = this.queue;
          this.queue = [];
        } else batch = this.queue.splice(0, this.opts.maxBatch);
        const tx = new BatchTx(this.opts.store, this.applied);
        for (const m of batch) {
          tx.savepoint();
          try {
            const r = m.run(tx);
            m.value = r instanceof Promise ? await r : r;
            // Found now, a value the store cannot serialise fails this mutation alone; found by the
            // store's commit, it would fail every mutation of the batch.
            if (!m.selfChecked) tx.checkSinceSavepoint(this.limits);
            m.ok = true;
          } catch (error) {
            tx.rollbackToSavepoint();
            m.error = error;
          }
        }
        let committed = false;
        if (tx.dirty) {
          try {
            // Kv entries already present with a newer HLC must not be overwritten by older replicated ones.
            if (tx.kv.length > 0) tx.kv.splice(0, tx.kv.length, ...(await this.newerKvOnly(tx.kv)));
            await this.opts.store.commit(tx.toBatch());
            committed = true;
          } catch (error) {
            for (const m of batch) {
              if (m.ok) {
                m.ok = false;
                m.error = error;
              }
            }
          }
        }
        if (committed) {
          this.applied = tx.applied;
          this.received = joinVersions(this.received, tx.applied);
          if (!this.ownOriginReady) this.updateOwnOriginReady();
          const changes = tx.changes;
          if (changes.length > 0) {
            for (const l of this.listeners) l(changes);
            const onEvent = this.opts.onEvent;
            if (onEvent) onEvent({ type: 'committed', changes, local: this.hasLocal(changes) });
          }
          this.wakeVersionWaiters();
          // No wakeAckWaiters here: a commit changes no peer's acknowledgement, and every waiter
          // short of its acks is checked again whenever one arrives (noteAck).
        }
        for (const m of batch) {
          if (m.ok) m.resolve(m.value);
          else m.reject(m.error);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private hasLocal(changes: readonly Change[]): boolean {
    for (const c of changes) if (c.origin === this.region) return true;
    return false;
  }

  private observeRemoteHlc(c: Change, t: Hlc): void {
    try {
      this.hlc.receive(t);
    } catch (e) {
      // The change is still applied (refusing it would break convergence); only the clock refuses to jump.
      this.opts.onEvent?.({ type: 'clock-skew', from: c.origin, message: (e as Error).message });
    }
  }

  private async newerKvOnly(records: KvRecord[]): Promise<KvRecord[]> {
    const latest = new Map<string, KvRecord>();
    for (const r of records) {
      const id = `${r.ns}\u0000${r.key}`;
      const prev = latest.get(id);
      if (!prev || r.hlc > prev.hlc) latest.set(id, r);
    }
    const out: KvRecord[] = [];
    for (const r of latest.values()) {
      const stored = await this.opts.store.getKv(r.ns, r.key);
      if (!stored || stored.hlc < r.hlc) out.push(r);
    }
    return out;
  }

  // ---------------------------------------------------------------- replication

  /** Called for every committed batch of changes (local or applied from a peer), for push streams. */
  subscribe(listener: (changes: readonly Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * What `peer`, which has applied `have`, should receive next: changes from our log (with
   * resident collections withheld from regions outside their residency), or a snapshot when our log
   * no longer reaches back to its cursor.
   */
  async pull(
    peer: RegionId,
    have: VersionVector,
    limit = 1000,
    options: { ack?: boolean } = NO_OPTIONS,
  ): Promise<PullResult> {
    // A push stream reads on from what it has *sent*, which the peer has not yet applied: no ack then.
    if (options.ack !== false) this.noteAck(peer, have);
    let needsSnapshot = false;
    for (const origin in this.truncated) {
      if (Object.hasOwn(this.truncated, origin) && seqOf(have, origin) < this.truncated[origin]!) {
        needsSnapshot = true;
        break;
      }
    }
    if (needsSnapshot) {
      const snap = await this.opts.store.snapshot();
      const omitted = [...this.collections.values()]
        .filter((c) => c.residency && !c.residency.includes(peer))
        .map((c) => c.name);
      const docs = snap.docs.filter((d) => !omitted.includes(d.collection));
      // Stored idempotency answers hold the documents they answered with: they stay home too.
      const kv = snap.kv.filter((r) => this.mayHold(r.collection, peer));
      return { kind: 'snapshot', snapshot: { ...snap, docs, kv }, omittedCollections: omitted };
    }
    const changes = await this.opts.store.readLog(have, limit);
    return { kind: 'changes', changes: changes.map((c) => this.forPeer(c, peer)) };
  }

  /**
   * Filters one change for a peer: a change holding a resident collection's data (its document, or
   * a kv record about it) becomes a placeholder outside its regions.
   */
  forPeer(c: Change, peer: RegionId): Change {
    const allowed = this.residencyOf(c);
    return allowed && !allowed.includes(peer) ? withheld(c, allowed) : c;
  }

  /**
   * The regions that may hold a change, when it holds a resident collection's data: its document's
   * collection and every kv entry naming one (all of them must allow the region). Undefined: any.
   */
  residencyOf(c: Change): RegionId[] | undefined {
    const p = c.payload;
    if (p.kind === 'withheld') return undefined;
    let allowed: RegionId[] | undefined;
    let kv: KvEntry[] | undefined;
    if (p.kind === 'doc') {
      allowed = this.collections.get(p.collection)?.residency;
      kv = p.kv;
    } else kv = p.entries;
    if (kv === undefined || this.bugs.leakResidentKv) return allowed;
    for (const e of kv) {
      const r = e.collection === undefined ? undefined : this.collections.get(e.collection)?.residency;
      if (r) allowed = allowed ? allowed.filter((x) => r.includes(x)) : r;
    }
    return allowed;
  }

  /** Whether `region` may hold data about `collection` (undefined: data about no collection). */
  private mayHold(collection: string | undefined, region: RegionId): boolean {
    if (collection === undefined || this.bugs.leakResidentKv) return true;
    const r = this.collections.get(collection)?.residency;
    return !r || r.includes(region);
  }

  /**
   * Defence in depth on apply: a change this region may not hold (a peer that failed to withhold
   * it) is stored as the placeholder it should have been, so the sequence stays contiguous.
   */
  private admit(from: RegionId, c: Change): Change {
    const allowed = this.residencyOf(c);
    if (!allowed || allowed.includes(this.region)) return c;
    const p = c.payload;
    const records = p.kind === 'doc' ? 1 + (p.kv?.length ?? 0) : p.kind === 'kv' ? p.entries.length : 0;
    this.opts.onEvent?.({ type: 'residency-refused', from, origin: c.origin, seq: c.seq, records });
    return withheld(c, allowed);
  }

  /**
   * Applies changes received from `from`, idempotently: a change already applied is skipped; a
   * gap stops that origin for this batch (the next pull resends from our cursor). Resolves once
   * the changes are durable.
   */
  async applyRemote(from: RegionId, changes: readonly Change[]): Promise<{ applied: number }> {
    let received: Record<RegionId, number> | undefined;
    for (const c of changes) {
      if (c.seq > seqOf(received ?? this.received, c.origin)) {
        received ??= { ...this.received };
        received[c.origin] = c.seq;
      }
    }
    if (received) this.received = received;
    const quarantined: QuarantineRecord[] = [];
    // Self-checked: each change is checked before it is staged, and one that fails is quarantined
    // rather than failing the batch (which the link would resend, and fail, forever).
    const result = await this.enqueue((tx) => {
      const now = this.opts.clock.nowMs();
      // A store that reads synchronously: the whole batch applies without a promise.
      if (this.opts.store.getDocSync) return this.applyInTx(tx, from, changes, now, quarantined);
      // An asynchronous store: read the batch's documents together rather than one per change.
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
      return tx.preload(docs).then(() => this.applyInTx(tx, from, changes, now, quarantined));
    }, true);
    // Reported once durable (a failed commit quarantined nothing).
    for (const r of quarantined) {
      this.quarantinedCount++;
      const { payload: _p, hlc: _h, atMs: _a, ...fields } = r;
      this.opts.onEvent?.({ type: 'quarantined', ...fields });
    }
    return result;
  }

  /**
   * Why this region cannot apply a peer's change, or undefined. `storable`: the change itself can
   * be kept (in the log and the quarantine record); false for one malformed or unbounded.
   */
  private refusal(c: Change): { reason: string; storable: boolean } | undefined {
    if (!isHlc(c.hlc)) return { reason: 'malformed HLC', storable: false };
    try {
      checkPayload(c.payload, this.limits);
    } catch (e) {
      return { reason: (e as Error).message, storable: false };
    }
    const p = c.payload;
    if (p.kind !== 'doc') return undefined;
    const spec = this.collections.get(p.collection);
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
  private quarantine(
    tx: BatchTx,
    from: RegionId,
    c: Change,
    refusal: { reason: string; storable: boolean },
    now: number,
    out: QuarantineRecord[],
  ): void {
    const hlc = refusal.storable ? c.hlc : encodeHlc(this.hlc.now());
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
      const allowed = this.residencyOf(c);
      if (allowed && !allowed.includes(this.region)) logged = withheld(c, allowed);
      else {
        logged = c;
        rec.payload = c.payload as unknown as Json;
        if (c.payload.kind === 'doc') {
          rec.collection = c.payload.collection;
          rec.key = c.payload.key;
          if (this.collections.has(rec.collection)) collection = rec.collection;
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

  /** The body of applyRemote inside its transaction; every document it stages is readable now. */
  private applyInTx(
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
      const refusal = this.refusal(c);
      if (refusal) {
        this.quarantine(tx, from, c, refusal, now, quarantined);
        continue;
      }
      if (c.payload.kind === 'withheld' && c.payload.allowed.includes(this.region)) {
        // We must hold the real change; wait for it from a region that may send it.
        blocked.add(c.origin);
        continue;
      }
      let change = this.admit(from, c);
      if (this.bugs.dropIncrement && c.payload.kind === 'doc' && c.payload.delta.t === 'counter') {
        change = { ...c, payload: { ...c.payload, delta: { t: 'counter', p: {}, n: {} } } };
      }
      const p = change.payload;
      if (p.kind === 'doc' && !tx.loadNow(p.collection, p.key)) {
        throw new Error(`${p.collection}/${p.key} was not read before applying its change`);
      }
      const t = decodeHlc(c.hlc);
      this.observeRemoteHlc(change, t);
      if (this.stage(tx, change) && change.payload.kind === 'doc') {
        this.counts.conflicts++;
        this.opts.onEvent?.({
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
    this.counts.remoteApplied += applied;
    const onEvent = this.opts.onEvent;
    if (onEvent) {
      for (const [origin, l] of lags) {
        onEvent({ type: 'applied', from, origin, count: l.count, lagMs: l.lagMs });
      }
    }
    return { applied };
  }

  /**
   * Records a change of our log that could not be serialised for `peer` (PeerFeed sends a
   * placeholder instead): kept in QUARANTINE_NS and reported like a change a peer could not apply.
   */
  async quarantineUnsendable(peer: RegionId, c: Change, reason: string): Promise<void> {
    const rec: QuarantineRecord = {
      from: this.region,
      origin: c.origin,
      seq: c.seq,
      hlc: c.hlc,
      reason: `not sent to ${peer}: ${reason}`,
      atMs: this.opts.clock.nowMs(),
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
    if (rec.collection !== undefined && this.collections.has(rec.collection)) kv.collection = rec.collection;
    await this.enqueue((tx) => {
      tx.kv.push(kv);
      tx.dirty = true;
      return undefined;
    });
    this.quarantinedCount++;
    const { hlc: _h, atMs: _a, ...fields } = rec;
    this.opts.onEvent?.({ type: 'quarantined', ...fields });
  }

  /** Merges a peer's snapshot: every document state merges as a CRDT, and the version advances. */
  async applySnapshot(from: RegionId, snap: Snapshot, omittedCollections: readonly string[]): Promise<void> {
    const mine = [...this.collections.values()].filter(
      (c) => omittedCollections.includes(c.name) && (!c.residency || c.residency.includes(this.region)),
    );
    if (mine.length > 0) {
      throw new MeridianError(
        'forbidden',
        `snapshot from ${from} omits resident collections this region holds: ${mine.map((c) => c.name).join(', ')}`,
      );
    }
    // Defence in depth: what a peer should have left out of the snapshot is not stored here.
    const docs = snap.docs.filter((d) => this.mayHold(d.collection, this.region));
    const kv = snap.kv.filter((r) => this.mayHold(r.collection, this.region));
    const refused = snap.docs.length - docs.length + snap.kv.length - kv.length;
    if (refused > 0) {
      this.opts.onEvent?.({ type: 'residency-refused', from, origin: from, seq: 0, records: refused });
    }
    await this.enqueue(async (tx) => {
      for (const d of docs) {
        const cur = await tx.getDoc(d.collection, d.key);
        const state = cur ? mergeDoc(cur.state, d.state).state : d.state;
        tx.putDoc({ ...d, state, version: mergeVersions(cur?.version ?? {}, d.version) });
      }
      tx.kv.push(...kv);
      // The snapshot covers changes our log will never hold: mark that range truncated (before the
      // commit, so no crash leaves a silent hole) so that a peer behind it gets a snapshot from us
      // instead of a log with a gap it would wait on forever.
      const holes: Record<RegionId, number> = {};
      // Our own origin too: a region recovering its own changes from a snapshot (its disk was
      // wiped) holds none of them in its log either.
      for (const [origin, seq] of Object.entries(snap.applied)) {
        if (seq > seqOf(tx.applied, origin)) holes[origin] = seq;
      }
      if (Object.keys(holes).length > 0) {
        await this.opts.store.truncateLog(holes);
        this.truncated = mergeVersions(this.truncated, holes);
      }
      tx.applied = mergeVersions(tx.applied, snap.applied);
      tx.dirty = true;
      return undefined;
    });
    this.opts.onEvent?.({ type: 'snapshot-applied', from, docs: docs.length });
  }

  /** Records what `peer` has durably applied (from its acknowledgement or its pull cursor). */
  onPeerAck(peer: RegionId, applied: VersionVector): void {
    this.noteAck(peer, applied);
  }

  private noteAck(peer: RegionId, applied: VersionVector): void {
    if (peer === this.region) return;
    const before = this.peerAcks.get(peer);
    this.peerAcks.set(peer, before ? joinVersions(before, applied) : { ...applied });
    this.noteOwnOriginHeld(peer, seqOf(applied, this.region));
    this.wakeAckWaiters();
  }

  /** A peer holds our own changes up to `seq`: we must hold them too before issuing more. */
  private noteOwnOriginHeld(peer: RegionId, seq: number): void {
    if (seq > this.ownOriginPeersHold) {
      this.ownOriginPeersHold = seq;
      this.ownOriginHolder = peer;
    }
    if (this.ownOriginUnheard?.delete(peer) && this.ownOriginUnheard.size === 0) {
      this.ownOriginUnheard = undefined;
    }
    this.updateOwnOriginReady();
  }

  private updateOwnOriginReady(): void {
    this.ownOriginReady =
      this.ownOriginUnheard === undefined && seqOf(this.applied, this.region) >= this.ownOriginPeersHold;
    if (this.ownOriginReady && this.ownOriginWaiters.size > 0)
      for (const w of [...this.ownOriginWaiters]) w();
  }

  /**
   * Holds a local write until the peers' views are in (milliseconds after a start, when the peers
   * are up), at most recoverOwnOriginWaitMs: a write that arrives just after start-up is not
   * refused for it.
   */
  private waitOwnOrigin(): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | undefined;
      const done = () => {
        if (timer) this.opts.timers.clearTimeout(timer);
        this.ownOriginWaiters.delete(done);
        resolve();
      };
      this.ownOriginWaiters.add(done);
      timer = this.opts.timers.setTimeout(done, this.ownOriginWaitMs);
    });
  }

  /**
   * Refuses to issue `seq` while a peer may already hold a change of ours with that sequence (our
   * disk was wiped or replaced by an older one): peers would skip the new change as a duplicate.
   */
  private checkOwnSeq(seq: number): void {
    if (this.ownOriginReady && seq > this.ownOriginPeersHold) return;
    const waiting = this.ownOriginUnheard ? [...this.ownOriginUnheard] : [];
    throw new MeridianError(
      'unavailable',
      waiting.length > 0
        ? `${this.region} accepts writes once its peers have told it which of its own changes they hold (waiting for ${waiting.join(', ')})`
        : `${this.region} is recovering its own changes from its peers (holds ${seq - 1}, peers hold ${this.ownOriginPeersHold})`,
      { replayRegion: this.ownOriginHolder ?? waiting[0] ?? this.region },
    );
  }

  peerVersion(peer: RegionId): VersionVector {
    return this.peerAcks.get(peer) ?? {};
  }

  private waitForAcks(spec: CollectionSpec, seq: number): Promise<boolean> {
    const needed = requiredAcks(spec, this.regionIds);
    const peers = holders(spec, this.regionIds).filter((r) => r !== this.region);
    const timeoutMs =
      spec.replication.mode === 'sync' ? (spec.replication.timeoutMs ?? this.opts.syncTimeoutMs) : 0;
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined;
      const w: AckWaiter = {
        seq,
        needed,
        peers,
        done: (ok) => {
          if (timer) this.opts.timers.clearTimeout(timer);
          this.ackWaiters = this.ackWaiters.filter((x) => x !== w);
          resolve(ok);
        },
      };
      if (this.ackCount(w) >= needed) return resolve(true);
      this.ackWaiters.push(w);
      timer = this.opts.timers.setTimeout(() => w.done(false), timeoutMs);
    });
  }

  private ackCount(w: AckWaiter): number {
    let n = 0;
    for (const p of w.peers) if ((this.peerAcks.get(p)?.[this.region] ?? 0) >= w.seq) n++;
    return n;
  }

  private wakeAckWaiters(): void {
    let ready: AckWaiter[] | undefined;
    for (const w of this.ackWaiters) {
      if (this.ackCount(w) >= w.needed) {
        ready ??= [];
        ready.push(w);
      }
    }
    if (ready) for (const w of ready) w.done(true);
  }

  private wakeVersionWaiters(): void {
    // Runs on every commit while reads wait behind a partition: find the ready ones without copying.
    let ready: VersionWaiter[] | undefined;
    for (const w of this.versionWaiters) {
      if (dominates(this.applied, w.want)) {
        ready ??= [];
        ready.push(w);
      }
    }
    if (ready) for (const w of ready) w.done(true);
  }

  /**
   * Drops log entries every peer has acknowledged, keeping at least `keep` per origin. A peer that
   * later asks from before the cut gets a snapshot.
   */
  async compactLog(keep: number, options: { force?: boolean } = {}): Promise<VersionVector> {
    const upTo: Record<RegionId, number> = {};
    for (const [origin, seq] of Object.entries(this.applied)) {
      let cut = seq - keep;
      if (!options.force) {
        for (const peer of this.regionIds) {
          if (peer !== this.region) cut = Math.min(cut, seqOf(this.peerAcks.get(peer) ?? {}, origin));
        }
      }
      if (cut > seqOf(this.truncated, origin)) upTo[origin] = cut;
    }
    if (Object.keys(upTo).length > 0) {
      await this.opts.store.truncateLog(upTo);
      this.truncated = mergeVersions(this.truncated, upTo);
    }
    return this.truncated;
  }

  // ---------------------------------------------------------------- clock safety

  /** This region's physical clock, for the replication stream to carry to peers. */
  wallClockMs(): number {
    return this.opts.clock.nowMs();
  }

  /**
   * A peer's physical clock reading, carried by what it sent us just now (clock-offset.ts): a lower
   * bound of its offset only, since the message's delay is unknown.
   */
  observePeerClock(peer: RegionId, peerWallMs: number): void {
    if (peer === this.region || !this.regionIds.includes(peer)) return;
    this.clockOffsets.observe(peer, peerWallMs);
    this.clockCheckedAtMs = Number.NEGATIVE_INFINITY;
    this.clockVerdict();
  }

  /**
   * A request sent to `peer` when our clock (`wallClockMs`) read `sentAtMs` was answered just now
   * with the peer's clock reading: bounds its offset from both sides.
   */
  observePeerClockRoundTrip(peer: RegionId, sentAtMs: number, peerWallMs: number): void {
    if (peer === this.region || !this.regionIds.includes(peer)) return;
    this.clockOffsets.observeRoundTrip(peer, sentAtMs, peerWallMs);
    this.clockCheckedAtMs = Number.NEGATIVE_INFINITY;
    this.clockVerdict();
    // Only a bounded interval can show our clock ahead: the start-up wait is for these.
    if (this.clockOffsets.bounded(peer)) this.heardOfPeerClock(peer);
  }

  /** The replication link (or an exchange) with `peer` failed: no reading will come from it soon. */
  notePeerUnreachable(peer: RegionId): void {
    this.heardOfPeerClock(peer);
  }

  private heardOfPeerClock(peer: RegionId): void {
    const unheard = this.clockUnheard;
    if (!unheard?.delete(peer)) return;
    if (unheard.size === 0) {
      this.openClockGate();
      return;
    }
    // Replication is running: the others get a request's wait from now, not from opening.
    const untilMs = this.opts.clock.nowMs() + this.opts.maxWaitMs;
    if (untilMs < this.clockWaitUntilMs) {
      this.clockWaitUntilMs = untilMs;
      if (this.clockGateTimer) this.armClockGate();
    }
  }

  /** Holds a local write until every peer's clock has been read once, or the wait is over. */
  private waitPeerClocks(): Promise<void> {
    if (this.clockWaitUntilMs <= this.opts.clock.nowMs()) {
      this.openClockGate();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.clockWaiters.add(resolve);
      if (!this.clockGateTimer) this.armClockGate();
    });
  }

  private armClockGate(): void {
    if (this.clockGateTimer) this.opts.timers.clearTimeout(this.clockGateTimer);
    const leftMs = Math.max(0, this.clockWaitUntilMs - this.opts.clock.nowMs());
    this.clockGateTimer = this.opts.timers.setTimeout(() => {
      this.clockGateTimer = undefined;
      this.openClockGate();
    }, leftMs);
  }

  private openClockGate(): void {
    if (this.clockGateTimer) this.opts.timers.clearTimeout(this.clockGateTimer);
    this.clockGateTimer = undefined;
    this.clockUnheard = undefined;
    const waiters = [...this.clockWaiters];
    this.clockWaiters.clear();
    for (const resolve of waiters) resolve();
  }

  /** Each reachable peer's clock minus ours, as bounded by its recent readings. */
  peerClockOffsets(): PeerOffset[] {
    return this.clockOffsets.offsets();
  }

  /** The rule applied now; reports entering and leaving the refusing state as an event. */
  clockVerdict(): ClockVerdict {
    const nowMs = this.opts.clock.nowMs();
    if (nowMs - this.clockCheckedAtMs < CLOCK_RECHECK_MS && nowMs >= this.clockCheckedAtMs) {
      return this.clockVerdictNow;
    }
    const v = nextClockVerdict(
      this.clockVerdictNow,
      this.clockOffsets.offsets(),
      this.opts.maxOffsetMs,
      this.regionIds.length,
    );
    this.clockVerdictNow = v;
    this.clockCheckedAtMs = nowMs;
    const refusing = v.state === 'beyond';
    if (refusing !== this.clockRefusing) {
      this.clockRefusing = refusing;
      this.opts.onEvent?.({
        type: 'clock-unsafe',
        refusing,
        aheadMs: v.state === 'beyond' ? v.aheadMs : 0,
        peers: v.state === 'beyond' ? v.peers : [],
      });
    }
    return v;
  }

  /**
   * CockroachDB's rule: while our clock is beyond `maxOffsetMs` from a majority of our peers, no
   * write may carry its timestamps (it would win, or lose, every last-writer-wins conflict
   * wrongly). 503, replayed to the nearest peer that holds the collection and whose clock agrees
   * with the majority.
   */
  private refuseIfClockUnsafe(spec: CollectionSpec | undefined): void {
    if (!this.clockRefusing && this.clockCheckedAtMs === Number.NEGATIVE_INFINITY) return;
    const v = this.clockVerdict();
    if (v.state === 'ok') return;
    const allowed = spec ? holders(spec, this.regionIds) : this.regionIds;
    const here = this.opts.regions.find((r) => r.id === this.region)!;
    const healthy = this.opts.regions.filter((r) => v.peers.includes(r.id) && allowed.includes(r.id));
    const to = nearestRegion(here, healthy)?.id;
    const by = Math.round(Math.abs(v.aheadMs));
    throw new MeridianError(
      'clock_skew',
      `${this.region}'s clock is ${by} ms ${v.aheadMs >= 0 ? 'ahead of' : 'behind'} ${v.peers.join(', ')} (more than ${this.opts.maxOffsetMs} ms): it accepts no writes until its clock is back within bounds`,
      to ? { replayRegion: to } : {},
    );
  }

  stats(): RegionStats {
    const peers: RegionStats['peers'] = {};
    const mine = seqOf(this.applied, this.region);
    for (const r of this.regionIds) {
      if (r === this.region) continue;
      const acked = this.peerAcks.get(r) ?? {};
      peers[r] = { acked, behindChanges: Math.max(0, mine - seqOf(acked, this.region)) };
    }
    return {
      region: this.region,
      version: this.applied,
      ...this.counts,
      clockSkewRejections: this.hlc.rejectedCount,
      peers,
      quarantined: this.quarantinedCount,
      ...(this.ownOriginReady
        ? {}
        : {
            recoveringOwnOrigin: {
              waitingFor: [...(this.ownOriginUnheard ?? [])],
              peersHold: this.ownOriginPeersHold,
            },
          }),
    };
  }

  /** Stops accepting work; pending waiters time out as usual. */
  close(): void {
    this.closed = true;
  }
}

function isHlc(s: unknown): boolean {
  try {
    decodeHlc(s as string);
    return true;
  } catch {
    return false;
  }
}

function validateMembers(members: unknown): asserts members is string[] {
  if (!Array.isArray(members) || members.length === 0 || members.length > 1000) {
    throw new MeridianError('bad_request', '"members" must be a non-empty array of at most 1000 strings');
  }
  for (const m of members) {
    if (typeof m !== 'string' || m.length === 0 || m.length > 512) {
      throw new MeridianError('bad_request', 'each member must be a string of 1 to 512 characters');
    }
  }
}
