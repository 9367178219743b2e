/** What each policy allows, and validation of collection specs, keys and operations. */
import { MeridianError } from './errors.js';
import type { CollectionSpec, Operation, Policy, RegionId } from './types.js';

export const MAX_KEY_BYTES = 512;

const OPERATIONS: Record<Policy, readonly Operation[]> = {
  pinned: ['get', 'put', 'delete'],
  lww: ['get', 'put', 'delete'],
  counter: ['get', 'increment'],
  set: ['get', 'add', 'remove', 'delete'],
};

export function allowsOperation(policy: Policy, op: Operation): boolean {
  return OPERATIONS[policy].includes(op);
}

export function requireOperation(spec: CollectionSpec, op: Operation): void {
  if (!allowsOperation(spec.policy, op)) {
    throw new MeridianError(
      'wrong_policy',
      `${op} is not valid for collection '${spec.name}' (policy ${spec.policy}; allowed: ${OPERATIONS[spec.policy].join(', ')})`,
    );
  }
}

/** Refuses a /v1 client's write to a collection only the saga engine may write (e.g. money). */
export function requireClientWritable(spec: CollectionSpec, op: Operation): void {
  if (op !== 'get' && spec.writableBy === 'sagas') {
    throw new MeridianError(
      'read_only',
      `collection '${spec.name}' is read-only to clients: it changes only through sagas (POST /v1/sagas/...)`,
    );
  }
}

/** Keys are 1 to 512 bytes of UTF-8 with no control characters. */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0)
    throw new MeridianError('bad_key', 'key must not be empty');
  // A UTF-16 code unit is at most 3 bytes of UTF-8: short keys need no byte count (every request
  // validates its key).
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new MeridianError('bad_key', `key is longer than ${MAX_KEY_BYTES} bytes`);
  }
  if (hasControlCharacter(key)) throw new MeridianError('bad_key', 'key contains control characters');
}

/** Whether `s` holds a C0 or C1 control character (U+0000-U+001F, U+007F-U+009F). */
function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

const COLLECTION_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/** Checks a spec against the deployment's regions; returns the problems, each naming the field. */
export function collectionProblems(spec: CollectionSpec, regions: readonly RegionId[]): string[] {
  const out: string[] = [];
  const at = `collections.${spec.name}`;
  if (!COLLECTION_NAME.test(spec.name))
    out.push(`${at}.name: use lowercase letters, digits, '-' or '_' (max 63)`);
  if (!(spec.policy in OPERATIONS)) out.push(`${at}.policy: must be one of pinned, lww, counter, set`);
  if (spec.residency !== undefined) {
    if (spec.residency.length === 0) out.push(`${at}.residency: list at least one region, or leave it out`);
    for (const r of spec.residency)
      if (!regions.includes(r)) out.push(`${at}.residency: unknown region '${r}'`);
  }
  if (spec.replication.mode === 'sync') {
    const { acks } = spec.replication;
    const peers = (spec.residency ?? regions).length - 1;
    if (typeof acks === 'number' && (!Number.isInteger(acks) || acks < 1 || acks > peers)) {
      out.push(
        `${at}.replication.acks: a number must be 1 to ${peers} (the other regions holding this collection)`,
      );
    }
    if (typeof acks === 'string' && acks !== 'all' && acks !== 'majority') {
      out.push(`${at}.replication.acks: must be 'all', 'majority' or a number`);
    }
  }
  return out;
}

/** The regions that hold a collection's data. */
export function holders(spec: CollectionSpec, regions: readonly RegionId[]): RegionId[] {
  return spec.residency ? regions.filter((r) => spec.residency!.includes(r)) : [...regions];
}

/** How many other regions must acknowledge a sync write before it is confirmed. */
export function requiredAcks(spec: CollectionSpec, regions: readonly RegionId[]): number {
  if (spec.replication.mode !== 'sync') return 0;
  const n = holders(spec, regions).length;
  const { acks } = spec.replication;
  if (acks === 'all') return n - 1;
  if (acks === 'majority') return Math.floor(n / 2); // majority of n counting the origin, minus the origin
  return Math.min(acks, n - 1);
}

/**
 * The home of a pinned key that no region has seen yet: rendezvous (highest random weight) hashing
 * of the key over the regions that may hold the collection. Every region computes the same answer
 * from the same configuration, so exactly one region accepts a key's first write and the others
 * answer 421 naming it: the home is decided before any region accepts the write, not by whichever
 * region takes it first (two regions taking the same first write would both claim the key, and
 * last-writer-wins would drop one of them). The order of the region list does not matter, and
 * adding or removing a region moves only the new keys that would have been, or were, homed there.
 * The hash is part of the data contract: changing it re-homes keys that are not written yet.
 * @example
 * homeOfNewKey({ name: 'profiles', policy: 'pinned', replication: { mode: 'async' } }, ['us-east-1', 'eu-west-1'], 'alice')
 * // -> the same region on every node, e.g. 'eu-west-1'
 */
export function homeOfNewKey(spec: CollectionSpec, regions: readonly RegionId[], key: string): RegionId {
  const allowed = spec.residency ? regions.filter((r) => spec.residency!.includes(r)) : regions;
  let best: RegionId | undefined;
  let bestWeight = -1;
  const keyHash = fnv1a(key, FNV_OFFSET);
  for (const r of allowed) {
    const w = mix32(fnv1a(r, keyHash));
    if (w > bestWeight || (w === bestWeight && best !== undefined && r < best)) {
      best = r;
      bestWeight = w;
    }
  }
  if (best === undefined) throw new MeridianError('bad_request', `collection '${spec.name}' has no region`);
  return best;
}

const FNV_OFFSET = 0x811c9dc5;

/** FNV-1a over UTF-16 code units, continuing from `h`. */
function fnv1a(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // A separator, so that ('ab', 'c') and ('a', 'bc') hash apart.
  return Math.imul(h ^ 0xff, 0x01000193) >>> 0;
}

/** MurmurHash3's finalizer: FNV's low bits are weak, and the weights must be uniform. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
