/**
 * The document states of the four policies, each a state-based CRDT: merge is commutative,
 * associative and idempotent, so replicas that have seen the same changes hold the same state
 * whatever the order or repetition of delivery. A change carries a delta state of the same type.
 */
import type { Json, RegionId } from './types.js';

/** LWW register (lww and pinned): the greatest (hlc, origin) wins. A delete is a tombstone. */
export interface RegState {
  t: 'reg';
  value: Json;
  deleted: boolean;
  /** Encoded HLC of the write (hlc.ts encoding sorts in time order). */
  hlc: string;
  origin: RegionId;
  /** HLC of the state this write replaced at its origin: tells a causal overwrite from a conflict. */
  prevHlc: string;
  /** Pinned collections: the one region that accepts writes for this key. */
  home?: RegionId;
}

/** PN-counter: per-origin totals of increments and decrements; merge takes the maximum. */
export interface CounterState {
  t: 'counter';
  p: Record<RegionId, number>;
  n: Record<RegionId, number>;
}

/**
 * Observed-remove set, add wins: each add carries a unique tag; a remove deletes only the tags it
 * observed, so an add concurrent with a remove survives it.
 */
export interface SetState {
  t: 'set';
  /** member -> live tags, sorted, without duplicates. A tag belongs to one member and is never also in `removed`. */
  adds: Record<string, string[]>;
  /**
   * Tags removed so far, sorted, without duplicates; kept so that a late duplicate of an add cannot
   * resurrect it. `mergeSet` relies on these invariants (every state the system builds keeps them).
   */
  removed: string[];
}

export type DocState = RegState | CounterState | SetState;

export interface MergeResult<S extends DocState> {
  state: S;
  /** True when the merge discarded a write that the winner had not seen (a resolved conflict). */
  conflict: boolean;
}

export function regWins(a: RegState, b: RegState): boolean {
  return a.hlc !== b.hlc ? a.hlc > b.hlc : a.origin > b.origin;
}

export function mergeReg(a: RegState, b: RegState): MergeResult<RegState> {
  if (a.hlc === b.hlc && a.origin === b.origin) return { state: a, conflict: false };
  const aWins = regWins(a, b);
  const winner = aWins ? a : b;
  const loser = aWins ? b : a;
  return { state: winner, conflict: winner.prevHlc < loser.hlc };
}

function maxRecord(a: Record<RegionId, number>, b: Record<RegionId, number>): Record<RegionId, number> {
  // The common cases merge a delta over origins the state already has: a duplicate or older one
  // changes nothing (keep the state's own object, states are never mutated), a newer one only
  // raises values, so the state's (sorted) key order serves without sorting again.
  let covered = true;
  let sameKeys = true;
  for (const k in b) {
    if (!Object.hasOwn(b, k)) continue;
    if (!Object.hasOwn(a, k)) sameKeys = false;
    else if (!(b[k]! <= a[k]!)) covered = false;
  }
  if (sameKeys && sortedKeys(a)) {
    if (covered) return a;
    const out: Record<RegionId, number> = {};
    for (const k in a) if (Object.hasOwn(a, k)) out[k] = Math.max(a[k]!, Object.hasOwn(b, k) ? b[k]! : 0);
    return out;
  }
  const keys = Object.keys(a);
  for (const k of Object.keys(b)) if (!Object.hasOwn(a, k)) keys.push(k);
  keys.sort();
  const out: Record<RegionId, number> = {};
  for (const k of keys) out[k] = Math.max(a[k] ?? 0, b[k] ?? 0);
  return out;
}

/** Whether an object's own keys are in sorted order (merged states keep them sorted). */
function sortedKeys(o: object): boolean {
  let prev: string | undefined;
  for (const k in o) {
    if (prev !== undefined && !(prev < k)) return false;
    prev = k;
  }
  return true;
}

export function mergeCounter(a: CounterState, b: CounterState): MergeResult<CounterState> {
  return { state: { t: 'counter', p: maxRecord(a.p, b.p), n: maxRecord(a.n, b.n) }, conflict: false };
}

export function counterValue(s: CounterState): number {
  let v = 0;
  for (const x of Object.values(s.p)) v += x;
  for (const x of Object.values(s.n)) v -= x;
  return v;
}

/**
 * Union of two tag lists, each sorted without duplicates (SetState's invariant), in one linear
 * pass. Returns an input unchanged when it already is the union (the common case of merging a
 * small delta into a state), so no array is built.
 */
function sortedUnion(a: readonly string[], b: readonly string[]): readonly string[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y) {
      out.push(x);
      i++;
      j++;
    } else if (x < y) {
      out.push(x);
      i++;
    } else {
      out.push(y);
      j++;
    }
  }
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  // Same length as an input means that input already held every tag.
  if (out.length === a.length) return a;
  if (out.length === b.length) return b;
  return out;
}

