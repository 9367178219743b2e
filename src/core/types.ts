/** Shared vocabulary of the core: regions, JSON values, collections and their policies. */

export type RegionId = string;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** How a collection resolves concurrent writes (DESIGN.md, Policies). */
export type Policy = 'pinned' | 'lww' | 'counter' | 'set';

/** `all` regions, a `majority` of all regions counting the origin, or N other regions. */
export type SyncAcks = 'all' | 'majority' | number;

export type Replication = { mode: 'async' } | { mode: 'sync'; acks: SyncAcks; timeoutMs?: number };

export interface CollectionSpec {
  name: string;
  policy: Policy;
  replication: Replication;
  /** When set, the collection's documents live in, and replicate to, these regions only. */
  residency?: RegionId[];
  /** Who may write it: `clients` (default) through /v1, or only `sagas` (the saga engine, in-process). */
  writableBy?: 'clients' | 'sagas';
}

export interface RegionInfo {
  id: RegionId;
  lat: number;
  lon: number;
}

/** Ops a client may ask for; which ones a policy allows is decided in collection.ts. */
export type Operation = 'put' | 'delete' | 'increment' | 'add' | 'remove' | 'get';
