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
  /** member -> live tags, sorted. */
  adds: Record<string, string[]>;
  /** Tags removed so far, sorted; kept so that a late duplicate of an add cannot resurrect it. */
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
  const [winner, loser] = regWins(a, b) ? [a, b] : [b, a];
  return { state: winner, conflict: winner.prevHlc < loser.hlc };
}

function maxRecord(a: Record<RegionId, number>, b: Record<RegionId, number>): Record<RegionId, number> {
  const out: Record<RegionId, number> = {};
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    out[k] = Math.max(a[k] ?? 0, b[k] ?? 0);
  }
  return out;
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

function sortedUnion(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

export function mergeSet(a: SetState, b: SetState): MergeResult<SetState> {
  const removed = sortedUnion(a.removed, b.removed);
  const gone = new Set(removed);
  const adds: Record<string, string[]> = {};
  for (const m of [...new Set([...Object.keys(a.adds), ...Object.keys(b.adds)])].sort()) {
    const tags = sortedUnion(a.adds[m] ?? [], b.adds[m] ?? []).filter((t) => !gone.has(t));
    if (tags.length > 0) adds[m] = tags;
  }
  return { state: { t: 'set', adds, removed }, conflict: false };
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
