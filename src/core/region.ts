/**
 * The region state machine: local mutations become changes in the region's log; remote changes
 * are applied idempotently; peers' acknowledgements confirm sync writes; reads can wait for a
 * version. All I/O goes through the store, and all time through the clock and timers it is given,
 * so the same code runs in a region node and in the simulator.
 *
 * Its parts live in region/: the batch transaction and group commit (batch-tx.ts,
 * group-commit.ts), the replica side (replica.ts, residency.ts), the waiters for versions and
 * acknowledgements (waiters.ts), clock safety (clock-safety.ts) and own-origin recovery
 * (own-origin.ts). This class holds the region's state and its write path, and wires the parts.
 */
import type { Change, KvEntry } from './change.js';
import type { ClockVerdict, PeerOffset } from './clock-offset.js';
import { holders, homeOfNewKey, requiredAcks, requireOperation, validateKey } from './collection.js';
import {
  type CounterState,
  type DocState,
  docValue,
  emptyCounter,
  emptySet,
  isAbsent,
  type RegState,
  type SetState,
} from './crdt.js';
import { MeridianError } from './errors.js';
import { nearestRegion } from './geo.js';
import { decodeHlc, encodeHlc, HLC_ZERO, HybridClock } from './hlc.js';
import { type BatchTx, readKvInTx, stageChange, stageKv } from './region/batch-tx.js';
import { ClockSafety } from './region/clock-safety.js';
import { GroupCommit } from './region/group-commit.js';
import { OwnOriginRecovery } from './region/own-origin.js';
import {
  applyInTx,
  compactionCut,
  docsToRead,
  mergeSnapshotInTx,
  needsSnapshot,
  type ReplicaContext,
  snapshotForPeer,
  unsendableRecord,
} from './region/replica.js';
import { Residency } from './region/residency.js';
import type {
  DocView,
  KvRead,
  PlantedBugs,
  PullResult,
  QuarantineRecord,
  ReadOptions,
  RegionCoreOptions,
  RegionStats,
  WriteOptions,
} from './region/types.js';
import { PeerAcks, VersionWaiters } from './region/waiters.js';
import type { KvRecord, Snapshot } from './store.js';
import { DEFAULT_STORED_VALUE_LIMITS, type StoredValueLimits } from './stored-value.js';
import type { CollectionSpec, Json, Operation, RegionId } from './types.js';
import { dominates, joinVersions, mergeVersions, missing, seqOf, type VersionVector } from './version.js';

export type {
  DocView,
  KvRead,
  PlantedBugs,
  PullResult,
  QuarantineRecord,
  ReadOptions,
  RegionCoreOptions,
  RegionEvent,
  RegionStats,
  WriteOptions,
} from './region/types.js';
export { QUARANTINE_NS } from './region/types.js';

