/**
 * Walks each session's operations in order and finds reads that went back in time: a read older
 * than the session's own last write (read-your-writes) or than what it read before (monotonic
 * reads). Registers are ordered by their write's (HLC, region); counters (increments only) by value.
 */
import type { History, LocalChange, OpRecord } from '../history.js';
import { regOrder } from './types.js';

export interface SessionAnomaly {
  kind: 'read-your-writes' | 'monotonic-reads';
  read: OpRecord;
  /** The operation whose effect the read lost. */
  before: OpRecord;
  detail: string;
}

type Seen =
  | { t: 'reg'; hlc: string; origin: string; deleted: boolean; op: OpRecord; byWrite: boolean }
  | { t: 'count'; value: number; op: OpRecord; byWrite: boolean };

interface WriteIndex {
  /** value -> the change of the write that produced it (read for its hlc and origin) */
  writes: Map<string, LocalChange>;
  /** key -> the deletes of it */
  deletes: Map<string, { hlc: string; origin: string }[]>;
  /**
   * Each session's operations in order, by session and token (a session's operations all carry
   * the same), in the order of their first operation: each kind of session walks only its own.
   */
  sessions: { token: boolean; ops: OpRecord[] }[];
}

interface Cached {
  opCount: number;
  results: Map<boolean, SessionAnomaly[]>;
  index?: WriteIndex;
}

const cache = new WeakMap<History, Cached>();

function cached(h: History): Cached {
  let c = cache.get(h);
  if (!c || c.opCount !== h.ops.length) {
    c = { opCount: h.ops.length, results: new Map() };
    cache.set(h, c);
  }
  return c;
}

/** Anomalies of every session (token-carrying or not, as asked); computed once per history. */
export function sessionAnomalies(h: History, tokenSessions: boolean): SessionAnomaly[] {
  const c = cached(h);
  let r = c.results.get(tokenSessions);
  if (!r) {
    // Both kinds of session (asked for by the checkers and by the figures) share one index.
    c.index ??= writeIndex(h);
    r = computeAnomalies(h, tokenSessions, c.index);
    c.results.set(tokenSessions, r);
  }
  return r;
}

/** Every committed register value (values are unique per write) and the change that wrote it. */
export function registerWrites(h: History): ReadonlyMap<string, LocalChange> {
  const c = cached(h);
  c.index ??= writeIndex(h);
  return c.index.writes;
}

function writeIndex(h: History): WriteIndex {
  const writes = new Map<string, LocalChange>();
  const deletes = new Map<string, { hlc: string; origin: string }[]>();
  for (const list of h.changes.values()) {
    for (const c of list) {
      if (c?.delta.t !== 'reg') continue;
      if (c.delta.deleted) {
        const id = `${c.collection}\u0000${c.key}`;
        const a = deletes.get(id) ?? [];
        a.push({ hlc: c.hlc, origin: c.origin });
        deletes.set(id, a);
      } else if (typeof c.delta.value === 'string') writes.set(c.delta.value, c);
    }
  }
  // Session ids are small integers: an array by id and token, plus the order in which they first appear.
  const byId: OpRecord[][] = [];
  const sessions: { token: boolean; ops: OpRecord[] }[] = [];
  for (const op of h.ops) {
    const i = op.session * 2 + (op.token ? 1 : 0);
    let a = byId[i];
    if (!a) {
      a = [];
      byId[i] = a;
      sessions.push({ token: op.token, ops: a });
    }
    a.push(op);
  }
  return { writes, deletes, sessions };
}

