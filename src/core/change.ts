/** One replicated mutation, stamped with an HLC and its origin region's sequence number. */
import type { DocState } from './crdt.js';
import type { Json, RegionId } from './types.js';

/** Replicated metadata beside the documents (idempotency records, saga state): last writer wins by HLC. */
export interface KvEntry {
  ns: string;
  key: string;
  /** null deletes the entry. */
  value: Json;
  /** Milliseconds since the epoch after which the entry may be purged; absent = kept. */
  expiresAtMs?: number;
  /**
   * The collection the entry is about (an idempotency answer holds its document): a resident
   * collection's entries stay in its regions. Entries of a document change concern its collection.
   */
  collection?: string;
}

export type ChangePayload =
  | { kind: 'doc'; collection: string; key: string; delta: DocState; kv?: KvEntry[] }
  | { kind: 'kv'; entries: KvEntry[] }
  /**
   * Stands in for a change of a resident collection when the log is sent to a region outside its
   * residency: it keeps the sequence contiguous but carries no collection, key or value.
   */
  | { kind: 'withheld'; allowed: RegionId[] };

export interface Change {
  origin: RegionId;
  /** 1, 2, 3, ... per origin region, without gaps. */
  seq: number;
  /** Encoded HLC (hlc.ts). */
  hlc: string;
  payload: ChangePayload;
}

export function withheld(c: Change, allowed: RegionId[]): Change {
  return { origin: c.origin, seq: c.seq, hlc: c.hlc, payload: { kind: 'withheld', allowed } };
}
