/**
 * What a run records for the checkers: every client operation with its outcome, every change a
 * region durably committed as its origin, durable progress per region, and the fault events.
 */
import type { Change } from '../core/change.js';
import type { DocState } from '../core/crdt.js';
import type { DocRecord, KvRecord } from '../core/store.js';
import type { CollectionSpec, Json, RegionId } from '../core/types.js';
import type { VersionVector } from '../core/version.js';

export type OpKind = 'put' | 'delete' | 'increment' | 'add' | 'remove' | 'clear' | 'get';

/**
 * ok: answered with success. indefinite: the outcome is unknown to the client (504, or the region
 * crashed before answering). refused: a typed refusal (421, 503) that changed nothing.
 * unavailable: the region was down; nothing was attempted.
 */
export type OpResult = 'pending' | 'ok' | 'indefinite' | 'refused' | 'unavailable' | 'error';

/** Identifies one change: its origin region and sequence number, with its HLC. */
export interface ChangeRef {
  origin: RegionId;
  seq: number;
  hlc: string;
}

export interface OpRecord {
  id: number;
  session: number;
  /** Sessions that carry the Meridian-Version token between operations. */
  token: boolean;
  region: RegionId;
  kind: OpKind;
  collection: string;
  key: string;
  /** put: the unique value written; increment: the amount; add/remove: the members. */
  value?: string;
  by?: number;
  members?: string[];
  /** For pinned keys: the home the client names on the write. */
  home?: RegionId;
  startAtMs: number;
  endAtMs: number;
  result: OpResult;
  errorCode?: string;
  replayRegion?: RegionId;
  /** What the answer carried (reads and mutations). */
  answer?: Json | undefined;
  answerVersion?: VersionVector;
  /** The change this operation produced, once its origin committed it durably. */
  change?: ChangeRef;
  /** Sync writes: regions durably holding the change when the write was confirmed. */
  holdersAtAck?: RegionId[];
  /** The operation this one replays after a 421/503. */
  replayOf?: number;
}

/** A change committed by its origin region, as the origin's disk saw it. */
export interface LocalChange extends ChangeRef {
  collection: string;
  key: string;
  delta: DocState;
  committedAtMs: number;
  /** Set changes: the version the origin had applied when it made this change (its causal past). */
  causalPast?: VersionVector;
  /**
   * When a snapshot was merged in the same group commit, where in the batch is unknown: the causal
   * past is then at least `causalPast` and at most this.
   */
  causalPastMax?: VersionVector;
  op?: number;
}

export type FaultEvent =
  | { kind: 'crash'; region: RegionId; downMs: number }
  | { kind: 'restart'; region: RegionId }
  | { kind: 'lose'; region: RegionId }
  | { kind: 'partition'; from: RegionId[]; to: RegionId[]; oneWay: boolean; durationMs: number }
  | { kind: 'heal-partition'; from: RegionId[]; to: RegionId[]; oneWay: boolean }
  | { kind: 'skew'; region: RegionId; skewMs: number }
  | { kind: 'slow-disk'; region: RegionId; fsyncMs: number; durationMs: number }
  | { kind: 'compact'; region: RegionId; keep: number; force: boolean }
  | { kind: 'delay-spike'; region: RegionId; extraMs: number; durationMs: number }
  | { kind: 'disk-fail'; region: RegionId; failRate: number; durationMs: number }
  | { kind: 'torn-fsync'; region: RegionId; durationMs: number }
  | { kind: 'heal-all' };

export interface TimedFault {
  atMs: number;
  fault: FaultEvent;
}

/** The end of a run: what every live region holds after healing and quiescence. */
export interface FinalRegion {
  region: RegionId;
  applied: VersionVector;
  docs: Map<string, DocRecord>;
  /** Every change still in the region's log. */
  log: () => Iterable<Change>;
  /** Every kv record the region holds (idempotency answers and the like). */
  kv: () => Iterable<KvRecord>;
}

export interface Violation {
  checker: string;
  message: string;
  /** Virtual time it was observed (or the time of the evidence), for the history excerpt. */
  atMs?: number;
  collection?: string;
  key?: string;
  /** Operations that are the evidence. */
  ops?: number[];
}

export interface History {
  regions: RegionId[];
  collections: CollectionSpec[];
  ops: OpRecord[];
  /** Per origin, its changes by sequence (index seq - 1; holes for changes lost before durability). */
  changes: Map<RegionId, LocalChange[]>;
  faults: TimedFault[];
  /** Regions lost for good, with when. */
  lost: Map<RegionId, number>;
  /** Per region, the greatest version it ever held durably (kept after a region is lost). */
  maxDurable: Map<RegionId, VersionVector>;
  /** Breaches seen while running (messages and writes), filled by the residency checker's hooks. */
  residencyBreaches: Violation[];
  final: FinalRegion[];
  /** True when every live region reached the same applied version after healing. */
  quiesced: boolean;
  endAtMs: number;
}

export const docId = (collection: string, key: string): string => `${collection}\u0000${key}`;

export function changeAt(h: History, origin: RegionId, seq: number): LocalChange | undefined {
  return h.changes.get(origin)?.[seq - 1];
}

/** The version every live region agrees it has applied (the first live region's, after quiescence). */
export function survivingVersion(h: History): VersionVector {
  return h.final[0]?.applied ?? {};
}