function computeAnomalies(h: History, tokenSessions: boolean, index: WriteIndex): SessionAnomaly[] {
  const regColls = new Set(
    h.collections.filter((c) => c.policy === 'lww' || c.policy === 'pinned').map((c) => c.name),
  );
  const countColls = new Set(h.collections.filter((c) => c.policy === 'counter').map((c) => c.name));
  const { writes, deletes } = index;
  const out: SessionAnomaly[] = [];
  for (const { token, ops } of index.sessions) {
    if (token !== tokenSessions) continue;
    // collection -> key -> what the session last saw (two levels: no id string per operation)
    const seenIn = new Map<string, Map<string, Seen>>();
    for (const op of ops) {
      if (op.result !== 'ok') continue;
      let seen = seenIn.get(op.collection);
      if (!seen) {
        seen = new Map();
        seenIn.set(op.collection, seen);
      }
      const id = op.key;
      const prev = seen.get(id);
      if (regColls.has(op.collection)) {
        let now: Seen | undefined;
        if (op.kind === 'put' || op.kind === 'delete') {
          if (op.change) {
            now = {
              t: 'reg',
              hlc: op.change.hlc,
              origin: op.change.origin,
              deleted: op.kind === 'delete',
              op,
              byWrite: true,
            };
          }
        } else if (op.kind === 'get') {
          if (op.answer !== undefined) {
            const w = typeof op.answer === 'string' ? writes.get(op.answer) : undefined;
            if (w && w.collection === op.collection && w.key === op.key) {
              now = { t: 'reg', hlc: w.hlc, origin: w.origin, deleted: false, op, byWrite: false };
            } else if (prev?.t === 'reg') {
              // A value no write of this key produced cannot be placed after what the session saw:
              // the read lost it (read-validity reports the value itself, session or not).
              out.push({
                kind: prev.byWrite ? 'read-your-writes' : 'monotonic-reads',
                read: op,
                before: prev.op,
                detail: `read returned ${JSON.stringify(op.answer)}, which no committed write of this key produced, after the session ${prev.byWrite ? 'wrote' : 'read'} ${prev.hlc}@${prev.origin}`,
              });
              continue;
            }
          } else if (op.answer === undefined && prev?.t === 'reg' && !prev.deleted) {
            // Absent: fine only if some delete of the key is newer than what the session saw.
            const newer = (deletes.get(`${op.collection}\u0000${op.key}`) ?? []).some(
              (d) => regOrder(d, prev) > 0,
            );
            if (!newer) {
              out.push({
                kind: prev.byWrite ? 'read-your-writes' : 'monotonic-reads',
                read: op,
                before: prev.op,
                detail: `read found nothing after the session ${prev.byWrite ? 'wrote' : 'read'} ${prev.hlc}@${prev.origin}`,
              });
            }
          }
          if (now?.t === 'reg' && prev?.t === 'reg' && regOrder(now, prev) < 0) {
            out.push({
              kind: prev.byWrite ? 'read-your-writes' : 'monotonic-reads',
              read: op,
              before: prev.op,
              detail: `read returned ${JSON.stringify(op.answer)} (${now.hlc}@${now.origin}), older than ${prev.hlc}@${prev.origin} that the session ${prev.byWrite ? 'wrote' : 'read'} in op #${prev.op.id}`,
            });
            continue;
          }
        }
        if (now?.t === 'reg' && (prev?.t !== 'reg' || regOrder(now, prev) >= 0)) seen.set(id, now);
      } else if (countColls.has(op.collection)) {
        const value = typeof op.answer === 'number' ? op.answer : op.answer === undefined ? 0 : undefined;
        if (value === undefined) continue;
        if (op.kind === 'get' && prev?.t === 'count' && value < prev.value) {
          out.push({
            kind: prev.byWrite ? 'read-your-writes' : 'monotonic-reads',
            read: op,
            before: prev.op,
            detail: `read returned ${value}, less than the ${prev.value} the session ${prev.byWrite ? 'saw after its increment' : 'read'} in op #${prev.op.id}`,
          });
          continue;
        }
        if (prev?.t !== 'count' || value >= prev.value) {
          seen.set(id, { t: 'count', value, op, byWrite: op.kind !== 'get' });
        }
      }
    }
  }
  return out;
}
