/** Row shapes shared by the SQL stores (SQLite, PostgreSQL) and their conversion to core records. */
import type { Change, ChangePayload } from '../core/change.js';
import type { DocState } from '../core/crdt.js';
import type { DocRecord, KvRecord } from '../core/store.js';
import type { Json } from '../core/types.js';
import type { VersionVector } from '../core/version.js';

export interface DocRow {
  collection: string;
  key: string;
  state: string;
  version: string;
}

/** PostgreSQL returns BIGINT columns as strings, SQLite as numbers. */
export interface LogRow {
  origin: string;
  seq: number | string;
  hlc: string;
  payload: string;
}

export interface KvRow {
  ns: string;
  key: string;
  value: string;
  hlc: string;
  expires_at_ms: number | string | null;
  /** The collection the record is about (residency); null for records about none. */
  collection: string | null;
}

export interface StateRow {
  applied: string;
  truncated: string;
  max_hlc: string | null;
}

export const toDoc = (r: DocRow): DocRecord => ({
  collection: r.collection,
  key: r.key,
  state: JSON.parse(r.state) as DocState,
  version: JSON.parse(r.version) as VersionVector,
});

export const toChange = (r: LogRow): Change => ({
  origin: r.origin,
  seq: Number(r.seq),
  hlc: r.hlc,
  payload: JSON.parse(r.payload) as ChangePayload,
});

export const toKv = (r: KvRow): KvRecord => {
  const rec: KvRecord = { ns: r.ns, key: r.key, value: JSON.parse(r.value) as Json, hlc: r.hlc };
  if (r.expires_at_ms !== null) rec.expiresAtMs = Number(r.expires_at_ms);
  if (r.collection !== null) rec.collection = r.collection;
  return rec;
};