/** The options of a call that passes none: one shared object (options are only read). */
const NO_OPTIONS: Readonly<ReadOptions & WriteOptions & { ack?: boolean }> = Object.freeze({});
/** The previous HLC of a register's first write. */
const HLC_ZERO_ENCODED = encodeHlc(HLC_ZERO);

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
  private readonly peerAcks: PeerAcks;
  private readonly versionWaiters: VersionWaiters;
  private readonly commits: GroupCommit;
  private readonly listeners = new Set<(changes: readonly Change[]) => void>();
  private closed = false;
  private counts = { localWrites: 0, remoteApplied: 0, conflicts: 0, syncTimeouts: 0 };
  /** Where `stageChange` reads whether a merge resolved a conflict (one object per core, not per merge). */
  private readonly mergeOut = { conflict: false };
  private readonly clockSafety: ClockSafety;
  private readonly limits: StoredValueLimits;
  private readonly residency: Residency;
  private readonly replica: ReplicaContext;
  /** Local writes wait for this after a node opens on a disk that may have lost its own changes. */
  private readonly ownOrigin: OwnOriginRecovery;
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
    this.clockSafety = new ClockSafety({
      region: this.region,
      regions: options.regions,
      clock: options.clock,
      timers: options.timers,
      maxOffsetMs: this.opts.maxOffsetMs,
      peerClockStaleAfterMs: this.opts.peerClockStaleAfterMs,
      awaitPeerClocks: this.opts.awaitPeerClocks,
      maxWaitMs: this.opts.maxWaitMs,
      onEvent: options.onEvent,
    });
    this.limits = { ...DEFAULT_STORED_VALUE_LIMITS, ...options.storedValueLimits };
    this.ownOrigin = new OwnOriginRecovery(
      this.region,
      options.timers,
      options.recoverOwnOriginFrom?.filter((r) => r !== this.region) ?? [],
      options.recoverOwnOriginWaitMs ?? 5000,
    );
    this.peerAcks = new PeerAcks(this.region, options.timers);
    this.versionWaiters = new VersionWaiters(options.timers);
    this.residency = new Residency(this.collections, this.bugs);
    this.replica = {
      region: this.region,
      collections: this.collections,
      residency: this.residency,
      limits: this.limits,
      hlc: this.hlc,
      bugs: this.bugs,
      counts: this.counts,
      mergeOut: this.mergeOut,
      onEvent: options.onEvent,
    };
    this.commits = new GroupCommit({
      store: options.store,
      maxBatch: this.opts.maxBatch,
      beforeBatch: options.beforeBatch,
      limits: this.limits,
      applied: () => this.applied,
      committed: (tx) => this.committed(tx),
      failed: (error) => {
        this.closed = true;
        this.opts.onEvent?.({ type: 'store-failed', message: (error as Error)?.message ?? String(error) });
      },
    });
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
    if (!doc || (isAbsent(doc.state) && !this.bugs.serveTombstones)) return undefined;
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
    const ok = await this.versionWaiters.wait(want, maxWaitMs);
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
        adds[m] = [this.bugs.reuseSetTags ? `${this.region}:${m}` : `${this.region}:${seq}.${i}`];
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
        // A new key's home is the rule's (collection.ts), which every region computes alike, not
        // the receiving region nor the one a client names: either would let two regions each
        // accept the first write of one key, and last-writer-wins would drop one of them.
        home = cur?.home ?? homeOfNewKey(spec, this.regionIds, key);
        if (home !== this.region && !this.bugs.ignoreHome) {
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
    if (this.clockSafety.waiting) await this.clockSafety.waitForPeers();
    if (!this.ownOrigin.ready) await this.ownOrigin.wait();
    // Set when the mutation runs (no result object per write to carry it out).
    let seq = 0;
    const view = await this.enqueue((tx) => {
      seq = tx.seqOf(this.region) + 1;
      this.ownOrigin.checkSeq(seq);
      // Checked where the timestamp is taken (after start-up waits), with the latest readings.
      this.clockSafety.refuseIfUnsafe(spec);
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
    stageChange(tx, change, this.mergeOut);
    this.counts.localWrites++;
    const doc = tx.cached(spec.name, key)!;
    const view: DocView = { key, value: docValue(doc.state), version: tx.applied };
    const kvAfter = options.kvAfter;
    if (!kvAfter) return view;
    return (async () => {
      const more = await kvAfter(view, (ns, k) => readKvInTx(tx, this.opts.store, ns, k));
      if (more.length > 0 && change.payload.kind === 'doc') {
        change.payload.kv = [...(change.payload.kv ?? []), ...more];
        stageKv(tx, more, hlc, spec.name);
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
    if (this.clockSafety.waiting) await this.clockSafety.waitForPeers();
    if (!this.ownOrigin.ready) await this.ownOrigin.wait();
    this.clockSafety.refuseIfUnsafe(undefined);
    return this.enqueue(async (tx) => {
      const list =
        typeof entries === 'function'
          ? await entries((ns, k) => readKvInTx(tx, this.opts.store, ns, k))
          : entries;
      if (list.length === 0) return tx.applied;
      // Records about a resident collection are that collection's data: never held outside it.
      for (const e of list) {
        const spec = e.collection === undefined ? undefined : this.collections.get(e.collection);
        if (spec) this.checkResidency(spec);
      }
      const seq = tx.seqOf(this.region) + 1;
      this.ownOrigin.checkSeq(seq);
      const hlc = encodeHlc(this.hlc.now());
      stageChange(
        tx,
        { origin: this.region, seq, hlc, payload: { kind: 'kv', entries: list } },
        this.mergeOut,
      );
      return tx.applied;
    });
  }

  /** Deletes kv records whose expiry has passed (idempotency records after their window). */
  async purgeExpiredKv(): Promise<number> {
    return this.opts.store.purgeKv(this.opts.clock.nowMs());
  }

  async getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    const r = await this.opts.store.getKv(ns, key);
    return r && r.value !== null ? r : undefined;
  }

  async listKv(ns: string): Promise<KvRecord[]> {
    return (await this.opts.store.listKv(ns)).filter((r) => r.value !== null);
  }

  private enqueue<T>(run: (tx: BatchTx) => T | Promise<T>, selfChecked = false): Promise<T> {
    if (this.closed)
      return Promise.reject(new MeridianError('unavailable', `${this.region} is shutting down`));
    return this.commits.enqueue(run, selfChecked);
  }

  /** A group-commit batch is durable: advance, tell the listeners, wake the reads it satisfies. */
  private committed(tx: BatchTx): void {
    this.applied = tx.applied;
    this.received = joinVersions(this.received, tx.applied);
    if (!this.ownOrigin.ready) this.ownOrigin.update(seqOf(this.applied, this.region));
    const changes = tx.changes;
    if (changes.length > 0) {
      for (const l of this.listeners) l(changes);
      const onEvent = this.opts.onEvent;
      if (onEvent) onEvent({ type: 'committed', changes, local: this.hasLocal(changes) });
    }
    this.versionWaiters.wake(this.applied);
    // No peerAcks.wake() here: a commit changes no peer's acknowledgement, and every waiter short
    // of its acks is checked again whenever one arrives (noteAck).
  }

  private hasLocal(changes: readonly Change[]): boolean {
    for (const c of changes) if (c.origin === this.region) return true;
    return false;
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
    if (needsSnapshot(have, this.truncated, this.applied)) {
      return snapshotForPeer(this.residency, await this.opts.store.snapshot(), peer);
    }
    const changes = await this.opts.store.readLog(have, limit);
    return { kind: 'changes', changes: changes.map((c) => this.residency.forPeer(c, peer)) };
  }

  /**
   * Filters one change for a peer: a change holding a resident collection's data (its document, or
   * a kv record about it) becomes a placeholder outside its regions.
   */
  forPeer(c: Change, peer: RegionId): Change {
    return this.residency.forPeer(c, peer);
  }

  /**
   * The regions that may hold a change, when it holds a resident collection's data: its document's
   * collection and every kv entry naming one (all of them must allow the region). Undefined: any.
   */
  residencyOf(c: Change): RegionId[] | undefined {
    return this.residency.of(c);
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
      if (this.opts.store.getDocSync) return applyInTx(this.replica, tx, from, changes, now, quarantined);
      // An asynchronous store: read the batch's documents together rather than one per change.
      return tx
        .preload(docsToRead(tx, changes))
        .then(() => applyInTx(this.replica, tx, from, changes, now, quarantined));
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
   * Records a change of our log that could not be serialised for `peer` (PeerFeed sends a
   * placeholder instead): kept in QUARANTINE_NS and reported like a change a peer could not apply.
   */
  async quarantineUnsendable(peer: RegionId, c: Change, reason: string): Promise<void> {
    const { rec, kv } = unsendableRecord(this.replica, peer, c, reason, this.opts.clock.nowMs());
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
    const docs = snap.docs.filter((d) => this.residency.mayHold(d.collection, this.region));
    const kv = snap.kv.filter((r) => this.residency.mayHold(r.collection, this.region));
    const refused = snap.docs.length - docs.length + snap.kv.length - kv.length;
    if (refused > 0) {
      this.opts.onEvent?.({ type: 'residency-refused', from, origin: from, seq: 0, records: refused });
    }
    await this.enqueue((tx) =>
      mergeSnapshotInTx(tx, this.opts.store, docs, kv, snap.applied, (holes) => {
        this.truncated = mergeVersions(this.truncated, holes);
      }),
    );
    this.opts.onEvent?.({ type: 'snapshot-applied', from, docs: docs.length });
  }

  /** Records what `peer` has durably applied (from its acknowledgement or its pull cursor). */
  onPeerAck(peer: RegionId, applied: VersionVector): void {
    this.noteAck(peer, applied);
  }

  private noteAck(peer: RegionId, applied: VersionVector): void {
    if (peer === this.region) return;
    this.peerAcks.record(peer, applied);
    // A peer holds our own changes up to this: we must hold them too before issuing more.
    this.ownOrigin.noteHeld(peer, seqOf(applied, this.region), seqOf(this.applied, this.region));
    this.peerAcks.wake();
  }

  peerVersion(peer: RegionId): VersionVector {
    return this.peerAcks.of(peer) ?? {};
  }

  private waitForAcks(spec: CollectionSpec, seq: number): Promise<boolean> {
    const needed = requiredAcks(spec, this.regionIds);
    const peers = holders(spec, this.regionIds).filter((r) => r !== this.region);
    const timeoutMs =
      spec.replication.mode === 'sync' ? (spec.replication.timeoutMs ?? this.opts.syncTimeoutMs) : 0;
    return this.peerAcks.waitFor(seq, needed, peers, timeoutMs);
  }

  /**
   * Drops log entries every peer has acknowledged, keeping at least `keep` per origin. A peer that
   * later asks from before the cut gets a snapshot.
   */
  async compactLog(keep: number, options: { force?: boolean } = {}): Promise<VersionVector> {
    const peers = this.regionIds.filter((r) => r !== this.region);
    const upTo = compactionCut(
      this.applied,
      this.truncated,
      peers,
      (peer) => this.peerAcks.of(peer),
      keep,
      options.force === true,
    );
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
    this.clockSafety.observe(peer, peerWallMs);
  }

  /**
   * A request sent to `peer` when our clock (`wallClockMs`) read `sentAtMs` was answered just now
   * with the peer's clock reading: bounds its offset from both sides.
   */
  observePeerClockRoundTrip(peer: RegionId, sentAtMs: number, peerWallMs: number): void {
    this.clockSafety.observeRoundTrip(peer, sentAtMs, peerWallMs);
  }

  /** The replication link (or an exchange) with `peer` failed: no reading will come from it soon. */
  notePeerUnreachable(peer: RegionId): void {
    this.clockSafety.heardOf(peer);
  }

  /** Each reachable peer's clock minus ours, as bounded by its recent readings. */
  peerClockOffsets(): PeerOffset[] {
    return this.clockSafety.peerOffsets();
  }

  /** The rule applied now; reports entering and leaving the refusing state as an event. */
  clockVerdict(): ClockVerdict {
    return this.clockSafety.verdict();
  }

  stats(): RegionStats {
    const peers: RegionStats['peers'] = {};
    const mine = seqOf(this.applied, this.region);
    for (const r of this.regionIds) {
      if (r === this.region) continue;
      const acked = this.peerAcks.of(r) ?? {};
      peers[r] = { acked, behindChanges: Math.max(0, mine - seqOf(acked, this.region)) };
    }
    const recovering = this.ownOrigin.status();
    return {
      region: this.region,
      version: this.applied,
      ...this.counts,
      clockSkewRejections: this.hlc.rejectedCount,
      peers,
      quarantined: this.quarantinedCount,
      ...(recovering ? { recoveringOwnOrigin: recovering } : {}),
    };
  }

  /** Stops accepting work; pending waiters time out as usual. */
  close(): void {
    this.closed = true;
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
