/** The region state machine's public types: options, events, views, and the planted bugs. */
import type { Change, KvEntry } from '../change.js';
import type { Clock, Timers } from '../ports.js';
import type { KvRecord, RegionStore, Snapshot } from '../store.js';
import type { StoredValueLimits } from '../stored-value.js';
import type { CollectionSpec, Json, RegionId, RegionInfo } from '../types.js';
import type { VersionVector } from '../version.js';

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
  /** the replication feed sends a resident collection's changes to every peer, not a placeholder. */
  leakResidentChanges?: boolean;
  /** applyRemote takes a peer's register write as it arrives instead of merging it (last arrival wins). */
  lastArrivalWins?: boolean;
  /** a set add tags a member with the region and member only, so a re-add reuses a removed tag. */
  reuseSetTags?: boolean;
  /** a region accepts a write to a pinned key homed elsewhere instead of refusing it (421). */
  ignoreHome?: boolean;
  /** a read of a deleted register answers its tombstone (null) instead of nothing. */
  serveTombstones?: boolean;
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
   * The store failed a commit: what reached the disk is unknown, so the core stopped (every call
   * answers 503). Its host must restart it from the store (the node exits; the simulator restarts).
   */
  | { type: 'store-failed'; message: string }
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
  /**
   * Pinned collections: the home the client believes the key has (`Meridian-Home-Region`). Checked
   * (a region of the cluster, inside the residency) but it does not choose: a new key's home is
   * `homeOfNewKey` (collection.ts), and a region that is not the home answers 421 naming it.
   */
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