/** Binary search in a sorted list. */
function hasSorted(a: readonly string[], x: string): boolean {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const v = a[mid]!;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

/**
 * Both inputs hold sorted tag lists (SetState's invariant), so unions are linear merges, removed
 * tags are found by binary search, and unchanged lists and maps are shared with the inputs.
 */
export function mergeSet(a: SetState, b: SetState): MergeResult<SetState> {
  if (a === b) return { state: a, conflict: false };
  const removed = sortedUnion(a.removed, b.removed);
  const aAdds = a.adds;
  const bAdds = b.adds;
  const members = Object.keys(aAdds);
  const own = members.length;
  let aSorted = true;
  for (let i = 1; i < own; i++) {
    if (!(members[i - 1]! < members[i]!)) {
      aSorted = false;
      break;
    }
  }
  for (const m of Object.keys(bAdds)) if (!Object.hasOwn(aAdds, m)) members.push(m);
  if (members.length > own || !aSorted) members.sort();
  const adds: Record<string, string[]> = {};
  // Whether `adds` equals a.adds exactly (same members, same lists, same order): then share it.
  let sameAsA = aSorted;
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const fromA = Object.hasOwn(aAdds, m) ? aAdds[m] : undefined;
    const fromB = Object.hasOwn(bAdds, m) ? bAdds[m] : undefined;
    // By the invariant each side's tags are already clear of its own removals: check each against
    // the other side's only (usually a one-tag delta, or nothing).
    const keptA = fromA !== undefined && b.removed.length > 0 ? withoutRemoved(fromA, b.removed) : fromA;
    const keptB = fromB !== undefined && a.removed.length > 0 ? withoutRemoved(fromB, a.removed) : fromB;
    const tags =
      keptA === undefined ? (keptB ?? []) : keptB === undefined ? keptA : sortedUnion(keptA, keptB);
    if (tags.length > 0) {
      adds[m] = tags as string[];
      if (tags !== fromA) sameAsA = false;
    } else if (fromA !== undefined) sameAsA = false;
  }
  if (sameAsA && removed === a.removed) return { state: a, conflict: false };
  return { state: { t: 'set', adds: sameAsA ? aAdds : adds, removed: removed as string[] }, conflict: false };
}

/** `tags` without the removed ones; `tags` itself when none is removed (the usual case). */
function withoutRemoved(tags: readonly string[], removed: readonly string[]): readonly string[] {
  let i = 0;
  while (i < tags.length && !hasSorted(removed, tags[i]!)) i++;
  if (i === tags.length) return tags;
  const out = tags.slice(0, i);
  for (i++; i < tags.length; i++) if (!hasSorted(removed, tags[i]!)) out.push(tags[i]!);
  return out;
}

export function setMembers(s: SetState): string[] {
  return Object.keys(s.adds).sort();
}

/** Merges two states of the same document. States of different types never meet (one policy per collection). */
export function mergeDoc(a: DocState, b: DocState): MergeResult<DocState> {
  if (a.t === 'reg' && b.t === 'reg') return mergeReg(a, b);
  if (a.t === 'counter' && b.t === 'counter') return mergeCounter(a, b);
  if (a.t === 'set' && b.t === 'set') return mergeSet(a, b);
  throw new Error(`cannot merge document states of types ${a.t} and ${b.t}`);
}

/**
 * `mergeDoc` without its result object, for the replication hot path (a register merge for most
 * replicated writes): returns the merged state and sets `out.conflict`.
 */
export function mergeDocInto(a: DocState, b: DocState, out: { conflict: boolean }): DocState {
  if (a.t === 'reg' && b.t === 'reg') {
    if (a.hlc === b.hlc && a.origin === b.origin) {
      out.conflict = false;
      return a;
    }
    const aWins = regWins(a, b);
    const winner = aWins ? a : b;
    out.conflict = winner.prevHlc < (aWins ? b : a).hlc;
    return winner;
  }
  const merged = mergeDoc(a, b);
  out.conflict = merged.conflict;
  return merged.state;
}

export const emptyCounter = (): CounterState => ({ t: 'counter', p: {}, n: {} });
export const emptySet = (): SetState => ({ t: 'set', adds: {}, removed: [] });

/** Whether a document reads as absent (never written, deleted, or an empty set never written). */
export function isAbsent(s: DocState | undefined): boolean {
  return s === undefined || (s.t === 'reg' && s.deleted);
}

/** The client-facing value (DESIGN.md): a counter's number, a set's sorted members, else the JSON. */
export function docValue(s: DocState): Json {
  switch (s.t) {
    case 'reg':
      return s.deleted ? null : s.value;
    case 'counter':
      return counterValue(s);
    case 'set':
      return setMembers(s);
  }
}
